#!/usr/bin/env python3
"""Times plaintext encoding, the step every linear layer repeats once per diagonal (6,500 per ResNet20
image at default-128), with the values handed to the openfhe binding as a numpy array (what the backend
does) or converted to a list first (the list's conversion included: a backend would convert every
diagonal), and the plaintext product that follows an encoding, at the tower counts the plan's linear
layers run at.

Measured 2026-12-01 (bench/results/encode-timing-2026-12-01.json): the list is slower (5.1 against 2.0 ms
at 2 towers), and encoding costs about 1.2 ms per tower against 0.2 ms per tower for the product, so it
is the diagonals' count and level, not the handover, that sets a linear layer's encoding time. No keys
beyond a secret and public key are made: it runs in seconds.

    OMP_NUM_THREADS=2 .venv/bin/python bench/encode_timing.py --repeats 200 [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default-128")
    parser.add_argument("--slots", type=int, default=16384)
    parser.add_argument("--towers", default="2,3,11", help="comma-separated tower counts to encode at")
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from resnet_fhe.backends.openfhe_backend import build_context
    from resnet_fhe.errors import ResnetFheError
    from resnet_fhe.plan.params import load_preset
    from resnet_fhe.profiling.machine import cpu_model

    try:
        params = load_preset(args.preset)
        towers = [int(t) for t in args.towers.split(",")]
        if args.repeats < 1 or not all(1 <= t <= params.multiplicative_depth + 1 for t in towers):
            raise ResnetFheError(f"--repeats must be positive and --towers within 1..{params.multiplicative_depth + 1}")
        if not 1 <= args.slots <= params.ring_dim // 2:
            raise ResnetFheError(f"--slots must be within 1..{params.ring_dim // 2}")
    except (ResnetFheError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    context = build_context(params)
    keys = context.KeyGen()
    values = np.random.default_rng(0).uniform(-1, 1, args.slots)
    rows = []
    for count in towers:
        level = params.multiplicative_depth + 1 - count  # levels consumed: what MakeCKKSPackedPlaintext takes
        ciphertext = context.Encrypt(keys.publicKey, context.MakeCKKSPackedPlaintext(values.tolist(), 1, level,
                                                                                      None, args.slots))
        row = {"towers": count}
        for way, argument in (("numpy_ms", values), ("list_ms", None)):
            start = time.perf_counter()
            for _ in range(args.repeats):
                context.MakeCKKSPackedPlaintext(values.tolist() if argument is None else argument, 1, level, None,
                                                args.slots)
            row[way] = round((time.perf_counter() - start) / args.repeats * 1e3, 3)
        plaintext = context.MakeCKKSPackedPlaintext(values.tolist(), 1, level, None, args.slots)
        start = time.perf_counter()
        for _ in range(args.repeats):
            context.EvalMult(ciphertext, plaintext)
        row["product_ms"] = round((time.perf_counter() - start) / args.repeats * 1e3, 3)
        rows.append(row)
        print(f"{count:2d} towers: encode from numpy {row['numpy_ms']:.2f} ms, from a list {row['list_ms']:.2f} ms; "
              f"product {row['product_ms']:.2f} ms", flush=True)
    if args.json is not None:
        result = {"preset": args.preset, "slots": args.slots, "repeats": args.repeats, "cpu": cpu_model(),
                  "rows": rows, "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
