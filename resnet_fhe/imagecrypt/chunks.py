"""Chunk selection for selective CKKS encryption (Jia et al., "chunk-based CNN with CKKS", J. Cloud
Computing 12:175, 2023; `../shared/seeds/` file 003).

The paper: grey-scale images resized to 112 x 112, histogram-equalised, cut into 28 x 28 chunks; each
chunk's Sobel gradient G = sqrt(Gx^2 + Gy^2) (its equations 5-7) compared with a threshold of 100; the
chunks above it are encrypted, the others stay plaintext. Where it is silent, the choices here: a
chunk's score is the mean of G over its pixels (pixel values 0-255, after equalisation), and the Sobel
kernels see the image with its edge pixels repeated, so a chunk on the border is scored like one inside.
"""

from __future__ import annotations

import numpy as np

from resnet_fhe.errors import InputError

PAPER_CHUNK = 28
PAPER_THRESHOLD = 100.0


def _grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 2 or min(image.shape) < 3:
        raise InputError(f"chunk selection takes one grey-scale image (height, width), got shape {image.shape}")
    return image


def resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """A grey image resized by bilinear interpolation with pixel centres aligned (OpenCV's INTER_LINEAR,
    which the paper used to bring NEU-CLS to 112 x 112), rounded back to the input's dtype."""
    image = _grey(image)
    if height < 1 or width < 1:
        raise InputError(f"cannot resize to {height} x {width}")

    def axis(out: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        centres = ((np.arange(out) + 0.5) * size / out - 0.5).clip(0, size - 1)
        low = np.floor(centres).astype(np.intp)
        return low, np.minimum(low + 1, size - 1), centres - low

    y0, y1, fy = axis(height, image.shape[0])
    x0, x1, fx = axis(width, image.shape[1])
    pixels = image.astype(np.float64)
    top = pixels[y0][:, x0] * (1 - fx) + pixels[y0][:, x1] * fx
    bottom = pixels[y1][:, x0] * (1 - fx) + pixels[y1][:, x1] * fx
    out = top * (1 - fy)[:, None] + bottom * fy[:, None]
    return out.round().astype(image.dtype) if np.issubdtype(image.dtype, np.integer) else out


def chunk_grid(image: np.ndarray, chunk: int = PAPER_CHUNK) -> np.ndarray:
    """(rows, cols, chunk, chunk): the image's chunks, row-major."""
    image = _grey(image)
    height, width = image.shape
    if chunk < 1 or height % chunk or width % chunk:
        raise InputError(f"chunk size {chunk} must divide the image's height {height} and width {width}")
    return image.reshape(height // chunk, chunk, width // chunk, chunk).transpose(0, 2, 1, 3)


def equalize_histogram(image: np.ndarray) -> np.ndarray:
    """Histogram equalisation of an 8-bit grey image (the paper's equation 1: each level mapped through
    the cumulative histogram, stretched to 0-255)."""
    image = _grey(image)
    if image.dtype != np.uint8:
        raise InputError(f"histogram equalisation takes uint8 images, got {image.dtype}")
    cumulative = np.cumsum(np.bincount(image.ravel(), minlength=256))
    lowest = cumulative[cumulative > 0][0]
    if cumulative[-1] == lowest:  # one grey level: nothing to stretch
        return image.copy()
    levels = np.round((cumulative - lowest) / (cumulative[-1] - lowest) * 255).clip(0, 255).astype(np.uint8)
    return levels[image]


def sobel_magnitude(image: np.ndarray) -> np.ndarray:
    """sqrt(Gx^2 + Gy^2) at every pixel, float64, with Gx = [[-1,0,1],[-2,0,2],[-1,0,1]] and Gy its
    transpose applied as correlations (edge pixels repeated)."""
    padded = np.pad(_grey(image).astype(np.float64), 1, mode="edge")
    height, width = padded.shape[0] - 2, padded.shape[1] - 2

    def at(dy: int, dx: int) -> np.ndarray:
        return padded[1 + dy:1 + dy + height, 1 + dx:1 + dx + width]

    gx = (at(-1, 1) + 2 * at(0, 1) + at(1, 1)) - (at(-1, -1) + 2 * at(0, -1) + at(1, -1))
    gy = (at(1, -1) + 2 * at(1, 0) + at(1, 1)) - (at(-1, -1) + 2 * at(-1, 0) + at(-1, 1))
    return np.hypot(gx, gy)


def chunk_scores(image: np.ndarray, chunk: int = PAPER_CHUNK) -> np.ndarray:
    """(rows, cols) mean Sobel magnitude of each chunk x chunk square, row-major over the image."""
    return chunk_grid(sobel_magnitude(image), chunk).mean(axis=(2, 3))


def select_chunks(image: np.ndarray, chunk: int = PAPER_CHUNK, threshold: float = PAPER_THRESHOLD) -> np.ndarray:
    """(rows, cols) bool: the chunks whose score exceeds `threshold`, the ones to encrypt."""
    return chunk_scores(image, chunk) > threshold


def chunk_pixel_mask(image: np.ndarray, chunk: int = PAPER_CHUNK, threshold: float = PAPER_THRESHOLD) -> np.ndarray:
    """(height, width) bool: True on the pixels of the chunks select_chunks picks for encryption."""
    selected = select_chunks(image, chunk, threshold)
    return np.repeat(np.repeat(selected, chunk, axis=0), chunk, axis=1)
