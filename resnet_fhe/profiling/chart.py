"""Per-layer time and memory of an encrypted run, as a table and a PNG chart.

The table puts the plan's memory estimate beside the measured RSS of each layer, so the memory model
in resnet_fhe.plan.cost can be checked against reality. The chart needs matplotlib (the `plot` extra);
nothing else in the engine does.
"""

from __future__ import annotations

from pathlib import Path

from resnet_fhe.errors import ResnetFheError


class ChartError(ResnetFheError):
    """The chart cannot be drawn (matplotlib missing, or no per-layer profile to draw)."""


def memory_rows(layers: list[dict], estimates: dict[str, float],
                predicted_seconds: dict[str, float | None] | None = None) -> list[dict]:
    """One row per profiled layer: seconds, bootstraps, the plan's estimate and the measured RSS (GB).

    The measured peak includes what the model leaves out: the interpreter, the context's tables, and in
    runs from before bench/resnet20.py gave the server its own process, the client and compiler state
    (about 1-2 GB at 128 bits). Results written before the residency model estimated one op's keys only.
    """
    predicted_seconds = predicted_seconds or {}
    return [{"layer": p["layer"], "seconds": p["seconds"], "predicted_seconds": predicted_seconds.get(p["layer"]),
             "levels": f"{p['level_in']}->{p['level_out']}",
             "bootstraps": p["bootstraps"],
             "estimated_gb": estimates.get(p["layer"]), "rss_start_gb": round(p["rss_start_gb"], 2),
             "rss_peak_gb": round(p["rss_peak_gb"], 2)} for p in layers]


def run_report(summary: dict, estimates: dict[str, float] | None = None) -> tuple[list[dict], str]:
    """The memory rows of an encrypted bench result's profile, and a chart title naming the run.

    A profile covers the whole batch (the server evaluates all images op by op); results written before
    batching hold one profile per image, and the first is used. `estimates` (GB per layer) replaces the
    estimates the run recorded, to compare an old measurement with today's memory model."""
    profiles = summary.get("profiles") or []
    if not profiles:
        raise ChartError("the result holds no per-layer profile: it is not an encrypted run")
    if estimates is None:
        estimates = {r["layer"]: r["memory_gb"] for r in summary.get("plan_layers", [])}
    predicted = {r["layer"]: r.get("seconds") for r in summary.get("plan_layers", [])}
    batch = profiles[0]
    title = (f"{summary['model']} / {summary['preset']}: encrypted, {batch.get('images', 1)} image(s) in "
             f"{batch['seconds']:.0f} s, peak RSS {summary['peak_rss_gb']:.1f} GB")
    return memory_rows(profiles[0]["layers"], estimates, predicted), title


def render_memory_table(rows: list[dict]) -> str:
    lines = [f"{'layer':28} {'s':>7} {'pred s':>7} {'levels':>7} {'boot':>4} {'est GB':>7} {'RSS in':>7} "
             f"{'RSS peak':>8}"]
    for r in rows:
        estimate = "-" if r["estimated_gb"] is None else f"{r['estimated_gb']:.2f}"
        predicted = "-" if r.get("predicted_seconds") is None else f"{r['predicted_seconds']:.1f}"
        lines.append(f"{r['layer']:28} {r['seconds']:>7.1f} {predicted:>7} {r['levels']:>7} {r['bootstraps']:>4} "
                     f"{estimate:>7} {r['rss_start_gb']:>7.2f} {r['rss_peak_gb']:>8.2f}")
    return "\n".join(lines)


def require_matplotlib():
    """pyplot on a file-only backend; called before a long run too, so a missing extra fails at once."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ChartError("the chart needs matplotlib: pip install 'resnet-fhe[plot]'") from exc
    return plt


def plot_profile(rows: list[dict], path: str | Path, title: str, budget_gb: float | None = None) -> Path:
    """Writes a two-panel PNG: seconds per layer (bootstrapping layers highlighted) and memory per layer."""
    if not rows:
        raise ChartError("no per-layer profile to plot (was this an encrypted run?)")
    plt = require_matplotlib()
    names = [r["layer"] for r in rows]
    positions = range(len(rows))
    figure, (time_axis, memory_axis) = plt.subplots(2, 1, figsize=(max(8.0, 0.28 * len(rows)), 7), sharex=True)
    colours = ["tab:red" if r["bootstraps"] else "tab:blue" for r in rows]
    time_axis.bar(positions, [r["seconds"] for r in rows], color=colours)
    time_axis.set_ylabel("seconds (red: with bootstrapping)")
    time_axis.set_title(title)
    memory_axis.plot(positions, [r["rss_peak_gb"] for r in rows], marker="o", label="measured peak RSS")
    estimated = [(i, r["estimated_gb"]) for i, r in enumerate(rows) if r["estimated_gb"] is not None]
    if estimated:
        memory_axis.plot(*zip(*estimated, strict=True), marker="x", linestyle="--", label="plan estimate")
    if budget_gb is not None:
        memory_axis.axhline(budget_gb, color="tab:red", linewidth=1, label=f"budget {budget_gb:g} GB")
    memory_axis.set_ylabel("GB")
    memory_axis.legend(loc="lower right")
    memory_axis.set_xticks(list(positions), names, rotation=90, fontsize=7)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
