"""MNIST, Fashion-MNIST and Kuzushiji-MNIST as (N, 1, 28, 28) uint8 Datasets.

MNIST and Fashion-MNIST are read from the workspace's `.npz` files (keys `x` (N, 28, 28) uint8 and `y`);
KMNIST from the files its authors publish (`kmnist-{train,test}-{imgs,labels}.npz`, key `arr_0`), which
a user downloads: this workspace has none.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from resnet_fhe.data.cifar10 import _REPO_ROOT, Dataset
from resnet_fhe.errors import DataError

SHARED = _REPO_ROOT.parent / "shared" / "data"
DATASETS = {"mnist": ("mnist", "mnist_{split}.npz"), "fashion-mnist": ("fashion_mnist", "fashion_mnist_{split}.npz"),
            "kmnist": ("kmnist", "kmnist-{split}-imgs.npz")}
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")


def load_mnist_family(name: str, split: str = "test", data_dir: str | Path | None = None) -> Dataset:
    """The `split` of data set `name` from `data_dir` (default: the workspace's shared copy)."""
    if name not in DATASETS:
        raise DataError(f"unknown data set {name!r}: one of {', '.join(DATASETS)}")
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: use 'train' or 'test'")
    folder, pattern = DATASETS[name]
    directory = Path(data_dir) if data_dir is not None else SHARED / folder
    path = directory / pattern.format(split=split)
    if not path.is_file():
        raise DataError(f"{name} {split} file {path} not found: pass --data-dir")
    if name == "kmnist":
        images = _read(path, "arr_0")
        labels = _read(directory / f"kmnist-{split}-labels.npz", "arr_0")
    else:
        images, labels = _read(path, "x"), _read(path, "y")
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataError(f"{path}: images must be uint8 (N, 28, 28), found {images.dtype} {images.shape}")
    labels = labels.astype(np.int64)
    if labels.shape != (len(images),) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise DataError(f"{path}: labels must be {len(images)} integers in 0..9")
    return Dataset(images[:, None], labels, split, str(path), (path.name,))


def _read(path: Path, key: str) -> np.ndarray:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return archive[key]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npz with array {key!r} ({exc})") from exc
