"""Image data sets: CIFAR-10 batches on disk, the MNIST family, NEU-CLS, and a small CIFAR-10 test sample
shipped inside the package."""

from resnet_fhe.data.cifar10 import (
    CIFAR10_CLASSES,
    DATA_DIR_ENV,
    Dataset,
    default_data_dir,
    load_cifar10,
    load_sample,
)
from resnet_fhe.data.mnist import DATASETS as MNIST_FAMILY
from resnet_fhe.data.mnist import load_mnist_family
from resnet_fhe.data.neu import NEU_SIZE, load_neu_cls, neu_path

DATASET_NAMES = ("cifar10", *MNIST_FAMILY, "neu-cls")


def image_shape(name: str) -> tuple[int, int, int]:
    """(C, H, W) of data set `name`'s images, known without reading them."""
    if name == "neu-cls":
        return (1, NEU_SIZE, NEU_SIZE)
    return (3, 32, 32) if name == "cifar10" else (1, 28, 28)


def load_dataset(name: str, split: str = "test", data_dir=None) -> Dataset:
    """CIFAR-10, a 28x28 grey data set (MNIST, Fashion-MNIST, KMNIST) or NEU-CLS by name."""
    if name == "neu-cls":
        return load_neu_cls(split, data_dir)
    return load_cifar10(split, data_dir) if name == "cifar10" else load_mnist_family(name, split, data_dir)


def dataset_files(name: str, split: str = "train", data_dir=None) -> list:
    """The files load_dataset would read (those present), without reading them: for cache keys."""
    from pathlib import Path

    from resnet_fhe.data.mnist import SHARED

    if name == "cifar10":
        directory = Path(data_dir) if data_dir is not None else default_data_dir()
        pattern = "data_batch_*" if split == "train" else "test_batch"
        return sorted(directory.glob(pattern)) if directory is not None and directory.is_dir() else []
    if name == "neu-cls":
        return [neu_path(data_dir)] if neu_path(data_dir).is_file() else []
    folder, file_pattern = MNIST_FAMILY[name]
    path = (Path(data_dir) if data_dir is not None else SHARED / folder) / file_pattern.format(split=split)
    return [path] if path.is_file() else []


__all__ = [
    "CIFAR10_CLASSES",
    "DATASET_NAMES",
    "DATA_DIR_ENV",
    "Dataset",
    "dataset_files",
    "default_data_dir",
    "load_cifar10",
    "load_dataset",
    "load_mnist_family",
    "load_neu_cls",
    "load_sample",
]
