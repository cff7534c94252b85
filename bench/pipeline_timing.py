#!/usr/bin/env python3
"""Times the first ops of a plan, in order, on a real encrypted image: what op_timing.py cannot see.

op_timing.py gives one op fresh random inputs; here each op reads what the ops before it wrote, so the
state the backend stores registers in (rescaled or not, which towers) shows in every later op, bootstraps
included. Runs on a key store made for the plan (the main job's cached one by default) and the first
image encrypted there; with --unrescaled the backend stores registers as earlier versions did, with their
products still unrescaled, to measure what rescaling buys; with --openfhe-series every ReLU polynomial
is OpenFHE's EvalChebyshevSeries instead of the backend's own evaluation. Each op's peak RSS is recorded
(the bootstraps' peak shows what the ops before them left allocated).

    OMP_NUM_THREADS=2 .venv/bin/python bench/pipeline_timing.py --ops 12 [--unrescaled] [--openfhe-series] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, default=None,
                        help="key store (default: the main job's cached store for resnet20/default-128)")
    parser.add_argument("--ops", type=int, default=12, help="how many of the plan's first ops to run")
    parser.add_argument("--unrescaled", action="store_true", help="store registers unrescaled (older behaviour)")
    parser.add_argument("--openfhe-series", action="store_true",
                        help="OpenFHE's EvalChebyshevSeries instead of backends/chebyshev.py")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from resnet_fhe.backends.openfhe_backend import OpenFHEBackend
    from resnet_fhe.cache import cache_dir
    from resnet_fhe.errors import ResnetFheError
    from resnet_fhe.profiling import RssSampler
    from resnet_fhe.runtime.ciphertexts import read_ciphertexts
    from resnet_fhe.runtime.server import PhaseKeys, Server

    try:
        wheel_stores = [p for p in (cache_dir() / "stores").glob("resnet20-default-128-*")
                        if re.fullmatch(r"resnet20-default-128-[0-9a-f]{12}", p.name)]  # not -native- ones
        store = args.store or max(wheel_stores, default=None, key=lambda p: p.stat().st_mtime)
        queries = sorted((store / "queries").iterdir()) if store is not None and (store / "queries").is_dir() else []
        if not queries:
            raise ResnetFheError("no key store with an encrypted image: run the main job first, or pass --store")
        server = Server(store / "server")
        if not 1 <= args.ops <= len(server.plan.ops):
            raise ResnetFheError(f"--ops takes 1 to {len(server.plan.ops)}")
    except ResnetFheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    plan = server.plan
    plan.ops = plan.ops[:args.ops]
    plan.output = plan.ops[-1].output
    backend = OpenFHEBackend(plan, server.context, rescale_registers=not args.unrescaled,
                             own_series=not args.openfhe_series, bootstrapper=server.backend.bootstrapper)
    server.backend = backend  # PhaseKeys prepares and releases the bootstrapper through the server's backend
    keys = PhaseKeys(server)
    timings: list[dict] = []
    evaluate = backend.evaluate_op
    with RssSampler() as sampler:
        def timed(op, registers):
            sampler.start_window()
            started = time.perf_counter()
            result = evaluate(op, registers)
            timings.append({"op": op.name, "kind": op.kind, "seconds": round(time.perf_counter() - started, 3),
                            "peak_rss_gb": round(sampler.window_peak() / 1e9, 3)})
            print(f"{op.name}: {timings[-1]['seconds']:.1f} s, peak RSS {timings[-1]['peak_rss_gb']:.2f} GB",
                  flush=True)
            return result

        backend.evaluate_op = timed
        cts = read_ciphertexts(queries[0], plan.input, server.manifest["store_id"], server.fhe)
        backend.run_batch([cts], keys=keys)
        keys.drop()
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"store": str(store), "unrescaled": args.unrescaled,
                                         "openfhe_series": args.openfhe_series, "ops": timings,
                                         "peak_rss_gb": round(sampler.peak / 1e9, 3),
                                         "command": " ".join(sys.argv)}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
