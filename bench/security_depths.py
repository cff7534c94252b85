#!/usr/bin/env python3
"""Which multiplicative depths OpenFHE accepts as 128-bit secure, and at what key-switching cost.

For a preset's ring dimension, scale and first modulus, tries each depth with dnum = 2, 3, ... and
reports the smallest number of key-switching digits OpenFHE's HE-standard check accepts. More digits
shrink the special modulus P (so a longer chain fits under the security bound) but every evaluation key
holds dnum copies of the whole basis: the modelled key size column (resnet_fhe/plan/cost.py) is what a
deeper preset pays for in memory. Only contexts are built, no keys: a few seconds.

    .venv/bin/python bench/security_depths.py --preset default-128 --depths 24 33
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default-128")
    parser.add_argument("--depths", type=int, nargs=2, default=[24, 33], metavar=("FIRST", "LAST"))
    parser.add_argument("--max-dnum", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from resnet_fhe.backends.openfhe_backend import build_context
    from resnet_fhe.errors import ResnetFheError
    from resnet_fhe.plan.cost import key_bytes
    from resnet_fhe.plan.params import load_preset

    try:
        params = load_preset(args.preset)
    except ResnetFheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if params.insecure:
        print(f"error: preset {params.name} is not a 128-bit preset; nothing to check", file=sys.stderr)
        return 2
    rows = []
    print(f"{params.name}: N={params.ring_dim}, scale {params.scale_bits} bits, first modulus "
          f"{params.first_mod_bits} bits, {params.secret_key_dist}, {params.security}")
    for depth in range(args.depths[0], args.depths[1] + 1):
        accepted = None
        for dnum in range(2, args.max_dnum + 1):
            # Only depth and dnum change; levels after bootstrapping may go negative, which this check ignores.
            candidate = dataclasses.replace(params, multiplicative_depth=depth, num_large_digits=dnum,
                                            bootstrap_depth=min(params.bootstrap_depth, depth - 2))
            try:
                build_context(candidate)
            except RuntimeError:
                continue
            accepted = candidate
            break
        if accepted is None:
            print(f"depth {depth}: refused for every dnum up to {args.max_dnum}")
            rows.append({"depth": depth, "dnum": None})
            continue
        size = key_bytes(accepted) / 2**20
        print(f"depth {depth}: smallest accepted dnum {accepted.num_large_digits}, modelled key {size:.0f} MiB")
        rows.append({"depth": depth, "dnum": accepted.num_large_digits, "key_mib": round(size)})
    if args.json is not None:
        args.json.write_text(json.dumps({"preset": params.name, "rows": rows, "command": " ".join(sys.argv)},
                                        indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
