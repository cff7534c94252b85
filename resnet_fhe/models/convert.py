"""Converts torch-style CIFAR ResNet state dicts (akamaster/pytorch_resnet_cifar10 naming) to our format."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from resnet_fhe.errors import WeightsError
from resnet_fhe.models.cifar_resnet import ResNetSpec
from resnet_fhe.models.weights_file import WeightsFile

# The preprocessing used to train the akamaster checkpoints (its trainer.py).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# torch BatchNorm2d state names -> ours (the weights format's gamma, beta, mean, var).
TORCH_BN_FIELDS = {"weight": "gamma", "bias": "beta", "running_mean": "mean", "running_var": "var"}


def rename_torch_key(key: str) -> str | None:
    """Our name for a torch state-dict key, or None for bookkeeping entries (num_batches_tracked)."""
    key = key.removeprefix("module.")
    if key.endswith("num_batches_tracked"):
        return None
    rules = [
        (r"^conv1\.weight$", "stem.conv.weight"),
        (r"^bn1\.(\w+)$", "stem.bn.{0}"),
        (r"^layer(\d+)\.(\d+)\.conv(\d)\.weight$", "stage{0}.block{1}.conv{2}.weight"),
        (r"^layer(\d+)\.(\d+)\.bn(\d)\.(\w+)$", "stage{0}.block{1}.bn{2}.{3}"),
        (r"^layer(\d+)\.(\d+)\.shortcut\.0\.weight$", "stage{0}.block{1}.shortcut.conv.weight"),
        (r"^layer(\d+)\.(\d+)\.shortcut\.1\.(\w+)$", "stage{0}.block{1}.shortcut.bn.{2}"),
        (r"^linear\.(weight|bias)$", "head.linear.{0}"),
    ]
    for pattern, template in rules:
        match = re.match(pattern, key)
        if match:
            groups = list(match.groups())
            if ".bn" in template or template.startswith("stem.bn"):
                if groups[-1] not in TORCH_BN_FIELDS:
                    raise WeightsError(f"unexpected BatchNorm entry {key!r}")
                groups[-1] = TORCH_BN_FIELDS[groups[-1]]
            return template.format(*groups)
    raise WeightsError(f"state-dict key {key!r} is not part of a CIFAR ResNet")


def infer_spec(arrays: Mapping[str, np.ndarray]) -> ResNetSpec:
    """Depth, widths, shortcut option and input channels read off the arrays themselves."""
    stages = sorted({int(m.group(1)) for k in arrays if (m := re.match(r"stage(\d+)\.", k))})
    if not stages or "stem.conv.weight" not in arrays or "head.linear.weight" not in arrays:
        raise WeightsError("the state dict lacks the stem, the stages or the linear head of a CIFAR ResNet")
    blocks = len({k.split(".")[1] for k in arrays if k.startswith("stage1.")})
    widths = tuple(int(arrays[f"stage{s}.block0.conv1.weight"].shape[0]) for s in stages)
    shortcut = "B" if any(".shortcut." in k for k in arrays) else "A"
    in_c = int(arrays["stem.conv.weight"].shape[1])
    return ResNetSpec(6 * blocks + 2, widths, shortcut, (in_c, 32, 32), int(arrays["head.linear.weight"].shape[0]))


def convert_state_dict(state_dict: Mapping[str, Any], source: dict[str, Any],
                       input_hw: tuple[int, int] = (32, 32),
                       mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD) -> WeightsFile:
    arrays = {}
    for key, value in state_dict.items():
        name = rename_torch_key(key)
        if name is not None:
            arrays[name] = np.asarray(value, dtype=np.float32)
    spec = infer_spec(arrays)
    spec = ResNetSpec(spec.depth, spec.widths, spec.shortcut, (spec.input_shape[0], *input_hw), spec.num_classes)
    expected = spec.array_shapes()
    problems = [f"{k}: missing" for k in expected if k not in arrays]
    problems += [f"{k}: {arrays[k].shape} != {s}" for k, s in expected.items() if k in arrays and arrays[k].shape != s]
    problems += [f"{k}: unexpected" for k in arrays if k not in expected]
    if problems:
        raise WeightsError("state dict does not match a CIFAR ResNet: " + "; ".join(problems[:6]))
    meta = {**spec.to_meta(), "bn_eps": 1e-5, "source": source,
            "preprocessing": {"pixel_scale": 255, "mean": list(mean), "std": list(std)},
            "classes": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]}
    return WeightsFile(arrays, meta)


def read_state_dict(path: Path) -> dict[str, Any]:
    """Arrays from an .npz state dict, or from a torch checkpoint (.th/.pt/.pth, needs torch)."""
    if path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    try:
        import torch
    except ImportError as exc:
        raise WeightsError(f"{path} is a torch checkpoint: install the 'torch' extra to read it") from exc
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("state_dict", checkpoint) if isinstance(checkpoint, dict) else checkpoint
    return {k: v.detach().cpu().numpy() for k, v in state.items()}
