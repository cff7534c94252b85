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


@pytest.fixture(scope="module", params=["openfhe", "native"])
def library(request):
    """Each OpenFHE binding the backend runs on: the wheel and, where `make native` built it, the
    extension. The native tests skip, saying why, where it is not built (CI builds it: `make test`)."""
    from resnet_fhe.backends.openfhe_backend import fhe_library
    from resnet_fhe.errors import PlanError

    try:
        fhe_library(request.param)
    except PlanError as exc:
        pytest.skip(str(exc))
    return request.param
