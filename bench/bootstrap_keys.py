#!/usr/bin/env python3
"""How many bootstrap keys an OpenFHE library makes for a preset and slot count, and their bytes on disk.

The same settings (level budget, baby steps) give different key sets in different OpenFHE releases: this
is how the wheel (1.6.1) and the native build (1.5.1) are compared before their bootstraps are timed.
It counts OpenFHE's EvalBootstrap keys on either build (the native backend itself bootstraps with its own
streamed keys: bench/bootstrap_precision.py --backend native counts those); `--dim1` overrides the
preset's baby steps.

    OMP_NUM_THREADS=2 .venv/bin/python bench/bootstrap_keys.py --backend native --json keys-native.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

from resnet_fhe.plan.params import pair_arg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=["openfhe", "native"], default="openfhe")
    parser.add_argument("--preset", default="default-128")
    parser.add_argument("--slots", type=int, default=16384)
    parser.add_argument("--dim1", type=pair_arg, default=None, help="CoeffsToSlots,SlotsToCoeffs baby steps, e.g. 8,4")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from resnet_fhe.backends.openfhe_backend import (
        build_context,
        fhe_library,
        setup_bootstrap,
    )
    from resnet_fhe.errors import ResnetFheError
    from resnet_fhe.plan.params import load_preset

    try:
        fhe = fhe_library(args.backend)
        params = load_preset(args.preset)
        if args.slots < 1 or args.slots > params.max_slots or args.slots & (args.slots - 1):
            raise ResnetFheError(f"--slots must be a power of two up to {params.max_slots}")
        if args.dim1 is not None:
            params = dataclasses.replace(params, bootstrap_dim1=args.dim1)
    except ResnetFheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    context = build_context(params, library=args.backend)
    keys = context.KeyGen()
    setup_bootstrap(context, params, args.slots, precompute=False)  # keys only, as a client makes them
    context.EvalBootstrapKeyGen(keys.secretKey, args.slots)
    seconds = time.perf_counter() - started
    tag = keys.secretKey.GetKeyTag()
    count = len(context.GetExistingEvalAutomorphismKeyIndices(tag))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bootstrap.bin"
        fhe.SerializeEvalBootstrapKey(str(path), fhe.BINARY, context, tag, args.slots)
        size = path.stat().st_size
    result = {"backend": args.backend, "preset": params.name, "slots": args.slots,
              "level_budget": list(params.level_budget), "dim1": list(params.bootstrap_dim1),
              "keys": count, "bytes": size, "keygen_seconds": round(seconds, 1), "command": " ".join(sys.argv)}
    print(f"{args.backend}: {count} bootstrap keys, {size / 1e9:.2f} GB, made in {seconds:.1f} s")
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
