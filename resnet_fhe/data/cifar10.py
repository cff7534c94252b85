"""CIFAR-10 in the standard python layout (pickled batches), plus the shipped test sample.

Images are kept as uint8 (N, 3, 32, 32): raw pixels, which is what a client encrypts after dividing by 255.
The split is carried with the images so calibration can refuse test data by construction.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import numpy as np

from resnet_fhe.errors import DataError

CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)
DATA_DIR_ENV = "RESNET_FHE_CIFAR10_DIR"
_REPO_ROOT = Path(__file__).resolve().parents[2]
_SHARED_DATA_DIR = _REPO_ROOT.parent / "shared" / "data" / "cifar10" / "cifar-10-batches-py"
_SAMPLE = "cifar10_test_sample.npz"
_TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))


@dataclass(frozen=True)
class Dataset:
    """Images with labels and where they came from.

    `split` is "train" or "test"; `source` names the files with their paths, for logs; `files` holds the
    bare file names, which plans record so that a compiled plan does not depend on where the data lives.
    """

    images: np.ndarray  # uint8 (N, C, H, W)
    labels: np.ndarray  # int64 (N,)
    split: str
    source: str
    files: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, count: int | None, start: int = 0) -> Dataset:
        """The images [start, start + count) (all from start when count is None)."""
        if start < 0 or start > len(self):
            raise DataError(f"start index {start} is outside the {len(self)} images of {self.source}")
        stop = len(self) if count is None else start + count
        if count is not None and (count < 1 or stop > len(self)):
            raise DataError(f"asked for {count} images from index {start}, but {self.source} has {len(self)}")
        return replace(self, images=self.images[start:stop], labels=self.labels[start:stop])


def default_data_dir() -> Path | None:
    """$RESNET_FHE_CIFAR10_DIR, else the workspace's shared copy when it exists, else None."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    return _SHARED_DATA_DIR if _SHARED_DATA_DIR.is_dir() else None


def load_cifar10(split: str = "test", data_dir: str | Path | None = None) -> Dataset:
    """Loads every batch of a split present in `data_dir`.

    The train split accepts any subset of data_batch_1..5 (this workspace ships two of them).
    """
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: use 'train' or 'test'")
    directory = Path(data_dir) if data_dir is not None else default_data_dir()
    if directory is None:
        raise DataError(
            "no CIFAR-10 directory given and none found: pass --data-dir, set "
            f"{DATA_DIR_ENV}, or place the python batches at {_SHARED_DATA_DIR}"
        )
    if not directory.is_dir():
        raise DataError(f"CIFAR-10 directory {directory} does not exist")
    names = ("test_batch",) if split == "test" else _TRAIN_BATCHES
    paths = [directory / name for name in names if (directory / name).is_file()]
    if not paths:
        raise DataError(f"no {split} batch ({', '.join(names)}) found in {directory}")
    batches = [_read_batch(path) for path in paths]
    images = np.concatenate([b[0] for b in batches])
    labels = np.concatenate([b[1] for b in batches])
    return Dataset(images, labels, split, ", ".join(str(p) for p in paths), tuple(p.name for p in paths))


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as handle:
            raw = pickle.load(handle, encoding="bytes")
    except Exception as exc:  # pickle raises many unrelated types on corrupt input
        raise DataError(f"{path} is not a readable CIFAR-10 batch ({type(exc).__name__}: {exc})") from exc
    if not isinstance(raw, dict):
        raise DataError(f"{path} is not a CIFAR-10 batch: expected a dict, found {type(raw).__name__}")
    data = raw.get(b"data", raw.get("data"))
    labels = raw.get(b"labels", raw.get("labels"))
    if data is None or labels is None:
        raise DataError(f"{path} lacks the 'data' or 'labels' entry of a CIFAR-10 batch")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: 'data' must be uint8 (N, 3072), found {data.dtype} {data.shape}")
    if labels.shape != (data.shape[0],) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise DataError(f"{path}: 'labels' must be {data.shape[0]} integers in 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def load_sample() -> Dataset:
    """The first CIFAR-10 test images, shipped inside the package so the main job runs anywhere."""
    with resources.files("resnet_fhe.data").joinpath("samples", _SAMPLE).open("rb") as handle:
        archive = np.load(handle)
        images, labels = archive["images"], archive["labels"].astype(np.int64)
    return Dataset(images, labels, "test", f"shipped sample ({_SAMPLE}, CIFAR-10 test images 0..{len(labels) - 1})")
