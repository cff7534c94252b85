"""Pixel-based image encryption without key management (Sirichotedumrong, Kinoshita, Kiya, IEEE Access
2019; `../shared/seeds/` file 004) and its grey-scale variant (Deng, Hu, Fan, CyberC 2023; file 001).

The seeds hold the abstracts only; the steps follow the authors' description of the same scheme in
Chuman & Kiya (Information 2023, 14(6):311): every colour component of every pixel is negated (p -> p XOR
255, i.e. 255 - p for 8 bits) where a key bit, 1 with probability 1/2, says so, and then each pixel's
three colour components are put in one of their six orders chosen by the key. Training and test images
each get their own key (that is what removes key management: the network learns to classify images
whatever their key), so keys are drawn per image from a seeded generator and not kept with the images.
Grey-scale images have no colour components to shuffle: negative-positive only (Deng et al. name the
pixel-based transforms but the abstract does not give their grey-scale form; this is the choice).

`block` > 1 is the block-wise form of Kiya's earlier schemes: one key bit and one colour order for each
block x block square instead of each pixel.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from resnet_fhe.errors import InputError

# The six orders of three colour components; a key picks one per pixel (or block).
COLOUR_ORDERS = np.array(list(itertools.permutations(range(3))), dtype=np.intp)
INVERSE_ORDERS = np.argsort(COLOUR_ORDERS, axis=1)


@dataclass(frozen=True)
class PixelKey:
    """One image's key: `flips` (channels, height, width) bool, True where a component is negated;
    `orders` (height, width) indices into COLOUR_ORDERS, or None for a grey-scale image."""

    flips: np.ndarray
    orders: np.ndarray | None


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.dtype != np.uint8:
        raise InputError(f"pixel-based encryption takes 8-bit images (uint8), got {image.dtype}")
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise InputError("pixel-based encryption takes one image as (height, width) grey scale or (channels, "
                         f"height, width) with 1 or 3 channels, got shape {image.shape}")
    return image


def image_keys(seed: int, count: int, shape: tuple[int, ...], block: int = 1) -> Iterator[PixelKey]:
    """`count` independent keys for images of `shape` ((C, H, W) or (H, W)), reproducible from `seed`:
    key i is drawn from its own stream (numpy SeedSequence(seed).spawn), so it does not depend on count."""
    channels, height, width = (1, *shape) if len(shape) == 2 else shape
    if channels not in (1, 3) or len(shape) not in (2, 3):
        raise InputError(f"images of shape (height, width) or (1 or 3, height, width), not {shape}")
    if block < 1 or height % block or width % block:
        raise InputError(f"block {block} must divide the image's height {height} and width {width}")
    for stream in np.random.SeedSequence(seed).spawn(count):
        rng = np.random.default_rng(stream)
        rows, cols = height // block, width // block
        flips = rng.integers(0, 2, size=(channels, rows, cols), dtype=np.uint8).astype(bool)
        orders = rng.integers(0, len(COLOUR_ORDERS), size=(rows, cols)) if channels == 3 else None
        if block > 1:
            flips = flips.repeat(block, axis=1).repeat(block, axis=2)
            orders = None if orders is None else orders.repeat(block, axis=0).repeat(block, axis=1)
        yield PixelKey(flips, orders)


def _check_key(image: np.ndarray, key: PixelKey) -> None:
    if key.flips.shape != image.shape or (key.orders is None) != (image.shape[0] == 1):
        raise InputError(f"the key is for images of shape {key.flips.shape}, the image's is {image.shape}")


def _reorder(image: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """Each pixel's components taken in its order: out[c, y, x] = image[orders[y, x][c], y, x]."""
    return np.take_along_axis(image, orders.transpose(2, 0, 1), axis=0)


def encrypt(image: np.ndarray, key: PixelKey) -> np.ndarray:
    """The encrypted image, same shape and dtype (uint8): negative-positive, then colour shuffling."""
    pixels = _check_image(image)
    _check_key(pixels, key)
    out = np.where(key.flips, pixels ^ np.uint8(255), pixels)
    if key.orders is not None:
        out = _reorder(out, COLOUR_ORDERS[key.orders])
    return out.reshape(np.shape(image))


def decrypt(image: np.ndarray, key: PixelKey) -> np.ndarray:
    """The plain image back from `encrypt(plain, key)`."""
    pixels = _check_image(image)
    _check_key(pixels, key)
    if key.orders is not None:
        pixels = _reorder(pixels, INVERSE_ORDERS[key.orders])
    return np.where(key.flips, pixels ^ np.uint8(255), pixels).reshape(np.shape(image))


def encrypt_batch(images: np.ndarray, seed: int, block: int = 1) -> np.ndarray:
    """Images (N, C, H, W) or (N, H, W), each encrypted with its own key from `seed`; the keys are
    discarded, as the scheme intends (a model trained on such images needs none)."""
    images = np.asarray(images)
    if images.ndim not in (3, 4) or len(images) == 0:
        raise InputError(f"a batch of images (N, C, H, W) or (N, H, W), got shape {images.shape}")
    keys = image_keys(seed, len(images), images.shape[1:], block)
    return np.stack([encrypt(image, key) for image, key in zip(images, keys, strict=True)])
