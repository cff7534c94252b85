"""Small networks, data and presets for compiler tests (insecure, simulator-only parameters)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from resnet_fhe.compiler import CompileOptions, calibrate, compile_graph
from resnet_fhe.data import Dataset
from resnet_fhe.ir.graph import AvgPool, Conv2d, Graph, Input, Linear, ReLU, Shape
from resnet_fhe.plan.params import CkksParameters


def toy_params(ring_dim: int = 4096, depth: int = 28, bootstrap_depth: int = 18) -> CkksParameters:
    """INSECURE, for the simulator: small rings force tensors over several ciphertexts."""
    return CkksParameters(name=f"test-insecure-{ring_dim}", ring_dim=ring_dim, scale_bits=40, first_mod_bits=50,
                          multiplicative_depth=depth, num_large_digits=3, level_budget=(2, 2),
                          secret_key_dist="UNIFORM_TERNARY", security="HEStd_NotSet",
                          bootstrap_depth=bootstrap_depth, bootstrap_precision_bits=12.0)


def random_images(count: int, shape: tuple[int, int, int], seed: int = 0, split: str = "train") -> Dataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (count, *shape), dtype=np.uint8)
    return Dataset(images, rng.integers(0, 10, count), split, f"random {shape} seed {seed}")


def small_cnn(channels: int = 1, size: int = 28, seed: int = 0) -> Graph:
    """conv -> relu -> strided conv -> relu -> pool -> linear, the vocabulary of an MNIST-sized CNN."""
    rng = np.random.default_rng(seed)
    nodes = [
        Input("input", (), Shape(channels, size, size)),
        Conv2d("conv1", ("input",), rng.normal(0, 0.5, (4, channels, 3, 3)), rng.normal(0, 0.1, 4), 1, 1),
        ReLU("relu1", ("conv1",)),
        Conv2d("conv2", ("relu1",), rng.normal(0, 0.3, (8, 4, 3, 3)), rng.normal(0, 0.1, 8), 2, 1),
        ReLU("relu2", ("conv2",)),
        AvgPool("pool", ("relu2",)),
        Linear("fc", ("pool",), rng.normal(0, 0.5, (10, 8)), rng.normal(0, 0.1, 10)),
    ]
    return Graph(nodes, "small-cnn")


def compile_for_test(graph: Graph, params: CkksParameters | None = None, images: int = 64, **options):
    shape = graph.input.shape
    data = random_images(images, (shape.channels, shape.height, shape.width))
    calibration = calibrate(graph, data, images=images)
    return compile_graph(graph, calibration, params or toy_params(), CompileOptions(**options))


def toy_resnet_plan(widths: tuple[int, int, int] = (2, 4, 8), depth: int = 8, **options):
    """A 7-ReLU ResNet (depth 8) on 1x8x8 inputs at the INSECURE toy preset: more levels than a fresh
    ciphertext holds, so its plan bootstraps. `options` are CompileOptions fields. At depth 14, widths
    (8, 16, 32) and 8 images per query the first stage fills two ciphertexts of the toy ring's 2,048 slots
    and bootstraps them: its bootstraps get paired."""
    from resnet_fhe.ir import fold_batchnorm
    from resnet_fhe.models import ResNetSpec, build_cifar_resnet, random_resnet_weights
    from resnet_fhe.plan.params import load_preset

    spec = ResNetSpec(depth=depth, widths=widths, input_shape=(1, 8, 8))
    graph = fold_batchnorm(build_cifar_resnet(random_resnet_weights(spec, seed=3), fold_normalization=True))
    return compile_for_test(graph, load_preset("toy-insecure"), **{"relu_error": 0.5, **options})


def native_library():
    """resnet_fhe._native, or a skip saying why it is missing. Where `make test` built it
    (RESNET_FHE_REQUIRE_NATIVE=1) a missing or broken build fails instead: the native tests must not
    quietly stop running."""
    from resnet_fhe.backends.openfhe_backend import fhe_library
    from resnet_fhe.errors import PlanError

    try:
        return fhe_library("native")
    except PlanError as exc:
        if os.environ.get("RESNET_FHE_REQUIRE_NATIVE") == "1":
            pytest.fail(f"make test built the native extension, but it does not load: {exc}")
        pytest.skip(str(exc))


def wheel_library():
    """The openfhe wheel, or a skip where it cannot exist (it is built for CPython 3.10 on Linux x86_64
    only; the native build's tests also run under other Pythons, without it)."""
    import importlib.util

    if sys.version_info[:2] == (3, 10) or importlib.util.find_spec("openfhe") is not None:
        from resnet_fhe.backends.openfhe_backend import fhe_library

        return fhe_library("openfhe")  # where it should exist, a broken install fails rather than skips
    pytest.skip(f"no openfhe wheel for CPython {sys.version_info.major}.{sys.version_info.minor}")
