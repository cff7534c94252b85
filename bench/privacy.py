#!/usr/bin/env python3
"""Issue 14's figures: the seeds' other ways of protecting an image, measured on the shipped models.

    .venv/bin/python bench/privacy.py --json bench/results/privacy.json

Per data set (JSON keys `cifar10_resnet20`, `mnist`, `fashion_mnist`, `neu_cls`):
- pixel-based encryption (resnet_fhe.imagecrypt; Kiya et al. 2019, Deng et al. 2023): the plain-trained
  model on plain test images (`accuracy_plain_model`), and the model trained on pixel-encrypted images
  (weights/pixel-*.npz, made by bench/train_cifar_pixel.py and bench/train_mnist.py --pixel-encrypt) on
  test images encrypted with keys no training used (`accuracy_encrypted_images`) and on plain ones
  (`accuracy_plain_images`), all in the clear (numpy); the ciphertext-only attack
  (imagecrypt.attacks.smoothness_attack) on the first `--attack-images`; and for the grey sets Deng's
  combination: pixel-encrypted test images classified by the pixel-trained CNN under real 128-bit CKKS
  (medium-128, client and server through resnet_fhe.runtime), so the server sees neither image nor result.
- NEU-CLS (Jia et al. 2023): the chunk CNN (weights/chunk-cnn-neu.npz, bench/train_neu.py) on the 360
  held-out images (`accuracy`), and the paper's square-activated shape beside it
  (`accuracy_paper_shape`, weights/chunk-cnn-neu-paper.npz, bench/train_neu.py --shape paper); the
  fraction of chunks the paper's Sobel threshold encrypts; CKKS time and bytes of encrypting only those
  chunks, packed, against the whole image (`encrypt_seconds_*`, `bytes_*`, as
  bench/selective_encryption.py measures them); the selective queries run end to end under 128-bit CKKS
  (`--neu-ckks-images`, preset default-128: the chunk CNN's ReLUs need bootstrapping; selected chunks
  encrypted, the rest in the clear, added by the server before the first layer); and what the clear
  chunks reveal: the same CNN trained and tested on them alone (weights/chunk-cnn-neu-server-view.npz,
  bench/train_neu.py --server-view).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from resnet_fhe.data import load_dataset
from resnet_fhe.data.cifar10 import Dataset
from resnet_fhe.imagecrypt import chunk_pixel_mask, encrypt_batch, select_chunks
from resnet_fhe.imagecrypt.attacks import recovered_fraction, recovery_psnr, smoothness_attack
from resnet_fhe.ir import run_graph
from resnet_fhe.models import load_model

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "weights"
PIXEL_PRESET = "medium-128"  # the even input polynomial's 3 levels on top of small-128's 5
NEU_PRESET = "default-128"  # the chunk CNN's ReLU polynomials need bootstrapping
# Its ranges mapped to [-1/2, 1/2], not CompileOptions' [-1/1.4, 1/1.4]: simulated with the preset's noise
# (`resnet-fhe evaluate --model chunk-cnn-neu --preset default-128 --mode simulate --noise`), the default
# margin let a test image's ReLU input reach 1.03 and its polynomial diverge; margin 2 left none outside.
NEU_MARGIN = 2.0
TEST_KEY_SEED = 10**6  # keys for the test images: no training epoch used this seed
PIXEL_SETS = {"cifar10_resnet20": ("cifar10", "resnet20", "pixel-resnet20"),
              "mnist": ("mnist", "cryptondl-mnist", "pixel-cryptondl-mnist"),
              "fashion_mnist": ("fashion-mnist", "cryptondl-fashion-mnist", "pixel-cryptondl-fashion-mnist")}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def accuracy(model: str, images: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean(run_graph(load_model(model), images / 255.0).argmax(1) == labels))


def encrypted_run(model: str, preset: str, calibration: Dataset, images: np.ndarray,
                  masks: np.ndarray | None = None, margin: float | None = None) -> dict:
    """Real 128-bit CKKS at `preset` through the runtime, one image per query, a fresh key store: the
    logits, seconds per image on the server, and the query folder's bytes per image. With `masks`, each
    image's True pixels are encrypted and the rest sent in the clear (selective encryption)."""
    from resnet_fhe.compiler.calibrate import calibrate
    from resnet_fhe.compiler.compile import CompileOptions, compile_graph
    from resnet_fhe.plan.params import load_preset
    from resnet_fhe.runtime import Client, Server

    graph = load_model(model)
    options = CompileOptions() if margin is None else CompileOptions(margin=margin)
    plan = compile_graph(graph, calibrate(graph, calibration, images=len(calibration)), load_preset(preset),
                         options, model=model)
    logits, seconds, sent, encrypt_seconds = [], 0.0, 0, 0.0
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        client = Client.keygen(plan, base / "server", base / "client")
        server = Server(base / "server")
        for index, image in enumerate(images):
            query, answer = base / f"query{index}", base / f"answer{index}"
            started = time.perf_counter()
            client.encrypt(image, query, encrypted_pixels=None if masks is None else masks[index])
            encrypt_seconds += time.perf_counter() - started
            started = time.perf_counter()
            server.infer(query, answer)
            seconds += time.perf_counter() - started
            logits.append(client.decrypt(answer)[0])
            sent += sum(path.stat().st_size for path in query.iterdir())
    count = len(images)
    return {"logits": np.array(logits), "margin": options.margin, "server_seconds_per_image": seconds / count,
            "client_encrypt_seconds_per_image": encrypt_seconds / count, "query_bytes_per_image": sent / count}


def pixel_scheme(key: str, test_images: int, ckks_images: int, attack_images: int, data_dir) -> dict:
    dataset, plain_model, pixel_model = PIXEL_SETS[key]
    test = load_dataset(dataset, "test", data_dir if dataset == "cifar10" else None)
    images, labels = test.images[:test_images], test.labels[:test_images]
    encrypted = encrypt_batch(images, seed=TEST_KEY_SEED)
    _log(f"{key}: {len(labels)} test images, plain model {plain_model}, pixel-trained model {pixel_model}")
    result = {"test_images": len(labels), "plain_model": plain_model,
              "accuracy_plain_model": accuracy(plain_model, images, labels)}
    if (WEIGHTS / f"{pixel_model}.npz").is_file():
        result.update(pixel_model=pixel_model, accuracy_encrypted_images=accuracy(pixel_model, encrypted, labels),
                      accuracy_plain_images=accuracy(pixel_model, images, labels),
                      trained=load_model_provenance(pixel_model))
    else:
        result.update(pixel_model=None, accuracy_encrypted_images=None, accuracy_plain_images=None,
                      note=f"weights/{pixel_model}.npz is not shipped: not trained yet")
    attacked = encrypted[:attack_images]  # key i depends on the seed and i only (imagecrypt.image_keys)
    recovered = smoothness_attack(attacked)
    result["attack"] = {"kind": "ciphertext-only neighbour smoothness (imagecrypt.attacks.smoothness_attack)",
                        "images": len(attacked),
                        "psnr_encrypted_db": float(np.median(recovery_psnr(images[:attack_images], attacked))),
                        "psnr_recovered_db": float(np.median(recovery_psnr(images[:attack_images], recovered))),
                        "pixels_recovered_exactly": float(np.median(recovered_fraction(images[:attack_images],
                                                                                       recovered)))}
    if ckks_images and dataset != "cifar10" and result["pixel_model"]:
        train = load_dataset(dataset, "train")
        calibration = Dataset(encrypt_batch(train.images[:2048], seed=TEST_KEY_SEED + 1), train.labels[:2048],
                              "train", train.source)  # the ranges the model sees: those of encrypted images
        result["ckks_pixel_encrypted"] = ckks_figures(pixel_model, PIXEL_PRESET, calibration, encrypted[:ckks_images],
                                                      labels[:ckks_images])
    return result


def ckks_figures(model: str, preset: str, calibration: Dataset, images: np.ndarray, labels: np.ndarray,
                 masks: np.ndarray | None = None, margin: float | None = None) -> dict:
    """encrypted_run's figures with its accuracy and its agreement with the same model in the clear."""
    _log(f"  {model}: {len(images)} image(s) under 128-bit CKKS" + (" (selected chunks only)" if masks is not None
                                                                     else ""))
    run = encrypted_run(model, preset, calibration, images, masks, margin)
    logits, plain = run.pop("logits"), run_graph(load_model(model), images / 255.0)
    return {"preset": preset, "images": len(images), "accuracy": float(np.mean(logits.argmax(1) == labels)),
            "agreement_with_plain": float(np.mean(logits.argmax(1) == plain.argmax(1))),
            "max_logit_error": float(np.abs(logits - plain).max()), **run}


def neu_cls(ckks_images: int, selective_encryption) -> dict:
    test = load_dataset("neu-cls", "test")
    images, labels = test.images, test.labels
    masks = np.stack([chunk_pixel_mask(image[0]) for image in images])
    selected = np.stack([select_chunks(image[0]) for image in images])
    _log(f"neu_cls: {len(labels)} held-out images, chunk-cnn-neu")
    result = {"test_images": len(labels), "model": "chunk-cnn-neu",
              "accuracy": accuracy("chunk-cnn-neu", images, labels),
              "trained": load_model_provenance("chunk-cnn-neu"),
              "accuracy_paper_shape": accuracy("chunk-cnn-neu-paper", images, labels),
              "encrypted_chunk_fraction": float(selected.mean()),
              "images_with_no_chunk_encrypted": int((~selected.any(axis=(1, 2))).sum())}
    costs = selective_encryption.measure(images[:, 0])
    whole, chosen = costs["per_image"]["whole_image_packed"], costs["per_image"]["selected_chunks_packed"]
    result.update(encrypt_seconds_selective=chosen["seconds"], encrypt_seconds_whole=whole["seconds"],
                  bytes_selective=chosen["bytes"], bytes_whole=whole["bytes"], encodings=costs)
    clear_view = np.where(masks[:, None], 0, images).astype(np.uint8)
    result["leakage"] = {
        "attack": "the chunk CNN trained and tested on the clear chunks alone (what the server sees)",
        "model": "chunk-cnn-neu-server-view",
        "accuracy": accuracy("chunk-cnn-neu-server-view", clear_view, labels),
        "chance": 1 / 6, "clear_pixel_fraction": float(1 - masks.mean())}
    if ckks_images:
        calibration = load_dataset("neu-cls", "train")
        picks = np.linspace(0, len(labels) - 1, min(ckks_images, len(labels))).round().astype(int)  # every class
        result["ckks_selective"] = ckks_figures("chunk-cnn-neu", NEU_PRESET, calibration, images[picks],
                                                labels[picks], masks[picks], NEU_MARGIN)
        result["ckks_whole_image"] = ckks_figures("chunk-cnn-neu", NEU_PRESET, calibration, images[picks],
                                                  labels[picks], margin=NEU_MARGIN)
    return result


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        return next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.machine()


def load_model_provenance(model: str) -> dict:
    from resnet_fhe.models.weights_file import load_weights

    return load_weights(model).meta.get("trained", {})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", type=Path, required=True, help="where to write the figures")
    parser.add_argument("--only", nargs="+", choices=[*PIXEL_SETS, "neu_cls"], default=[*PIXEL_SETS, "neu_cls"])
    parser.add_argument("--test-images", type=int, default=10000, help="test images per pixel-scheme data set")
    parser.add_argument("--ckks-images", type=int, default=20,
                        help="MNIST / Fashion-MNIST test images run under real CKKS (0: none)")
    parser.add_argument("--neu-ckks-images", type=int, default=3,
                        help="NEU-CLS test images run under real CKKS, selective and whole (0: none; minutes each)")
    parser.add_argument("--attack-images", type=int, default=200)
    parser.add_argument("--data-dir", type=Path, default=None, help="CIFAR-10 batches folder")
    args = parser.parse_args(argv)
    if args.test_images < 1 or args.attack_images < 1 or min(args.ckks_images, args.neu_ckks_images) < 0:
        parser.error("--test-images and --attack-images must be positive, --ckks-images and --neu-ckks-images "
                     "not negative")
    missing = [name for key, (_, plain, _) in PIXEL_SETS.items() if key in args.only
               for name in [plain] if not (WEIGHTS / f"{name}.npz").is_file()]
    if "neu_cls" in args.only:
        missing += [name for name in ("chunk-cnn-neu", "chunk-cnn-neu-paper", "chunk-cnn-neu-server-view")
                    if not (WEIGHTS / f"{name}.npz").is_file()]
    if missing:
        parser.error(f"weights not found: {', '.join(missing)} (see the training scripts in bench/)")
    from resnet_fhe.data import dataset_files

    for key in args.only:
        dataset = PIXEL_SETS[key][0] if key in PIXEL_SETS else "neu-cls"
        if not dataset_files(dataset, "test", args.data_dir if dataset == "cifar10" else None):
            parser.error(f"{dataset} test data not found" + (" (--data-dir)" if dataset == "cifar10" else ""))
    selective_encryption = _bench_module("selective_encryption")
    started = time.perf_counter()
    figures = {}
    for key in args.only:
        figures[key] = (neu_cls(args.neu_ckks_images, selective_encryption) if key == "neu_cls" else
                        pixel_scheme(key, args.test_images, args.ckks_images, args.attack_images, args.data_dir))
        _log(f"{key}: {json.dumps({k: v for k, v in figures[key].items() if isinstance(v, float)})}")
    figures["run"] = {"seconds": round(time.perf_counter() - started, 1), "cpu": cpu_model(),
                      "test_key_seed": TEST_KEY_SEED, "command": " ".join(sys.argv)}
    text = json.dumps(figures, indent=1)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(text + "\n")
    return 0


def _bench_module(name: str):
    """A sibling bench script as a module (bench/ is not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == "__main__":
    sys.exit(main())
