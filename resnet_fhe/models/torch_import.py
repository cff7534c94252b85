"""Importing a trained torch model (optional: needs the `torch` extra).

Supported: CIFAR ResNets laid out like akamaster/pytorch_resnet_cifar10 (conv1, bn1, layer1..3 of
BasicBlocks with conv1/bn1/conv2/bn2 and an optional `shortcut` Sequential(conv, bn), linear): the
module's state dict is converted to the project's weights and built into the IR, so a user's retrained
model goes through exactly the path the shipped weights take. Arbitrary module graphs are not traced.
"""

from __future__ import annotations

from typing import Any

from resnet_fhe.ir.graph import Graph
from resnet_fhe.models.cifar_resnet import build_cifar_resnet
from resnet_fhe.models.convert import IMAGENET_MEAN, IMAGENET_STD, convert_state_dict
from resnet_fhe.models.weights_file import WeightsFile


def weights_from_torch(module: Any, input_hw: tuple[int, int] = (32, 32),
                       mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> WeightsFile:
    state = {key: value.detach().cpu().numpy() for key, value in module.state_dict().items()}
    return convert_state_dict(state, {"kind": "torch module", "class": type(module).__name__}, input_hw, mean, std)


def graph_from_torch(module: Any, input_hw: tuple[int, int] = (32, 32),
                     mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> Graph:
    """The IR of a torch CIFAR ResNet, with its input normalisation as a graph node."""
    return build_cifar_resnet(weights_from_torch(module, input_hw, mean, std))
