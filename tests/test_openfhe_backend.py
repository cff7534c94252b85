"""Real CKKS runs of compiled plans at an INSECURE toy preset (N = 4096): the OpenFHE backend must agree
with the simulator's slot semantics within the CKKS error."""

import numpy as np
import pytest

from resnet_fhe.backends.simulator import SimulatorBackend
from resnet_fhe.plan.ops import Bootstrap
from resnet_fhe.plan.params import load_preset
from tests.helpers import random_images, toy_resnet_plan

openfhe_backend = pytest.importorskip("resnet_fhe.backends.openfhe_backend")


@pytest.fixture(scope="module")
def setup():
    plan = toy_resnet_plan()
    keys = openfhe_backend.generate_keys(plan)
    return plan, keys, openfhe_backend.OpenFHEBackend(plan, keys.context)


@pytest.mark.parametrize("preset", ["default-128", "toy-insecure"])
def test_preset_bootstrap_depth_matches_openfhe(preset):
    import openfhe

    params = load_preset(preset)
    context = openfhe_backend.build_context(params)  # also OpenFHE's own security check of the preset
    depth = context.GetBootstrapDepth(list(params.level_budget), getattr(openfhe, params.secret_key_dist))
    assert depth == params.bootstrap_depth
    assert params.insecure == (preset == "toy-insecure")


def test_encrypted_small_cnn_matches_simulator(setup):
    plan, keys, backend = setup
    assert any(isinstance(op, Bootstrap) for op in plan.ops)
    images = random_images(2, (1, 8, 8), seed=12).images / 255.0
    expected = SimulatorBackend(plan).run(images)
    for image, want in zip(images, expected, strict=True):
        got = backend.decrypt(backend.run(backend.encrypt(image, keys.public_key)), keys.secret_key)
        assert np.max(np.abs(got - want)) < 0.02 * max(1.0, np.max(np.abs(want)))


def test_batch_matches_single_image_runs(setup):
    plan, keys, backend = setup
    images = random_images(2, (1, 8, 8), seed=13).images / 255.0
    batch = backend.run_batch([backend.encrypt(image, keys.public_key) for image in images])
    expected = SimulatorBackend(plan).run(images)
    assert len(batch) == 2
    for cts, want in zip(batch, expected, strict=True):  # each image keeps its own result, in order
        got = backend.decrypt(cts, keys.secret_key)
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
        got = backend.decrypt(cts, keys.secret_key)
        assert np.max(np.abs(got - want)) < 0.02 * max(1.0, np.max(np.abs(want)))
