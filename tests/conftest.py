"""Shared fixtures. Tests that need the CIFAR-10 files skip, with the reason, where they are absent."""

from __future__ import annotations

import pytest

from resnet_fhe.data import default_data_dir
from tests.helpers import native_library, wheel_library


@pytest.fixture(scope="session")
def cifar_dir():
    directory = default_data_dir()
    if directory is None or not (directory / "test_batch").is_file():
        pytest.skip("CIFAR-10 batches not found (set RESNET_FHE_CIFAR10_DIR)")
    return directory


@pytest.fixture(scope="session")
def mnist_data():
    """The workspace's MNIST and Fashion-MNIST copy (the shipped CNNs calibrate on its training images)."""
    from resnet_fhe.data.mnist import SHARED

    if not (SHARED / "mnist" / "mnist_train.npz").is_file() or not (SHARED / "fashion_mnist").is_dir():
        pytest.skip(f"MNIST / Fashion-MNIST not found under {SHARED}")
    return SHARED


@pytest.fixture(scope="module", params=["openfhe", "native"])
def library(request):
    """Each OpenFHE binding the backend runs on: the wheel and the native build (`make native`)."""
    if request.param == "native":
        native_library()
    else:
        wheel_library()
    return request.param
