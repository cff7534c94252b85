#!/usr/bin/env python3
"""Ciphertext-only attack on pixel-based image encryption (resnet_fhe.imagecrypt.attacks): how much of
each image a neighbour-smoothness decoder recovers with no key, against the encrypted image itself.

    .venv/bin/python bench/pixel_attack.py --images 1000 --json bench/results/pixel-attack.json

Figures per data set (medians over the images): PSNR of the encrypted image and of the recovery against
the plain image (under the best global key), of a flat image at the plain image's mean (what a recovery
with none of the image's structure scores at best), and the fraction of pixels recovered exactly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from resnet_fhe.imagecrypt import encrypt_batch
from resnet_fhe.imagecrypt.attacks import flat_psnr, recovered_fraction, recovery_psnr, smoothness_attack

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
GREY_SETS = {"mnist": "mnist/mnist_test.npz", "fashion-mnist": "fashion_mnist/fashion_mnist_test.npz"}


def load_test_images(dataset: str, data_dir: Path, count: int) -> np.ndarray:
    """The first `count` test images, (N, C, H, W) uint8."""
    if dataset == "cifar10":
        from resnet_fhe.data.cifar10 import load_cifar10

        return load_cifar10("test", data_dir / "cifar10" / "cifar-10-batches-py").images[:count]
    path = data_dir / GREY_SETS[dataset]
    if not path.is_file():
        sys.exit(f"error: {path} not found (--data-dir)")
    return np.load(path)["x"][:count, None]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=["cifar10", *GREY_SETS], nargs="+", default=["cifar10", *GREY_SETS])
    parser.add_argument("--images", type=int, default=1000, help="test images per data set, from the first")
    parser.add_argument("--seed", type=int, default=0, help="seed of the per-image keys")
    parser.add_argument("--data-dir", type=Path, default=DATA)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.images < 1:
        parser.error("--images must be at least 1")
    results = {}
    for dataset in args.dataset:
        plain = load_test_images(dataset, args.data_dir, args.images)
        started = time.perf_counter()
        encrypted = encrypt_batch(plain, seed=args.seed)
        recovered = smoothness_attack(encrypted)
        results[dataset] = {
            "images": len(plain),
            "psnr_encrypted_db": float(np.median(recovery_psnr(plain, encrypted))),
            "psnr_recovered_db": float(np.median(recovery_psnr(plain, recovered))),
            "psnr_flat_at_the_images_mean_db": float(np.median(flat_psnr(plain))),
            "pixels_recovered_exactly": float(np.median(recovered_fraction(plain, recovered))),
            "seconds": round(time.perf_counter() - started, 1),
        }
        print(f"{dataset}: {json.dumps(results[dataset])}", file=sys.stderr)
    summary = {"attack": "neighbour smoothness (resnet_fhe.imagecrypt.attacks.smoothness_attack)", "seed": args.seed,
               "results": results}
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
