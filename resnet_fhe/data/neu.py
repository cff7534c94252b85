"""NEU surface-defect images (NEU-CLS: 6 classes x 300 grey 200 x 200 images) prepared as Jia et al.
(2023) prepare them for their chunk-based CNN: resized to 112 x 112 and histogram-equalised, as
(N, 1, 112, 112) uint8 Datasets.

The paper does not give its split; the fixed one here: within each class, images 1-240 (by file number)
train and 241-300 test (1,440 and 360 images).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from resnet_fhe.data.cifar10 import _REPO_ROOT, Dataset
from resnet_fhe.errors import DataError
from resnet_fhe.imagecrypt.chunks import equalize_histogram, resize_bilinear

NEU_FOLDER, NEU_FILE = "neu_cls", "neu_cls.npz"
NEU_CLASSES = ("crazing", "inclusion", "patches", "pitted_surface", "rolled-in_scale", "scratches")
NEU_SIZE = 112
TRAIN_PER_CLASS = 240


def neu_path(data_dir: str | Path | None = None) -> Path:
    return (Path(data_dir) if data_dir is not None else _REPO_ROOT.parent / "shared" / "data" / NEU_FOLDER) / NEU_FILE


def load_neu_cls(split: str = "test", data_dir: str | Path | None = None) -> Dataset:
    """The fixed `split` ("train" or "test") of NEU-CLS, resized and equalised."""
    if split not in ("train", "test"):
        raise DataError(f"unknown split {split!r}: use 'train' or 'test'")
    path = neu_path(data_dir)
    if not path.is_file():
        raise DataError(f"NEU-CLS file {path} not found: pass --data-dir (the folder holding {NEU_FILE})")
    try:
        with np.load(path, allow_pickle=False) as archive:
            raw, labels, names = archive["x"], archive["y"].astype(np.int64), archive["filenames"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path} is not a readable .npz with arrays x, y and filenames ({exc})") from exc
    if raw.dtype != np.uint8 or raw.ndim != 3 or labels.shape != (len(raw),) or names.shape != (len(raw),):
        raise DataError(f"{path}: x must be uint8 (N, H, W) with one label and file name per image")
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= len(NEU_CLASSES):
        raise DataError(f"{path}: labels must be in 0..{len(NEU_CLASSES) - 1}")
    numbers = np.array([int(Path(str(name)).stem.rsplit("_", 1)[1]) for name in names])
    keep = (numbers <= TRAIN_PER_CLASS) if split == "train" else (numbers > TRAIN_PER_CLASS)
    images = np.stack([equalize_histogram(resize_bilinear(image, NEU_SIZE, NEU_SIZE)) for image in raw[keep]])
    return Dataset(images[:, None], labels[keep], split, str(path), (path.name,))
