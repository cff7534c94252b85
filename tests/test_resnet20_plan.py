"""The checked-in ResNet20 plan: reproducible, exact with exact ReLU, within the reference's budgets."""

import json
from pathlib import Path

import numpy as np
import pytest

from resnet_fhe.backends.simulator import SimulatorBackend
from resnet_fhe.compiler import compile_model
from resnet_fhe.data import load_sample
from resnet_fhe.ir import run_graph
from resnet_fhe.models import load_model
from resnet_fhe.plan.plan import plan_differences

CHECKED_IN = Path(__file__).resolve().parents[1] / "circuits" / "resnet20-default-128.json"


@pytest.fixture(scope="module")
def plan(cifar_dir):
    return compile_model("resnet20", "default-128", data_dir=cifar_dir)


def test_checked_in_plan_equals_fresh_compile(plan):
    differences = plan_differences(json.loads(json.dumps(plan.to_dict())), json.loads(CHECKED_IN.read_text()))
    assert not differences, (
        "circuits/ is stale: run `resnet-fhe compile --model resnet20` and review the diff:\n"
        + "\n".join(differences[:10]))


def test_checked_in_summary_is_what_compile_renders(plan):
    """The .md beside the plan is what `resnet-fhe compile` renders (bootstrap slots included)."""
    from resnet_fhe.plan.summary import render_summary

    summary = render_summary(plan)
    assert "| 1 (16384) |" in summary
    assert summary == CHECKED_IN.with_suffix(".md").read_text()


def test_exact_relu_plan_reproduces_plaintext_logits(plan):
    images = load_sample().images[:4] / 255.0
    expected = run_graph(load_model("resnet20"), images)
    np.testing.assert_allclose(SimulatorBackend(plan, exact_activations=True).run(images), expected, atol=1e-6)


def test_budget_against_the_reference(plan):
    assert plan.bootstraps <= 21  # the reference circuit bootstraps 21 times
    from resnet_fhe.plan.residency import own_rotation_keys

    assert max(len(own_rotation_keys(op, plan.params, 16384)) for op in plan.ops) <= 5  # beside bootstrap keys
    assert not plan.params.insecure


def test_bootstrap_keys_load_once_and_rotation_keys_drop_at_every_bootstrap(plan):
    from resnet_fhe.plan.cost import bootstrap_bytes
    from resnet_fhe.plan.ops import Bootstrap
    from resnet_fhe.plan.residency import HELD_ROTATION_KEYS, KeyResidency
    from resnet_fhe.plan.summary import layer_rows

    assert {op.slots for op in plan.ops if isinstance(op, Bootstrap)} == {16384}  # one bootstrap key set
    residency, held, loads, restarts = KeyResidency(), set(), [], 0
    for op in plan.ops:
        change = residency.admit(op)
        assert not change.drop_bootstrap, op.name
        if isinstance(op, Bootstrap):
            loads.append(change.load_bootstrap)
            assert change.drop_rotations == bool(held), op.name
            held = set()
        else:
            needed = op.rotation_keys()
            if len(held | needed) > max(HELD_ROTATION_KEYS, len(needed)):  # past the cap: start afresh
                assert change.drop_rotations and change.load_rotations == needed, op.name
                held, restarts = set(needed), restarts + 1
            else:
                assert not change.drop_rotations and change.load_rotations == needed - held, op.name
                held |= needed
        assert residency.rotations == held
        assert len(held) <= max(HELD_ROTATION_KEYS, len(op.rotation_keys())), op.name
    assert loads[0] == 16384 and not any(loads[1:])
    assert restarts > 0  # the stage transitions' strided convolutions and shortcuts
    # A convolution after a bootstrap runs while the bootstrap keys stay resident.
    rows = {r["layer"]: r["memory_gb"] for r in layer_rows(plan)}
    assert rows["stage1.block1.conv1"] > bootstrap_bytes(plan.params, 16384) / 1e9 > rows["stem.conv"]
