"""Other network shapes for NEU-CLS, on a validation split of the training images (issue 14; torch extra):
the figures the README quotes when it says why the shipped chunk CNN (bench/train_neu.py) has its shape
and augmentation.

Each shape trains on the fixed split's training images minus 240 held out (train_neu.split), Adam,
one-cycle learning rate, label smoothing 0.1, mirrored copies (with `--jitter` also train_neu's contrast and
brightness jitter), seed 0, and reports its accuracy on the 240:
- `flat`: the paper's counts read literally, one 7 x 7 kernel at stride 7 and its 16 x 16 map flattened
  into the 256 -> 128 layer (square activations);
- `pool`: the paper's shape as train_neu.chunk_cnn reads it, without its quarter-turn copies;
- `square-deep`: three square-activated convolutions on the 16 x 16 map;
- `relu-avg`: the same with ReLU and an average pool (CKKS-computable with ReLU polynomials);
- `relu-strided`: ReLU, a stride-2 convolution instead of the pool, 32 kernels first;
- `relu-patch`: the shipped shape (train_neu.patch_cnn), a 4 x 4 stride-4 first layer instead of 7 x 7;
- `relu-max`: a ReLU network with max pooling and stride-1 first layer (not computable under CKKS as is).

    PYTHONPATH=. .venv-torch/bin/python bench/neu_shapes.py > bench/results/privacy-2026-12-02/neu-shapes.json
    PYTHONPATH=. .venv-torch/bin/python bench/neu_shapes.py --shape relu-patch --jitter --threads 1 \
        > bench/results/privacy-2026-12-02-b/neu-shapes-relu-patch-jitter.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def shapes(torch, name: str):
    nn = torch.nn

    class Square(nn.Module):
        def forward(self, x):
            return x * x

    def block(cin, cout, act, stride=1):
        return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout), act()]

    stem = [nn.Conv2d(1, 16, 7, stride=7), nn.BatchNorm2d(16)]
    head = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return {
        "flat": lambda: nn.Sequential(nn.Conv2d(1, 1, 7, stride=7), nn.BatchNorm2d(1), Square(), nn.Flatten(),
                                      nn.Linear(256, 128), Square(), nn.Linear(128, 6)),
        "pool": lambda: nn.Sequential(*stem, Square(), nn.AvgPool2d(4), nn.Flatten(), nn.Linear(256, 128), Square(),
                                      nn.Linear(128, 6)),
        "square-deep": lambda: nn.Sequential(*stem, Square(), *block(16, 32, Square), nn.AvgPool2d(2),
                                             *block(32, 64, Square), *head, nn.Linear(64, 6)),
        "relu-avg": lambda: nn.Sequential(*stem, nn.ReLU(), *block(16, 32, nn.ReLU), nn.AvgPool2d(2),
                                          *block(32, 64, nn.ReLU), *head, nn.Linear(64, 6)),
        "relu-strided": lambda: nn.Sequential(nn.Conv2d(1, 32, 7, stride=7), nn.BatchNorm2d(32), nn.ReLU(),
                                              *block(32, 64, nn.ReLU), *block(64, 128, nn.ReLU, 2),
                                              *block(128, 128, nn.ReLU), *head, nn.Linear(128, 6)),
        "relu-patch": lambda: _sibling("train_neu").patch_cnn(torch),
        "relu-max": lambda: nn.Sequential(nn.Conv2d(1, 32, 5, padding=2), nn.BatchNorm2d(32), nn.ReLU(),
                                          nn.MaxPool2d(4), *block(32, 64, nn.ReLU), nn.MaxPool2d(4),
                                          *block(64, 128, nn.ReLU), *head, nn.Linear(128, 6)),
    }[name]()


NAMES = ("flat", "pool", "square-deep", "relu-avg", "relu-strided", "relu-patch", "relu-max")


def validate(name: str, epochs: int, seed: int, jitter: bool = False) -> tuple[float, list[list[int]]]:
    """The shape's validation accuracy and its confusion matrix (rows: true class, columns: predicted)."""
    import torch

    from resnet_fhe.data import load_dataset
    from resnet_fhe.models.torch_training import train_epochs

    torch.manual_seed(seed)
    train_neu = _sibling("train_neu")
    x_train, y_train, x_eval, y_eval = train_neu.split(load_dataset("neu-cls", "train"), 240)
    x_train, y_train = torch.from_numpy(x_train.astype(np.float32) / 255.0), torch.from_numpy(y_train)
    model = shapes(torch, name)
    batch = 32
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3,
                                                   total_steps=epochs * (-(-len(x_train) // batch)))
    generator = torch.Generator().manual_seed(seed)

    def augmented(images):
        return train_neu.augment(torch, images, generator, jitter=jitter)

    train_epochs(torch, model, optimizer, schedule, epochs, batch, generator, lambda epoch: (x_train, y_train),
                 torch.nn.CrossEntropyLoss(label_smoothing=0.1), augmented, label=f"{name} ")
    with torch.no_grad():
        predicted = model(torch.from_numpy(x_eval.astype(np.float32) / 255.0)).argmax(1).numpy()
    accuracy = float(np.mean(predicted == y_eval))
    print(f"{name}: validation accuracy {accuracy:.4f}", file=sys.stderr, flush=True)
    confusion = np.zeros((6, 6), int)
    np.add.at(confusion, (y_eval, predicted), 1)
    return accuracy, confusion.tolist()


def _sibling(name: str):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=NAMES, nargs="+", default=list(NAMES))
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jitter", action="store_true",
                        help="also a random contrast and brightness per image (train_neu.augment)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    if args.epochs < 1:
        parser.error("--epochs must be positive")
    import torch

    from resnet_fhe.data.neu import NEU_CLASSES

    torch.set_num_threads(args.threads)
    results = {name: validate(name, args.epochs, args.seed, args.jitter) for name in args.shape}
    print(json.dumps({"validation_images": 240, "epochs": args.epochs, "seed": args.seed,
                      "jitter": args.jitter, "torch": torch.__version__, "classes": NEU_CLASSES,
                      "validation_accuracy": {name: accuracy for name, (accuracy, _) in results.items()},
                      "validation_confusion": {name: confusion for name, (_, confusion) in results.items()}},
                     indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
