#!/usr/bin/env python3
"""Times one op of a compiled plan under real encryption, alone or for several images at once.

A whole 128-bit ResNet20 run takes many minutes; this measures one linear transform, ReLU polynomial or
bootstrap in seconds, with only that op's keys (a bootstrap's take ~10 GB with OpenFHE's precomputation
and a minute to make), on random inputs at the level the plan gives the op. It is how the backend's
per-op costs are compared before and after a change; --unrescaled gives the op inputs in the state the
backend stored registers in before it rescaled them (a convolution's output still carrying its product).

    OMP_NUM_THREADS=2 .venv/bin/python bench/op_timing.py --op stage1.block1.conv1 --images 1 4

--backend native times the same op on OpenFHE built from source (`make native`) instead of the wheel; a
bootstrap there is resnet-fhe's streamed one, its stage keys held in memory (compute only: a server also
reads each stage's keys and diagonals from disk; bench/bootstrap_precision.py --backend native times that).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_PLAN = Path(__file__).resolve().parent.parent / "circuits" / "resnet20-default-128.json"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", type=Path, default=DEFAULT_PLAN, help="compiled plan JSON (constants beside)")
    parser.add_argument("--op", required=True, help="op name, as in the plan's JSON")
    parser.add_argument("--images", type=int, nargs="+", default=[1], help="batch sizes to time")
    parser.add_argument("--unrescaled", action="store_true",
                        help="inputs still carrying an unrescaled product (how registers were stored before)")
    parser.add_argument("--backend", choices=["openfhe", "native"], default="openfhe",
                        help="OpenFHE library: openfhe (the wheel) or native (`make native`)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from resnet_fhe.backends.bootstrapping import MemoryStageKeys, StreamedBootstrap
    from resnet_fhe.backends.openfhe_backend import (
        OpenFHEBackend,
        build_context,
        fhe_library,
        setup_bootstrap,
        streams_bootstrap_keys,
    )
    from resnet_fhe.errors import ResnetFheError
    from resnet_fhe.plan.ops import Bootstrap, LinearTransform, Polynomial
    from resnet_fhe.plan.plan import Plan

    try:
        plan = Plan.load(args.plan)
        ops = {op.name: op for op in plan.ops}
        if args.op not in ops:
            raise ResnetFheError(f"no op {args.op!r} in {args.plan}; linear, polynomial and bootstrap ops: "
                                 + ", ".join(name for name, op in ops.items()
                                             if isinstance(op, LinearTransform | Polynomial | Bootstrap)))
        op = ops[args.op]
        if not isinstance(op, LinearTransform | Polynomial | Bootstrap):
            raise ResnetFheError(f"{args.op} is a {op.kind} op; linear, polynomial and bootstrap ops are timed")
        if min(args.images) < 1:
            raise ResnetFheError("--images takes batch sizes of at least 1")
        fhe_library(args.backend)  # built and importable, before the keys take a minute
    except ResnetFheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    context = build_context(plan.params, complex_slots=plan.complex_slots, library=args.backend)
    keys = context.KeyGen()
    context.EvalMultKeyGen(keys.secretKey)
    bootstrapper = None
    if isinstance(op, Bootstrap) and streams_bootstrap_keys(args.backend):
        # the native build's own bootstrap, its stage keys held in memory: compute only, no key reading;
        # made before the rotation keys, while the context's key table is empty
        stage_keys = MemoryStageKeys(context, plan.params, keys.secretKey, [op.slots])
        bootstrapper = StreamedBootstrap(context, plan.params, stage_keys)
        bootstrapper.prepare(op.slots)  # the encoded transforms, not timed (a server prepares them once)
    if op.rotation_keys():
        context.EvalRotateKeyGen(keys.secretKey, sorted(op.rotation_keys()))
    if isinstance(op, Bootstrap) and bootstrapper is None:
        setup_bootstrap(context, plan.params, op.slots)
        context.EvalBootstrapKeyGen(keys.secretKey, op.slots)
    backend = OpenFHEBackend(plan, context, bootstrapper=bootstrapper)
    evaluate = backend.evaluate_op
    if isinstance(op, Bootstrap) and args.unrescaled:  # the backend rescales first now; time it without
        def evaluate(op, batch):
            return [backend.bootstrapper.bootstrap_many(image[op.input]) for image in batch]
    ciphertexts = plan.registers[op.input].layout.ciphertexts
    slots = plan.registers[op.input].layout.slots
    # Inputs as the backend stores registers: rescaled, with the op's levels. --unrescaled: as it stored
    # them before, at the same level but still carrying one unrescaled product (one tower more).
    spent = plan.params.multiplicative_depth - op.level_in - (1 if args.unrescaled else 0)
    rng = np.random.default_rng(0)

    def fresh_input() -> list[object]:
        values = rng.uniform(-1, 1, slots)
        plaintext = context.MakeCKKSPackedPlaintext(values, 1, spent, None, slots)
        cts = [context.Encrypt(keys.publicKey, plaintext) for _ in range(ciphertexts)]
        return [context.EvalMult(ct, 1.0) for ct in cts] if args.unrescaled else cts

    rows = []
    for images in args.images:
        batch = [{op.input: fresh_input()} for _ in range(images)]
        started = time.perf_counter()
        evaluate(op, batch)
        seconds = time.perf_counter() - started
        rows.append({"images": images, "seconds": round(seconds, 3), "seconds_per_image": round(seconds / images, 3)})
        print(f"{op.name}: {images} image(s) in {seconds:.2f} s = {seconds / images:.2f} s per image", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps({"op": op.name, "kind": op.kind, "plan": str(args.plan),
                                         "preset": plan.params.name, "level_in": op.level_in,
                                         "backend": args.backend,
                                         "unrescaled_input": args.unrescaled,
                                         "timings": rows, "command": " ".join(sys.argv)}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
