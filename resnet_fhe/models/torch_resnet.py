"""The CIFAR ResNet as torch modules (as in akamaster/pytorch_resnet_cifar10), written independently of the
numpy forward: the tests check one against the other, and bench/train_cifar_pixel.py fine-tunes the shipped
weights with it. Needs the torch extra; nothing in the engine imports it."""

import numpy as np
import torch
from torch import nn
from torch.nn import functional

from resnet_fhe.models.convert import TORCH_BN_FIELDS


class _Block(nn.Module):
    def __init__(self, in_c, out_c, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(in_c, out_c, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_c)
        self.conv2 = nn.Conv2d(out_c, out_c, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_c)
        self.pad = (out_c - in_c) // 2 if (stride != 1 or in_c != out_c) else None

    def forward(self, x):
        out = functional.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        short = x if self.pad is None else functional.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))
        return functional.relu(out + short)


class _ResNet(nn.Module):
    def __init__(self, blocks, widths):
        super().__init__()
        self.conv1 = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        layers, in_c = [], widths[0]
        for s, width in enumerate(widths):
            stage = []
            for b in range(blocks):
                stage.append(_Block(in_c, width, 2 if (b == 0 and s > 0) else 1))
                in_c = width
            layers.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3 = layers
        self.linear = nn.Linear(in_c, 10)

    def forward(self, x):
        out = functional.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return self.linear(functional.adaptive_avg_pool2d(out, 1).flatten(1))


def torch_resnet_from_weights(weights):
    meta = weights.meta
    model = _ResNet((meta["depth"] - 2) // 6, meta["widths"])
    names = {ours: theirs for theirs, ours in TORCH_BN_FIELDS.items()}
    state = {}
    for key, value in weights.arrays.items():
        torch_key = key.replace("stem.conv", "conv1").replace("stem.bn", "bn1").replace("head.linear", "linear")
        torch_key = torch_key.replace("stage", "layer").replace(".block", ".")
        head, last = torch_key.rsplit(".", 1)
        state[f"{head}.{names.get(last, last)}"] = torch.tensor(np.asarray(value, np.float32))
    model.load_state_dict(state, strict=False)
    return model
