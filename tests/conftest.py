"""Shared fixtures. Tests that need the CIFAR-10 files skip, with the reason, where they are absent."""

from __future__ import annotations

import pytest

from resnet_fhe.data import default_data_dir


@pytest.fixture(scope="session")
def cifar_dir():
    directory = default_data_dir()
    if directory is None or not (directory / "test_batch").is_file():
        pytest.skip("CIFAR-10 batches not found (set RESNET_FHE_CIFAR10_DIR)")
    return directory
