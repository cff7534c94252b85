"""Model families, the weights format, and importers from other frameworks."""

from resnet_fhe.ir.graph import Graph
from resnet_fhe.models.cifar_resnet import ResNetSpec, build_cifar_resnet, random_resnet_weights
from resnet_fhe.models.weights_file import WeightsFile, load_weights


def load_model(model: str, fold: bool = True) -> Graph:
    """The graph for a model name in weights/ (e.g. 'resnet20') or a path to a weights file.

    With `fold`, BatchNorm and the input normalisation are folded into the convolutions, which is the form
    the compiler consumes and the client's raw-pixel input expects.
    """
    from resnet_fhe.ir.passes import fold_batchnorm, fold_input_normalization

    graph = build_cifar_resnet(load_weights(model))
    return fold_input_normalization(fold_batchnorm(graph)) if fold else graph


__all__ = ["ResNetSpec", "WeightsFile", "build_cifar_resnet", "load_model", "load_weights", "random_resnet_weights"]
