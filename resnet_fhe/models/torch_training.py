"""The mini-batch loop and the weights-writing tail the training scripts in bench/ share (torch extra;
nothing in the engine imports this module)."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def train_epochs(torch, model, optimizer, schedule, epochs: int, batch: int, generator,
                 epoch_data: Callable[[int], tuple[Any, Any]], loss_of: Callable[[Any, Any], Any],
                 transform: Callable[[Any], Any] | None = None, label: str = ""):
    """Trains `model` for `epochs` and returns it in eval mode. Each epoch takes its (inputs, targets)
    tensors from `epoch_data(epoch)` (so an epoch can bring a new view of the data: new encryption keys),
    visits them in an order drawn from `generator`, passes each batch's inputs through `transform`
    (augmentation, normalisation) and steps `optimizer` and `schedule` on `loss_of(outputs, targets)`;
    the mean loss and time of each epoch go to stderr."""
    for epoch in range(epochs):
        started, total = time.time(), 0.0
        inputs, targets = epoch_data(epoch)
        model.train()
        order = torch.randperm(len(inputs), generator=generator)
        for first in range(0, len(order), batch):
            index = order[first:first + batch]
            images = inputs[index] if transform is None else transform(inputs[index])
            loss = loss_of(model(images), targets[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(index)
        print(f"{label}epoch {epoch + 1}/{epochs}: loss {total / len(order):.4f} ({time.time() - started:.1f} s)",
              file=sys.stderr, flush=True)
    return model.eval()


def write_trained(module, input_shape: tuple[int, int, int], recipe: dict, out: Path | None, **trace) -> None:
    """Prints the training recipe (with its measured accuracy) as JSON on stdout and, with `out`, writes
    the traced module there in the project's weights format, the recipe in its provenance. `trace`:
    weights_from_module's mean and std."""
    from resnet_fhe.models.torch_import import weights_from_module

    if out is not None:
        weights = weights_from_module(module, input_shape, name=Path(out).stem,
                                      provenance={"dataset": recipe["dataset"], "trained": recipe}, **trace)
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        weights.save(out)
    print(json.dumps(recipe, indent=1))


def load_trained(torch, module, path: Path) -> None:
    """Loads into `module` the weights write_trained wrote from a module of the same structure: the tracer
    names each layer by its module path with '_' for '.' (a leading '_'), and batch normalisation's
    weight, bias and running statistics gamma, beta, mean and var. Raises ValueError naming what does not
    match, so a continued training run never starts from a partly loaded model."""
    import numpy as np

    from resnet_fhe.models.convert import TORCH_BN_FIELDS
    from resnet_fhe.models.weights_file import load_weights

    names = {ours: theirs for theirs, ours in TORCH_BN_FIELDS.items()}
    state = {}
    for key, value in load_weights(path).arrays.items():
        layer, parameter = key.rsplit(".", 1)
        state[f"{layer.lstrip('_').replace('_', '.')}.{names.get(parameter, parameter)}"] = \
            torch.tensor(np.asarray(value, np.float32))
    expected = module.state_dict()
    unknown = sorted(set(state) - set(expected))
    missing = sorted(k for k in set(expected) - set(state) if not k.endswith("num_batches_tracked"))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if unknown or missing or wrong:
        raise ValueError(f"{path} does not fit this model: unknown {unknown[:3]}, missing {missing[:3]}, "
                         f"other shapes {wrong[:3]}")
    module.load_state_dict(state, strict=False)
