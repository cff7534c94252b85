#!/usr/bin/env python3
"""Measures a preset's bootstrapping: error, seconds, key count and memory.

Encrypts uniform values in [-1, 1] at the level a compiled plan bootstraps from (one level left),
bootstraps, decrypts, and reports the error's standard deviation and maximum as -log2. The simulator's
noise model uses the standard deviation (the preset's `bootstrap_measured[slots].precision_bits`), so a
preset change must be re-measured with this command before its accuracy figures mean anything. It also
counts the bootstrap keys and lists the rotations among them (`key_count` and `rotations` there, which
the memory estimate and the key residency use) and reports the resident memory after the keys, after
OpenFHE's precomputed transforms, and at the peak.

`--dim1`, `--level-budget` and `--correction-factor` override the preset's, to compare settings
before changing a preset.

`--backend native` measures the native build (`make native`): resnet-fhe's streamed bootstrap, its keys
written to one file per stage (in a temporary folder under `--key-dir`) and read back stage by stage as a
server does, so `peak_rss_gb` is a server's; `stage_keys` lists each stage's key count. The encoded
transforms are streamed too, unless `--keep-transforms`. With
`--openfhe-bootstrap` it measures that build's OpenFHE EvalBootstrap instead (OpenFHE 1.5.1: wrong with
the default preset's dim1 (8, 4), right with `--dim1 0,0`).

`--complex-pair` measures the complex-slot pairing that packed plans could use: two real vectors a and b
(uniform in [-1/sqrt 2, 1/sqrt 2], so |a + ib| <= 1) bootstrapped as one ciphertext z = a + ib, then
split as a plan would, without spending a level: w + conj(w) = 2a and w - conj(w) = 2ib (one conjugation
key switch). The error reported is that of a and b, comparable with the real mode's; the seconds are per
pair, i.e. per two real ciphertexts.

    OMP_NUM_THREADS=2 .venv/bin/python bench/bootstrap_precision.py --preset default-128 --slots 16384 --dim1 8,4
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from resnet_fhe.plan.params import pair_arg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="default-128")
    parser.add_argument("--slots", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=2, help="bootstraps of fresh random vectors")
    parser.add_argument("--dim1", type=pair_arg, default=None, help="CoeffsToSlots,SlotsToCoeffs baby steps")
    parser.add_argument("--level-budget", type=pair_arg, default=None, help="CoeffsToSlots,SlotsToCoeffs levels")
    parser.add_argument("--correction-factor", type=int, default=None, help="0: OpenFHE's choice")
    parser.add_argument("--complex-pair", action="store_true",
                        help="bootstrap two real vectors as one complex ciphertext a + ib, then split them")
    parser.add_argument("--backend", choices=("openfhe", "native"), default="openfhe",
                        help="the OpenFHE build to measure: the wheel or resnet_fhe._native (`make native`)")
    parser.add_argument("--openfhe-bootstrap", action="store_true",
                        help="with --backend native: OpenFHE's EvalBootstrap instead of the streamed bootstrap")
    parser.add_argument("--key-dir", type=Path, default=None, help="where the streamed keys are written")
    parser.add_argument("--keep-transforms", action="store_true",
                        help="streamed bootstrap: keep every stage's encoded diagonals in memory (faster, larger)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from resnet_fhe.backends.bootstrapping import (
        FileStageKeys,
        OpenFHEBootstrap,
        StreamedBootstrap,
        new_streamed_bootstrap,
        write_stage_keys,
    )
    from resnet_fhe.backends.openfhe_backend import build_context, fhe_library, setup_bootstrap
    from resnet_fhe.errors import ResnetFheError
    from resnet_fhe.plan.params import load_preset
    from resnet_fhe.profiling import RssSampler
    from resnet_fhe.runtime.heap import release_freed_memory

    try:
        openfhe = fhe_library(args.backend)
        params = load_preset(args.preset)
        if args.slots < 1 or args.slots > params.max_slots or args.slots & (args.slots - 1):
            raise ResnetFheError(f"--slots must be a power of two up to {params.max_slots}")
        if args.dim1 is not None:  # OpenFHE's EvalBootstrap and the streamed bootstrap alike
            params = dataclasses.replace(params, bootstrap_dim1=args.dim1, streamed_bootstrap_dim1=args.dim1)
        if args.correction_factor is not None:
            params = dataclasses.replace(params, bootstrap_correction_factor=args.correction_factor)
        if args.level_budget is not None:
            if min(args.level_budget) < 1:
                raise ResnetFheError("--level-budget takes two positive integers")
            context = build_context(params, library=args.backend)
            depth = context.GetBootstrapDepth(list(args.level_budget), getattr(openfhe, params.secret_key_dist))
            params = dataclasses.replace(params, level_budget=args.level_budget, bootstrap_depth=depth)
    except ResnetFheError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    streamed = args.backend == "native" and not args.openfhe_bootstrap
    key_dir = tempfile.TemporaryDirectory(dir=args.key_dir, prefix="bootstrap-keys-")
    with RssSampler() as sampler, key_dir:
        started = time.perf_counter()
        context = build_context(params, complex_slots=args.complex_pair, library=args.backend)
        keys = context.KeyGen()
        context.EvalMultKeyGen(keys.secretKey)
        conjugation = context.GetCyclotomicOrder() - 1
        figures = {}
        if streamed:  # as a client makes the keys and a server streams them
            folder = Path(key_dir.name)
            names = write_stage_keys(context, params, keys.secretKey, args.slots, folder)
            bootstrapper = StreamedBootstrap(context, params, FileStageKeys(context, lambda _, name: folder / name),
                                             stream_transforms=not args.keep_transforms)
            transforms = new_streamed_bootstrap(context, params, args.slots)
            stages = [transforms.StageRotations(stage) for stage in range(transforms.stage_count)]
            rotations = sorted(set().union(*stages, transforms.SpecialRotations()))
            key_count = sum(len(stage) for stage in stages) + len(transforms.SpecialRotations()) + 3
            figures = {"stream_transforms": not args.keep_transforms,
                       "stage_keys": [len(stage) for stage in stages],
                       "special_keys": len(transforms.SpecialRotations()) + 3,
                       "key_bytes": sum((folder / name).stat().st_size for name in names)}
        else:
            setup_bootstrap(context, params, args.slots, precompute=False)  # as the client makes the keys
            context.EvalBootstrapKeyGen(keys.secretKey, args.slots)
            indices = set(context.GetExistingEvalAutomorphismKeyIndices(keys.secretKey.GetKeyTag()))
            key_count = len(indices)
            rotations = [r for r in range(1, params.max_slots) if context.FindAutomorphismIndex(r) in indices]
            if args.complex_pair and conjugation not in indices:  # full packing's bootstrap keys include it
                context.EvalAutomorphismKeyGen(keys.secretKey, [conjugation])  # not counted among them
            bootstrapper = OpenFHEBootstrap(context)
        keygen_seconds = time.perf_counter() - started
        release_freed_memory()
        rss_keys = sampler.current()
        print(f"{params.name}: {key_count} bootstrap keys for {args.slots} slots in {keygen_seconds:.0f} s",
              file=sys.stderr)
        started = time.perf_counter()
        if streamed:
            bootstrapper.prepare(args.slots)
        else:
            setup_bootstrap(context, params, args.slots)  # as the server evaluates
        precompute_seconds = time.perf_counter() - started
        release_freed_memory()
        rss_precomputed = sampler.current()
        # A plan bootstraps a register that has spent all but the one level kept for bootstrapping.
        level = params.multiplicative_depth - 1
        rng = np.random.default_rng(0)
        errors, seconds, split_seconds = [], [], []

        def decrypt(ciphertext) -> np.ndarray:
            result = context.Decrypt(ciphertext, keys.secretKey)
            result.SetLength(args.slots)
            return np.array(result.GetCKKSPackedValue() if args.complex_pair else result.GetRealPackedValue())

        for _ in range(args.repeats):
            if args.complex_pair:
                real, imaginary = rng.uniform(-1, 1, (2, args.slots)) / math.sqrt(2)
                values = real + 1j * imaginary
            else:
                values = rng.uniform(-1, 1, args.slots)
            plaintext = context.MakeCKKSPackedPlaintext(values, 1, level, None, args.slots)
            ciphertext = context.Encrypt(keys.publicKey, plaintext)
            started = time.perf_counter()
            refreshed = bootstrapper.bootstrap_many([ciphertext])[0]
            seconds.append(time.perf_counter() - started)
            if args.complex_pair:
                started = time.perf_counter()
                conjugate = bootstrapper.conjugate(refreshed)
                twice_real = context.EvalAdd(refreshed, conjugate)
                twice_imaginary = context.EvalSub(refreshed, conjugate)  # 2ib
                split_seconds.append(time.perf_counter() - started)
                errors += [decrypt(twice_real).real / 2 - real, decrypt(twice_imaginary).imag / 2 - imaginary]
            else:
                errors.append(decrypt(refreshed) - values)
            print(f"  bootstrap {seconds[-1]:.1f} s", file=sys.stderr)
    error = np.concatenate(errors)
    version = getattr(openfhe, "OPENFHE_VERSION", None) or openfhe.__version__
    report = {"preset": params.name, "backend": args.backend, "openfhe_version": version, "slots": args.slots,
              "level_budget": list(params.level_budget),
              "bootstrap_depth": params.bootstrap_depth,
              "dim1": list(params.streamed_bootstrap_dim1 if streamed else params.bootstrap_dim1),
              "correction_factor": params.bootstrap_correction_factor,
              "bootstrap": "streamed" if streamed else "openfhe",
              "bootstrap_keys": key_count, "bootstrap_rotations": rotations, **figures,
              "keygen_seconds": round(keygen_seconds, 1), "precompute_seconds": round(precompute_seconds, 1),
              "bootstrap_seconds": [round(s, 1) for s in seconds],
              **({"complex_pair": True, "split_seconds": [round(s, 2) for s in split_seconds]}
                 if args.complex_pair else {}),
              "error_std_bits": round(-math.log2(float(np.std(error))), 2),
              "error_max_bits": round(-math.log2(float(np.max(np.abs(error)))), 2),
              "rss_keys_gb": round(rss_keys / 1e9, 2), "rss_precomputed_gb": round(rss_precomputed / 1e9, 2),
              "peak_rss_gb": round(sampler.peak / 1e9, 2)}
    print(json.dumps(report))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
