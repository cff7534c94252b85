"""The CIFAR ResNet family (He et al. 2016, 6n+2 layers) as an IR graph, from a weights file.

Any depth 6n+2, any stage widths, shortcut option A (subsample + zero channel padding) or B (1x1 conv +
BN), any input shape: the same builder serves ResNet20..56 on CIFAR-10 and small test networks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from resnet_fhe.errors import WeightsError
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
    ReLU,
    Shape,
    ShortcutA,
)
from resnet_fhe.models.weights_file import WeightsFile


@dataclass(frozen=True)
class ResNetSpec:
    depth: int = 20
    widths: tuple[int, ...] = (16, 32, 64)
    shortcut: str = "A"
    input_shape: tuple[int, int, int] = (3, 32, 32)
    num_classes: int = 10

    def __post_init__(self) -> None:
        if self.depth < 8 or (self.depth - 2) % 6:
            raise WeightsError(f"a CIFAR ResNet has depth 6n+2 (8, 14, 20, 32, ...), not {self.depth}")
        if self.shortcut not in ("A", "B"):
            raise WeightsError(f"shortcut option must be 'A' or 'B', not {self.shortcut!r}")

    @property
    def blocks_per_stage(self) -> int:
        return (self.depth - 2) // 6

    @classmethod
    def from_meta(cls, meta: dict) -> ResNetSpec:
        if meta.get("architecture") != "cifar_resnet":
            raise WeightsError(f"architecture {meta.get('architecture')!r} is not 'cifar_resnet'")
        try:
            return cls(int(meta["depth"]), tuple(meta["widths"]), str(meta["shortcut"]),
                       tuple(meta["input_shape"]), int(meta["num_classes"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"weights header lacks a valid architecture field ({exc})") from exc

    def to_meta(self) -> dict:
        return {"architecture": "cifar_resnet", "depth": self.depth, "widths": list(self.widths),
                "shortcut": self.shortcut, "input_shape": list(self.input_shape), "num_classes": self.num_classes}

    def array_shapes(self) -> dict[str, tuple[int, ...]]:
        """Every array the architecture needs, with its shape."""
        shapes: dict[str, tuple[int, ...]] = {}

        def conv_bn(prefix: str, bn: str, out_c: int, in_c: int, k: int) -> None:
            shapes[f"{prefix}.weight"] = (out_c, in_c, k, k)
            for field in ("gamma", "beta", "mean", "var"):
                shapes[f"{bn}.{field}"] = (out_c,)

        conv_bn("stem.conv", "stem.bn", self.widths[0], self.input_shape[0], 3)
        in_c = self.widths[0]
        for s, width in enumerate(self.widths, start=1):
            for b in range(self.blocks_per_stage):
                block = f"stage{s}.block{b}"
                conv_bn(f"{block}.conv1", f"{block}.bn1", width, in_c, 3)
                conv_bn(f"{block}.conv2", f"{block}.bn2", width, width, 3)
                if self.shortcut == "B" and (in_c != width or (b == 0 and s > 1)):
                    conv_bn(f"{block}.shortcut.conv", f"{block}.shortcut.bn", width, in_c, 1)
                in_c = width
        shapes["head.linear.weight"] = (self.num_classes, in_c)
        shapes["head.linear.bias"] = (self.num_classes,)
        return shapes


def build_cifar_resnet(weights: WeightsFile, fold_normalization: bool = False) -> Graph:
    """The graph of the network in `weights`: Input -> Normalize -> stem -> stages -> pool -> linear.

    The input takes pixels in [0, 1]; the preprocessing normalisation is a graph node (fold it with
    fold_input_normalization for the encrypted circuit).
    """
    spec = ResNetSpec.from_meta(weights.meta)
    shapes = spec.array_shapes()
    eps = float(weights.meta.get("bn_eps", 1e-5))
    unknown = sorted(set(weights.arrays) - set(shapes))
    if unknown:
        raise WeightsError(f"{weights.path}: arrays {unknown[:5]} do not belong to {spec}")
    nodes: list[Node] = [Input("input", (), Shape(*spec.input_shape))]
    prev = "input"
    prep = weights.meta.get("preprocessing", {})
    if "mean" in prep:
        channels = spec.input_shape[0]
        mean, std = np.asarray(prep["mean"], float), np.asarray(prep["std"], float)
        if mean.shape != (channels,) or std.shape != (channels,):
            raise WeightsError(f"{weights.path}: preprocessing mean/std need {channels} entries")
        nodes.append(Normalize("normalize", (prev,), mean, std))
        prev = "normalize"

    def conv_bn(prefix: str, bn: str, source: str, stride: int, padding: int) -> str:
        weight = weights.array(f"{prefix}.weight", shapes[f"{prefix}.weight"])
        nodes.append(Conv2d(prefix, (source,), weight, None, stride, padding))
        channel = shapes[f"{bn}.gamma"]
        nodes.append(BatchNorm(bn, (prefix,), *(weights.array(f"{bn}.{f}", channel)
                                                for f in ("gamma", "beta", "mean", "var")), eps))
        return bn

    prev = conv_bn("stem.conv", "stem.bn", prev, 1, 1)
    nodes.append(ReLU("stem.relu", (prev,)))
    prev, in_c = "stem.relu", spec.widths[0]
    for s, width in enumerate(spec.widths, start=1):
        for b in range(spec.blocks_per_stage):
            block = f"stage{s}.block{b}"
            stride = 2 if (b == 0 and s > 1) else 1
            branch = conv_bn(f"{block}.conv1", f"{block}.bn1", prev, stride, 1)
            nodes.append(ReLU(f"{block}.relu1", (branch,)))
            branch = conv_bn(f"{block}.conv2", f"{block}.bn2", f"{block}.relu1", 1, 1)
            shortcut = prev
            if stride != 1 or in_c != width:
                if spec.shortcut == "A":
                    nodes.append(ShortcutA(f"{block}.shortcut", (prev,), width, stride))
                    shortcut = f"{block}.shortcut"
                else:
                    shortcut = conv_bn(f"{block}.shortcut.conv", f"{block}.shortcut.bn", prev, stride, 0)
            nodes.append(Add(f"{block}.add", (branch, shortcut)))
            nodes.append(ReLU(f"{block}.relu2", (f"{block}.add",)))
            prev, in_c = f"{block}.relu2", width
    nodes.append(AvgPool("head.pool", (prev,)))
    nodes.append(Linear("head.linear", ("head.pool",),
                        weights.array("head.linear.weight", shapes["head.linear.weight"]),
                        weights.array("head.linear.bias", shapes["head.linear.bias"])))
    name = f"resnet{spec.depth}" + ("" if spec.shortcut == "A" else "-B")
    graph = Graph(nodes, name)
    if fold_normalization:
        from resnet_fhe.ir.passes import fold_input_normalization

        graph = fold_input_normalization(graph)
    return graph


def random_resnet_weights(spec: ResNetSpec, seed: int = 0, mean: tuple[float, ...] | None = None,
                          std: tuple[float, ...] | None = None) -> WeightsFile:
    """He-initialised weights with non-trivial BatchNorm statistics, for tests of any architecture."""
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for key, shape in spec.array_shapes().items():
        if key.endswith(".weight") and len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            arrays[key] = rng.normal(0, np.sqrt(2 / fan_in), shape)
        elif key.endswith(".gamma"):
            arrays[key] = rng.uniform(0.5, 1.5, shape)
        elif key.endswith(".var"):
            arrays[key] = rng.uniform(0.5, 2.0, shape)
        elif key == "head.linear.weight":
            arrays[key] = rng.normal(0, 1 / np.sqrt(shape[1]), shape)
        else:
            arrays[key] = rng.normal(0, 0.2, shape)
    channels = spec.input_shape[0]
    meta = {**spec.to_meta(), "bn_eps": 1e-5, "source": {"kind": "random", "seed": seed},
            "preprocessing": {"pixel_scale": 255,
                              "mean": list(mean or [0.5] * channels), "std": list(std or [0.25] * channels)}}
    return WeightsFile(arrays, meta, f"<random {spec.depth}-layer seed {seed}>")
