"""Model families, the weights format, and importers from other frameworks."""

from resnet_fhe.ir.graph import Graph
from resnet_fhe.models.cifar_resnet import ResNetSpec, build_cifar_resnet, random_resnet_weights
from resnet_fhe.models.weights_file import WeightsFile, load_weights


def load_model(model: str, fold: bool = True) -> Graph:
    """The graph for a model name in weights/ (e.g. 'resnet20') or a path to a weights file.

    With `fold`, BatchNorm and the input normalisation are folded into the convolutions, and a strided
    first convolution reads an im2col input (ir/passes.py): the form the compiler consumes and the
    client's raw-pixel input expects.
    """
    from resnet_fhe.ir.passes import fold_batchnorm, fold_input_normalization, im2col_stem
    from resnet_fhe.models.graph_file import ARCHITECTURE, graph_from_weights

    weights = load_weights(model)
    if weights.meta.get("architecture") == ARCHITECTURE:
        graph = graph_from_weights(weights)
    else:
        graph = build_cifar_resnet(weights)
    return im2col_stem(fold_input_normalization(fold_batchnorm(graph))) if fold else graph


def model_dataset(model: str) -> str:
    """The data set a model was trained on, which calibration reads (its weights header's `dataset`;
    the CIFAR ResNets: cifar10)."""
    return str(load_weights(model).meta.get("dataset", "cifar10"))


__all__ = ["ResNetSpec", "WeightsFile", "build_cifar_resnet", "load_model", "load_weights", "model_dataset",
           "random_resnet_weights"]
