#!/usr/bin/env python3
"""Measures a preset's bootstrapping error: the figure its `bootstrap_precision_bits` records.

Encrypts uniform values in [-1, 1] at the level a compiled plan bootstraps from (the levels after
bootstrapping minus one, spent), bootstraps, decrypts, and reports the error's standard deviation and
maximum as -log2. The simulator's noise model uses the standard deviation, so a preset change must be
re-measured with this command before its accuracy figures mean anything.

    OMP_NUM_THREADS=2 .venv/bin/python bench/bootstrap_precision.py --preset default-128 --slots 8192
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default-128")
    parser.add_argument("--slots", type=int, default=8192)
    parser.add_argument("--repeats", type=int, default=2, help="bootstraps of fresh random vectors")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from resnet_fhe.backends.openfhe_backend import build_context
    from resnet_fhe.errors import ResnetFheError
    from resnet_fhe.plan.params import load_preset
    from resnet_fhe.profiling import RssSampler

    try:
        params = load_preset(args.preset)
        if args.slots < 1 or args.slots > params.max_slots or args.slots & (args.slots - 1):
            raise ResnetFheError(f"--slots must be a power of two up to {params.max_slots}")
    except ResnetFheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with RssSampler() as sampler:
        started = time.perf_counter()
        context = build_context(params)
        keys = context.KeyGen()
        context.EvalMultKeyGen(keys.secretKey)
        context.EvalBootstrapSetup(list(params.level_budget), [0, 0], args.slots)
        context.EvalBootstrapKeyGen(keys.secretKey, args.slots)
        keygen_seconds = time.perf_counter() - started
        print(f"{params.name}: keys for {args.slots} slots in {keygen_seconds:.0f} s", file=sys.stderr)
        # A plan bootstraps a register that has spent all but the one level kept for bootstrapping.
        level = params.multiplicative_depth - 1
        rng = np.random.default_rng(0)
        errors, seconds = [], []
        for _ in range(args.repeats):
            values = rng.uniform(-1, 1, args.slots)
            plaintext = context.MakeCKKSPackedPlaintext(values.tolist(), 1, level, None, args.slots)
            ciphertext = context.Encrypt(keys.publicKey, plaintext)
            started = time.perf_counter()
            refreshed = context.EvalBootstrap(ciphertext)
            seconds.append(time.perf_counter() - started)
            result = context.Decrypt(refreshed, keys.secretKey)
            result.SetLength(args.slots)
            errors.append(np.array(result.GetRealPackedValue()) - values)
            print(f"  bootstrap {seconds[-1]:.1f} s", file=sys.stderr)
    error = np.concatenate(errors)
    report = {"preset": params.name, "slots": args.slots, "keygen_seconds": round(keygen_seconds, 1),
              "bootstrap_seconds": [round(s, 1) for s in seconds],
              "error_std_bits": round(-math.log2(float(np.std(error))), 2),
              "error_max_bits": round(-math.log2(float(np.max(np.abs(error)))), 2),
              "peak_rss_gb": round(sampler.peak / 1e9, 2)}
    print(json.dumps(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
