#!/usr/bin/env python3
"""The main job: ResNet20 classifies CIFAR-10 test images under real CKKS encryption (128-bit preset).

The model is compiled into its CKKS plan (calibrated on training images; the plan is cached), keys are
made once into a key store cached between runs (a plan or preset change makes a new one), and the image
goes through the deployment a user would have: the client encrypts, the server evaluates in its own
process with the key store's server part only (per-phase keys under the memory budget, a progress line
per layer), the client decrypts. Prints the per-layer table of time, levels, bootstraps, the plan's
memory estimate and the measured RSS, and the class beside the plaintext model's.

--simulate runs the plan in the slot-exact simulator with the preset's CKKS noise model instead (no
encryption; seconds). --insecure allows the toy preset for a quick try.

    .venv/bin/python bench/resnet20.py [--images N] [--start K] [--data-dir DIR] [--simulate] [--plot PNG]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    # numpy only: OpenMP settings come later
    from resnet_fhe.compiler.compile import SHALLOW_TRANSITIONS_HELP, CompileOptions
    from resnet_fhe.compiler.packing import images_per_query_arg
    from resnet_fhe.compiler.polynomial import RELU_FORMS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20", help="name in weights/ or a weights .npz path")
    parser.add_argument("--preset", default="default-128")
    parser.add_argument("--images", type=int, default=1, help="test images, evaluated as one batch")
    parser.add_argument("--images-per-query", type=images_per_query_arg, default=None,
                        help="images packed into the same ciphertexts (a power of two; default: picked from "
                             "--images and --budget-gb, 1 with --simulate)")
    parser.add_argument("--start", type=int, default=0, help="index of the first test image")
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="CIFAR-10 python batches (test images from test_batch; training images calibrate); "
                             "without one found, the test images come from the sample shipped in the package")
    parser.add_argument("--calibration-images", type=int, default=None,
                        help="training images that calibrate the activation ranges (default: the compiler's)")
    parser.add_argument("--relu-form", choices=RELU_FORMS, default=CompileOptions.relu_form,
                        help="ReLU stand-in: any Chebyshev series, or a*x + even(x) (faster, same depth)")
    parser.add_argument("--no-pairing", dest="pair_bootstraps", action="store_false",
                        help="bootstrap every ciphertext alone, not two as one (compiler/pairing.py)")
    parser.add_argument("--shallow-transitions", action="store_true",
                        help=SHALLOW_TRANSITIONS_HELP)
    parser.add_argument("--simulate", action="store_true", help="the simulator instead of real CKKS")
    parser.add_argument("--no-noise", action="store_true", help="simulate without the CKKS noise model")
    parser.add_argument("--store", type=Path, default=None,
                        help="key store folder (default: one per plan under $RESNET_FHE_CACHE or ~/.cache/resnet-fhe)")
    parser.add_argument("--budget-gb", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=2, help="OpenMP threads for OpenFHE")
    parser.add_argument("--backend", choices=["openfhe", "native"], default="openfhe",
                        help="OpenFHE library: openfhe (the PyPI wheel) or native (built from source, `make native`)")
    parser.add_argument("--insecure", action="store_true", help="allow an insecure test preset")
    parser.add_argument("--json", type=Path, default=Path("results/resnet20.json"))
    parser.add_argument("--plot", type=Path, default=None,
                        help="PNG chart of time and memory per layer (encrypted runs; needs matplotlib)")
    args = parser.parse_args(argv)
    if args.images < 1 or args.start < 0:
        parser.error("--images must be at least 1 and --start at least 0")
    if args.plot is not None and args.simulate:
        parser.error("--plot draws the per-layer profile of an encrypted run: drop --simulate")
    if args.backend != "openfhe" and args.simulate:
        parser.error("--backend chooses the OpenFHE library of an encrypted run: drop --simulate")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))  # before openfhe is imported
    from resnet_fhe.errors import ResnetFheError

    try:
        return run(args)
    except ResnetFheError as exc:
        log(f"error: {exc}")
        return 2


def test_images(args: argparse.Namespace):
    """--images test images from --start: CIFAR-10's test_batch when found, else the shipped sample."""
    from resnet_fhe.data import default_data_dir, load_cifar10, load_sample

    if args.data_dir is not None or default_data_dir() is not None:
        data = load_cifar10("test", args.data_dir)
    else:
        log("no CIFAR-10 directory found: using the test images shipped in the package")
        data = load_sample()
    if args.start + args.images > len(data):
        from resnet_fhe.errors import InputError

        raise InputError(f"--start {args.start} --images {args.images} goes past the {len(data)} test images "
                         f"of {data.source}")
    return data.take(args.images, args.start)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from resnet_fhe.compiler import CompileOptions
    from resnet_fhe.compiler.calibrate import DEFAULT_CALIBRATION_IMAGES
    from resnet_fhe.compiler.packing import check_packing, plan_for_batch
    from resnet_fhe.compiler.plan_cache import compile_model_cached
    from resnet_fhe.data import CIFAR10_CLASSES
    from resnet_fhe.ir import run_graph
    from resnet_fhe.models import load_model
    from resnet_fhe.plan.params import load_preset
    from resnet_fhe.plan.summary import layer_rows
    from resnet_fhe.profiling import check_estimate

    if args.plot is not None:
        from resnet_fhe.profiling.chart import require_matplotlib

        require_matplotlib()
    if not args.simulate:
        from resnet_fhe.backends.openfhe_backend import fhe_library

        fhe_library(args.backend)  # built and importable, before compiling
    data = test_images(args)
    calibration_images = args.calibration_images or DEFAULT_CALIBRATION_IMAGES
    log(f"compiling {args.model} for preset {args.preset} (calibration: {calibration_images} training images)")
    started = time.perf_counter()

    def compile_with(images_per_query: int):
        options = CompileOptions(relu_form=args.relu_form, images_per_query=images_per_query,
                                 pair_bootstraps=args.pair_bootstraps,
                                 shallow_transitions=args.shallow_transitions)
        return compile_model_cached(args.model, args.preset, options, calibration_images, args.data_dir)

    if args.simulate:
        check_packing(load_model(args.model), load_preset(args.preset), args.images_per_query or 1)
        plan = compile_with(args.images_per_query or 1)
        packing = {"images_per_query": plan.images_per_query, "reason": "simulated"}
    else:
        choice = plan_for_batch(load_model(args.model), load_preset(args.preset), len(data), args.budget_gb,
                                compile_with, args.images_per_query)
        plan = choice.plan
        log(f"packing: {choice.reason}")
        packing = {"images_per_query": choice.images_per_query, "queries": choice.queries, "reason": choice.reason}
    compile_seconds = time.perf_counter() - started
    if plan.params.insecure and not args.insecure:
        log(f"error: preset {plan.params.name} is INSECURE ({plan.params.security}); pass --insecure to use it")
        return 2
    deployment = None
    if not args.simulate:
        from resnet_fhe.runtime.local import LocalDeployment

        deployment = LocalDeployment(plan, args.store, args.threads, args.budget_gb, args.insecure, args.backend)
    costs = deployment.known_costs() if deployment is not None else None
    queries = -(-len(data) // plan.images_per_query)
    rows = layer_rows(plan, queries=queries, costs=costs)
    estimate = max(r["memory_gb"] for r in rows)
    plain = run_graph(load_model(args.model), data.images / 255.0)
    summary = {"model": args.model, "preset": plan.params.name, "security": plan.params.security,
               "bootstraps": plan.bootstraps, "bootstraps_per_query": plan.bootstraps_per_query(),
               "compile_seconds": round(compile_seconds, 1),
               "estimated_peak_gb": estimate, "data_source": data.source, "first_image": args.start,
               "packing": packing, "backend": None if args.simulate else args.backend,
               "plan_layers": rows, "images": []}
    if args.simulate:
        from resnet_fhe.backends.simulator import NoiseModel, SimulatorBackend

        noise = None if args.no_noise else NoiseModel.from_params(plan)
        started = time.perf_counter()
        outputs = SimulatorBackend(plan, noise=noise).run(data.images / 255.0)
        summary.update(mode="simulate" + ("" if noise is None else " with CKKS noise model"), encrypted=False,
                       simulate_seconds=round(time.perf_counter() - started, 2),
                       note="simulated: no encryption took place (drop --simulate for real CKKS)")
        print_plan_table(rows)
    else:
        check_estimate(estimate, args.budget_gb, f"{args.model}/{plan.params.name}")
        if costs is not None:
            log(f"predicted: {sum(r['seconds'] for r in rows):.0f} s of arithmetic for the batch (key loading "
                f"aside), from this machine's op costs in {deployment.cost_table()}")
        result = deployment.classify(data.images)
        outputs = result.logits
        log(f"{len(data)} image(s) in {result.seconds:.1f} s ({result.seconds_per_image:.1f} s per image), "
            f"server peak RSS {result.peak_rss_gb:.2f} GB")
        summary.update(mode="encrypted", encrypted=True, keygen_seconds=result.keygen["seconds"],
                       keygen_peak_rss_gb=result.keygen["peak_rss_gb"], keygen_reused=result.keygen["reused"],
                       peak_rss_gb=result.peak_rss_gb, key_store_gb=round(result.key_store_gb, 3),
                       store=str(result.store), batch_seconds=result.seconds,
                       seconds_per_image=round(result.seconds_per_image, 2),
                       server_process_seconds=round(result.process_seconds, 2),
                       resumed_from_op=result.resumed_from_op, key_load_seconds=result.key_load_seconds,
                       profiles=[{"seconds": result.seconds, "images": len(data), "layers": result.layers}],
                       predicted_seconds=None if costs is None else round(sum(r["seconds"] for r in rows), 1),
                       op_costs=None if result.fitted_costs is None else asdict(result.fitted_costs))
        print_profile_table(summary, args)
    for i in range(len(data)):
        row = {"index": args.start + i, "label": int(data.labels[i]), "plain_class": int(plain[i].argmax()),
               "class": int(outputs[i].argmax()), "max_abs_logit_error": float(np.max(np.abs(outputs[i] - plain[i]))),
               "logits": outputs[i].round(6).tolist()}
        summary["images"].append(row)
        print(f"image {row['index']}: label {CIFAR10_CLASSES[row['label']]}, plain "
              f"{CIFAR10_CLASSES[row['plain_class']]}, {summary['mode'].split()[0]} "
              f"{CIFAR10_CLASSES[row['class']]}, max |logit error| {row['max_abs_logit_error']:.4f}")
    summary["agreement_with_plain"] = float(np.mean(outputs.argmax(1) == plain.argmax(1)))
    print(f"{args.model}/{plan.params.name} ({summary['mode']}): {plan.bootstraps} bootstraps, agreement with "
          f"plaintext {100 * summary['agreement_with_plain']:.0f}% over {len(data)} image(s)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2) + "\n")
    log(f"wrote {args.json}")
    return 0


def print_plan_table(rows: list[dict]) -> None:
    print(f"{'layer':28} {'ops':28} {'levels':>7} {'boot':>4} {'keys':>4} {'est GB':>6}")
    for r in rows:
        ops = ",".join(dict.fromkeys(r["ops"]))
        print(f"{r['layer']:28} {ops:28} {r['level_in']:>3}->{r['level_out']:<3} {r['bootstraps']:>4} "
              f"{len(r['rotation_keys']):>4} {r['memory_gb']:>6.2f}")


def print_profile_table(summary: dict, args: argparse.Namespace) -> None:
    """Measured time and levels per layer with predicted vs measured memory (whole batch); the chart if asked."""
    from resnet_fhe.profiling.chart import plot_profile, render_memory_table, run_report

    rows, title = run_report(summary)
    summary["memory_per_layer"] = rows
    print(render_memory_table(rows))
    if args.plot is not None:
        log(f"wrote {plot_profile(rows, args.plot, title, args.budget_gb)}")


if __name__ == "__main__":
    sys.exit(main())
