#!/usr/bin/env python3
"""resnet-fhe side by side with the published reference (Rovida & Leporati's LowMemoryFHEResNet20, C++ on
OpenFHE 1.0.4), on this machine, the same CIFAR-10 test images and the same thread count.

Machines here differ several-fold in CPU speed, so only ratios measured in one run mean anything. For
each image, in turn, the reference classifies it (`run-reference.sh`: its build and keys are cached
outside the repo, ~20 min the first time) and then resnet-fhe does (default-128 preset, compiled plan
and key store cached under ~/.cache/resnet-fhe), each single-image and alone on the machine. Writes one
JSON (`resnet_fhe` and `reference` objects, `ratios`, `cpu`) and prints a Markdown table for the README.

    .venv/bin/python bench/compare_reference.py --images 2 --start 0 --json bench/results/compare-reference.json

Keygen: both systems reuse their cached keys unless --fresh-keys is given; the JSON says when each
keygen figure was measured (reused keys keep the figures recorded when they were made).

`--packed-images N` then has resnet-fhe classify N test images from --start packed into queries (the
images per query its planner picks, 8 for ResNet20), as one batch, and reports the amortized seconds per
image beside the single-image figures, with its ratios to both (`packed` and `packed_ratios`).
`--reference-only` runs only the reference and writes its figures; a later run with `--skip-reference
JSON` (same images, threads and set, same machine and session) then runs only resnet-fhe against them,
so the two systems need not alternate.

`--packed-only` with `--skip-reference JSON` takes both systems' single-image figures from that earlier
JSON (same machine, same session) and runs only the packed batch: one lever measured against the same
single-image and reference figures (`--no-pairing`: the packed run without paired bootstraps).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SCRIPT = REPO.parent / "shared" / "reference" / "run-reference.sh"
FIGURES = ("seconds_per_image", "process_seconds", "keygen_seconds", "keygen_peak_rss_gb", "peak_rss_gb",
           "key_store_gb")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    from resnet_fhe.compiler.compile import SHALLOW_TRANSITIONS_HELP

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2, help="test images (each classified alone by both)")
    parser.add_argument("--start", type=int, default=0, help="index of the first CIFAR-10 test image")
    parser.add_argument("--data-dir", type=Path, default=None, help="CIFAR-10 python batches (test_batch inside)")
    parser.add_argument("--set", type=int, choices=[1, 2, 3, 4], default=4, help="the reference's parameter set")
    parser.add_argument("--threads", type=int, default=2, help="OpenMP threads for both systems")
    parser.add_argument("--preset", default="default-128", help="resnet-fhe's preset")
    parser.add_argument("--backend", choices=["openfhe", "native"], default="openfhe",
                        help="resnet-fhe's OpenFHE library: the PyPI wheel or the native build (`make native`)")
    parser.add_argument("--relu-form", default=None, help="resnet-fhe's ReLU form (default: the compiler's)")
    parser.add_argument("--reference-script", type=Path,
                        default=Path(os.environ.get("RESNET_FHE_REFERENCE_SCRIPT", DEFAULT_SCRIPT)),
                        help="run-reference.sh (default ../shared/reference/run-reference.sh)")
    parser.add_argument("--fresh-keys", action="store_true",
                        help="generate both systems' keys anew so that keygen is measured in this run")
    parser.add_argument("--skip-reference", type=Path, default=None, metavar="JSON",
                        help="take the reference's figures from an earlier JSON of this script (same machine)")
    parser.add_argument("--reference-only", action="store_true",
                        help="run only the reference and write its figures (for a later --skip-reference)")
    parser.add_argument("--packed-images", type=int, default=0, metavar="N",
                        help="also classify N images packed into queries, as one batch (amortized seconds)")
    parser.add_argument("--packed-only", action="store_true",
                        help="take resnet-fhe's single-image figures from the --skip-reference JSON too and run "
                             "only the packed batch")
    parser.add_argument("--no-pairing", dest="pair_bootstraps", action="store_false",
                        help="resnet-fhe bootstraps every ciphertext alone (compiler/pairing.py)")
    parser.add_argument("--shallow-transitions", action="store_true",
                        help=SHALLOW_TRANSITIONS_HELP)
    parser.add_argument("--budget-gb", type=float, default=15.0,
                        help="memory budget the packing is chosen under (default 15 GB)")
    parser.add_argument("--json", type=Path, default=Path("results/compare-reference.json"))
    args = parser.parse_args(argv)
    if args.images < 1 or args.start < 0 or args.packed_images < 0:
        parser.error("--images must be at least 1, --start and --packed-images at least 0")
    if args.reference_only and (args.skip_reference is not None or args.packed_images or args.fresh_keys):
        parser.error("--reference-only runs the reference alone on its cached keys: no --skip-reference, "
                     "--packed-images, --fresh-keys")
    if args.skip_reference is None and not args.reference_script.is_file():
        parser.error(f"{args.reference_script} not found: pass --reference-script")
    if args.packed_only and (args.skip_reference is None or not args.packed_images):
        parser.error("--packed-only needs --skip-reference JSON (the single-image figures) and --packed-images N")
    return args


def reference_dir() -> Path:
    return Path(os.environ.get("RESNET_FHE_REFERENCE_DIR", Path.home() / ".cache" / "resnet-fhe-reference"))


def run_reference(args: argparse.Namespace, batch_file: Path, index: int, workdir: Path) -> dict:
    png = workdir / f"test{index}.png"
    subprocess.run([sys.executable, str(args.reference_script.parent / "cifar_png.py"), str(batch_file), str(index),
                    str(png)], check=True, capture_output=True)
    out = workdir / f"reference{index}.json"
    log(f"reference (set {args.set}) on test image {index} ...")
    done = subprocess.run(["bash", str(args.reference_script), "--set", str(args.set), "--png", str(png),
                           "--threads", str(args.threads), "--json", str(out)], check=False)
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"run-reference.sh failed (exit {done.returncode}); its messages are above")
    figures = json.loads(out.read_text())
    if figures.get("circuit_seconds") is None or figures.get("predicted_class") is None:
        raise RuntimeError(f"the reference did not finish image {index}: see {reference_dir()}/run{args.set}.log")
    keygen_time = reference_dir() / f"keygen{args.set}.time"
    figures["keygen_measured_at"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(keygen_time.stat().st_mtime))
    log(f"  reference: class {figures['predicted_class']}, circuit {figures['circuit_seconds']:.1f} s, "
        f"process {figures['process_seconds']:.1f} s, peak {figures['peak_rss_gb']:.2f} GB")
    return figures


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import dataclasses

    import numpy as np

    from resnet_fhe.compiler import CompileOptions
    from resnet_fhe.compiler.calibrate import DEFAULT_CALIBRATION_IMAGES
    from resnet_fhe.compiler.plan_cache import compile_model_cached
    from resnet_fhe.data import load_cifar10
    from resnet_fhe.errors import ResnetFheError
    from resnet_fhe.ir import run_graph
    from resnet_fhe.models import load_model
    from resnet_fhe.profiling.machine import cpu_model
    from resnet_fhe.runtime.local import LocalDeployment

    try:
        data = load_cifar10("test", args.data_dir)
        if args.start + args.images > len(data):
            raise ResnetFheError(f"--start {args.start} --images {args.images} goes past {len(data)} test images")
        batch_file = Path(data.source.split(", ")[0])
        if args.start + args.packed_images > len(data):
            raise ResnetFheError(f"--start {args.start} --packed-images {args.packed_images} goes past {len(data)} "
                                 "test images")
        packed_data = data.take(args.packed_images, args.start) if args.packed_images else None
        data = data.take(args.images, args.start)
        if args.reference_only:
            return reference_only(args, data, batch_file)
        earlier = None
        if args.skip_reference is not None and not args.packed_only:  # checked before hours of work
            earlier_run = json.loads(args.skip_reference.read_text())
            images = list(range(args.start, args.start + args.images))
            if not isinstance(earlier_run, dict) or not isinstance(earlier_run.get("reference"), dict):
                raise ResnetFheError(f"{args.skip_reference} is not a JSON of this script with reference figures")
            earlier = earlier_run["reference"]
            measured = (earlier_run.get("test_images"), earlier_run.get("threads"), earlier.get("set"))
            if measured != (images, args.threads, args.set):
                raise ResnetFheError(f"{args.skip_reference} has the reference's figures for test images "
                                     f"{measured[0]}, {measured[1]} threads, set {measured[2]}; this run asks for "
                                     f"{images}, {args.threads} threads, set {args.set}")
        options = CompileOptions(pair_bootstraps=args.pair_bootstraps, shallow_transitions=args.shallow_transitions)
        if args.relu_form is not None:
            options = dataclasses.replace(options, relu_form=args.relu_form)
        # Chosen (and compiled) first: a failure here must not come after hours of runs.
        packed_choice = choose_packing(args, len(packed_data), options) if packed_data is not None else None
        if args.packed_only:
            earlier_run = json.loads(args.skip_reference.read_text())
            single_keys = {"server_seconds", "peak_rss_gb", "preset"}
            if not {"resnet_fhe", "reference"} <= earlier_run.keys() \
                    or not single_keys <= earlier_run["resnet_fhe"].keys() \
                    or "seconds_per_image" not in earlier_run["reference"]:
                raise ResnetFheError(f"{args.skip_reference} is not a JSON of this script with single-image runs")
            if earlier_run["resnet_fhe"]["preset"] != args.preset or earlier_run.get("threads") != args.threads:
                raise ResnetFheError(f"{args.skip_reference} was measured with preset "
                                     f"{earlier_run['resnet_fhe']['preset']} and {earlier_run.get('threads')} "
                                     f"threads, not {args.preset} and {args.threads}")
            plan = packed_choice.plan
        else:
            plan = compile_model_cached("resnet20", args.preset, options, DEFAULT_CALIBRATION_IMAGES, args.data_dir)
            deployment = LocalDeployment(plan, threads=args.threads, library=args.backend)
        if plan.params.insecure:
            raise ResnetFheError(f"preset {plan.params.name} is insecure: the comparison is at 128 bits")
        if args.fresh_keys:
            import shutil

            stores = [] if args.packed_only else [deployment.store]
            if packed_choice is not None:
                stores.append(LocalDeployment(packed_choice.plan, threads=args.threads, library=args.backend).store)
            for store in stores:
                shutil.rmtree(store, ignore_errors=True)
            if not args.packed_only:
                (reference_dir() / "LowMemoryFHEResNet20" / f"keys_exp{args.set}" / "done").unlink(missing_ok=True)
        if not args.packed_only:
            keygen = deployment.prepare_keys()
    except (ResnetFheError, OSError, ValueError) as exc:
        log(f"error: {exc}")
        return 2
    if args.packed_only:
        result = {**earlier_run, "single_from": str(args.skip_reference),
                  "reference_from": f"{args.skip_reference} ({earlier_run.get('reference_from')})",
                  "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "date": time.strftime("%Y-%m-%d")}
        result["packed"], result["packed_ratios"] = packed_run(args, packed_data, packed_choice,
                                                               result["resnet_fhe"], result["reference"])
        write_result(args.json, result)
        print(markdown_table(result))
        return 0
    plain = run_graph(load_model("resnet20"), data.images / 255.0).argmax(1)
    reference_runs, ours = [], []
    with tempfile.TemporaryDirectory(prefix="compare-reference-") as workdir:
        for offset, image in enumerate(data.images):
            index = args.start + offset
            if earlier is None:
                reference_runs.append(run_reference(args, batch_file, index, Path(workdir)))
            log(f"resnet-fhe on test image {index} ...")
            run = deployment.classify(image[None], checkpoint=False)
            ours.append(run)
            log(f"  resnet-fhe: class {int(run.logits[0].argmax())}, server {run.seconds:.1f} s, process "
                f"{run.process_seconds:.1f} s, peak {run.peak_rss_gb:.2f} GB")
    # The reference loads its first stage's keys before its timer starts: resnet-fhe's figure on the same
    # terms leaves out the one load of its bootstrap keys (the first bootstrap layer's key loading).
    setup = [next((layer["key_load_seconds"] for layer in r.layers if layer["bootstraps"]), 0.0) for r in ours]
    resnet = {
        "seconds_per_image": float(np.mean([r.seconds - first for r, first in zip(ours, setup, strict=True)])),
        "seconds": [round(r.seconds - first, 2) for r, first in zip(ours, setup, strict=True)],
        "server_seconds": [round(r.seconds, 2) for r in ours],
        "bootstrap_key_load_seconds": [round(first, 2) for first in setup],
        "process_seconds": float(np.mean([r.process_seconds for r in ours])),
        "keygen_seconds": keygen["seconds"], "keygen_peak_rss_gb": keygen["peak_rss_gb"],
        "keygen_reused": keygen["reused"],
        "peak_rss_gb": max(r.peak_rss_gb for r in ours), "key_store_gb": ours[0].key_store_gb,
        "key_load_seconds": [r.key_load_seconds for r in ours],
        "classes": [int(r.logits[0].argmax()) for r in ours],
        "max_abs_logit_error": None, "preset": plan.params.name, "bootstraps": plan.bootstraps,
        "backend": args.backend,
        "relu_form": plan.calibration.get("relu_form"),
    }
    reference = earlier if earlier is not None else reference_figures(reference_runs, args.set)
    plain_logits = run_graph(load_model("resnet20"), data.images / 255.0)
    resnet["max_abs_logit_error"] = float(max(np.max(np.abs(r.logits[0] - p)) for r, p in zip(ours, plain_logits,
                                                                                            strict=True)))
    result = {
        "cpu": cpu_model(), "threads": args.threads, "test_images": list(range(args.start, args.start + args.images)),
        "labels": data.labels.tolist(), "plain_classes": plain.tolist(),
        "resnet_fhe": resnet, "reference": reference,
        "reference_from": str(args.skip_reference) if args.skip_reference else "measured in this run",
        "ratios": {k: round(resnet[k] / reference[k], 3) for k in FIGURES
                   if resnet.get(k) is not None and reference.get(k)},
        "server_seconds_ratio": round(float(np.mean(resnet["server_seconds"])) / reference["seconds_per_image"], 3),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
    }
    write_result(args.json, result)
    if packed_choice is not None:  # written again with the packed figures once they exist
        result["packed"], result["packed_ratios"] = packed_run(args, packed_data, packed_choice, resnet, reference)
        write_result(args.json, result, "with the packed run")
    print(markdown_table(result))
    return 0


def reference_figures(runs: list[dict], parameter_set: int) -> dict:
    """The reference's per-image runs (run-reference.sh's JSON lines) as this script's `reference` object."""
    import numpy as np

    return {
        "seconds_per_image": float(np.mean([r["circuit_seconds"] for r in runs])),
        "seconds": [r["circuit_seconds"] for r in runs],
        "process_seconds": float(np.mean([r["process_seconds"] for r in runs])),
        "keygen_seconds": runs[0]["keygen_seconds"],
        "keygen_peak_rss_gb": runs[0]["keygen_peak_rss_gb"],
        "keygen_measured_at": runs[0]["keygen_measured_at"],
        "peak_rss_gb": max(r["peak_rss_gb"] for r in runs),
        "key_store_gb": runs[0]["key_store_gb"],
        "classes": [r["predicted_class"] for r in runs], "set": parameter_set,
    }


def reference_only(args: argparse.Namespace, data, batch_file: Path) -> int:
    """--reference-only: the reference's figures alone, as a JSON that a later --skip-reference reads."""
    from resnet_fhe.ir import run_graph
    from resnet_fhe.models import load_model
    from resnet_fhe.profiling.machine import cpu_model

    with tempfile.TemporaryDirectory(prefix="compare-reference-") as workdir:
        runs = [run_reference(args, batch_file, args.start + offset, Path(workdir)) for offset in range(len(data))]
    result = {
        "cpu": cpu_model(), "threads": args.threads, "test_images": list(range(args.start, args.start + args.images)),
        "labels": data.labels.tolist(),
        "plain_classes": run_graph(load_model("resnet20"), data.images / 255.0).argmax(1).tolist(),
        "reference": reference_figures(runs, args.set), "reference_from": "measured in this run",
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "date": time.strftime("%Y-%m-%d"),
    }
    write_result(args.json, result)
    return 0


def write_result(path: Path, result: dict, what: str = "") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")
    log(f"wrote {path} {what}".rstrip())


def choose_packing(args: argparse.Namespace, images: int, options):
    """The planner's packing for `images` under --budget-gb (compiler/packing.py), its plan compiled."""
    import dataclasses

    from resnet_fhe.compiler.calibrate import DEFAULT_CALIBRATION_IMAGES
    from resnet_fhe.compiler.packing import plan_for_batch
    from resnet_fhe.compiler.plan_cache import compile_model_cached
    from resnet_fhe.models import load_model
    from resnet_fhe.plan.params import load_preset

    def compile_with(images_per_query: int):
        packed_options = dataclasses.replace(options, images_per_query=images_per_query)
        return compile_model_cached("resnet20", args.preset, packed_options, DEFAULT_CALIBRATION_IMAGES,
                                    args.data_dir)

    return plan_for_batch(load_model("resnet20"), load_preset(args.preset), images, args.budget_gb, compile_with)


def packed_run(args: argparse.Namespace, data, choice, single: dict, reference: dict) -> tuple[dict, dict]:
    """resnet-fhe on `data` packed into queries as `choice` says, as one batch: its figures and their
    ratios to the single-image run and to the reference's circuit seconds per image."""
    import numpy as np

    from resnet_fhe.ir import run_graph
    from resnet_fhe.models import load_model
    from resnet_fhe.profiling.machine import cpu_model
    from resnet_fhe.runtime.local import LocalDeployment

    log(f"resnet-fhe on test images {args.start}-{args.start + len(data) - 1}, packed: {choice.reason} ...")
    run = LocalDeployment(choice.plan, threads=args.threads, library=args.backend).classify(data.images,
                                                                                          checkpoint=False)
    plain = run_graph(load_model("resnet20"), data.images / 255.0)
    packed = {
        "images": len(data), "test_images": [args.start, args.start + len(data) - 1],
        "cpu": cpu_model(), "threads": args.threads,
        "images_per_query": choice.images_per_query, "queries": choice.queries,
        "bootstraps_per_query": choice.plan.bootstraps_per_query(), "paired": choice.plan.complex_slots,
        "server_seconds": round(run.seconds, 2), "seconds_per_image": round(run.seconds_per_image, 2),
        "process_seconds": round(run.process_seconds, 2), "peak_rss_gb": run.peak_rss_gb,
        "key_store_gb": round(run.key_store_gb, 3), "keygen": run.keygen, "key_load_seconds": run.key_load_seconds,
        "classes": [int(c) for c in run.logits.argmax(1)], "plain_classes": [int(c) for c in plain.argmax(1)],
        "agreement_with_plain": float(np.mean(run.logits.argmax(1) == plain.argmax(1))),
        "max_abs_logit_error": float(np.max(np.abs(run.logits - plain))),
    }
    log(f"  packed: {packed['seconds_per_image']:.1f} s per image amortized, peak {run.peak_rss_gb:.2f} GB")
    single_server = float(np.mean(single["server_seconds"]))
    ratios = {
        "amortized_vs_single_server_seconds": round(packed["seconds_per_image"] / single_server, 3),
        "amortized_vs_reference_circuit_seconds": round(packed["seconds_per_image"] / reference["seconds_per_image"],
                                                        3),
        "peak_rss_vs_single": round(packed["peak_rss_gb"] / single["peak_rss_gb"], 3),
    }
    return packed, ratios


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown_table(result: dict) -> str:
    import numpy as np

    ours, ref, ratios = result["resnet_fhe"], result["reference"], result["ratios"]
    names = {"seconds_per_image": "seconds per image, circuit (both: after the first stage's keys are loaded)",
             "process_seconds": "seconds per image, whole process", "keygen_seconds": "keygen seconds",
             "keygen_peak_rss_gb": "keygen peak RSS (GB)", "peak_rss_gb": "inference peak RSS (GB)",
             "key_store_gb": "key store (GB)"}
    lines = [f"CPU: {result['cpu']}, {result['threads']} threads, test images {result['test_images']}", "",
             f"| figure | resnet-fhe ({ours['preset']}) | reference (set {ref.get('set')}) | ratio |",
             "|---|---|---|---|"]
    for key, label in names.items():
        a, b = ours.get(key), ref.get(key)
        lines.append(f"| {label} | {_cell(a)} | {_cell(b)} | {ratios.get(key, '-')} |")
    server = float(np.mean(ours["server_seconds"]))
    lines.append(f"| seconds per image, resnet-fhe's server with its key loading vs the reference's circuit | "
                 f"{server:.2f} | {ref['seconds_per_image']:.2f} | {result['server_seconds_ratio']} |")
    lines.append(f"| classes | {ours['classes']} | {ref['classes']} | plain {result['plain_classes']} |")
    packed, ratios = result.get("packed"), result.get("packed_ratios")
    if packed:
        lines.append(f"| seconds per image, {packed['images']} images packed {packed['images_per_query']} per query "
                     f"(server, amortized) | {packed['seconds_per_image']:.2f} | {ref['seconds_per_image']:.2f} | "
                     f"{ratios['amortized_vs_reference_circuit_seconds']} (vs resnet-fhe single: "
                     f"{ratios['amortized_vs_single_server_seconds']}) |")
        lines.append(f"| inference peak RSS, packed (GB) | {packed['peak_rss_gb']:.2f} | "
                     f"{_cell(ref.get('peak_rss_gb'))} | vs resnet-fhe single: {ratios['peak_rss_vs_single']} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
