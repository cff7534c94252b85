"""Typed layer nodes and the graph that holds them.

Nodes are immutable dataclasses that name their inputs; a Graph keeps them in topological order and
infers every tensor's shape once, when it is built, so malformed networks fail early with a message
that names the node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from resnet_fhe.errors import ModelError
from resnet_fhe.im2col import im2col_shape


@dataclass(frozen=True)
class Shape:
    """A feature map (channels, height, width), or a vector when height == width == 1 after a pool."""

    channels: int
    height: int
    width: int

    @property
    def size(self) -> int:
        return self.channels * self.height * self.width

    def __str__(self) -> str:
        return f"{self.channels}x{self.height}x{self.width}"


@dataclass(frozen=True, eq=False)
class Node:
    name: str
    inputs: tuple[str, ...]

    def output_shape(self, shapes: list[Shape]) -> Shape:
        raise NotImplementedError


@dataclass(frozen=True, eq=False)
class Input(Node):
    """The image, of `shape`. With `im2col` = (kh, kw, stride, padding) the network reads it rearranged by
    resnet_fhe.im2col (each output position's receptive field as channels), which the client does
    before encrypting (passes.im2col_stem)."""

    shape: Shape
    im2col: tuple[int, int, int, int] | None = None

    def output_shape(self, shapes: list[Shape]) -> Shape:
        if self.im2col is None:
            return self.shape
        kh, kw, stride, padding = self.im2col
        _expect(self, min(kh, kw, stride) >= 1 and padding >= 0, f"im2col {self.im2col} is not (kh, kw, stride, pad)")
        return Shape(*im2col_shape(self.shape.channels, self.shape.height, self.shape.width, (kh, kw), stride,
                                   padding))


@dataclass(frozen=True, eq=False)
class Normalize(Node):
    """Per-channel (x - mean) / std, the preprocessing a model was trained with."""

    mean: np.ndarray
    std: np.ndarray

    def output_shape(self, shapes: list[Shape]) -> Shape:
        (shape,) = shapes
        _expect(self, self.mean.shape == (shape.channels,) and self.std.shape == (shape.channels,),
                f"mean and std need {shape.channels} entries")
        _expect(self, bool(np.all(self.std > 0)), "std must be positive")
        return shape


@dataclass(frozen=True, eq=False)
class Conv2d(Node):
    """Cross-correlation with zero padding, as in torch.

    `bias` is None, per channel (O,), or a full map (O, H_out, W_out): folding an input normalisation
    into a zero-padded convolution makes the bias position-dependent at the borders.
    """

    weight: np.ndarray  # (O, I, kh, kw)
    bias: np.ndarray | None = None
    stride: int = 1
    padding: int = 0

    def output_shape(self, shapes: list[Shape]) -> Shape:
        (shape,) = shapes
        _expect(self, self.weight.ndim == 4, f"weight must be (O, I, kh, kw), found {self.weight.shape}")
        out_c, in_c, kh, kw = self.weight.shape
        _expect(self, in_c == shape.channels, f"weight expects {in_c} input channels, input has {shape}")
        _expect(self, self.stride >= 1 and self.padding >= 0, f"stride {self.stride} and padding {self.padding} "
                "must be positive and non-negative")
        height = (shape.height + 2 * self.padding - kh) // self.stride + 1
        width = (shape.width + 2 * self.padding - kw) // self.stride + 1
        _expect(self, height > 0 and width > 0, f"kernel {kh}x{kw} does not fit input {shape}")
        if self.bias is not None:
            _expect(self, self.bias.shape in ((out_c,), (out_c, height, width)),
                    f"bias must be ({out_c},) or ({out_c}, {height}, {width}), found {self.bias.shape}")
        return Shape(out_c, height, width)


@dataclass(frozen=True, eq=False)
class BatchNorm(Node):
    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5

    def output_shape(self, shapes: list[Shape]) -> Shape:
        (shape,) = shapes
        for label in ("gamma", "beta", "mean", "var"):
            _expect(self, getattr(self, label).shape == (shape.channels,),
                    f"{label} needs {shape.channels} entries, found {getattr(self, label).shape}")
        _expect(self, bool(np.all(self.var + self.eps > 0)), "var + eps must be positive")
        return shape

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """The affine map y = scale * x + shift that this layer computes in eval mode."""
        scale = self.gamma / np.sqrt(self.var + self.eps)
        return scale, self.beta - self.mean * scale


@dataclass(frozen=True, eq=False)
class ReLU(Node):
    def output_shape(self, shapes: list[Shape]) -> Shape:
        return shapes[0]


@dataclass(frozen=True, eq=False)
class PolynomialActivation(Node):
    """sum_k coefficients[k] x^k elementwise (power basis): the square of TenSEAL's and CryptonDL's CNNs,
    (0, 0, 1), or any trained polynomial activation. Unlike a ReLU it is evaluated exactly under CKKS."""

    coefficients: tuple[float, ...]

    def output_shape(self, shapes: list[Shape]) -> Shape:
        _expect(self, len(self.coefficients) >= 2 and self.coefficients[-1] != 0,
                f"coefficients {self.coefficients} must end with a non-zero term of degree 1 or more")
        _expect(self, all(np.isfinite(self.coefficients)), "coefficients must be finite")
        return shapes[0]

    @property
    def degree(self) -> int:
        return len(self.coefficients) - 1

    @property
    def monomial(self) -> bool:
        """c x^k with c > 0: positively homogeneous like ReLU, so per-channel scales pass through it."""
        return self.coefficients[-1] > 0 and not any(self.coefficients[:-1])


@dataclass(frozen=True, eq=False)
class Add(Node):
    def output_shape(self, shapes: list[Shape]) -> Shape:
        _expect(self, len(shapes) == 2 and shapes[0] == shapes[1], f"cannot add {shapes[0]} and {shapes[-1]}")
        return shapes[0]


@dataclass(frozen=True, eq=False)
class ShortcutA(Node):
    """ResNet option-A shortcut: x[:, ::stride, ::stride], zero-padded to `out_channels` (half each side)."""

    out_channels: int
    stride: int = 2

    def output_shape(self, shapes: list[Shape]) -> Shape:
        (shape,) = shapes
        extra = self.out_channels - shape.channels
        _expect(self, extra >= 0 and extra % 2 == 0, f"cannot pad {shape.channels} to {self.out_channels} channels")
        _expect(self, self.stride in (1, 2), f"stride {self.stride} is unsupported (1 or 2)")
        return Shape(self.out_channels, -(-shape.height // self.stride), -(-shape.width // self.stride))


@dataclass(frozen=True, eq=False)
class AvgPool(Node):
    """Global average pool over the whole feature map."""

    def output_shape(self, shapes: list[Shape]) -> Shape:
        return Shape(shapes[0].channels, 1, 1)


@dataclass(frozen=True, eq=False)
class Linear(Node):
    weight: np.ndarray  # (out, in)
    bias: np.ndarray | None = None

    def output_shape(self, shapes: list[Shape]) -> Shape:
        (shape,) = shapes
        _expect(self, self.weight.ndim == 2 and self.weight.shape[1] == shape.size,
                f"weight {self.weight.shape} does not take an input of {shape.size} values")
        if self.bias is not None:
            _expect(self, self.bias.shape == (self.weight.shape[0],), f"bias must be ({self.weight.shape[0]},)")
        return Shape(self.weight.shape[0], 1, 1)


@dataclass
class Graph:
    """Nodes in topological order; the last node is the output."""

    nodes: list[Node]
    name: str = "network"
    shapes: dict[str, Shape] = field(init=False)

    def __post_init__(self) -> None:
        self.shapes = {}
        if not self.nodes or not isinstance(self.nodes[0], Input):
            raise ModelError(f"{self.name}: the first node must be an Input")
        for node in self.nodes:
            if node.name in self.shapes:
                raise ModelError(f"{self.name}: node name {node.name!r} is used twice")
            missing = [name for name in node.inputs if name not in self.shapes]
            if missing:
                raise ModelError(f"{self.name}: node {node.name!r} reads {missing}, which no earlier node defines")
            self.shapes[node.name] = node.output_shape([self.shapes[name] for name in node.inputs])

    @property
    def input(self) -> Input:
        return self.nodes[0]  # type: ignore[return-value]

    @property
    def output(self) -> Node:
        return self.nodes[-1]

    def node(self, name: str) -> Node:
        for node in self.nodes:
            if node.name == name:
                return node
        raise ModelError(f"{self.name}: no node named {name!r}")

    def consumers(self, name: str) -> list[Node]:
        return [node for node in self.nodes if name in node.inputs]

    def replace(self, nodes: list[Node]) -> Graph:
        return Graph(nodes, self.name)


def _expect(node: Node, condition: bool, message: str) -> None:
    if not condition:
        raise ModelError(f"{type(node).__name__} {node.name!r}: {message}")
