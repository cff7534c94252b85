"""The network IR: a small typed graph of layers with shapes, and its numpy interpreter."""

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
    Shape,
    ShortcutA,
)
from resnet_fhe.ir.interpret import run_graph
from resnet_fhe.ir.passes import fold_batchnorm, fold_input_normalization

__all__ = [
    "Add", "AvgPool", "BatchNorm", "Conv2d", "Graph", "Input", "Linear", "Node", "Normalize", "PolynomialActivation",
    "ReLU", "Shape", "ShortcutA", "fold_batchnorm", "fold_input_normalization", "run_graph",
]
