#!/usr/bin/env python3
"""Selective CKKS encryption of NEU-CLS images (Jia et al. 2023; resnet_fhe.imagecrypt.chunks): how
many chunks the paper's Sobel threshold selects, and the time and bytes of encrypting only those against
encrypting the whole image, at 128-bit security (the openfhe wheel).

    .venv/bin/python bench/selective_encryption.py --images 120 --json bench/results/selective-encryption-neu.json

Each image as the paper prepares it (resized to 112 x 112, histogram-equalised, 28 x 28 chunks, mean
Sobel magnitude > 100 selected). CKKS: ring 2^14, depth 4 (the paper's network: convolution, fully
connected, square, fully connected), 8,192 slots. Encodings compared, per image:
- whole image, packed: 12,544 pixels in 2 ciphertexts;
- every chunk, one ciphertext each (16): what a chunk-based network without selection encrypts;
- the selected chunks, one ciphertext each (the paper's scheme);
- the selected chunks packed, 10 per ciphertext.
Pixels are scaled to [0, 1]. Bytes are OpenFHE's binary serialisation of the ciphertexts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from resnet_fhe.imagecrypt.chunks import (
    PAPER_CHUNK,
    PAPER_THRESHOLD,
    chunk_grid,
    equalize_histogram,
    resize_bilinear,
    select_chunks,
)

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "neu_cls" / "neu_cls.npz"
SIZE = 112
SLOTS = 8192


def context():
    import openfhe as fhe

    params = fhe.CCParamsCKKSRNS()
    params.SetMultiplicativeDepth(4)
    params.SetScalingModSize(40)
    params.SetFirstModSize(60)
    params.SetBatchSize(SLOTS)
    params.SetRingDim(2 * SLOTS)
    params.SetSecurityLevel(fhe.SecurityLevel.HEStd_128_classic)  # OpenFHE refuses a ring too small for it
    cc = fhe.GenCryptoContext(params)
    cc.Enable(fhe.PKESchemeFeature.PKE)
    cc.Enable(fhe.PKESchemeFeature.LEVELEDSHE)
    return fhe, cc, cc.KeyGen().publicKey


def encrypt_vectors(fhe, cc, public_key, vectors: list[np.ndarray]) -> tuple[float, int]:
    """Seconds (encoding and encryption) and serialised bytes of one ciphertext per vector."""
    started = time.perf_counter()
    ciphertexts = [cc.Encrypt(public_key, cc.MakeCKKSPackedPlaintext(vector.tolist())) for vector in vectors]
    seconds = time.perf_counter() - started
    return seconds, sum(len(fhe.Serialize(ciphertext, fhe.BINARY)) for ciphertext in ciphertexts)


def pack(values: np.ndarray, per_ciphertext: int) -> list[np.ndarray]:
    return [values[i:i + per_ciphertext] for i in range(0, len(values), per_ciphertext)]


def measure(images, threshold: float = PAPER_THRESHOLD) -> dict:
    """Per-image CKKS seconds, bytes and ciphertexts of each encoding, over prepared images (uint8 112 x
    112, equalised), and the fraction of chunks selected."""
    fhe, cc, public_key = context()
    per_chunk = PAPER_CHUNK * PAPER_CHUNK
    totals = {name: {"seconds": 0.0, "bytes": 0, "ciphertexts": 0}
              for name in ("whole_image_packed", "every_chunk", "selected_chunks", "selected_chunks_packed")}
    selected_counts = []
    for image in images:
        pixels = image.astype(np.float64) / 255.0
        chunks = chunk_grid(pixels).reshape(-1, per_chunk)
        chosen = chunks[select_chunks(image, threshold=threshold).ravel()]
        selected_counts.append(len(chosen))
        encodings = {"whole_image_packed": pack(pixels.ravel(), SLOTS), "every_chunk": list(chunks),
                     "selected_chunks": list(chosen),
                     "selected_chunks_packed": pack(chosen.ravel(), (SLOTS // per_chunk) * per_chunk)}
        for name, vectors in encodings.items():
            seconds, size = encrypt_vectors(fhe, cc, public_key, vectors)
            totals[name]["seconds"] += seconds
            totals[name]["bytes"] += size
            totals[name]["ciphertexts"] += len(vectors)
    count = len(images)
    per_image = {name: {"seconds": round(t["seconds"] / count, 4), "bytes": round(t["bytes"] / count),
                        "ciphertexts": t["ciphertexts"] / count} for name, t in totals.items()}
    return {"images": count, "threshold": threshold, "chunks_per_image": (SIZE // PAPER_CHUNK) ** 2,
            "encrypted_chunk_fraction": float(np.mean(selected_counts)) / (SIZE // PAPER_CHUNK) ** 2,
            "images_with_no_chunk_selected": int(np.sum(np.array(selected_counts) == 0)),
            "ring_dimension": cc.GetRingDimension(), "slots": SLOTS, "per_image": per_image}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=120, help="images, spread evenly over the 1,800 (all classes)")
    parser.add_argument("--data", type=Path, default=DATA, help="neu_cls.npz (x: uint8 (N, 200, 200), y)")
    parser.add_argument("--threshold", type=float, default=PAPER_THRESHOLD)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if not args.data.is_file():
        parser.error(f"{args.data} not found (--data)")
    data = np.load(args.data)
    if not 1 <= args.images <= len(data["x"]):
        parser.error(f"--images must be 1 to {len(data['x'])}")
    picks = np.linspace(0, len(data["x"]) - 1, args.images).round().astype(int)
    images = [equalize_histogram(resize_bilinear(data["x"][index], SIZE, SIZE)) for index in picks]
    result = measure(images, args.threshold)
    print(json.dumps(result, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
