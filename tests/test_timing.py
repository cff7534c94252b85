"""Time in the cost model: costs fitted from a profile give back the seconds they were fitted on."""

import numpy as np

from resnet_fhe.plan.summary import layer_rows
from resnet_fhe.plan.timing import WORK, OpCosts, fit_costs, layer_work, op_work
from tests.helpers import toy_resnet_plan


def test_costs_fitted_from_a_profile_recover_the_machine_and_predict_each_layer():
    plan = toy_resnet_plan()
    truth = OpCosts("test machine", plan.params.name, bootstraps=9.0, tower_products=0.002,
                    tower_key_switches=0.03, tower_mults=0.05)
    rng = np.random.default_rng(0)
    profile = [{"layer": layer, "seconds": 2 * truth.seconds(work) * (1 + 0.01 * rng.standard_normal()) + 0.5,
                "key_load_seconds": 0.5}  # two images; key loading is not arithmetic
               for layer, work in layer_work(plan.ops, plan.params).items()]
    fitted = fit_costs(plan.ops, plan.params, profile, queries=2, machine="test machine")
    assert fitted.layers == len(profile)
    for name in WORK:
        assert abs(getattr(fitted, name) - getattr(truth, name)) <= 0.1 * getattr(truth, name), name
    rows = layer_rows(plan, queries=2, costs=fitted)
    measured = {p["layer"]: p["seconds"] - p["key_load_seconds"] for p in profile}
    for row in rows:
        assert abs(row["seconds"] - measured[row["layer"]]) <= 0.05 * measured[row["layer"]] + 0.1
    assert all(row["seconds"] is None for row in layer_rows(plan))


def test_work_grows_with_the_towers_an_op_runs_at():
    plan = toy_resnet_plan()
    linear = next(op for op in plan.ops if op.kind == "linear")
    low = op_work(linear, plan.params)["tower_products"]
    linear.level_in += 3
    assert op_work(linear, plan.params)["tower_products"] == low * (linear.level_in + 1) / (linear.level_in - 2)
