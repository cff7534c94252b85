"""The plaintext reference: evaluates a Graph on a batch of images with numpy.

Every later result (simulated or encrypted) is compared against this forward pass.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from resnet_fhe.errors import InputError, ModelError
from resnet_fhe.im2col import im2col
from resnet_fhe.ir.graph import (
    Add,
    AvgPool,
    BatchNorm,
    Conv2d,
    Graph,
    Input,
    Linear,
    Node,
    Normalize,
    PolynomialActivation,
    ReLU,
    ShortcutA,
)

Observer = Callable[[Node, np.ndarray], None]


def run_graph(graph: Graph, images: np.ndarray, observe: Observer | None = None,
              batch_size: int = 16, dtype: type = np.float64) -> np.ndarray:
    """Logits (N, classes) for float images (N, C, H, W) already scaled the way the Input expects.

    `observe(node, value)` sees every node's output batch as (N, C, H, W); calibration uses it to record
    ranges. Internally tensors are channel-first over the batch, (C, N, H, W), so each convolution is one
    GEMM with a short inner dimension, the fastest shape for numpy's BLAS here.
    """
    expected = graph.input.shape
    if images.ndim != 4 or images.shape[1:] != (expected.channels, expected.height, expected.width):
        raise InputError(
            f"{graph.name} takes images of shape (N, {expected.channels}, {expected.height}, {expected.width}),"
            f" got {images.shape}"
        )
    if not np.issubdtype(images.dtype, np.floating):
        raise InputError(f"images must be floating point (scaled pixels), got {images.dtype}")
    outputs = []
    for start in range(0, len(images), batch_size):
        values: dict[str, np.ndarray] = {}
        for node in graph.nodes:
            if isinstance(node, Input):
                batch = np.asarray(images[start:start + batch_size], dtype=dtype)
                if node.im2col is not None:
                    kh, kw, stride, padding = node.im2col
                    batch = im2col(batch, (kh, kw), stride, padding)
                values[node.name] = np.ascontiguousarray(batch.transpose(1, 0, 2, 3))
            else:
                values[node.name] = _apply(node, [values[name] for name in node.inputs])
            if observe is not None:
                observe(node, values[node.name].transpose(1, 0, 2, 3))
        result = values[graph.output.name]
        outputs.append(result.transpose(1, 0, 2, 3).reshape(result.shape[1], -1))
    return np.concatenate(outputs) if outputs else np.zeros((0, graph.shapes[graph.output.name].size))


def conv2d(x: np.ndarray, weight: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Zero-padded cross-correlation of (N, C, H, W) with (O, C, kh, kw) -> (N, O, H', W')."""
    return _conv2d_cf(np.ascontiguousarray(x.transpose(1, 0, 2, 3)), weight, stride, padding).transpose(1, 0, 2, 3)


def _conv2d_cf(x: np.ndarray, weight: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """The same on channel-first batches (C, N, H, W) -> (O, N, H', W'), by im2col and one GEMM."""
    channels, n, height, width = x.shape
    out_c, _, kh, kw = weight.shape
    out_h = (height + 2 * padding - kh) // stride + 1
    out_w = (width + 2 * padding - kw) // stride + 1
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    columns = np.empty((channels, kh, kw, n, out_h, out_w), x.dtype)
    for i in range(kh):
        for j in range(kw):
            columns[:, i, j] = padded[:, :, i:i + stride * out_h:stride, j:j + stride * out_w:stride]
    result = weight.reshape(out_c, -1).astype(x.dtype) @ columns.reshape(channels * kh * kw, -1)
    return result.reshape(out_c, n, out_h, out_w)


def _channel(vector: np.ndarray) -> np.ndarray:
    return vector[:, None, None, None]


def _apply(node: Node, args: list[np.ndarray]) -> np.ndarray:
    if isinstance(node, Normalize):
        return (args[0] - _channel(node.mean)) / _channel(node.std)
    if isinstance(node, Conv2d):
        out = _conv2d_cf(args[0], node.weight, node.stride, node.padding)
        if node.bias is not None:
            out = out + (_channel(node.bias) if node.bias.ndim == 1 else node.bias[:, None])
        return out
    if isinstance(node, BatchNorm):
        scale, shift = node.scale_shift()
        return args[0] * _channel(scale) + _channel(shift)
    if isinstance(node, ReLU):
        return np.maximum(args[0], 0)
    if isinstance(node, PolynomialActivation):
        return np.polynomial.polynomial.polyval(args[0], np.asarray(node.coefficients, dtype=args[0].dtype))
    if isinstance(node, Add):
        return args[0] + args[1]
    if isinstance(node, ShortcutA):
        x = args[0][:, :, ::node.stride, ::node.stride]
        pad = (node.out_channels - x.shape[0]) // 2
        return np.pad(x, ((pad, pad), (0, 0), (0, 0), (0, 0)))
    if isinstance(node, AvgPool):
        return args[0].mean(axis=(2, 3), keepdims=True)
    if isinstance(node, Linear):
        flat = args[0].reshape(args[0].shape[0], -1) if args[0].shape[2:] == (1, 1) else \
            args[0].transpose(1, 0, 2, 3).reshape(args[0].shape[1], -1).T
        out = node.weight.astype(flat.dtype) @ flat
        if node.bias is not None:
            out = out + node.bias[:, None]
        return out[:, :, None, None]
    raise ModelError(f"the interpreter has no rule for {type(node).__name__} {node.name!r}")
