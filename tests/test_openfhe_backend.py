"""Real CKKS runs of compiled plans at an INSECURE toy preset (N = 4096): the OpenFHE backend must agree
with the simulator's slot semantics within the CKKS error."""

import numpy as np
import pytest

from resnet_fhe.backends.simulator import SimulatorBackend
from resnet_fhe.compiler.polynomial import relu_chebyshev, relu_degree
from resnet_fhe.errors import InputError, PlanError
from resnet_fhe.plan.ops import Bootstrap, Polynomial
from resnet_fhe.plan.params import load_preset
from tests.helpers import random_images, toy_resnet_plan

openfhe_backend = pytest.importorskip("resnet_fhe.backends.openfhe_backend")


@pytest.fixture(scope="module")
def setup(library):
    plan = toy_resnet_plan(relu_form="general")  # the linear-even default has its own test below
    keys = openfhe_backend.generate_keys(plan, library)
    return plan, keys, openfhe_backend.OpenFHEBackend(plan, keys.context, bootstrapper=keys.bootstrapper)


@pytest.mark.parametrize("preset", ["default-128", "toy-insecure"])
def test_preset_bootstrap_depth_matches_openfhe(preset, library):
    params = load_preset(preset)
    context = openfhe_backend.build_context(params, library=library)  # also OpenFHE's own security check
    fhe = openfhe_backend.fhe_library(library)
    depth = context.GetBootstrapDepth(list(params.level_budget), getattr(fhe, params.secret_key_dist))
    assert depth == params.bootstrap_depth
    assert params.insecure == (preset == "toy-insecure")


def test_encrypted_small_cnn_matches_simulator(setup):
    plan, keys, backend = setup
    assert any(isinstance(op, Bootstrap) for op in plan.ops)
    images = random_images(2, (1, 8, 8), seed=12).images / 255.0
    expected = SimulatorBackend(plan).run(images)
    for image, want in zip(images, expected, strict=True):
        got = backend.decrypt(backend.run(backend.encrypt(image, keys.public_key)), keys.secret_key)[0]
        assert np.max(np.abs(got - want)) < 0.02 * max(1.0, np.max(np.abs(want)))


def test_the_backend_refuses_a_register_with_more_levels_than_planned(setup):
    """The check that keeps spare RNS towers from coming back: every op's output holds exactly the
    plan's levels (a bootstrap on a ciphertext with spare towers cost 2.5x at 128 bits)."""
    import copy

    plan, keys, backend = setup
    tampered = copy.deepcopy(plan)
    first = next(op for op in tampered.ops if isinstance(op, Bootstrap))
    first.level_out -= 1  # the plan now claims fewer levels than the backend leaves
    image = random_images(1, (1, 8, 8), seed=17).images[0] / 255.0
    cts = backend.encrypt(image, keys.public_key)
    with pytest.raises(PlanError, match="levels left"):
        openfhe_backend.OpenFHEBackend(tampered, keys.context, bootstrapper=keys.bootstrapper).run(cts)
    assert backend.levels_left(cts[0]) == plan.input_levels


def test_batch_matches_single_image_runs(setup):
    plan, keys, backend = setup
    images = random_images(2, (1, 8, 8), seed=13).images / 255.0
    batch = backend.run_batch([backend.encrypt(image, keys.public_key) for image in images])
    expected = SimulatorBackend(plan).run(images)
    assert len(batch) == 2
    for cts, want in zip(batch, expected, strict=True):  # each image keeps its own result, in order
        got = backend.decrypt(cts, keys.secret_key)[0]
        assert np.max(np.abs(got - want)) < 0.02 * max(1.0, np.max(np.abs(want)))


def test_linear_transforms_split_a_large_batch_into_groups(setup, monkeypatch):
    from resnet_fhe.plan import cost

    plan, keys, backend = setup
    linear = next(op for op in plan.ops if op.kind == "linear")
    assert cost.linear_group_size(plan.params, linear, 3) == 3  # toy copies are far below the cap
    monkeypatch.setattr(cost, "LINEAR_GROUP_BYTES", 1)  # now every image is its own group
    assert cost.linear_group_size(plan.params, linear, 3) == 1
    images = random_images(3, (1, 8, 8), seed=14).images / 255.0
    batch = backend.run_batch([backend.encrypt(image, keys.public_key) for image in images])
    for cts, want in zip(batch, SimulatorBackend(plan).run(images), strict=True):
        got = backend.decrypt(cts, keys.secret_key)[0]
        assert np.max(np.abs(got - want)) < 0.02 * max(1.0, np.max(np.abs(want)))


def test_packed_queries_under_real_encryption_match_unpacked_logits(library):
    """Four images share each ciphertext: one query's bootstraps, polynomials and rotations serve all of
    them, and each image's logits are its own (the unpacked plan's, within the CKKS error)."""
    packed = toy_resnet_plan(images_per_query=4)
    unpacked = toy_resnet_plan()
    assert packed.bootstraps == unpacked.bootstraps
    keys = openfhe_backend.generate_keys(packed, library)
    backend = openfhe_backend.OpenFHEBackend(packed, keys.context, bootstrapper=keys.bootstrapper)
    images = random_images(7, (1, 8, 8), seed=18).images / 255.0  # a full query and one of three
    queries = [backend.encrypt(images[:4], keys.public_key), backend.encrypt(images[4:], keys.public_key)]
    got = np.concatenate([backend.decrypt(cts, keys.secret_key) for cts in backend.run_batch(queries)])[:7]
    want = SimulatorBackend(unpacked).run(images)
    np.testing.assert_allclose(SimulatorBackend(packed).run(images), want, rtol=0, atol=1e-9)
    assert np.max(np.abs(got - want)) < 0.02 * max(1.0, np.max(np.abs(want)))
    with pytest.raises(InputError, match="1 to 4"):
        backend.encrypt(images[:5], keys.public_key)


def test_linear_even_relus_evaluate_at_half_degree_within_the_plans_levels(library):
    plan = toy_resnet_plan(relu_form="linear-even")
    relus = [op for op in plan.ops if op.kind == "polynomial"]
    assert relus and all(op.linear_even for op in relus)  # the backend takes the half-degree path
    keys = openfhe_backend.generate_keys(plan, library)
    backend = openfhe_backend.OpenFHEBackend(plan, keys.context, bootstrapper=keys.bootstrapper)
    images = random_images(2, (1, 8, 8), seed=15).images / 255.0
    batch = backend.run_batch([backend.encrypt(image, keys.public_key) for image in images])
    for cts, want in zip(batch, SimulatorBackend(plan).run(images), strict=True):
        got = backend.decrypt(cts, keys.secret_key)[0]
        assert np.max(np.abs(got - want)) < 0.02 * max(1.0, np.max(np.abs(want)))
    # The half-degree path spends no more levels than the general series of the same depth.
    depth = max(op.depth for op in relus)
    x = np.random.default_rng(16).uniform(-1, 1, relus[0].slots)
    context = keys.context
    levels = {}
    for form in ("general", "linear-even"):
        degree = relu_degree(depth, form)
        op = Polynomial("p", "p", "x", "y", relus[0].slots, 1, list(relu_chebyshev(degree, None, form)), depth)
        ct = context.Encrypt(keys.public_key, context.MakeCKKSPackedPlaintext(x, 1, 1, None, op.slots))
        out = backend._polynomial(op, context.EvalMult(ct, 1.0))
        levels[form] = out.GetLevel()
        decrypted = context.Decrypt(out, keys.secret_key)
        decrypted.SetLength(op.slots)
        assert np.max(np.abs(np.array(decrypted.GetRealPackedValue()) - np.maximum(x, 0))) < 0.05
    assert levels["linear-even"] <= levels["general"]


def test_paired_bootstraps_under_real_encryption_match_the_unpaired_plan(library):
    """Two ciphertexts share each first-stage bootstrap (a/sqrt2 + i*b/sqrt2, split by a conjugation;
    plan structure: tests/test_compiler.py): the unpaired plan's logits within the CKKS error, every op
    at its planned levels (the backend checks)."""
    paired = toy_resnet_plan(widths=(8, 16, 32), depth=14, images_per_query=8)
    unpaired = toy_resnet_plan(widths=(8, 16, 32), depth=14, images_per_query=8, pair_bootstraps=False)
    assert paired.complex_slots
    images = random_images(8, (1, 8, 8), seed=19).images / 255.0
    want = SimulatorBackend(unpaired).run(images)
    keys = openfhe_backend.generate_keys(paired, library)
    backend = openfhe_backend.OpenFHEBackend(paired, keys.context, bootstrapper=keys.bootstrapper)
    got = backend.decrypt(backend.run(backend.encrypt(images, keys.public_key)), keys.secret_key)
    assert np.max(np.abs(got - want)) < 0.02 * max(1.0, np.max(np.abs(want)))


def test_the_backend_refuses_a_plan_whose_output_is_not_real(setup):
    """Decryption reads real parts: a plan whose output carries a complex factor is refused up front."""
    import copy

    plan, keys, _ = setup
    tampered = copy.deepcopy(plan)
    tampered.ops[-1].carrier = "pair-in"
    with pytest.raises(PlanError, match="real"):
        openfhe_backend.OpenFHEBackend(tampered, keys.context, bootstrapper=keys.bootstrapper)


def test_a_result_openfhe_cannot_decode_is_a_typed_error(setup):
    """OpenFHE's decoding check (error too large) reaches the user as DecryptionError, not a traceback."""
    import copy

    from resnet_fhe.errors import DecryptionError

    _, keys, backend = setup

    class RefusingContext:
        def Decrypt(self, ct, secret_key):
            raise RuntimeError("Decode(): The decryption failed because the approximation error is too high.")

    refusing = copy.copy(backend)
    refusing.cc = RefusingContext()
    cts = backend.encrypt(random_images(1, (1, 8, 8), seed=20).images[0] / 255.0, keys.public_key)
    with pytest.raises(DecryptionError, match="approximation error is too high"):
        refusing.decrypt(cts, keys.secret_key)
