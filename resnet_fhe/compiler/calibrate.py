"""Calibration: run the plaintext network on calibration images and record every channel's range.

Ranges set the scale of each encrypted channel (inputs of polynomials and of bootstrapping must lie in
[-1, 1]). Test images are refused: ranges measured on the images you report would hide the cases where
an unseen input leaves the polynomial's interval.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from resnet_fhe.data.cifar10 import Dataset
from resnet_fhe.errors import CalibrationError
from resnet_fhe.ir.graph import Graph, Node, ReLU
from resnet_fhe.ir.interpret import run_graph

# Per-channel maxima of 1,024 training images were exceeded by up to 1.62x on 10,000 held-out training
# images; maxima of 10,000 by up to 1.38x (ReLU inputs), which CompileOptions.margin covers
# (bench/calibration_headroom.py).
DEFAULT_CALIBRATION_IMAGES = 8192
SAMPLES_PER_ACTIVATION = 4096  # spread evenly over the channels of each activation input


@dataclass
class Calibration:
    """`ranges[t]`: the largest |value| of each channel of tensor t, shape (C,).
    `activation_samples[t]`: values seen at the input of an activation, shape (C, k), k per channel,
    so that a polynomial can be fitted to the distribution after per-channel scaling."""

    ranges: dict[str, np.ndarray]
    activation_samples: dict[str, np.ndarray] = field(repr=False)
    images: int
    source: str

    def to_dict(self) -> dict:
        return {"images": self.images, "source": self.source,
                "ranges": {k: round(float(v.max()), 6) for k, v in self.ranges.items()}}


def calibrate(graph: Graph, data: Dataset, images: int = DEFAULT_CALIBRATION_IMAGES, seed: int = 0) -> Calibration:
    if data.split != "train":
        raise CalibrationError(
            f"calibration must not see the {data.split!r} split ({data.source}): use training images"
        )
    if len(data) == 0:
        raise CalibrationError("calibration needs at least one image")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(data), size=min(images, len(data)), replace=False))
    ranges: dict[str, np.ndarray] = {}
    pools: dict[str, list[np.ndarray]] = {}
    relu_inputs = {node.inputs[0] for node in graph.nodes if isinstance(node, ReLU)}

    def observe(node: Node, value: np.ndarray) -> None:
        ranges[node.name] = np.maximum(ranges.get(node.name, 0.0), np.max(np.abs(value), axis=(0, 2, 3)))
        if node.name in relu_inputs:
            per_channel = value.transpose(1, 0, 2, 3).reshape(value.shape[1], -1)
            count = _samples_per_channel(per_channel)
            picks = rng.integers(0, per_channel.shape[1], size=(len(per_channel), count))
            pools.setdefault(node.name, []).append(np.take_along_axis(per_channel, picks, axis=1))

    run_graph(graph, data.images[chosen].astype(np.float64) / 255, observe=observe, batch_size=64)
    samples = {}
    for name, parts in pools.items():
        values = np.concatenate(parts, axis=1)
        count = _samples_per_channel(values)
        picks = np.stack([rng.choice(values.shape[1], count, replace=False) for _ in values])
        samples[name] = np.take_along_axis(values, picks, axis=1)
    if any(v.max() == 0 or not np.all(np.isfinite(v)) for v in ranges.values()):
        raise CalibrationError("a tensor is identically zero or not finite on the calibration images")
    return Calibration(ranges, samples, len(chosen), ", ".join(data.files) if data.files else data.source)


def _samples_per_channel(values: np.ndarray) -> int:
    return -(-SAMPLES_PER_ACTIVATION // len(values))
