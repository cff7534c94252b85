#!/usr/bin/env python3
"""Times a plan's ReLU polynomial two ways under real encryption: the backend's Chebyshev series
(resnet_fhe/backends/chebyshev.py) and OpenFHE's EvalChebyshevSeries, on the same ciphertext.

Encrypts uniform values in [-1, 1] with the levels the plan gives the op, evaluates the op's series
both ways (for a linear-even ReLU, the even half in y = 2x^2 - 1, the part the two differ in) and
reports seconds, levels spent, the largest error against numpy and how far resident memory rose above
its level before the evaluation (freed heap returned first), for each. Only the relinearisation key is
made, so it runs in a minute at the 128-bit preset.

    OMP_NUM_THREADS=2 .venv/bin/python bench/series_timing.py --op stage1.block1.relu1 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from numpy.polynomial import chebyshev

DEFAULT_PLAN = Path(__file__).resolve().parent.parent / "circuits" / "resnet20-default-128.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", type=Path, default=DEFAULT_PLAN, help="compiled plan JSON")
    parser.add_argument("--op", default="stage1.block1.relu1", help="a polynomial op of the plan")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from resnet_fhe.backends.chebyshev import evaluate_series, series_depth
    from resnet_fhe.backends.openfhe_backend import build_context
    from resnet_fhe.errors import ResnetFheError
    from resnet_fhe.plan.ops import Polynomial
    from resnet_fhe.plan.plan import Plan
    from resnet_fhe.profiling import RssSampler
    from resnet_fhe.runtime.heap import release_freed_memory

    try:
        plan = Plan.load(args.plan)
        op = next((o for o in plan.ops if o.name == args.op), None)
        if not isinstance(op, Polynomial):
            raise ResnetFheError(f"{args.op} is not a polynomial op of {args.plan}")
        if args.repeats < 1:
            raise ResnetFheError("--repeats must be at least 1")
    except ResnetFheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    params = plan.params
    coefficients = np.asarray(op.coefficients[0::2] if op.linear_even else op.coefficients)
    levels = op.level_in - 1 if op.linear_even else op.level_in  # y = 2x^2 - 1 takes one
    context = build_context(params)
    keys = context.KeyGen()
    context.EvalMultKeyGen(keys.secretKey)

    def levels_left(ct) -> int:
        return params.multiplicative_depth - ct.GetLevel() - (ct.GetNoiseScaleDeg() - 1)

    evaluations = {
        "resnet_fhe": lambda ct: evaluate_series(context, ct, coefficients, levels_left),
        "openfhe": lambda ct: context.EvalChebyshevSeries(ct, [2 * coefficients[0], *coefficients[1:]], -1.0, 1.0),
    }
    slots = plan.registers[op.input].layout.slots
    values = np.random.default_rng(0).uniform(-1, 1, slots)
    expected = chebyshev.chebval(values, coefficients)
    fresh = context.Encrypt(keys.publicKey, context.MakeCKKSPackedPlaintext(
        values, 1, params.multiplicative_depth - levels, None, slots))
    report = {"plan": str(args.plan), "op": op.name, "degree": len(coefficients) - 1, "levels_in": levels,
              "series_depth": series_depth(len(coefficients) - 1), "op_depth": op.depth}
    with RssSampler() as sampler:
        for _ in range(args.repeats):  # alternating, so both see the machine alike
            for name, evaluate in evaluations.items():
                release_freed_memory()
                before = sampler.start_window()
                started = time.perf_counter()
                result = evaluate(fresh)
                seconds = time.perf_counter() - started
                rise = sampler.window_peak() - before
                plain = context.Decrypt(result, keys.secretKey)
                plain.SetLength(slots)
                entry = report.setdefault(name, {"seconds": [], "rss_rise_gb": [],
                                                 "levels_spent": levels - levels_left(result)})
                entry["seconds"].append(round(seconds, 3))
                entry["rss_rise_gb"].append(round(rise / 1e9, 3))
                entry["max_error"] = float(np.max(np.abs(np.array(plain.GetRealPackedValue()) - expected)))
                del result
                print(f"{name}: {seconds:.2f} s, RSS +{rise / 1e9:.2f} GB", file=sys.stderr, flush=True)
    print(json.dumps(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
