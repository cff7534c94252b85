"""resnet-fhe and TenSEAL side by side on the CryptonDL / TenSEAL-tutorial CNNs (issue 13): the same trained
model (weights/cryptondl-<dataset>.npz), the same test images, the same machine, 128-bit parameters in both.

TenSEAL runs its encrypted-CNN tutorial as published: the client im2col-encodes each image into one
CKKSVector (ts.im2col_encoding), the server computes each kernel with conv2d_im2col, packs the channels
(pack_vectors), squares, multiplies by the dense layers' matrices (mm) and squares again; N = 8192,
moduli [31, 26 x 6, 31] (218 bits: 128-bit security at N = 8192), scale 2^26, Galois keys for every
power-of-two step. One image per ciphertext, as in the tutorial (TenSEAL's API has no packed convolution).

resnet-fhe runs `resnet-fhe evaluate --mode encrypted --preset small-128` (N = 2^14, 128-bit, no
bootstrapping): keygen and the server in their own processes, several images per query where the
planner packs them (--images-per-query 1 measures one image alone).

Each system runs in its own process, so each peak RSS is its own: TenSEAL's one process holds the client
and the server (keys, context, ciphertexts); for resnet-fhe the server's peak (what a server pays; keygen's
peak is reported beside it). `seconds_per_image` is the server's evaluation time per image (TenSEAL: its
forward pass; resnet-fhe: the server's run divided by the images), encryption and decryption apart.

    python bench/compare_tenseal.py --images 200 --json bench/results/compare-tenseal.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATASETS = {"mnist": "mnist", "fashion_mnist": "fashion-mnist"}
TENSEAL_SCALE_BITS = 26
TENSEAL_MODULI = [31, *[TENSEAL_SCALE_BITS] * 6, 31]


def tutorial_layers(model: str) -> dict:
    """The conv (one input channel), dense and square layers of a CryptonDL-shaped model, as TenSEAL's
    tutorial reads them from torch: conv kernels (O, kh, kw), dense weights transposed for mm."""
    from resnet_fhe.ir.graph import Conv2d, Linear, PolynomialActivation
    from resnet_fhe.models import load_model

    graph = load_model(model, fold=False)  # as trained: the strided convolution on the image itself
    kinds = [type(node).__name__ for node in graph.nodes[1:]]
    if kinds != ["Conv2d", "PolynomialActivation", "Linear", "PolynomialActivation", "Linear"]:
        raise SystemExit(f"{model} is not a TenSEAL-tutorial-shaped CNN (conv, square, dense, square, dense): {kinds}")
    conv, square1, fc1, square2, fc2 = graph.nodes[1:]
    assert isinstance(conv, Conv2d) and isinstance(fc1, Linear) and isinstance(fc2, Linear)
    for square in (square1, square2):
        assert isinstance(square, PolynomialActivation) and square.coefficients == (0.0, 0.0, 1.0)
    if conv.weight.shape[1] != 1 or conv.padding != 0 or conv.bias is None or conv.bias.ndim != 1:
        raise SystemExit(f"{model}: TenSEAL's im2col convolution takes one input channel, no padding, a bias")
    return {"kernels": conv.weight[:, 0], "conv_bias": conv.bias, "stride": conv.stride,
            "fc1": fc1.weight.T, "fc1_bias": fc1.bias, "fc2": fc2.weight.T, "fc2_bias": fc2.bias}


def tenseal_worker(model: str, dataset: str, images: int, start: int, threads: int) -> dict:
    """TenSEAL's tutorial pipeline on `images` test images; runs in its own process (peak RSS)."""
    import tenseal as ts

    from resnet_fhe.data import load_dataset

    layers = tutorial_layers(model)
    data = load_dataset(dataset, "test").take(images, start)
    kernels = [k.tolist() for k in layers["kernels"]]
    kh, kw = layers["kernels"].shape[1:]
    started = time.perf_counter()
    context = ts.context(ts.SCHEME_TYPE.CKKS, poly_modulus_degree=8192, coeff_mod_bit_sizes=TENSEAL_MODULI,
                         n_threads=threads)
    context.global_scale = 2 ** TENSEAL_SCALE_BITS
    context.generate_galois_keys()
    keygen_seconds = time.perf_counter() - started
    public = context.copy()
    public.make_context_public()
    key_bytes = len(public.serialize(save_galois_keys=True, save_relin_keys=True))
    fc1, fc2 = layers["fc1"].tolist(), layers["fc2"].tolist()
    logits, encrypt, evaluate, decrypt, ciphertext_bytes = [], [], [], [], 0
    for image in data.images:
        t0 = time.perf_counter()
        enc_x, windows = ts.im2col_encoding(context, (image[0] / 255.0).tolist(), kh, kw, layers["stride"])
        t1 = time.perf_counter()
        channels = [enc_x.conv2d_im2col(kernel, windows) + float(bias)
                    for kernel, bias in zip(kernels, layers["conv_bias"], strict=True)]
        x = ts.CKKSVector.pack_vectors(channels)
        x.square_()
        x = x.mm(fc1) + layers["fc1_bias"].tolist()
        x.square_()
        x = x.mm(fc2) + layers["fc2_bias"].tolist()
        t2 = time.perf_counter()
        logits.append(x.decrypt())
        t3 = time.perf_counter()
        encrypt.append(t1 - t0)
        evaluate.append(t2 - t1)
        decrypt.append(t3 - t2)
        ciphertext_bytes = len(enc_x.serialize())
    return {"logits": logits, "labels": data.labels.tolist(), "keygen_seconds": keygen_seconds,
            "encrypt_seconds": float(np.mean(encrypt)), "seconds_per_image": float(np.mean(evaluate)),
            "decrypt_seconds": float(np.mean(decrypt)), "key_bytes": key_bytes,
            "ciphertext_bytes_per_image": ciphertext_bytes,
            "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9}


def run_tenseal(model: str, dataset: str, images: int, start: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "tenseal.json"
        command = [sys.executable, __file__, "--tenseal-worker", model, dataset, str(images), str(start), str(threads),
                   str(out)]
        subprocess.run(command, check=True, env={**os.environ, "OMP_NUM_THREADS": str(threads)}, stdout=sys.stderr)
        return json.loads(out.read_text())


def run_resnet_fhe(model: str, dataset: str, images: int, start: int, threads: int, per_query: int | None) -> dict:
    """`resnet-fhe evaluate --mode encrypted` with a key store of its own (fresh keys: seconds at small-128),
    so that its query and answer folders hold this run's ciphertexts only."""
    with tempfile.TemporaryDirectory() as tmp:
        out, store = Path(tmp) / "ours.json", Path(tmp) / "store"
        command = [sys.executable, "-m", "resnet_fhe.cli", "evaluate", "--model", model, "--dataset", dataset,
                   "--mode", "encrypted", "--preset", "small-128", "--images", str(images), "--start", str(start),
                   "--threads", str(threads), "--store", str(store), "--json", str(out)]
        if per_query:
            command += ["--images-per-query", str(per_query)]
        subprocess.run(command, check=True, cwd=ROOT, stdout=sys.stderr)  # our stdout is the JSON
        return {**json.loads(out.read_text()), **ciphertext_bytes(store, images)}


def ciphertext_bytes(store: Path, images: int) -> dict:
    """Bytes per image of the encrypted queries the client sent and the answers it got back (a padded
    query's copies included), from the key store's query and answer folders."""
    def size(folder: Path) -> int:
        return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else 0

    return {"ciphertext_bytes_per_image": size(store / "queries") / images,
            "answer_bytes_per_image": size(store / "answers") / images}


def scores(logits: np.ndarray, labels: np.ndarray) -> dict:
    from resnet_fhe.cli import macro_f1

    predicted = logits.argmax(axis=1)
    return {"accuracy": float(np.mean(predicted == labels)), "f1": macro_f1(predicted, labels, logits.shape[1])}


def compare(key: str, images: int, start: int, threads: int, single: int) -> dict:
    dataset = DATASETS[key]
    model = f"cryptondl-{dataset}"
    print(f"{dataset}: TenSEAL on {images} images", file=sys.stderr, flush=True)
    tenseal = run_tenseal(model, dataset, images, start, threads)
    labels = np.asarray(tenseal.pop("labels"))
    tenseal_logits = np.asarray(tenseal.pop("logits"))
    tenseal.update(scores(tenseal_logits, labels), images=images)
    print(f"{dataset}: resnet-fhe on {images} images", file=sys.stderr, flush=True)
    ours = run_resnet_fhe(model, dataset, images, start, threads, None)
    keep = ("top1", "macro_f1", "seconds_per_image", "peak_rss_gb", "key_store_gb", "agreement_with_plain",
            "plain_top1", "max_abs_logit_error", "packing", "preset", "security", "keygen", "server_seconds")
    resnet = {k: ours[k] for k in keep if k in ours}
    resnet.update(accuracy=ours["top1"], f1=ours["macro_f1"], images=images,
                  ciphertext_bytes_per_image=ours["ciphertext_bytes_per_image"],
                  answer_bytes_per_image=ours["answer_bytes_per_image"])
    result = {"resnet_fhe": resnet, "tenseal": tenseal}
    if single:
        print(f"{dataset}: resnet-fhe, one image per query, {single} images", file=sys.stderr, flush=True)
        alone = run_resnet_fhe(model, dataset, single, start, threads, 1)
        resnet["one_image_per_query"] = {"images": single, "seconds_per_image": alone["seconds_per_image"],
                                         "peak_rss_gb": alone["peak_rss_gb"], "top1": alone["top1"]}
    result["ratios"] = {
        "seconds_per_image": resnet["seconds_per_image"] / tenseal["seconds_per_image"],
        "peak_rss": resnet["peak_rss_gb"] / tenseal["peak_rss_gb"],
    }
    if single:
        result["ratios"]["seconds_per_image_one_per_query"] = (resnet["one_image_per_query"]["seconds_per_image"]
                                                               / tenseal["seconds_per_image"])
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--tenseal-worker":
        model, dataset, images, start, threads, out = argv[1:]
        Path(out).write_text(json.dumps(tenseal_worker(model, dataset, int(images), int(start), int(threads))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=200, help="test images per data set (default 200)")
    parser.add_argument("--start", type=int, default=0, help="index of the first test image")
    parser.add_argument("--single", type=int, default=16,
                        help="also time resnet-fhe at one image per query on this many images (0: skip)")
    parser.add_argument("--datasets", nargs="+", choices=sorted(DATASETS), default=sorted(DATASETS))
    parser.add_argument("--threads", type=int, default=2, help="threads for both systems (default 2)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.images < 1 or args.single < 0 or args.start < 0:
        parser.error("--images must be positive, --single and --start non-negative")
    try:
        import tenseal  # noqa: F401
    except ImportError:
        parser.error("tenseal is not installed: pip install 'resnet-fhe[bench]'")
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": args.threads},
              **{key: compare(key, args.images, args.start, args.threads, args.single) for key in args.datasets}}
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
