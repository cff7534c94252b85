"""Compiler behaviour: calibration rules, degrees and bootstraps, plan round trips, generality."""

import json

import numpy as np
import pytest

from resnet_fhe.backends.simulator import NoiseModel, SimulatorBackend
from resnet_fhe.compiler import CompileOptions, calibrate, compile_graph
from resnet_fhe.compiler.polynomial import relative_error, relu_chebyshev, relu_degree
from resnet_fhe.errors import CalibrationError, CompileError, PlanError
from resnet_fhe.ir import fold_batchnorm, run_graph
from resnet_fhe.ir.graph import Conv2d, ReLU
from resnet_fhe.models import ResNetSpec, build_cifar_resnet, random_resnet_weights
from resnet_fhe.plan.ops import (
    MAX_DEGREE_AT_DEPTH,
    PAIR_IN,
    REAL,
    AddTensors,
    Bootstrap,
    LinearTransform,
    Polynomial,
    input_carriers,
)
from resnet_fhe.plan.plan import PLAN_VERSION, Plan, executes_alike
from tests.helpers import compile_for_test, random_images, small_cnn, toy_params, toy_resnet_plan


def test_calibration_refuses_test_images():
    graph = small_cnn()
    with pytest.raises(CalibrationError, match="test"):
        calibrate(graph, random_images(8, (1, 28, 28), split="test"))


def test_polynomial_depths_match_openfhe():
    openfhe = pytest.importorskip("openfhe")
    for depth, degree in MAX_DEGREE_AT_DEPTH.items():
        assert openfhe.GetMultiplicativeDepthByCoeffVector([1.0] * (degree + 1), True) == depth
        assert openfhe.GetMultiplicativeDepthByCoeffVector([1.0] * (degree + 2), True) == depth + 1


def test_relu_fit_is_zero_at_zero_and_improves_with_degree():
    samples = np.random.default_rng(0).normal(0, 0.1, 4000).clip(-1, 1)
    errors = [relative_error(relu_chebyshev(d, samples), samples) for d in (27, 59, 119)]
    assert errors[0] > errors[1] > errors[2]
    assert abs(np.polynomial.chebyshev.chebval(0.0, relu_chebyshev(59, samples))) < 1e-12


def test_linear_even_relu_keeps_the_depth_and_only_even_terms_beside_x():
    samples = np.random.default_rng(0).normal(0.05, 0.1, 4000).clip(-1, 1)  # asymmetric, as activations are
    for depth in (6, 8):
        degree = relu_degree(depth, "linear-even")
        assert degree == 2 * MAX_DEGREE_AT_DEPTH[depth - 1]
        even = relu_chebyshev(degree, samples, "linear-even")
        assert not np.any(even[3::2]) and even[1] != 0
        assert abs(np.polynomial.chebyshev.chebval(0.0, even)) < 1e-12
        general = relu_chebyshev(MAX_DEGREE_AT_DEPTH[depth], samples)
        assert relative_error(even, samples) < 1.5 * relative_error(general, samples)
        op = Polynomial("relu", "relu", "x", "y", 16, 1, list(even), depth)
        assert op.linear_even and not Polynomial("relu", "relu", "x", "y", 16, 1, list(general), depth).linear_even
    with pytest.raises(CompileError, match="ReLU form"):
        relu_degree(8, "odd")


def test_small_cnn_on_grey_28x28_with_polynomials():
    graph = small_cnn()
    plan = compile_for_test(graph, relu_error=0.01)
    x = random_images(16, (1, 28, 28), seed=5).images / 255.0
    expected = run_graph(graph, x)
    got = SimulatorBackend(plan).run(x)
    assert np.max(np.abs(got - expected)) < 0.05 * np.max(np.abs(expected))
    assert all(isinstance(op, Polynomial) for op in plan.ops if op.kind == "polynomial")


def test_resnet_on_24x24_input_places_bootstraps_and_respects_levels():
    spec = ResNetSpec(depth=14, widths=(4, 8, 16), input_shape=(3, 24, 24))
    graph = fold_batchnorm(build_cifar_resnet(random_resnet_weights(spec, seed=4), fold_normalization=True))
    params = toy_params(1 << 14)
    plan = compile_for_test(graph, params)
    assert plan.bootstraps > 0
    for op in plan.ops:
        assert op.level_out >= 0
        if isinstance(op, Bootstrap):
            assert op.level_out <= params.levels_after_bootstrap
        else:
            assert op.level_out <= op.level_in - op.levels
    x = random_images(4, (3, 24, 24), seed=6).images / 255.0
    np.testing.assert_allclose(SimulatorBackend(plan, exact_activations=True).run(x), run_graph(graph, x),
                               atol=1e-8)


def test_levels_are_trimmed_to_what_readers_need():
    """Each register keeps exactly the levels its readers spend: bootstraps get inputs with the one level
    they need, the input is encrypted with no more than the first ops use."""
    spec = ResNetSpec(depth=14, widths=(4, 8, 16), input_shape=(3, 24, 24))
    graph = fold_batchnorm(build_cifar_resnet(random_resnet_weights(spec, seed=4), fold_normalization=True))
    params = toy_params(1 << 14)
    plan = compile_for_test(graph, params)
    need: dict[str, int] = {plan.output: 0}
    for op in reversed(plan.ops):  # an independent walk: a reader needs its op's levels plus its output's
        assert op.level_out == need.pop(op.output, 0), op.name
        spent = 1 if isinstance(op, Bootstrap) else op.levels + op.level_out
        for name in ([op.input] if hasattr(op, "input") else op.inputs):
            need[name] = max(need.get(name, 0), spent)
    assert plan.input_levels == need[plan.input] <= params.fresh_levels
    bootstraps = [op for op in plan.ops if isinstance(op, Bootstrap)]
    assert bootstraps and all(op.level_in == 1 for op in bootstraps)
    assert any(op.level_out < params.levels_after_bootstrap for op in bootstraps)


def test_a_relu_before_a_stage_transition_leaves_the_strided_layers_their_levels():
    """With shallow_transitions the ReLU that feeds a strided convolution (three linear levels: full,
    subsample, pack) gets a polynomial that leaves them those levels and the one bootstrapping keeps, so
    no bootstrap comes between them; by default it keeps the deepest polynomial and one more bootstrap
    per stage transition follows. Both compute the network."""
    spec = ResNetSpec(depth=14, widths=(4, 8, 16), input_shape=(3, 24, 24))
    graph = fold_batchnorm(build_cifar_resnet(random_resnet_weights(spec, seed=4), fold_normalization=True))
    params = toy_params(1 << 14)
    deep = compile_for_test(graph, params, relu_error=1e-6)  # every ReLU as deep as it may be
    shallow = compile_for_test(graph, params, relu_error=1e-6, shallow_transitions=True)
    before_transition = [node.name for node in graph.nodes if isinstance(node, ReLU) and any(
        isinstance(reader, Conv2d) and reader.stride > 1 for reader in graph.consumers(node.name))]
    assert len(before_transition) == 2
    for name, activation in shallow.activations.items():
        full_depth = params.levels_after_bootstrap - 1 - 1
        assert activation["depth"] == (full_depth - 2 if name in before_transition else full_depth), name
        assert deep.activations[name]["depth"] == full_depth
    def refreshed(plan: Plan) -> set[str]:
        return {op.input for op in plan.ops if isinstance(op, Bootstrap)} & set(before_transition)

    # A ReLU reached from the fresh ciphertext's levels may still need one (the first stage here).
    assert refreshed(shallow) < refreshed(deep)
    assert shallow.bootstraps == deep.bootstraps - len(refreshed(deep) - refreshed(shallow))
    x = random_images(4, (3, 24, 24), seed=6).images / 255.0
    for plan in (shallow, deep):
        np.testing.assert_allclose(SimulatorBackend(plan, exact_activations=True).run(x), run_graph(graph, x),
                                   atol=1e-8)


def test_too_few_levels_is_a_clear_error():
    with pytest.raises(CompileError, match="levels"):
        compile_for_test(small_cnn(), toy_params(depth=21))


def test_plan_json_round_trip_and_constant_check(tmp_path):
    plan = compile_for_test(small_cnn())
    path, _ = plan.save(tmp_path / "plan.json")
    loaded = Plan.load(path)
    assert json.dumps(loaded.to_dict(), sort_keys=True) == json.dumps(plan.to_dict(), sort_keys=True)
    x = random_images(3, (1, 28, 28), seed=8).images / 255.0
    np.testing.assert_array_equal(SimulatorBackend(loaded).run(x), SimulatorBackend(plan).run(x))
    tampered = dict(loaded.constants)
    first = next(k for k in tampered if k.endswith(".diagonals"))
    tampered[first] = tampered[first] * 1.01
    with pytest.raises(PlanError, match="sha256"):
        Plan.from_dict(loaded.to_dict(), tampered)


def test_a_stored_plan_executes_alike_only_with_the_same_circuit():
    plan = compile_for_test(small_cnn())
    stored = json.loads(json.dumps(plan.to_dict()))
    assert executes_alike(plan, stored)
    relu = next(op for op in stored["ops"] if op["kind"] == "polynomial")
    stored["calibration"]["note"] = "provenance only"
    relu["coefficients"][2] *= 1 + 1e-9  # last-digit wobble of a least-squares fit
    assert executes_alike(plan, stored)
    relu["coefficients"][2] *= 1.001
    assert not executes_alike(plan, stored)
    older = json.loads(json.dumps(plan.to_dict())) | {"version": PLAN_VERSION - 1}
    assert not executes_alike(plan, older)  # its key store's server could not load it


def test_compile_is_deterministic():
    a, b = compile_for_test(small_cnn()), compile_for_test(small_cnn())
    assert a.to_dict() == b.to_dict()


def test_noise_model_perturbs_but_keeps_small_cnn_close():
    plan = compile_for_test(small_cnn())
    x = random_images(8, (1, 28, 28), seed=9).images / 255.0
    clean = SimulatorBackend(plan).run(x)
    noisy = SimulatorBackend(plan, noise=NoiseModel(2.0**-10, 2.0**-30), seed=1).run(x)
    assert 0 < np.max(np.abs(noisy - clean)) < 0.1 * np.max(np.abs(clean))


def test_linear_ops_respect_key_limit():
    plan = compile_for_test(small_cnn(), max_keys_per_phase=5)
    assert all(len(op.rotation_keys()) <= 5 for op in plan.ops)
    with pytest.raises(CompileError, match="max_keys_per_phase"):
        compile_for_test(small_cnn(), max_keys_per_phase=2)
    assert any(isinstance(op, LinearTransform) for op in plan.ops)


def test_margin_must_be_at_least_one():
    graph = small_cnn()
    calibration = calibrate(graph, random_images(8, (1, 28, 28)))
    with pytest.raises(CompileError, match="margin"):
        compile_graph(graph, calibration, toy_params(), CompileOptions(margin=0.5))


def test_scales_are_per_channel_tied_across_residuals_and_floored():
    from resnet_fhe.compiler.scales import CHANNEL_FLOOR, assign_scales
    from resnet_fhe.ir.graph import Add, ReLU

    spec = ResNetSpec(depth=8, widths=(4, 8, 16), input_shape=(3, 16, 16))
    graph = fold_batchnorm(build_cifar_resnet(random_resnet_weights(spec, seed=5), fold_normalization=True))
    calibration = calibrate(graph, random_images(32, (3, 16, 16)), images=32)
    scales = assign_scales(graph, calibration, margin=1.5)
    for node in graph.nodes:
        assert scales[node.name].shape == (graph.shapes[node.name].channels,)
        if isinstance(node, ReLU | Add):
            for name in node.inputs:  # tied: same factor channel by channel
                np.testing.assert_allclose(scales[name], scales[node.name])
    relu_input = next(node.inputs[0] for node in graph.nodes if isinstance(node, ReLU))
    bound = calibration.ranges[relu_input] * scales[relu_input]
    assert np.all(bound <= 1 / 1.5 + 1e-9)  # every calibrated channel lands inside [-1/margin, 1/margin]
    # a dead channel is not blown up: its factor is at most 1 / (margin * floor * the tensor's largest range)
    largest = calibration.ranges[relu_input].max()
    assert np.all(scales[relu_input] <= 1 / (1.5 * CHANNEL_FLOOR * largest) * (1 + 1e-9))
    assert len(set(np.round(scales[relu_input], 12))) > 1  # channels really get their own factors


def test_paired_bootstraps_keep_every_value_with_fewer_bootstraps(tmp_path):
    """Two ciphertexts per bootstrap where the first stage fills two (compiler/pairing.py): the factors
    a/sqrt2 and i*b/sqrt2 are folded into producers and readers, never into the values the plan means."""
    paired = toy_resnet_plan(widths=(8, 16, 32), depth=14, images_per_query=8)
    unpaired = toy_resnet_plan(widths=(8, 16, 32), depth=14, images_per_query=8, pair_bootstraps=False)
    pairs = [op for op in paired.ops if isinstance(op, Bootstrap) and op.paired]
    assert len(pairs) == 3 and all(op.ciphertexts == 2 and op.bootstraps == 1 for op in pairs)
    assert paired.bootstraps == unpaired.bootstraps
    assert paired.bootstraps_per_query() == unpaired.bootstraps_per_query() - len(pairs)
    assert {op.kind for op in paired.ops if op.carrier != REAL} == {"linear", "add", "carrier", "bootstrap"}
    for op, carriers in zip(paired.ops, input_carriers(paired.ops, paired.input), strict=True):
        if isinstance(op, Bootstrap):
            assert (carriers[op.input] == PAIR_IN) == op.paired
        if isinstance(op, Polynomial) and carriers[op.input] != REAL:
            assert op.linear_even  # the only polynomial that absorbs a carrier without a level
        if isinstance(op, AddTensors):
            assert all(carriers[name] == op.carrier for name in op.inputs)
    assert next(op for op in reversed(paired.ops) if op.output == paired.output).carrier == REAL
    path, _ = paired.save(tmp_path / "paired.json")
    loaded = Plan.load(path)
    assert [op.carrier for op in loaded.ops] == [op.carrier for op in paired.ops]
    x = random_images(8, (1, 8, 8), seed=20).images / 255.0
    np.testing.assert_allclose(SimulatorBackend(loaded).run(x), SimulatorBackend(unpaired).run(x), rtol=0, atol=1e-9)


def test_bootstraps_read_by_a_general_polynomial_stay_unpaired():
    """A general Chebyshev series needs x itself (no level-free way to take sqrt2*x): only the stage
    transition, whose bootstrap feeds convolutions, is paired."""
    general = toy_resnet_plan(widths=(8, 16, 32), depth=14, images_per_query=8, relu_form="general")
    linear_even = toy_resnet_plan(widths=(8, 16, 32), depth=14, images_per_query=8)
    for op, carriers in zip(general.ops, input_carriers(general.ops, general.input), strict=True):
        if isinstance(op, Polynomial):
            assert carriers[op.input] == REAL
    paired = [op.name for op in general.ops if isinstance(op, Bootstrap) and op.paired]
    assert paired == ["stage1.block1.relu2.bootstrap@stage2.block0.conv1.full"]
    assert general.bootstraps_per_query() > linear_even.bootstraps_per_query()


def test_the_noise_model_charges_a_paired_bootstrap_sqrt2_times_the_error():
    backend = SimulatorBackend(compile_for_test(small_cnn()), noise=NoiseModel(1e-3, 0.0), seed=2)
    zeros = [np.zeros((4, 50_000))]
    single, paired = backend._noisy(zeros, "bootstrap")[0], backend._noisy(zeros, "paired bootstrap")[0]
    assert np.std(single) == pytest.approx(1e-3, rel=0.02)
    assert np.std(paired) == pytest.approx(np.sqrt(2) * 1e-3, rel=0.02)  # unmeasured: it refreshes a/sqrt2
    from resnet_fhe.plan.params import load_preset

    params = load_preset("default-128")  # measured at 32,768 slots only
    assert params.paired_bootstrap_precision_at(32768) == 11.59
    assert params.paired_bootstrap_precision_at(16384) == params.bootstrap_precision_at(16384) - 0.5
