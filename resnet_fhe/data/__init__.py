"""Image data sets: CIFAR-10 batches on disk and a small test sample shipped inside the package."""

from resnet_fhe.data.cifar10 import (
    CIFAR10_CLASSES,
    DATA_DIR_ENV,
    Dataset,
    default_data_dir,
    load_cifar10,
    load_sample,
)

__all__ = ["CIFAR10_CLASSES", "DATA_DIR_ENV", "Dataset", "default_data_dir", "load_cifar10", "load_sample"]
