"""The `resnet-fhe` command line. Results go to stdout (and --json); progress and errors to stderr."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from resnet_fhe.backends.openfhe_backend import LIBRARIES, fhe_library
from resnet_fhe.compiler.calibrate import DEFAULT_CALIBRATION_IMAGES
from resnet_fhe.compiler.compile import SHALLOW_TRANSITIONS_HELP, CompileOptions
from resnet_fhe.compiler.packing import images_per_query_arg
from resnet_fhe.compiler.polynomial import RELU_FORMS
from resnet_fhe.data import DATASET_NAMES, image_shape
from resnet_fhe.errors import InputError, ResnetFheError

BACKEND_HELP = ("OpenFHE library: openfhe (the PyPI wheel) or native (OpenFHE built from source, `make native`; "
                "its key stores are its own)")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _write_json(path: Path | None, payload: dict[str, Any]) -> None:
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n")
    _log(f"wrote {path}")


def _dataset(args: argparse.Namespace):
    """The images a command reads: --sample, else --dataset (evaluate: default the model's own data set)."""
    from resnet_fhe.data import load_dataset, load_sample

    name = getattr(args, "dataset", None) or "cifar10"
    if args.sample and name != "cifar10":
        raise InputError("--sample is a CIFAR-10 test sample; it does not go with --dataset " + name)
    data = load_sample() if args.sample else load_dataset(name, args.split, args.data_dir)
    return data.take(args.images, args.start)


def macro_f1(predicted: np.ndarray, labels: np.ndarray, classes: int) -> float:
    """The mean over classes of 2 TP / (2 TP + FP + FN) (a class never predicted nor present counts 0)."""
    scores = []
    for label in range(classes):
        tp = int(np.sum((predicted == label) & (labels == label)))
        wrong = int(np.sum((predicted == label) != (labels == label)))
        scores.append(2 * tp / (2 * tp + wrong) if tp + wrong else 0.0)
    return float(np.mean(scores))


def plain_logits(graph, images: np.ndarray, chunk: int = 1000) -> np.ndarray:
    """Plaintext logits in float32 (as torch computes them), with progress on stderr for long runs."""
    from resnet_fhe.ir import run_graph

    parts = []
    for start in range(0, len(images), chunk):
        parts.append(run_graph(graph, images[start:start + chunk].astype(np.float32) / 255, dtype=np.float32))
        if len(images) > chunk:
            _log(f"  plain: {min(start + chunk, len(images))}/{len(images)} images")
    return np.concatenate(parts)


def compile_plan(args: argparse.Namespace, cached: bool = False, images_per_query: int | None = None):
    """A plan from --plan, or compiled from --model and --preset (calibrated on training images): now, or
    with `cached`, taken from the plan cache when nothing it depends on changed. Images per query:
    `images_per_query`, else --images-per-query, else 1."""
    from resnet_fhe.compiler import compile_model
    from resnet_fhe.compiler.packing import check_packing
    from resnet_fhe.compiler.plan_cache import compile_model_cached
    from resnet_fhe.models import load_model
    from resnet_fhe.plan.params import load_preset
    from resnet_fhe.plan.plan import Plan

    asked = images_per_query or getattr(args, "images_per_query", None)
    if getattr(args, "plan", None):
        plan = Plan.load(args.plan)
        if asked is not None and asked != plan.images_per_query:
            raise InputError(f"{args.plan} packs {plan.images_per_query} image(s) per query, not {asked}: "
                             "drop --images-per-query or compile a plan for it")
        return plan
    started = time.perf_counter()
    packing = asked or 1
    check_packing(load_model(args.model), load_preset(args.preset), packing)
    options = CompileOptions(margin=args.margin, relu_error=args.relu_error, relu_form=args.relu_form,
                             images_per_query=packing, pair_bootstraps=args.pair_bootstraps,
                             shallow_transitions=args.shallow_transitions)
    compile_fn = compile_model_cached if cached else compile_model
    plan = compile_fn(args.model, args.preset, options, args.calibration_images, args.data_dir)
    _log(f"compiled {args.model} for {args.preset} ({packing} image(s) per query) in "
         f"{time.perf_counter() - started:.1f} s: {len(plan.ops)} ops, {plan.bootstraps} bootstrap ops "
         f"({plan.bootstraps_per_query()} bootstraps per query)")
    return plan


def batch_plan(args: argparse.Namespace, images: int, result: dict[str, Any]):
    """The plan for an encrypted batch of `images`: --plan as given, else compiled at the images per query
    the planner picks (compiler/packing.py) or --images-per-query; says which and why."""
    from resnet_fhe.compiler.packing import plan_for_batch
    from resnet_fhe.models import load_model
    from resnet_fhe.plan.params import load_preset
    from resnet_fhe.profiling import check_estimate

    if getattr(args, "plan", None):
        plan = compile_plan(args)
        result["packing"] = {"images_per_query": plan.images_per_query, "reason": "the given plan's"}
        return plan
    choice = plan_for_batch(load_model(args.model), load_preset(args.preset), images, args.budget_gb,
                            lambda b: compile_plan(args, cached=True, images_per_query=b), args.images_per_query)
    _log(f"packing: {choice.reason}; estimated peak {choice.estimated_peak_gb:.1f} GB")
    check_estimate(choice.estimated_peak_gb, args.budget_gb,  # before keygen, which takes minutes
                   f"{args.model} at {choice.images_per_query} image(s) per query")
    result["packing"] = {"images_per_query": choice.images_per_query, "queries": choice.queries,
                         "estimated_peak_gb": round(choice.estimated_peak_gb, 2), "reason": choice.reason}
    return choice.plan


def cmd_compile(args: argparse.Namespace) -> dict[str, Any]:
    from resnet_fhe.plan.summary import render_summary

    plan = compile_plan(args)
    output = args.output or Path("circuits") / f"{args.model}-{args.preset}{plan.packing_suffix}.json"
    json_path, constants_path = plan.save(output)
    summary_path = json_path.with_suffix(".md")
    summary_path.write_text(render_summary(plan))
    print(f"plan {json_path} (constants {constants_path}, summary {summary_path}): "
          f"{plan.bootstraps} bootstrap ops ({plan.bootstraps_per_query()} bootstraps per query), {len(plan.ops)} ops")
    return {"plan": str(json_path), "constants": str(constants_path), "summary": str(summary_path),
            "bootstraps": plan.bootstraps, "bootstraps_per_query": plan.bootstraps_per_query(), "ops": len(plan.ops)}


def cmd_evaluate(args: argparse.Namespace) -> dict[str, Any]:
    from resnet_fhe.models import load_model, model_dataset

    if args.mode == "encrypted" and args.images is None:
        raise InputError("encrypted evaluation takes minutes per image at 128 bits: say how many with --images N")
    if args.mode == "encrypted":
        fhe_library(args.backend)  # built and importable, before compiling
    elif args.backend != "openfhe":
        raise InputError("--backend chooses the OpenFHE library of --mode encrypted")
    if args.bootstrap_error_bits is not None and (args.mode != "simulate" or not args.noise
                                                  or not 0 < args.bootstrap_error_bits < 60):
        raise InputError("--bootstrap-error-bits takes a number of bits between 0 and 60 and goes with "
                         "--mode simulate --noise")

    graph = load_model(args.model)
    args.dataset = args.dataset or model_dataset(args.model)
    expected = graph.input.shape
    if image_shape(args.dataset) != (expected.channels, expected.height, expected.width):  # before reading it
        raise InputError(f"{args.model} takes {expected} images; {args.dataset}'s are "
                         f"{'x'.join(map(str, image_shape(args.dataset)))}")
    data = _dataset(args)
    _log(f"evaluating {graph.name} ({args.mode}) on {len(data)} {data.split} images from {data.source}")
    started = time.perf_counter()
    plain = plain_logits(graph, data.images)
    result: dict[str, Any] = {
        "model": args.model, "network": graph.name, "mode": args.mode, "split": data.split,
        "images": len(data), "first_image": args.start, "data_source": data.source,
    }
    logits = plain
    if args.mode == "simulate":
        logits = simulate_logits(compile_plan(args, cached=True), data.images, args.noise, result,
                                 bootstrap_error_bits=args.bootstrap_error_bits, seed=args.seed)
    elif args.mode == "encrypted":
        logits = encrypted_logits(batch_plan(args, len(data), result), data.images, args, result)
    correct = int((logits.argmax(axis=1) == data.labels).sum())
    result.update(dataset=args.dataset, correct=correct, top1=correct / len(data),
                  macro_f1=macro_f1(logits.argmax(axis=1), data.labels, logits.shape[1]),
                  seconds=round(time.perf_counter() - started, 2))
    line = f"{graph.name} {args.mode}: top-1 {100 * result['top1']:.2f}% ({correct}/{len(data)} {data.split} images)"
    if args.mode != "plain":
        plain_correct = int((plain.argmax(axis=1) == data.labels).sum())
        agreement = float(np.mean(logits.argmax(axis=1) == plain.argmax(axis=1)))
        result.update(plain_top1=plain_correct / len(data), agreement_with_plain=agreement,
                      max_abs_logit_error=float(np.max(np.abs(logits - plain))))
        line += (f"; plain {100 * result['plain_top1']:.2f}%, agreement {100 * agreement:.2f}%, "
                 f"max |logit - plain| {result['max_abs_logit_error']:.4f}, bootstraps {result['bootstraps']}")
    print(line)
    return result


def simulate_logits(plan, images: np.ndarray, noise: bool, result: dict[str, Any], chunk: int = 256,
                    bootstrap_error_bits: float | None = None, seed: int = 0) -> np.ndarray:
    """The plan's logits in the simulator; with `noise`, CKKS error as the preset measured it, or a bootstrap
    error of std 2^-bootstrap_error_bits: what a setting not yet built would do to accuracy."""
    import dataclasses

    from resnet_fhe.backends.simulator import NoiseModel, SimulatorBackend

    model = NoiseModel.from_params(plan) if noise else None
    if model is not None and bootstrap_error_bits is not None:
        model = dataclasses.replace(model, bootstrap_sigma=2.0 ** -bootstrap_error_bits,
                                    paired_bootstrap_sigma=2.0 ** -bootstrap_error_bits)
    backend = SimulatorBackend(plan, noise=model, dtype=np.float32, tabulate=True, seed=seed)
    parts = []
    for start in range(0, len(images), chunk):
        parts.append(backend.run(images[start:start + chunk] / 255.0))
        _log(f"  simulate: {min(start + chunk, len(images))}/{len(images)} images")
    out_of_range = backend.diagnostics.out_of_range()
    if out_of_range:
        _log(f"warning: inputs left [-1, 1] at {len(out_of_range)} polynomials/bootstraps: "
             + ", ".join(f"{k} ({v:.2f})" for k, v in list(out_of_range.items())[:4]))
    result.update(preset=plan.params.name, bootstraps=plan.bootstraps, noise=noise, seed=seed,
                  noise_model=None if model is None else {"bootstrap_sigma": model.bootstrap_sigma,
                                                          "paired_bootstrap_sigma": model.sigma("paired bootstrap"),
                                                          "rescale_sigma": model.rescale_sigma},
                  polynomial_inputs_out_of_range=out_of_range,
                  max_polynomial_input=max(backend.diagnostics.max_input.values(), default=0.0))
    return np.concatenate(parts)


def encrypted_logits(plan, images: np.ndarray, args: argparse.Namespace, result: dict[str, Any]) -> np.ndarray:
    """Real CKKS through a local deployment: cached key store, keygen and server in their own processes."""
    from resnet_fhe.runtime.local import LocalDeployment

    _refuse_insecure(plan.params, args.insecure)
    run = LocalDeployment(plan, args.store, args.threads, args.budget_gb, args.insecure,
                          args.backend).classify(images)
    result.update(preset=plan.params.name, bootstraps=plan.bootstraps, security=plan.params.security,
                  seconds_per_image=round(run.seconds_per_image, 2), server_seconds=run.seconds,
                  server_process_seconds=round(run.process_seconds, 2), peak_rss_gb=run.peak_rss_gb,
                  key_load_seconds=run.key_load_seconds, key_store_gb=round(run.key_store_gb, 3),
                  keygen=run.keygen, store=str(run.store), layers=run.layers)
    return run.logits


def _refuse_insecure(params, allowed: bool) -> None:
    if params.insecure and not allowed:
        raise ResnetFheError(f"preset {params.name} is INSECURE ({params.security}); pass --insecure to use it "
                             "anyway (tests and experiments only)")


def cmd_keygen(args: argparse.Namespace) -> dict[str, Any]:
    from resnet_fhe.profiling import RssSampler
    from resnet_fhe.runtime import Client

    fhe_library(args.backend)  # built and importable, before compiling
    plan = compile_plan(args)
    _refuse_insecure(plan.params, args.insecure)
    started = time.perf_counter()
    with RssSampler() as sampler:
        Client.keygen(plan, args.store / "server", args.store / "client", args.backend)
    size = sum(p.stat().st_size for p in (args.store / "server").rglob("*") if p.is_file())
    result = {"store": str(args.store), "seconds": round(time.perf_counter() - started, 1),
              "server_bytes": size, "preset": plan.params.name, "peak_rss_gb": sampler.peak / 1e9}
    print(f"key store {args.store}: server part {size / 1e9:.2f} GB (give only {args.store / 'server'} to the "
          f"server), secret key in {args.store / 'client'}")
    return result


def cmd_encrypt(args: argparse.Namespace) -> dict[str, Any]:
    from resnet_fhe.runtime import Client

    data = _dataset(args)
    masks = None
    if args.selective_chunks:
        from resnet_fhe.imagecrypt import chunk_pixel_mask

        if data.images.shape[1] != 1:
            raise InputError(f"--selective-chunks selects chunks of grey images (Jia et al.); {data.source} has "
                             f"{data.images.shape[1]} channels")
        masks = np.stack([chunk_pixel_mask(image[0]) for image in data.images])
    client = Client(args.store / "server", args.store / "client")
    client.encrypt(data.images, args.output, encrypted_pixels=masks)
    labels = [int(label) for label in data.labels]
    clear = "" if masks is None else f", {1 - masks.mean():.0%} of the pixels in the clear"
    print(f"encrypted {data.source} image(s) {args.start}-{args.start + len(labels) - 1} (labels {labels}) "
          f"into {args.output}{clear}")
    result = {"ciphertext": str(args.output), "labels": labels}
    return result if masks is None else {**result, "clear_pixel_fraction": float(1 - masks.mean())}


def cmd_infer(args: argparse.Namespace) -> dict[str, Any]:
    from resnet_fhe.plan.summary import layer_rows
    from resnet_fhe.profiling import MemoryGuard, RssSampler, check_estimate
    from resnet_fhe.runtime import Server
    from resnet_fhe.runtime.ciphertexts import query_images

    if len(args.input) != len(args.output):
        raise InputError(f"infer got {len(args.input)} --input folders but {len(args.output)} --output folders; "
                         "give one output folder per input")
    server = Server(args.server)
    queries, images = len(args.input), sum(query_images(folder) for folder in args.input)
    check_estimate(max(r["memory_gb"] for r in layer_rows(server.plan, queries=queries)), args.budget_gb,
                   f"{server.plan.model} on {queries} quer{'y' if queries == 1 else 'ies'} of up to "
                   f"{server.plan.images_per_query} image(s)")
    started = time.perf_counter()
    with RssSampler() as sampler:
        guard = MemoryGuard(sampler, args.budget_gb, progress=True)
        resumed = server.infer_batch(list(zip(args.input, args.output, strict=True)), guard=guard,
                                     checkpoint=args.checkpoint)
    seconds = resumed.seconds + time.perf_counter() - started
    layers = [p.to_dict() for p in guard.profiles]
    peak_gb = max([sampler.peak / 1e9, *(p["rss_peak_gb"] for p in layers)])
    print(f"evaluated {queries} quer{'y' if queries == 1 else 'ies'} ({images} image(s)) into "
          f"{', '.join(map(str, args.output))} in {seconds:.1f} s, "
          f"peak RSS {peak_gb:.2f} GB" + (f" (resumed at op {resumed.op} of {len(server.plan.ops)}; time and "
                                          "peak include the earlier runs)" if resumed.op else ""))
    return {"seconds": round(seconds, 2), "queries": queries, "images": images, "resumed_from_op": resumed.op,
            "peak_rss_gb": peak_gb,
            "key_load_seconds": round(sum(p["key_load_seconds"] for p in layers), 2), "layers": layers}


def cmd_imagecrypt(args: argparse.Namespace) -> dict[str, Any]:
    """Pixel-based encryption of a .npy batch of 8-bit images, each with its own key; the keys are not kept."""
    import secrets

    from resnet_fhe.imagecrypt import encrypt_batch

    if args.input.suffix != ".npy" or not args.input.is_file():
        raise InputError(f"--input must be an existing .npy file of uint8 images, not {args.input}")
    if args.output.resolve() == args.input.resolve():
        raise InputError("--output must differ from --input (the plain images would be overwritten)")
    try:
        images = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"{args.input} is not a readable .npy array: {exc}") from exc
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise InputError(f"{args.input} must hold uint8 images (N, C, H, W) or (N, H, W), "
                         f"not {images.dtype} {images.shape}")
    # Without --seed the keys come from the operating system and cannot be made again (the scheme needs none).
    seed = args.seed if args.seed is not None else secrets.randbits(128)
    encrypted = encrypt_batch(images, seed=seed, block=args.block)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.output, encrypted)
    print(f"{len(encrypted)} images encrypted into {args.output}", file=sys.stderr)
    return {"input": str(args.input), "output": str(args.output), "images": len(encrypted),
            "block": args.block, "reproducible_from_seed": args.seed is not None}


def _floats(text: str) -> tuple[float, ...]:
    """argparse type of --mean/--std: comma-separated numbers."""
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 0.5,0.5,0.5, got {text!r}") from None


def _shape(text: str) -> tuple[int, int, int]:
    """argparse type of --input-shape: C,H,W."""
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise argparse.ArgumentTypeError(f"expected three positive integers C,H,W like 1,28,28, got {text!r}")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def cmd_import(args: argparse.Namespace) -> dict[str, Any]:
    """A torch model traced into the project's weights format (needs the torch extra)."""
    if not args.model.is_file():
        raise InputError(f"{args.model} does not exist")
    if (args.mean is None) != (args.std is None) or (args.mean and len(args.mean) not in (1, args.input_shape[0])):
        raise InputError(f"--mean and --std go together, with 1 or {args.input_shape[0]} values each")
    if args.std and min(args.std) <= 0:
        raise InputError("--std values must be positive")
    try:
        import torch
    except ImportError:
        raise InputError("importing a torch model needs torch: pip install 'resnet-fhe[torch]' (or make torch)") \
            from None
    from resnet_fhe.models.torch_import import weights_from_module

    # A whole pickled module: unpickling runs code from the file, so only import files you trust.
    module = torch.load(args.model, map_location="cpu", weights_only=False)
    if not isinstance(module, torch.nn.Module):
        raise InputError(f"{args.model} holds a {type(module).__name__}, not a torch.nn.Module: save the model "
                         "itself (torch.save(model, path)), not its state dict")
    provenance = {"source": {"kind": "torch module", "file": args.model.name, "class": type(module).__name__}}
    if args.dataset:
        provenance["dataset"] = args.dataset
    weights = weights_from_module(module, args.input_shape, provenance, args.output.stem, args.mean, args.std)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    weights.save(args.output)
    nodes = weights.meta["nodes"]
    print(f"{args.model} -> {args.output}: {len(nodes)} layers ({', '.join(sorted({n['type'] for n in nodes}))})")
    return {"model": str(args.model), "output": str(args.output), "layers": len(nodes)}


def cmd_decrypt(args: argparse.Namespace) -> dict[str, Any]:
    from resnet_fhe.runtime import Client

    logits = Client(args.store / "server", args.store / "client").decrypt(args.input)
    classes = [int(c) for c in np.argmax(logits, axis=1)]
    for index, (predicted, row) in enumerate(zip(classes, logits, strict=True)):
        print(f"image {index}: class {predicted}; logits {np.array2string(row, precision=4)}")
    return {"classes": classes, "logits": logits.tolist()}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="resnet-fhe", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def plan_options(command: argparse.ArgumentParser) -> None:
        command.add_argument("--model", default="resnet20", help="name in weights/ or a weights .npz path")
        command.add_argument("--preset", default="default-128", help="CKKS preset in circuits/presets/")
        command.add_argument("--calibration-images", type=int, default=DEFAULT_CALIBRATION_IMAGES,
                             help="training images used to calibrate activation ranges")
        command.add_argument("--margin", type=float, default=CompileOptions.margin,
                             help="calibrated ranges are scaled to [-1/margin, 1/margin]")
        command.add_argument("--relu-error", type=float, default=CompileOptions.relu_error,
                             help="target relative RMS error of each ReLU polynomial")
        command.add_argument("--relu-form", choices=RELU_FORMS, default=CompileOptions.relu_form,
                             help="ReLU stand-in: any Chebyshev series, or a*x + even(x) (same depth, "
                                  "about half the encrypted evaluation time)")
        command.add_argument("--no-pairing", dest="pair_bootstraps", action="store_false",
                             help="bootstrap every ciphertext alone, not two as one (compiler/pairing.py)")
        command.add_argument("--shallow-transitions", action="store_true",
                             help=SHALLOW_TRANSITIONS_HELP)
        command.add_argument("--data-dir", type=Path, default=None,
                             help="CIFAR-10 python batches (default: $RESNET_FHE_CIFAR10_DIR or ../shared/data)")
        command.add_argument("--images-per-query", type=images_per_query_arg, default=None,
                             help="images packed into the same ciphertexts, a power of two (default 1; "
                                  "evaluate --mode encrypted picks it from --images and --budget-gb)")

    compile_cmd = commands.add_parser("compile", help="compile a model into a CKKS plan")
    plan_options(compile_cmd)
    compile_cmd.add_argument("-o", "--output", type=Path, default=None,
                             help="plan JSON path (default circuits/<model>-<preset>.json, -bB before .json for "
                                  "B > 1 images per query; .npz and .md beside)")
    compile_cmd.add_argument("--json", type=Path, default=None, help="also write the result here")
    compile_cmd.set_defaults(handler=cmd_compile)

    keygen = commands.add_parser("keygen", help="client: make the context and keys, write a key store")
    plan_options(keygen)
    keygen.add_argument("--plan", type=Path, default=None, help="a saved plan JSON (instead of compiling)")
    keygen.add_argument("--store", type=Path, required=True, help="key store folder (server/ and client/)")
    keygen.add_argument("--insecure", action="store_true", help="allow an insecure test preset")
    keygen.add_argument("--backend", choices=LIBRARIES, default="openfhe", help=BACKEND_HELP)
    keygen.add_argument("--json", type=Path, default=None)
    keygen.set_defaults(handler=cmd_keygen)

    encrypt = commands.add_parser("encrypt", help="client: encrypt test image(s) into one query")
    encrypt.add_argument("--store", type=Path, required=True)
    encrypt.add_argument("--dataset", choices=DATASET_NAMES, default="cifar10")
    encrypt.add_argument("--selective-chunks", action="store_true",
                         help="encrypt only the chunks Jia et al.'s Sobel threshold selects (grey images, e.g. "
                              "neu-cls); the other pixels go in the clear beside the ciphertexts")
    encrypt.add_argument("--start", type=int, default=0, help="index of the first image")
    encrypt.add_argument("--images", type=int, default=1,
                         help="consecutive images in the query (up to the plan's images per query)")
    encrypt.add_argument("--split", choices=["test", "train"], default="test")
    encrypt.add_argument("--data-dir", type=Path, default=None)
    encrypt.add_argument("--sample", action="store_true", help="take it from the shipped test sample")
    encrypt.add_argument("--output", type=Path, required=True, help="ciphertext folder to write")
    encrypt.add_argument("--json", type=Path, default=None)
    encrypt.set_defaults(handler=cmd_encrypt)

    infer = commands.add_parser("infer", help="server: evaluate ciphertexts with the key store's server part")
    infer.add_argument("--server", type=Path, required=True, help="the key store's server/ folder")
    infer.add_argument("--input", type=Path, nargs="+", required=True,
                       help="ciphertext folder(s); several are evaluated as one batch (keys load once)")
    infer.add_argument("--output", type=Path, nargs="+", required=True, help="one answer folder per input")
    infer.add_argument("--budget-gb", type=float, default=15.0, help="memory budget (default 15 GB)")
    infer.add_argument("--checkpoint", type=Path, default=None,
                       help="folder for checkpoints (every 10 min); a rerun with the same inputs resumes there")
    infer.add_argument("--json", type=Path, default=None, help="per-layer profile")
    infer.set_defaults(handler=cmd_infer)

    decrypt = commands.add_parser("decrypt", help="client: decrypt the logits")
    decrypt.add_argument("--store", type=Path, required=True)
    decrypt.add_argument("--input", type=Path, required=True)
    decrypt.add_argument("--json", type=Path, default=None)
    decrypt.set_defaults(handler=cmd_decrypt)

    imagecrypt = commands.add_parser("imagecrypt", help="pixel-based image encryption (no CKKS): negative-positive "
                                     "and colour shuffling with an independent key per image")
    imagecrypt.add_argument("--input", type=Path, required=True, help=".npy of uint8 images, (N, C, H, W) or (N, H, W)")
    imagecrypt.add_argument("--output", type=Path, required=True, help=".npy to write the encrypted images to")
    imagecrypt.add_argument("--seed", type=int, default=None,
                            help="derive the keys from this seed (experiments); default: fresh keys from the OS")
    imagecrypt.add_argument("--block", type=int, default=1, help="key block size (1: pixel-based; B: one key per BxB)")
    imagecrypt.add_argument("--json", type=Path, default=None)
    imagecrypt.set_defaults(handler=cmd_imagecrypt)

    importer = commands.add_parser("import", help="trace a torch model (torch.save(model, path)) into a weights file")
    importer.add_argument("model", type=Path, help="a pickled torch.nn.Module (.pt); only import files you trust")
    importer.add_argument("--input-shape", type=_shape, required=True, help="C,H,W of one input image, e.g. 1,28,28")
    importer.add_argument("--output", type=Path, required=True, help="weights .npz to write")
    importer.add_argument("--mean", type=_floats, default=None, help="input normalisation the model was trained with")
    importer.add_argument("--std", type=_floats, default=None)
    importer.add_argument("--dataset", choices=DATASET_NAMES, default=None,
                          help="the data set it was trained on (calibration reads its training images)")
    importer.add_argument("--json", type=Path, default=None)
    importer.set_defaults(handler=cmd_import)

    evaluate = commands.add_parser("evaluate", help="accuracy of a model on its data set (CIFAR-10, MNIST, ...)")
    evaluate.add_argument("--dataset", choices=DATASET_NAMES, default=None,
                          help="test images to classify (default: the data set the model was trained on)")
    plan_options(evaluate)
    evaluate.add_argument("--mode", choices=["plain", "simulate", "encrypted"], default="plain",
                          help="plain: numpy reference; simulate: the compiled plan on slot vectors; encrypted: "
                               "real CKKS (keygen once per plan into a cached key store, server in its own process)")
    evaluate.add_argument("--plan", type=Path, default=None, help="a saved plan JSON (instead of compiling)")
    evaluate.add_argument("--noise", action="store_true", help="simulate CKKS error (bootstrap precision)")
    evaluate.add_argument("--bootstrap-error-bits", type=float, default=None, metavar="BITS",
                          help="with --noise: a bootstrap error of std 2^-BITS instead of the preset's measured "
                               "one, for single and paired bootstraps alike (what-if for settings not yet measured)")
    evaluate.add_argument("--seed", type=int, default=0,
                          help="with --noise: the noise draw (accuracy moves by a few images in 10,000 between draws)")
    evaluate.add_argument("--images", type=int, default=None, help="number of images (default: all)")
    evaluate.add_argument("--start", type=int, default=0, help="index of the first image")
    evaluate.add_argument("--split", choices=["test", "train"], default="test")
    evaluate.add_argument("--sample", action="store_true", help="use the test sample shipped in the package")
    evaluate.add_argument("--store", type=Path, default=None,
                          help="encrypted: key store folder (default: one per plan under ~/.cache/resnet-fhe)")
    evaluate.add_argument("--budget-gb", type=float, default=15.0, help="encrypted: the server's memory budget")
    evaluate.add_argument("--threads", type=int, default=2, help="encrypted: OpenMP threads of keygen and server")
    evaluate.add_argument("--insecure", action="store_true", help="encrypted: allow an insecure test preset")
    evaluate.add_argument("--backend", choices=LIBRARIES, default="openfhe", help="encrypted: " + BACKEND_HELP)
    evaluate.add_argument("--json", type=Path, default=None, help="also write the result here")
    evaluate.set_defaults(handler=cmd_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    from resnet_fhe.runtime.local import follow_parent

    follow_parent()
    args = build_parser().parse_args(argv)
    try:
        result = args.handler(args)
        _write_json(args.json, result)
    except ResnetFheError as exc:
        _log(f"error: {exc}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
