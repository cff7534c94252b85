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

CHECKED_IN = Path(__file__).resolve().parents[1] / "circuits" / "resnet20-default-128.json"


@pytest.fixture(scope="module")
def plan(cifar_dir):
    return compile_model("resnet20", "default-128", data_dir=cifar_dir)


def test_checked_in_plan_equals_fresh_compile(plan):
    checked_in = json.loads(CHECKED_IN.read_text())
    fresh = json.loads(json.dumps(plan.to_dict()))
    assert fresh == checked_in, "circuits/ is stale: run `resnet-fhe compile --model resnet20` and review the diff"


def test_exact_relu_plan_reproduces_plaintext_logits(plan):
    images = load_sample().images[:4] / 255.0
    expected = run_graph(load_model("resnet20"), images)
    np.testing.assert_allclose(SimulatorBackend(plan, exact_activations=True).run(images), expected, atol=1e-6)


def test_budget_against_the_reference(plan):
    assert plan.bootstraps <= 21  # the reference circuit bootstraps 21 times
    assert max(len(op.rotation_keys()) for op in plan.ops) <= 5
    assert not plan.params.insecure
