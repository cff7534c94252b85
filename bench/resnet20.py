#!/usr/bin/env python3
"""The main job: ResNet20 on CIFAR-10 test images from the shipped sample.

What runs today: the model is compiled into its CKKS plan (calibrated on training images), and the plan is
executed by the slot-exact simulator with the CKKS noise model of the preset; the per-layer table shows
the plan's levels, bootstraps, rotation keys and estimated memory. Real encryption (the OpenFHE backend,
client/server, measured time and memory per layer) is not built yet: this job says so instead of
pretending, and will run it once it exists.

    .venv/bin/python bench/resnet20.py [--images N] [--model resnet20] [--preset default-128] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from resnet_fhe.backends.simulator import NoiseModel, SimulatorBackend
from resnet_fhe.compiler import CompileOptions, compile_model
from resnet_fhe.data import CIFAR10_CLASSES, load_sample
from resnet_fhe.errors import ResnetFheError
from resnet_fhe.ir import run_graph
from resnet_fhe.models import load_model
from resnet_fhe.plan.summary import layer_rows


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20")
    parser.add_argument("--preset", default="default-128")
    parser.add_argument("--images", type=int, default=1, help="images from the shipped test sample")
    parser.add_argument("--data-dir", type=Path, default=None, help="CIFAR-10 batches (training images calibrate)")
    parser.add_argument("--calibration-images", type=int, default=1024)
    parser.add_argument("--no-noise", action="store_true", help="simulate without the CKKS noise model")
    parser.add_argument("--json", type=Path, default=Path("results/resnet20.json"))
    args = parser.parse_args(argv)
    try:
        return run(args)
    except ResnetFheError as exc:
        log(f"error: {exc}")
        return 2


def run(args: argparse.Namespace) -> int:
    sample = load_sample().take(args.images)
    log(f"compiling {args.model} for preset {args.preset} (calibration: {args.calibration_images} training images)")
    started = time.perf_counter()
    plan = compile_model(args.model, args.preset, CompileOptions(), args.calibration_images, args.data_dir)
    compile_seconds = time.perf_counter() - started
    rows = layer_rows(plan)
    print(f"{'layer':28} {'ops':28} {'levels':>7} {'boot':>4} {'keys':>4} {'est GB':>6}")
    for r in rows:
        ops = ",".join(dict.fromkeys(r["ops"]))
        print(f"{r['layer']:28} {ops:28} {r['level_in']:>3}->{r['level_out']:<3} {r['bootstraps']:>4} "
              f"{len(r['rotation_keys']):>4} {r['memory_gb']:>6.2f}")
    images = sample.images / 255.0
    plain = run_graph(load_model(args.model), images)
    noise = None if args.no_noise else NoiseModel.from_params(plan)
    started = time.perf_counter()
    simulated = SimulatorBackend(plan, noise=noise).run(images)
    simulate_seconds = time.perf_counter() - started
    results = []
    for i in range(len(sample)):
        results.append({"index": i, "label": int(sample.labels[i]),
                        "plain_class": int(plain[i].argmax()), "simulated_class": int(simulated[i].argmax()),
                        "max_abs_logit_error": float(np.max(np.abs(simulated[i] - plain[i]))),
                        "simulated_logits": simulated[i].round(6).tolist()})
        row = results[-1]
        print(f"image {i}: label {CIFAR10_CLASSES[row['label']]}, plain {CIFAR10_CLASSES[row['plain_class']]}, "
              f"simulated {CIFAR10_CLASSES[row['simulated_class']]}, "
              f"max |logit error| {row['max_abs_logit_error']:.4f}")
    agreement = float(np.mean(simulated.argmax(1) == plain.argmax(1)))
    summary = {
        "model": args.model, "preset": args.preset, "security": plan.params.security,
        "mode": "simulate" + ("" if noise is None else " with CKKS noise model"),
        "encrypted": False, "note": "the OpenFHE backend is not built yet; figures are from the simulator",
        "bootstraps": plan.bootstraps, "compile_seconds": round(compile_seconds, 1),
        "simulate_seconds": round(simulate_seconds, 2), "agreement_with_plain": agreement,
        "estimated_peak_gb": max(r["memory_gb"] for r in rows), "layers": rows, "images": results,
    }
    print(f"{args.model}/{args.preset}: {plan.bootstraps} bootstraps, agreement with plaintext "
          f"{100 * agreement:.0f}% over {len(sample)} image(s); NOT encrypted (OpenFHE backend pending)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2) + "\n")
    log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
