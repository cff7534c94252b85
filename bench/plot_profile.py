#!/usr/bin/env python3
"""Redraws the per-layer table and PNG chart from a result JSON written by `bench/resnet20.py --encrypted`.

    .venv/bin/python bench/plot_profile.py results/resnet20.json -o results/resnet20.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from resnet_fhe.errors import ResnetFheError
from resnet_fhe.profiling.chart import plot_profile, render_memory_table, run_report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("result", type=Path, help="JSON written by bench/resnet20.py --encrypted")
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG to write")
    parser.add_argument("--budget-gb", type=float, default=15.0, help="budget line on the memory panel")
    args = parser.parse_args(argv)
    try:
        rows, title = run_report(json.loads(args.result.read_text()))
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
