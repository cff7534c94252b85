"""im2col: each output position's receptive field as channels, so a strided convolution becomes a 1x1 one.

The client arranges its image this way before encrypting when a plan's first layer is a strided
convolution (ir/passes.py: im2col_stem): computed on the encrypted image, that convolution costs a full
stride-1 convolution, a subsample and a channel move, three levels and about 80 rotations per ciphertext
(TenSEAL's MNIST CNN); on the arranged one a 1x1 convolution, one level. TenSEAL's tutorial encodes its
input the same way. Shared by the plaintext interpreter and the plan's client side.
"""

from __future__ import annotations

import numpy as np


def im2col_shape(channels: int, height: int, width: int, kernel: tuple[int, int], stride: int,
                 padding: int) -> tuple[int, int, int]:
    """(channels * kh * kw, out_h, out_w) of im2col's output."""
    kh, kw = kernel
    return (channels * kh * kw, (height + 2 * padding - kh) // stride + 1, (width + 2 * padding - kw) // stride + 1)


def im2col(images: np.ndarray, kernel: tuple[int, int], stride: int, padding: int) -> np.ndarray:
    """(N, C, H, W) -> (N, C * kh * kw, out_h, out_w); channel c * kh * kw + a * kw + b holds tap (a, b) of
    input channel c, the order of weight.reshape(O, -1) of a torch (O, C, kh, kw) kernel."""
    n, channels, height, width = images.shape
    kh, kw = kernel
    _, out_h, out_w = im2col_shape(channels, height, width, kernel, stride, padding)
    padded = np.pad(images, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    columns = np.empty((n, channels, kh, kw, out_h, out_w), dtype=images.dtype)
    for a in range(kh):
        for b in range(kw):
            columns[:, :, a, b] = padded[:, :, a:a + stride * out_h:stride, b:b + stride * out_w:stride]
    return columns.reshape(n, channels * kh * kw, out_h, out_w)
