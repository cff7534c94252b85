"""Calibration: run the plaintext network on calibration images and record every tensor's range.

Ranges set the scale of each encrypted tensor (inputs of polynomials and of bootstrapping must lie in
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

SAMPLES_PER_ACTIVATION = 4000


@dataclass
class Calibration:
    ranges: dict[str, float]
    activation_samples: dict[str, np.ndarray] = field(repr=False)
    images: int
    source: str

    def to_dict(self) -> dict:
        return {"images": self.images, "source": self.source,
                "ranges": {k: round(v, 6) for k, v in self.ranges.items()}}


def calibrate(graph: Graph, data: Dataset, images: int = 1024, seed: int = 0) -> Calibration:
    if data.split != "train":
        raise CalibrationError(
            f"calibration must not see the {data.split!r} split ({data.source}): use training images"
        )
    if len(data) == 0:
        raise CalibrationError("calibration needs at least one image")
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(len(data), size=min(images, len(data)), replace=False))
    ranges: dict[str, float] = {}
    pools: dict[str, list[np.ndarray]] = {}
    relu_inputs = {node.inputs[0] for node in graph.nodes if isinstance(node, ReLU)}

    def observe(node: Node, value: np.ndarray) -> None:
        ranges[node.name] = max(ranges.get(node.name, 0.0), float(np.max(np.abs(value))))
        if node.name in relu_inputs:
            flat = value.ravel()
            pools.setdefault(node.name, []).append(rng.choice(flat, size=min(len(flat), 4000), replace=False))

    run_graph(graph, data.images[chosen].astype(np.float64) / 255, observe=observe, batch_size=64)
    samples = {}
    for name, parts in pools.items():
        values = np.concatenate(parts)
        samples[name] = rng.choice(values, size=min(len(values), SAMPLES_PER_ACTIVATION), replace=False)
    if any(v == 0 or not np.isfinite(v) for v in ranges.values()):
        raise CalibrationError("a tensor is identically zero or not finite on the calibration images")
    return Calibration(ranges, samples, len(chosen), ", ".join(data.files) if data.files else data.source)
