"""Trains a chunk-based CNN for NEU-CLS (issue 14; torch extra, CPU, minutes) and writes it in the project's
weights format through the torch tracer.

Two shapes (`--shape`):
- `relu` (shipped as weights/chunk-cnn-neu.npz): a 4 x 4 convolution at stride 4, so no window straddles
  two of the paper's 28 x 28 chunks, then four 3 x 3 convolutions (two at stride 2), ReLU activations,
  a global average and 128 -> 6 (bench/neu_shapes.py `relu-patch`). Under CKKS its ReLUs are polynomials
  with bootstrapping (preset default-128), as in the ResNet20.
- `paper`: Jia et al.'s network as their section "Network Design" gives it (`../shared/seeds/` file 003):
  a 7 x 7 convolution, an activation, a fully connected layer of 256 inputs and 128 outputs, an
  activation, and 128 -> 6, with square activations under CKKS, "features combined" over the chunks.
  Where it is silent, the choices here (chunk_cnn): 16 kernels at stride 7, each kernel's squared response
  averaged over each chunk: 16 chunks x 16 kernels = the 256 inputs. A batch normalisation after the
  convolution (folded into it on export) keeps the squares in range while training. Cheap under CKKS (no
  bootstrapping, preset small-128) but less accurate: 84.17 % on the test images against 97.78 %.
Other shapes and augmentations, on a validation split of the training images: bench/neu_shapes.py.

Adam, one-cycle learning rate, cross-entropy with label smoothing, images as Jia et al. prepare them
(resnet_fhe.data.neu: 112 x 112, equalised, pixels in [0, 1]); augmentation: mirrored copies and a random
contrast and brightness per image (`jitter`; on the validation split it gained 1.25 points, most errors
staying inclusions read as pitted surfaces).

`--server-view` trains and tests on what an honest-but-curious server of the selective scheme sees: the
chunks the Sobel threshold leaves in the clear, the encrypted ones zeroed; its test accuracy measures
what the plaintext chunks reveal about the class.

Training images only (the fixed split's 1,440); `--holdout N` keeps N of them (the last N per class /
6, by file number) out to choose settings on; the 360 test images are read once, at the end.

    PYTHONPATH=. .venv-torch/bin/python bench/train_neu.py --threads 1 --out weights/chunk-cnn-neu.npz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


class _Square:
    """x * x as a torch module (made on first use: torch is imported only inside functions)."""

    @staticmethod
    def module(torch):
        class Square(torch.nn.Module):
            def forward(self, x):
                return x * x

        return Square()


def chunk_cnn(torch, channels: int = 16, hidden: int = 128, classes: int = 6):
    """The paper's network: per 28 x 28 chunk a 7 x 7 convolution at stride 7 (`channels` maps of 4 x 4),
    square, each map averaged over the chunk (the chunk's `channels` features; 16 chunks x 16 = the
    paper's 256 inputs), fully connected 256 -> 128, square, 128 -> 6."""
    nn = torch.nn
    return nn.Sequential(nn.Conv2d(1, channels, 7, stride=7), nn.BatchNorm2d(channels), _Square.module(torch),
                         nn.AvgPool2d(4), nn.Flatten(), nn.Linear(channels * 16, hidden), _Square.module(torch),
                         nn.Linear(hidden, classes))


def patch_cnn(torch, classes: int = 6):
    """The shipped shape: 4 x 4 convolution at stride 4 (112 -> 28, inside the chunks), 3 x 3 convolutions
    32 -> 32, 32 -> 64 at stride 2, 64 -> 64, 64 -> 128 at stride 2, batch normalisation and ReLU after each,
    a global average, 128 -> classes."""
    nn = torch.nn

    def block(cin, cout, stride=1):
        return [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout), nn.ReLU()]

    return nn.Sequential(nn.Conv2d(1, 32, 4, stride=4), nn.BatchNorm2d(32), nn.ReLU(), *block(32, 32),
                         *block(32, 64, 2), *block(64, 64), *block(64, 128, 2), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(128, classes))


def augment(torch, images, generator, turns: bool = False, jitter: bool = True):
    """Mirrored copies (a defect's class does not depend on its side), with `turns` quarter turns, with
    `jitter` a random contrast gain in [0.6, 1.4] about each image's mean and a brightness shift in
    [-0.2, 0.2], clipped to [0, 1]."""
    for axis in (2, 3):
        flip = torch.rand(len(images), generator=generator) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(axis), images)
    if turns and torch.rand(1, generator=generator) < 0.5:
        images = images.transpose(2, 3)
    if jitter:
        gain = 0.6 + 0.8 * torch.rand(len(images), 1, 1, 1, generator=generator)
        shift = 0.4 * torch.rand(len(images), 1, 1, 1, generator=generator) - 0.2
        mean = images.mean((2, 3), keepdim=True)
        images = ((images - mean) * gain + mean + shift).clamp(0, 1)
    return images


def exportable(torch, model):
    """The same function with the per-chunk average folded into the first fully connected layer (4 x 4
    pooling then 256 -> 128 is one 4,096 -> 128 layer whose weights repeat over each chunk's 16
    positions), in the layers the tracer reads."""
    conv, norm, _, _, _, fc1, _, fc2 = model
    channels, hidden = conv.out_channels, fc1.out_features
    wide = torch.nn.Linear(channels * 256, hidden)
    with torch.no_grad():
        weight = fc1.weight.reshape(hidden, channels, 4, 4) / 16
        wide.weight.copy_(weight.repeat_interleave(4, 2).repeat_interleave(4, 3).reshape(hidden, -1))
        wide.bias.copy_(fc1.bias)
    return torch.nn.Sequential(conv, norm, _Square.module(torch), torch.nn.Flatten(), wide, _Square.module(torch),
                               fc2).eval()


def server_view(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 1, 112, 112) images with the chunks the paper's threshold encrypts set to zero."""
    from resnet_fhe.imagecrypt.chunks import chunk_pixel_mask

    return np.stack([image * ~chunk_pixel_mask(image[0])[None] for image in images])


def split(data, holdout: int) -> tuple:
    """(train images, train labels, held-out images, held-out labels): the last holdout/6 of each class."""
    per_class = holdout // 6
    held = np.zeros(len(data.labels), bool)
    for label in range(6):
        members = np.flatnonzero(data.labels == label)
        held[members[len(members) - per_class:]] = True
    return data.images[~held], data.labels[~held], data.images[held], data.labels[held]


def train(shape: str, epochs: int, seed: int, threads: int, channels: int, holdout: int, curious: bool,
          data_dir) -> tuple:
    import torch

    from resnet_fhe.data import load_dataset
    from resnet_fhe.models.torch_training import train_epochs

    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    x_train, y_train, x_eval, y_eval = split(load_dataset("neu-cls", "train", data_dir), holdout)
    if not holdout:
        test = load_dataset("neu-cls", "test", data_dir)
        x_eval, y_eval = test.images, test.labels
    if curious:
        x_train, x_eval = server_view(x_train), server_view(x_eval)
    x_train = torch.from_numpy(x_train.astype(np.float32) / 255.0)
    y_train = torch.from_numpy(y_train)
    model = chunk_cnn(torch, channels) if shape == "paper" else patch_cnn(torch)
    batch = 32
    steps = epochs * (-(-len(x_train) // batch))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=steps)
    generator = torch.Generator().manual_seed(seed)

    paper = shape == "paper"  # as it was trained: quarter turns, no jitter

    def augmented(images):
        return augment(torch, images, generator, turns=paper, jitter=not paper)

    train_epochs(torch, model, optimizer, schedule, epochs, batch, generator, lambda epoch: (x_train, y_train),
                 torch.nn.CrossEntropyLoss(label_smoothing=0.1), augmented)
    with torch.no_grad():
        predicted = model(torch.from_numpy(x_eval.astype(np.float32) / 255.0)).argmax(1).numpy()
    return model, float(np.mean(predicted == y_eval))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", choices=("relu", "paper"), default="relu",
                        help="the shipped ReLU network or the paper's square one (see above)")
    parser.add_argument("--channels", type=int, default=16,
                        help="--shape paper: convolution kernels (16: the paper's 256 inputs, 16 per chunk)")
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--holdout", type=int, default=0,
                        help="keep N training images (a multiple of 6) out and report accuracy on them")
    parser.add_argument("--server-view", action="store_true",
                        help="train and test on the plaintext chunks only (what the selective scheme reveals)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data-dir", type=Path, default=None, help="folder holding neu_cls.npz")
    parser.add_argument("--out", type=Path, default=None, help="weights file to write (.npz)")
    args = parser.parse_args(argv)
    from resnet_fhe.data import dataset_files

    if not dataset_files("neu-cls", data_dir=args.data_dir):
        parser.error("neu_cls.npz not found (--data-dir)")
    if args.epochs < 1 or args.channels < 1 or args.holdout % 6 or not 0 <= args.holdout < 1440:
        parser.error("--epochs and --channels must be positive, --holdout a multiple of 6 below 1,440")

    import torch

    from resnet_fhe.models.torch_training import write_trained

    model, accuracy = train(args.shape, args.epochs, args.seed, args.threads, args.channels, args.holdout,
                            args.server_view, args.data_dir)
    recipe = {"script": "bench/train_neu.py", "dataset": "neu-cls", "shape": args.shape,
              **({"channels": args.channels} if args.shape == "paper" else {}),
              "epochs": args.epochs, "seed": args.seed, "holdout": args.holdout, "server_view": args.server_view,
              "torch": torch.__version__,
              ("validation_accuracy_torch" if args.holdout else "test_accuracy_torch"): accuracy}
    write_trained(exportable(torch, model) if args.shape == "paper" else model, (1, 112, 112), recipe, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
