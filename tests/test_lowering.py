"""Every lowering, with exact activations, reproduces the plaintext layer on slot vectors to 1e-9, with one
image per query and with several packed into the same ciphertexts."""

import numpy as np
import pytest

from resnet_fhe.backends.simulator import SimulatorBackend
from resnet_fhe.ir import fold_batchnorm, run_graph
from resnet_fhe.ir.graph import AvgPool, Conv2d, Graph, Input, Linear, ReLU, Shape, ShortcutA
from resnet_fhe.models import ResNetSpec, build_cifar_resnet, random_resnet_weights
from resnet_fhe.plan.layout import Layout
from tests.helpers import compile_for_test, random_images, small_cnn, toy_params

RNG = np.random.default_rng(7)
# ring 1024 -> 512 slots: an 8x12x12 tensor (8 blocks of 256) spans 4 ciphertexts.
PRESETS = {"one-ciphertext": toy_params(1 << 16), "multi-ciphertext": toy_params(1024)}
# (preset, images per query): 4 images of 12x12 fill 4 blocks of 256 slots, more than the 512-slot ring.
PACKINGS = [("one-ciphertext", 1), ("one-ciphertext", 4), ("multi-ciphertext", 1), ("multi-ciphertext", 2)]


def _single_layer(layer, in_shape: Shape) -> Graph:
    return Graph([Input("input", (), in_shape), layer], "single")


def _check(graph: Graph, params, atol: float = 1e-9, images_per_query: int = 1) -> None:
    plan = compile_for_test(graph, params, images_per_query=images_per_query)
    assert plan.images_per_query == images_per_query
    shape = graph.input.shape
    # 6 images: with 4 per query the second query is padded.
    x = random_images(6, (shape.channels, shape.height, shape.width), seed=3).images / 255.0
    expected = run_graph(graph, x)
    got = SimulatorBackend(plan, exact_activations=True).run(x)
    np.testing.assert_allclose(got, expected, rtol=0, atol=atol)


@pytest.mark.parametrize(("preset", "packing"), PACKINGS)
@pytest.mark.parametrize(("stride", "kernel", "padding"), [(1, 3, 1), (2, 3, 1), (2, 1, 0), (1, 5, 2)])
def test_convolution(preset, packing, stride, kernel, padding):
    weight = RNG.normal(0, 0.5, (8, 3, kernel, kernel))
    conv = Conv2d("conv", ("input",), weight, RNG.normal(0, 0.2, 8), stride, padding)
    _check(_single_layer(conv, Shape(3, 12, 12)), PRESETS[preset], images_per_query=packing)


@pytest.mark.parametrize(("max_keys", "group"), [(5, 1), (8, 2)])
def test_convolution_channel_group_trades_giant_rotations_for_babies(max_keys, group):
    # 64 channels of 4x4 share one ciphertext: giant steps of 1 channel need 63 rotations, of 2 only 31
    # for 9 more babies; the two-channel giant key takes the op past 5 keys (this preset has no bootstrap
    # keys to cover any), so the default keeps group 1.
    conv = Conv2d("conv", ("input",), RNG.normal(0, 0.1, (64, 64, 3, 3)), RNG.normal(0, 0.2, 64), 1, 1)
    graph = _single_layer(conv, Shape(64, 4, 4))
    params = PRESETS["one-ciphertext"]
    plan = compile_for_test(graph, params, max_keys_per_phase=max_keys)
    op = next(op for op in plan.ops if op.name == "conv")
    assert (op.giant_step, op.giants, op.rotations()) == ((16 * group), 64 // group, {1: 71, 2: 48}[group])
    x = random_images(2, (64, 4, 4), seed=3).images / 255.0
    got = SimulatorBackend(plan, exact_activations=True).run(x)
    np.testing.assert_allclose(got, run_graph(graph, x), rtol=0, atol=1e-9)


@pytest.mark.parametrize("preset", PRESETS)
def test_convolution_with_position_dependent_bias(preset):
    bias = RNG.normal(0, 0.2, (4, 10, 10))
    conv = Conv2d("conv", ("input",), RNG.normal(0, 0.5, (4, 2, 3, 3)), bias, 1, 1)
    _check(_single_layer(conv, Shape(2, 10, 10)), PRESETS[preset])


@pytest.mark.parametrize(("preset", "packing"), PACKINGS)
def test_shortcut_option_a(preset, packing):
    _check(_single_layer(ShortcutA("short", ("input",), 8, 2), Shape(4, 12, 12)), PRESETS[preset],
           images_per_query=packing)


@pytest.mark.parametrize(("preset", "packing"), PACKINGS)
def test_pool_and_linear(preset, packing):
    nodes = [Input("input", (), Shape(6, 6, 6)), AvgPool("pool", ("input",)),
             Linear("fc", ("pool",), RNG.normal(0, 1, (5, 6)), RNG.normal(0, 1, 5))]
    _check(Graph(nodes, "head"), PRESETS[preset], images_per_query=packing)


def test_linear_after_pool_needs_one_diagonal_per_channel_shift():
    # 10 outputs from 64 pooled channels: 64 diagonals (one per channel shift, all outputs in each) and
    # 7 baby + 7 giant rotations, not a product per weight.
    nodes = [Input("input", (), Shape(64, 4, 4)), AvgPool("pool", ("input",)),
             Linear("fc", ("pool",), RNG.normal(0, 1, (10, 64)), RNG.normal(0, 1, 10))]
    graph = Graph(nodes, "head")
    plan = compile_for_test(graph, PRESETS["one-ciphertext"])
    op = next(op for op in plan.ops if op.name == "fc")
    assert (op.terms, op.rotations()) == (64, 14)
    _check(graph, PRESETS["one-ciphertext"])


@pytest.mark.parametrize("shortcut", ["A", "B"])
@pytest.mark.parametrize(("preset", "packing"), PACKINGS)
def test_small_resnets_end_to_end(shortcut, preset, packing):
    spec = ResNetSpec(depth=8, widths=(4, 8, 16), shortcut=shortcut, input_shape=(3, 12, 12))
    graph = fold_batchnorm(build_cifar_resnet(random_resnet_weights(spec, seed=2), fold_normalization=True))
    _check(graph, PRESETS[preset], atol=1e-8, images_per_query=packing)


def test_relu_with_exact_activation_and_grey_28x28_cnn():
    _check(small_cnn(), PRESETS["one-ciphertext"])


def test_layout_pack_round_trip():
    layout = Layout.for_shape(5, 7, 9, max_slots=128)
    assert layout.block == 64 and layout.per_ct == 2 and layout.ciphertexts == 3
    tensor = RNG.normal(size=(2, 5, 7, 9))
    assert np.array_equal(layout.unpack(layout.pack(tensor)), tensor)


def test_packed_layout_interleaves_images_between_channel_and_position():
    from resnet_fhe.errors import CompileError, InputError

    layout = Layout.for_shape(5, 7, 9, max_slots=512, images=4)
    assert (layout.per_ct, layout.ciphertexts, layout.channel_stride) == (2, 3, 256)
    assert layout.position(np.array(3), np.array(1), np.array(2), np.array(2)) == (1, 256 + 2 * 64 + 9 + 2)
    tensor = RNG.normal(size=(8, 5, 7, 9))  # two queries of four
    packed = layout.pack(tensor)
    assert [p.shape for p in packed] == [(2, 512)] * 3
    assert np.array_equal(layout.unpack(packed), tensor)
    with pytest.raises(InputError, match="pad"):
        layout.pack(tensor[:6])
    with pytest.raises(CompileError, match="slots"):
        Layout.for_shape(5, 7, 9, max_slots=128, images=4)
    assert "images" not in Layout.for_shape(5, 7, 9, max_slots=128).to_dict()  # single-image plans unchanged


def test_relu_graph_rejects_unfolded_batchnorm():
    from resnet_fhe.errors import CompileError

    spec = ResNetSpec(depth=8, widths=(4, 8, 16), input_shape=(3, 12, 12))
    graph = build_cifar_resnet(random_resnet_weights(spec))
    with pytest.raises(CompileError, match="fold"):
        compile_for_test(graph)


def test_stride_one_must_keep_size():
    from resnet_fhe.errors import CompileError

    conv = Conv2d("conv", ("input",), RNG.normal(size=(2, 1, 3, 3)), None, 1, 0)
    with pytest.raises(CompileError, match="padding"):
        compile_for_test(_single_layer(conv, Shape(1, 8, 8)))


def test_relu_alone_is_a_polynomial():
    graph = Graph([Input("input", (), Shape(2, 4, 4)),
                   Conv2d("conv", ("input",), RNG.normal(size=(2, 2, 1, 1)), None, 1, 0),
                   ReLU("relu", ("conv",))], "relu")
    plan = compile_for_test(graph)
    assert [op.kind for op in plan.ops] == ["linear", "polynomial"]
    _check(graph, PRESETS["one-ciphertext"])
