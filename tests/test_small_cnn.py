"""CryptonDL / TenSEAL-shaped CNNs (issue 13): strided convolutions of any stride, exact polynomial
activations, dense layers on whole feature maps, the graph weights format, and presets without
bootstrapping, in the simulator and under real (INSECURE toy) encryption."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_fhe.backends.simulator import SimulatorBackend
from resnet_fhe.cli import macro_f1
from resnet_fhe.errors import CompileError, ModelError, WeightsError
from resnet_fhe.ir import run_graph
from resnet_fhe.ir.graph import Conv2d, Graph, Input, Linear, PolynomialActivation, Shape
from resnet_fhe.ir.passes import im2col_stem
from resnet_fhe.models import load_model
from resnet_fhe.models.graph_file import graph_from_weights, graph_to_weights
from resnet_fhe.plan.ops import Bootstrap, Polynomial
from resnet_fhe.plan.params import CkksParameters
from tests.helpers import compile_for_test, random_images

SQUARE = (0.0, 0.0, 1.0)


def tutorial_cnn(seed: int = 0, activation: tuple[float, ...] = SQUARE, size: int = 16, stride: int = 3) -> Graph:
    """TenSEAL's tutorial shape at a small size: conv (stride 3, no padding) -> poly -> dense -> poly -> dense."""
    rng = np.random.default_rng(seed)
    out = (size - 4) // stride + 1
    return Graph([
        Input("input", (), Shape(1, size, size)),
        Conv2d("conv", ("input",), rng.normal(0, 0.4, (4, 1, 4, 4)), rng.normal(0, 0.1, 4), stride, 0),
        PolynomialActivation("act1", ("conv",), activation),
        Linear("fc1", ("act1",), rng.normal(0, 0.3, (16, 4 * out * out)), rng.normal(0, 0.1, 16)),
        PolynomialActivation("act2", ("fc1",), activation),
        Linear("fc2", ("act2",), rng.normal(0, 0.3, (10, 16)), rng.normal(0, 0.1, 10)),
    ], "tutorial-cnn")


EVEN = (1.0, -4.0, 4.0)  # 4 (x - 1/2)^2: the same for a pixel p and 1 - p (pixel-based encryption's negation)


def even_input_cnn(padding: int = 0, seed: int = 0) -> Graph:
    """tutorial_cnn with an elementwise polynomial on the input before the strided convolution."""
    graph = tutorial_cnn(seed=seed)
    conv = graph.node("conv")
    out = (16 + 2 * padding - 4) // 3 + 1
    fc1 = graph.node("fc1")
    return graph.replace([graph.input, PolynomialActivation("even", ("input",), EVEN),
                          Conv2d("conv", ("even",), conv.weight, conv.bias, 3, padding),
                          *graph.nodes[2:3],
                          Linear("fc1", ("act1",), np.resize(fc1.weight, (16, 4 * out * out)), fc1.bias),
                          *graph.nodes[4:]])


def no_bootstrap_params(ring_dim: int = 4096, depth: int = 7) -> CkksParameters:
    """INSECURE: a depth-7 chain with no bootstrapping, as small-128 but on a toy ring."""
    return CkksParameters(name=f"test-insecure-nobootstrap-{ring_dim}", ring_dim=ring_dim, scale_bits=40,
                          first_mod_bits=50, multiplicative_depth=depth, num_large_digits=3, level_budget=(1, 1),
                          secret_key_dist="UNIFORM_TERNARY", security="HEStd_NotSet", bootstrap_depth=0,
                          bootstrap_precision_bits=0.0)


def test_polynomial_activation_validates_and_evaluates():
    with pytest.raises(ModelError, match="non-zero term"):
        tutorial_cnn(activation=(1.0, 0.0))
    graph = tutorial_cnn(activation=(0.5, -1.0, 0.25))
    assert not graph.node("act1").monomial and graph.node("act1").degree == 2
    assert tutorial_cnn().node("act1").monomial
    x = np.linspace(-2, 2, 5)
    from resnet_fhe.ir.interpret import _apply

    got = _apply(graph.node("act1"), [x.reshape(1, 1, 1, 5)]).ravel()
    np.testing.assert_allclose(got, 0.5 - x + 0.25 * x * x)


def test_an_im2col_stem_computes_the_same_function():
    graph = tutorial_cnn(seed=2)
    flat = im2col_stem(graph)
    assert flat.input.im2col == (4, 4, 3, 0) and flat.nodes[1].weight.shape == (4, 16, 1, 1)
    assert flat.shapes["input"] == Shape(16, 5, 5) and flat.input.shape == graph.input.shape
    images = random_images(3, (1, 16, 16)).images / 255.0
    np.testing.assert_allclose(run_graph(flat, images), run_graph(graph, images), rtol=1e-12, atol=1e-12)
    assert im2col_stem(flat) is flat


def test_an_elementwise_input_polynomial_moves_onto_the_im2col_input():
    """Exactly where it commutes with im2col: no padding, or a polynomial with p(0) = 0."""
    graph = even_input_cnn()
    flat = im2col_stem(graph)
    assert flat.input.im2col == (4, 4, 3, 0) and [n.name for n in flat.nodes[:3]] == ["input", "even", "conv"]
    assert flat.shapes["even"] == Shape(16, 5, 5)
    images = random_images(3, (1, 16, 16)).images / 255.0
    np.testing.assert_allclose(run_graph(flat, images), run_graph(graph, images), rtol=1e-12, atol=1e-12)
    assert im2col_stem(even_input_cnn(padding=1)).input.im2col is None  # p(0) = 1 would fill the padding


@pytest.mark.parametrize("stem", [False, True])
@pytest.mark.parametrize("images_per_query", [1, 4])
@pytest.mark.parametrize("activation", [SQUARE, (0.5, -1.0, 0.25)])
def test_tutorial_cnn_plan_computes_the_network(images_per_query, activation, stem):
    """Exact slot semantics (no CKKS error): the plan's logits equal the numpy forward pass, packed or not,
    for the square (per-channel scales) and a general quadratic (one scale per tensor), with the strided
    convolution on the encrypted image or on an im2col input."""
    graph = im2col_stem(tutorial_cnn(activation=activation)) if stem else tutorial_cnn(activation=activation)
    # A square takes one level; a general polynomial OpenFHE's Chebyshev series depth (3 at degree 2).
    depth = 7 if activation == SQUARE else 11
    plan = compile_for_test(graph, no_bootstrap_params(depth=depth), images_per_query=images_per_query)
    assert not any(isinstance(op, Bootstrap) for op in plan.ops)
    functions = {op.function for op in plan.ops if isinstance(op, Polynomial)}
    assert functions == ({"square"} if activation == SQUARE else {"polynomial"})
    images = random_images(8, (1, 16, 16), seed=3).images / 255.0
    np.testing.assert_allclose(SimulatorBackend(plan).run(images), run_graph(graph, images), rtol=1e-9, atol=1e-9)


def test_packing_adds_no_plaintexts_to_the_dense_layers():
    """dense_layout puts every image's vector at the same offsets from its input, so 4 images per query
    need the plaintexts of one."""
    graph = tutorial_cnn()
    terms = {b: {op.name: op.terms for op in compile_for_test(graph, no_bootstrap_params(), images_per_query=b).ops
                 if getattr(op, "purpose", "") == "linear"} for b in (1, 4)}
    assert terms[4]["fc2"] == terms[1]["fc2"]
    assert terms[4]["fc1"] <= 2 * terms[1]["fc1"]


def test_a_network_deeper_than_a_preset_without_bootstrapping_is_refused():
    params = CkksParameters(**{**no_bootstrap_params().__dict__, "multiplicative_depth": 5})
    with pytest.raises(CompileError, match="does not bootstrap"):
        compile_for_test(tutorial_cnn(), params)


def test_graph_weights_round_trip(tmp_path):
    graph = tutorial_cnn(seed=4)
    graph_to_weights(graph, {"dataset": "mnist", "trained": {"seed": 4}}).save(tmp_path / "cnn.npz")
    loaded = load_model(str(tmp_path / "cnn.npz"))
    assert [type(n).__name__ for n in loaded.nodes] == [type(n).__name__ for n in graph.nodes]
    images = random_images(3, (1, 16, 16)).images / 255.0
    np.testing.assert_allclose(run_graph(loaded, images), run_graph(graph, images), rtol=1e-5, atol=1e-5)
    weights = graph_to_weights(graph)
    del weights.arrays["fc1.weight"]
    with pytest.raises(WeightsError, match=r"fc1\.weight"):
        graph_from_weights(weights)


def test_macro_f1():
    labels = np.array([0, 0, 1, 1, 2])
    assert macro_f1(labels, labels, 3) == 1.0
    # class 0: tp 1, fp 1, fn 1 -> 2/4; class 1: tp 2, fp 1, fn 0 -> 4/5; class 2: tp 0 -> 0
    assert macro_f1(np.array([0, 1, 1, 1, 0]), labels, 3) == pytest.approx((2 / 4 + 4 / 5 + 0) / 3)


@pytest.mark.parametrize("even_input", [False, True], ids=["square", "even-input"])
def test_encrypted_tutorial_cnn_matches_the_plain_network(library, even_input):
    """Real CKKS at an INSECURE toy preset without bootstrapping: 4 images in one query; with an even
    polynomial on the (im2col) input, as the CNNs for pixel-encrypted images have."""
    openfhe_backend = pytest.importorskip("resnet_fhe.backends.openfhe_backend")
    graph = im2col_stem(even_input_cnn(seed=1) if even_input else tutorial_cnn(seed=1))
    plan = compile_for_test(graph, no_bootstrap_params(depth=8 if even_input else 5), images_per_query=4)
    assert plan.input_transform == {"image_shape": [1, 16, 16], "im2col": [4, 4, 3, 0]}
    keys = openfhe_backend.generate_keys(plan, library)
    backend = openfhe_backend.OpenFHEBackend(plan, keys.context, bootstrapper=keys.bootstrapper)
    images = random_images(4, (1, 16, 16), seed=9).images / 255.0
    got = backend.decrypt(backend.run(backend.encrypt(images, keys.public_key)), keys.secret_key)
    want = run_graph(graph, images)
    np.testing.assert_allclose(got, want, atol=1e-3 * np.abs(want).max())


def test_shipped_mnist_model_keeps_its_accuracy_in_the_simulator(tmp_path, capsys, mnist_data):
    """cryptondl-mnist at the 128-bit small-128 preset, CKKS noise simulated, on 500 test images."""
    from resnet_fhe.cli import main

    out = tmp_path / "sim.json"
    assert main(["evaluate", "--model", "cryptondl-mnist", "--preset", "small-128", "--mode", "simulate", "--noise",
                 "--images", "500", "--calibration-images", "2048", "--json", str(out)]) == 0
    import json

    result = json.loads(out.read_text())
    assert result["dataset"] == "mnist" and result["bootstraps"] == 0
    assert result["top1"] >= 0.97 and result["agreement_with_plain"] >= 0.998


def test_evaluate_refuses_a_data_set_of_another_shape(capsys):
    from resnet_fhe.cli import main

    assert main(["evaluate", "--model", "cryptondl-mnist", "--dataset", "cifar10", "--images", "2"]) == 2
    assert "takes 1x28x28 images" in capsys.readouterr().err
