"""A ciphertext-only attack on pixel-based encryption: undo each pixel's key from its neighbours.

Natural images are smooth, and the scheme changes each pixel only within a small set of candidates: its
components negated or not (2 per component) and, for colour, put in one of six orders (8 x 6 = 48
candidates per pixel, 2 for grey scale). Scanning the image in raster order and taking, for every pixel,
the candidate nearest the mean of its already-recovered left and upper neighbours recovers the image up to
the first pixel's key (a global negation and channel order), with no key and no training. How much comes
back is the measured leakage of the scheme (bench/pixel_attack.py); it is not in the 2019 paper's list of
attacks, which the seed does not give.
"""

from __future__ import annotations

import itertools

import numpy as np

from resnet_fhe.errors import InputError
from resnet_fhe.imagecrypt.pixel import COLOUR_ORDERS


def _candidates(channels: int) -> tuple[np.ndarray, np.ndarray]:
    """(K, C) flip masks and (K, C) component orders of every way a pixel can have been encrypted."""
    flips = np.array(list(itertools.product((False, True), repeat=channels)))
    if channels == 1:
        return flips, np.zeros((len(flips), 1), dtype=np.intp)
    orders = np.array([order for order in COLOUR_ORDERS for _ in flips])
    return np.tile(flips, (len(COLOUR_ORDERS), 1)), orders


def smoothness_attack(encrypted: np.ndarray) -> np.ndarray:
    """Images (N, C, H, W) uint8 encrypted by resnet_fhe.imagecrypt.pixel (block 1), each recovered up to
    one global key (the first pixel's is taken as the identity); C = 1 or 3."""
    encrypted = np.asarray(encrypted)
    if encrypted.dtype != np.uint8 or encrypted.ndim != 4 or encrypted.shape[1] not in (1, 3):
        raise InputError(f"the attack takes uint8 images (N, 1 or 3, H, W), got {encrypted.dtype} {encrypted.shape}")
    count, channels, height, width = encrypted.shape
    flips, orders = _candidates(channels)
    inverse_orders = np.argsort(orders, axis=1)
    pixels = encrypted.astype(np.float64).transpose(0, 2, 3, 1)  # (N, H, W, C)
    recovered = np.empty_like(pixels)
    for y in range(height):
        for x in range(width):
            observed = pixels[:, y, x]  # (N, C)
            # every candidate plain pixel: undo the order, then the negation (both per candidate)
            unordered = observed[:, inverse_orders]  # (N, K, C)
            plain = np.where(flips[None], 255.0 - unordered, unordered)
            neighbours = [recovered[:, y, x - 1]] if x else []
            neighbours += [recovered[:, y - 1, x]] if y else []
            if not neighbours:
                recovered[:, y, x] = observed
                continue
            target = np.mean(neighbours, axis=0)  # (N, C)
            best = np.abs(plain - target[:, None]).sum(axis=2).argmin(axis=1)
            recovered[:, y, x] = plain[np.arange(count), best]
    return recovered.transpose(0, 3, 1, 2).round().astype(np.uint8)


def _global_variants(images: np.ndarray):
    """The images under each of the keys one pixel can have, applied to every pixel (one at a time)."""
    flips, orders = _candidates(images.shape[1])
    for flip, order in zip(flips, orders, strict=True):
        yield np.where(flip[None, :, None, None], 255.0 - images[:, order], images[:, order])


def recovery_psnr(plain: np.ndarray, recovered: np.ndarray) -> np.ndarray:
    """Per-image PSNR (dB) of a recovery (N, C, H, W) against the plain images, under the best of the global
    keys (the attack cannot know the first pixel's key)."""
    plain = np.asarray(plain, dtype=np.float64)
    errors = np.min([((variant - plain) ** 2).mean(axis=(1, 2, 3))
                     for variant in _global_variants(np.asarray(recovered, dtype=np.float64))], axis=0)
    return 10 * np.log10(255.0 ** 2 / np.maximum(errors, 1e-12))


def flat_psnr(plain: np.ndarray) -> np.ndarray:
    """Per-image PSNR of a flat image at the plain image's own mean: what a recovery without any of the
    image's structure scores at best (a baseline for recovery_psnr)."""
    plain = np.asarray(plain, dtype=np.float64)
    errors = plain.reshape(len(plain), -1).var(axis=1)
    return 10 * np.log10(255.0 ** 2 / np.maximum(errors, 1e-12))


def recovered_fraction(plain: np.ndarray, recovered: np.ndarray) -> np.ndarray:
    """Per-image fraction of pixels recovered exactly (every component), under the best global key."""
    plain = np.asarray(plain, dtype=np.float64)
    return np.max([(variant == plain).all(axis=1).mean(axis=(1, 2))
                   for variant in _global_variants(np.asarray(recovered, dtype=np.float64))], axis=0)
