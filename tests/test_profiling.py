"""Memory budget: refused up front from the estimate, stopped cleanly by the live guard, profiled per layer."""

import numpy as np
import pytest

from resnet_fhe.backends.simulator import SimulatorBackend
from resnet_fhe.plan.summary import layer_rows
from resnet_fhe.profiling import BudgetExceededError, MemoryGuard, RssSampler, check_estimate
from resnet_fhe.profiling.chart import ChartError, memory_rows, plot_profile, render_memory_table
from tests.helpers import compile_for_test, random_images, small_cnn


@pytest.fixture(scope="module")
def plan():
    return compile_for_test(small_cnn())


def test_estimate_over_budget_is_refused(plan):
    estimated = max(row["memory_gb"] for row in layer_rows(plan))
    with pytest.raises(BudgetExceededError, match=r"estimated to need .* over the 0\.00 GB budget"):
        check_estimate(estimated, 0.001, "small-cnn")
    check_estimate(estimated, estimated + 1, "small-cnn")


def test_estimate_grows_with_the_batch(plan):
    one, three = layer_rows(plan), layer_rows(plan, queries=3)
    assert all(b["memory_gb"] >= a["memory_gb"] for a, b in zip(one, three, strict=True))
    assert max(r["memory_gb"] for r in three) > max(r["memory_gb"] for r in one)  # live tensors are per image


def test_live_guard_stops_at_a_named_layer(plan):
    images = random_images(4, (1, 28, 28)).images / 255.0
    with RssSampler() as sampler:
        budget = (sampler.current() - 1_000_000) / 1e9  # already crossed: must stop before the first layer
        with pytest.raises(BudgetExceededError, match="before layer conv1"):
            SimulatorBackend(plan).run(images, guard=MemoryGuard(sampler, budget))
        # a budget crossed by the run itself: stops after a named layer, not in the middle of nowhere
        big = random_images(512, (1, 28, 28)).images / 255.0
        budget = (sampler.current() + 50_000_000) / 1e9  # above the encoded input (~7 MB), below conv1 (~180 MB)
        with pytest.raises(BudgetExceededError, match=r"layer \S+ .*over the"):
            SimulatorBackend(plan).run(big, batch_size=512, guard=MemoryGuard(sampler, budget))


def test_profile_has_every_layer_in_order_and_reports_each_once(plan, capsys):
    images = random_images(2, (1, 28, 28)).images / 255.0
    with RssSampler() as sampler:
        guard = MemoryGuard(sampler, budget_gb=1000.0, progress=True)
        logits = SimulatorBackend(plan).run(images, guard=guard)
    assert logits.shape == (2, 10) and np.all(np.isfinite(logits))
    assert [p.layer for p in guard.profiles] == plan.layers()
    assert all(p.rss_peak_gb >= p.rss_start_gb > 0 and p.seconds >= 0 for p in guard.profiles)
    progress = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0].strip() for line in progress] == plan.layers()  # the last layer too


def test_memory_table_and_chart_from_a_profile(plan, tmp_path):
    pytest.importorskip("matplotlib", reason="the chart needs the plot extra (installed with dev)")
    images = random_images(1, (1, 28, 28)).images / 255.0
    with RssSampler() as sampler:
        guard = MemoryGuard(sampler, budget_gb=1000.0)
        SimulatorBackend(plan).run(images, guard=guard)
    estimates = {row["layer"]: row["memory_gb"] for row in layer_rows(plan)}
    rows = memory_rows([p.to_dict() for p in guard.profiles], estimates)
    assert [r["layer"] for r in rows] == plan.layers()
    assert all(r["estimated_gb"] == estimates[r["layer"]] for r in rows)
    table = render_memory_table(rows)
    assert all(layer in table for layer in plan.layers())
    png = plot_profile(rows, tmp_path / "chart.png", "small-cnn", budget_gb=15)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_chart_without_a_profile_is_a_clear_error(tmp_path):
    with pytest.raises(ChartError, match="no per-layer profile"):
        plot_profile([], tmp_path / "chart.png", "empty")
