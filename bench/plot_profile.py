#!/usr/bin/env python3
"""Redraws the per-layer table and PNG chart from a result JSON written by `bench/resnet20.py --encrypted`.

    .venv/bin/python bench/plot_profile.py results/resnet20.json -o results/resnet20.png

With --plan, the memory estimates come from that plan under today's memory model (for the run's batch
size) instead of those the run recorded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from resnet_fhe.errors import ResnetFheError
from resnet_fhe.plan.plan import Plan
from resnet_fhe.plan.summary import layer_rows
from resnet_fhe.profiling.chart import plot_profile, render_memory_table, run_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("result", type=Path, help="JSON written by bench/resnet20.py --encrypted")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    parser.add_argument("--budget-gb", type=float, default=15.0, help="budget line on the memory panel")
    parser.add_argument("--plan", type=Path, default=None, help="plan JSON whose estimates to show instead")
    args = parser.parse_args(argv)
    try:
        summary = json.loads(args.result.read_text())
        estimates = None
        if args.plan is not None:
            plan = Plan.load(args.plan)
            images = (summary.get("profiles") or [{}])[0].get("images", 1)
            queries = -(-images // plan.images_per_query)
            estimates = {r["layer"]: r["memory_gb"] for r in layer_rows(plan, queries=queries)}
        rows, title = run_report(summary, estimates)
        print(render_memory_table(rows))
        print(f"wrote {plot_profile(rows, args.output, title, args.budget_gb)}", file=sys.stderr)
    except (OSError, ValueError, KeyError) as exc:
        print(f"error: cannot read {args.result}: {exc}", file=sys.stderr)
        return 2
    except ResnetFheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
