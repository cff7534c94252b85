#!/usr/bin/env python3
"""The main job: ResNet20 on CIFAR-10 test images from the shipped sample.

Default: the model is compiled into its CKKS plan for the 128-bit preset (calibrated on training images)
and the plan runs in the slot-exact simulator with the preset's CKKS noise model; the table shows per
layer the plan's levels, bootstraps, rotation keys and estimated memory.

--encrypted runs real CKKS instead: client keygen into a key store (own process), encryption, the
server evaluating all images as one batch in its own process with per-phase keys under the memory
budget (checkpointed: the same command on the same --store resumes a stopped run), decryption, and a
measured per-layer profile: time, the plan's memory estimate beside the measured RSS, and with --plot a
PNG chart of both. --insecure allows the toy preset for a quick try.

    .venv/bin/python bench/resnet20.py [--images N] [--encrypted [--store DIR] [--budget-gb 15] [--plot PNG]]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    from resnet_fhe.compiler.compile import CompileOptions  # numpy only: OpenMP settings come later
    from resnet_fhe.compiler.polynomial import RELU_FORMS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="resnet20", help="name in weights/ or a weights .npz path")
    parser.add_argument("--preset", default="default-128")
    parser.add_argument("--images", type=int, default=1, help="images from the shipped test sample")
    parser.add_argument("--data-dir", type=Path, default=None, help="CIFAR-10 batches (training images calibrate)")
    parser.add_argument("--calibration-images", type=int, default=None,
                        help="training images that calibrate the activation ranges (default: the compiler's)")
    parser.add_argument("--relu-form", choices=RELU_FORMS, default=CompileOptions.relu_form,
                        help="ReLU stand-in: any Chebyshev series, or a*x + even(x) (faster, same depth)")
    parser.add_argument("--no-noise", action="store_true", help="simulate without the CKKS noise model")
    parser.add_argument("--encrypted", action="store_true", help="real CKKS with OpenFHE instead of the simulator")
    parser.add_argument("--store", type=Path, default=None, help="key store folder (default: a temporary one)")
    parser.add_argument("--budget-gb", type=float, default=15.0)
    parser.add_argument("--threads", type=int, default=2, help="OpenMP threads for OpenFHE")
    parser.add_argument("--insecure", action="store_true", help="allow an insecure test preset")
    parser.add_argument("--json", type=Path, default=Path("results/resnet20.json"))
    parser.add_argument("--plot", type=Path, default=None,
                        help="PNG chart of time and memory per layer (encrypted runs; needs matplotlib)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))  # before openfhe is imported
    from resnet_fhe.errors import ResnetFheError

    try:
        return run(args)
    except ResnetFheError as exc:
        log(f"error: {exc}")
        return 2


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from resnet_fhe.compiler import CompileOptions, compile_model
    from resnet_fhe.compiler.calibrate import DEFAULT_CALIBRATION_IMAGES
    from resnet_fhe.data import CIFAR10_CLASSES, load_sample
    from resnet_fhe.ir import run_graph
    from resnet_fhe.models import load_model
    from resnet_fhe.plan.summary import layer_rows
    from resnet_fhe.profiling import check_estimate

    if args.plot is not None:
        if not args.encrypted:
            log("error: --plot draws the per-layer profile of an encrypted run: add --encrypted")
            return 2
        from resnet_fhe.profiling.chart import require_matplotlib

        require_matplotlib()
    sample = load_sample().take(args.images)
    calibration_images = args.calibration_images or DEFAULT_CALIBRATION_IMAGES
    log(f"compiling {args.model} for preset {args.preset} (calibration: {calibration_images} training images)")
    started = time.perf_counter()
    options = CompileOptions(relu_form=args.relu_form)
    plan = compile_model(args.model, args.preset, options, calibration_images, args.data_dir)
    compile_seconds = time.perf_counter() - started
    if plan.params.insecure and not args.insecure:
        log(f"error: preset {plan.params.name} is INSECURE ({plan.params.security}); pass --insecure to use it")
        return 2
    rows = layer_rows(plan, images=len(sample))
    estimate = max(r["memory_gb"] for r in rows)
    images = sample.images / 255.0
    plain = run_graph(load_model(args.model), images)
    summary = {"model": args.model, "preset": plan.params.name, "security": plan.params.security,
               "bootstraps": plan.bootstraps, "compile_seconds": round(compile_seconds, 1),
               "estimated_peak_gb": estimate, "plan_layers": rows, "images": []}
    if args.encrypted:
        check_estimate(estimate, args.budget_gb, f"{args.model}/{plan.params.name}")
        outputs, measured = encrypted_logits(plan, sample.images, args)
        summary.update(mode="encrypted", encrypted=True, **measured)
        report_memory(summary, args)
    else:
        from resnet_fhe.backends.simulator import NoiseModel, SimulatorBackend

        noise = None if args.no_noise else NoiseModel.from_params(plan)
        started = time.perf_counter()
        outputs = SimulatorBackend(plan, noise=noise).run(images)
        summary.update(mode="simulate" + ("" if noise is None else " with CKKS noise model"), encrypted=False,
                       simulate_seconds=round(time.perf_counter() - started, 2),
                       note="simulated: no encryption took place (pass --encrypted for real CKKS)")
    print(f"{'layer':28} {'ops':28} {'levels':>7} {'boot':>4} {'keys':>4} {'est GB':>6}")
    for r in rows:
        ops = ",".join(dict.fromkeys(r["ops"]))
        print(f"{r['layer']:28} {ops:28} {r['level_in']:>3}->{r['level_out']:<3} {r['bootstraps']:>4} "
              f"{len(r['rotation_keys']):>4} {r['memory_gb']:>6.2f}")
    for i in range(len(sample)):
        row = {"index": i, "label": int(sample.labels[i]), "plain_class": int(plain[i].argmax()),
               "class": int(outputs[i].argmax()), "max_abs_logit_error": float(np.max(np.abs(outputs[i] - plain[i]))),
               "logits": outputs[i].round(6).tolist()}
        summary["images"].append(row)
        print(f"image {i}: label {CIFAR10_CLASSES[row['label']]}, plain {CIFAR10_CLASSES[row['plain_class']]}, "
              f"{summary['mode'].split()[0]} {CIFAR10_CLASSES[row['class']]}, "
              f"max |logit error| {row['max_abs_logit_error']:.4f}")
    summary["agreement_with_plain"] = float(np.mean(outputs.argmax(1) == plain.argmax(1)))
    print(f"{args.model}/{plan.params.name} ({summary['mode']}): {plan.bootstraps} bootstraps, agreement with "
          f"plaintext {100 * summary['agreement_with_plain']:.0f}% over {len(sample)} image(s)")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(summary, indent=2) + "\n")
    log(f"wrote {args.json}")
    return 0


def report_memory(summary: dict, args: argparse.Namespace) -> None:
    """Predicted vs measured memory per layer (whole batch), to stderr and the JSON; the chart if asked."""
    from resnet_fhe.profiling.chart import plot_profile, render_memory_table, run_report

    rows, title = run_report(summary)
    summary["memory_per_layer"] = rows
    log(render_memory_table(rows))
    if args.plot is not None:
        log(f"wrote {plot_profile(rows, args.plot, title, args.budget_gb)}")


def encrypted_logits(plan, raw_images, args):
    """Client keygen -> encrypt -> server infer of the whole batch (per-phase keys, memory guard) -> decrypt."""
    import numpy as np

    from resnet_fhe.errors import ServerError
    from resnet_fhe.runtime import Client, KeyStoreError

    store = args.store or Path(tempfile.mkdtemp(prefix="resnet-fhe-store-"))
    keygen_seconds = keygen_peak = None
    if reusable(store, plan):
        log(f"reusing the key store in {store} (made for this very plan)")
    else:
        # The client's keygen runs in its own process, as it would on the user's machine: its peak memory
        # is then not charged to the server, and the server process starts from a clean heap.
        store.mkdir(parents=True, exist_ok=True)
        for stale in [*store.glob("query*"), *store.glob("answer*"), *store.glob("checkpoint-*")]:
            shutil.rmtree(stale)  # made under keys that the new keygen replaces
        plan.save(store / "plan-for-keygen.json")
        command = [sys.executable, "-m", "resnet_fhe.cli", "keygen", "--plan", str(store / "plan-for-keygen.json"),
                   "--store", str(store), "--json", str(store / "keygen.json")]
        started = time.perf_counter()
        done = subprocess.run(command + (["--insecure"] if args.insecure else []), check=False)
        if done.returncode != 0:
            raise KeyStoreError(f"keygen failed (exit {done.returncode}); see its messages above")
        keygen_seconds = time.perf_counter() - started
        keygen_peak = json.loads((store / "keygen.json").read_text()).get("peak_rss_gb")
    client = Client(store / "server", store / "client")
    folders = [(store / f"query{index}", store / f"answer{index}") for index in range(len(raw_images))]
    for image, (query, _) in zip(raw_images, folders, strict=True):
        if query.is_dir():  # a rerun on the same store reuses its queries, so a checkpoint can resume
            log(f"reusing the encrypted image in {query}")
        else:
            client.encrypt(image, query)
    # The server runs in its own process too, from the key store's server part alone: its RSS is then the
    # server's, not this process's (which also holds the compiler, the plaintext model and the client).
    profile = store / "infer.json"
    command = [sys.executable, "-m", "resnet_fhe.cli", "infer", "--server", str(store / "server"),
               "--input", *(str(q) for q, _ in folders), "--output", *(str(a) for _, a in folders),
               "--budget-gb", str(args.budget_gb), "--json", str(profile),
               "--checkpoint", str(store / f"checkpoint-{len(folders)}img")]
    profile.unlink(missing_ok=True)
    if subprocess.run(command, check=False).returncode != 0:
        raise ServerError("the server stopped (its message is above); no logits to decrypt")
    served = json.loads(profile.read_text())
    logits = [client.decrypt(answer) for _, answer in folders]
    seconds = served["seconds"]
    log(f"{len(folders)} image(s) in {seconds:.1f} s ({seconds / len(folders):.1f} s per image)")
    size = sum(p.stat().st_size for p in (store / "server").rglob("*") if p.is_file())
    measured = {"keygen_seconds": keygen_seconds and round(keygen_seconds, 1), "keygen_peak_rss_gb": keygen_peak,
                "peak_rss_gb": served["peak_rss_gb"], "key_store_gb": size / 1e9, "store": str(store),
                "batch_seconds": seconds, "seconds_per_image": round(seconds / len(folders), 2),
                "resumed_from_op": served["resumed_from_op"],
                "key_load_seconds": served["key_load_seconds"],
                "profiles": [{"seconds": seconds, "images": len(folders), "layers": served["layers"]}]}
    return np.stack(logits), measured


def reusable(store: Path, plan) -> bool:
    """True when `store` already holds keys for this very plan (same ops, registers, constants, params)."""
    from resnet_fhe.plan.plan import executes_alike

    manifest = store / "server" / "manifest.json"
    if not manifest.is_file() or not (store / "client" / "secret_key.bin").is_file():
        return False
    stored = json.loads((store / "server" / "plan.json").read_text())
    return executes_alike(plan, stored)


if __name__ == "__main__":
    sys.exit(main())
