"""Jia et al.'s selective encryption through the runtime (issue 14): a query whose chosen chunks are encrypted
and whose other pixels travel in the clear; the server adds those as a CKKS plaintext before the first layer.
Real CKKS at an INSECURE toy preset without bootstrapping."""

from __future__ import annotations

import numpy as np
import pytest

from resnet_fhe.errors import InputError
from resnet_fhe.imagecrypt import chunk_pixel_mask
from resnet_fhe.ir import run_graph
from resnet_fhe.ir.graph import Conv2d, Graph, Input, Linear, PolynomialActivation, Shape
from resnet_fhe.ir.passes import im2col_stem
from tests.helpers import compile_for_test, random_images
from tests.test_small_cnn import SQUARE, no_bootstrap_params

runtime = pytest.importorskip("resnet_fhe.runtime")
SIZE, CHUNK = 16, 8


def chunk_cnn(layers: int, seed: int = 0) -> Graph:
    """The chunk CNN's shape at toy size: a 4 x 4 convolution at stride 4 (no window straddles an 8 x 8
    chunk), then (layers 3) square -> dense -> square -> dense."""
    rng = np.random.default_rng(seed)
    nodes = [Input("input", (), Shape(1, SIZE, SIZE)),
             Conv2d("conv", ("input",), rng.normal(0, 0.4, (4, 1, 4, 4)), rng.normal(0, 0.1, 4), 4, 0)]
    if layers == 3:
        nodes += [PolynomialActivation("act1", ("conv",), SQUARE),
                  Linear("fc1", ("act1",), rng.normal(0, 0.3, (8, 64)), rng.normal(0, 0.1, 8)),
                  PolynomialActivation("act2", ("fc1",), SQUARE),
                  Linear("fc2", ("act2",), rng.normal(0, 0.3, (6, 8)), rng.normal(0, 0.1, 6))]
    return im2col_stem(Graph(nodes, f"toy-chunk-cnn-{layers}"))


def chunk_mask(image: np.ndarray, keep: list[tuple[int, int]]) -> np.ndarray:
    mask = np.zeros((SIZE // CHUNK, SIZE // CHUNK), bool)
    for row, col in keep:
        mask[row, col] = True
    return np.repeat(np.repeat(mask, CHUNK, 0), CHUNK, 1)


@pytest.fixture(scope="module", params=[1, 3], ids=["first-layer", "whole-network"])
def deployment(request, tmp_path_factory):
    graph = chunk_cnn(request.param)
    plan = compile_for_test(graph, no_bootstrap_params(depth=5), images_per_query=2)
    base = tmp_path_factory.mktemp(f"selective-{request.param}")
    client = runtime.Client.keygen(plan, base / "server", base / "client", "openfhe")
    return graph, client, runtime.Server(base / "server"), base


def test_mixed_first_layer_equals_the_plaintext_network(deployment):
    """Two images in one query, each with its own chunks encrypted (one image none, one three of four):
    the clear file holds exactly the other pixels, and the answer equals the plaintext network on the
    whole images (not on the encrypted chunks alone)."""
    graph, client, server, base = deployment
    images = random_images(2, (1, SIZE, SIZE), seed=5).images
    mask = np.stack([chunk_mask(images[0], []), chunk_mask(images[1], [(0, 0), (0, 1), (1, 1)])])
    client.encrypt(images, base / "query", encrypted_pixels=mask)
    clear = np.load(base / "query" / "clear.npy")
    np.testing.assert_array_equal(clear[mask[:, None]], 0)
    np.testing.assert_allclose(clear[~mask[:, None]], images[~mask[:, None]] / 255.0)
    server.infer(base / "query", base / "answer")
    got = client.decrypt(base / "answer")
    want = run_graph(graph, images / 255.0)
    np.testing.assert_allclose(got, want, atol=1e-3 * np.abs(want).max())
    hidden = run_graph(graph, np.where(mask[:, None], images / 255.0, 0.0))
    assert np.abs(hidden - want).max() > 1e-2  # the clear chunks did count


def test_selective_queries_are_validated(deployment):
    _, client, server, base = deployment
    image = random_images(1, (1, SIZE, SIZE), seed=6).images[0]
    with pytest.raises(InputError, match="bool mask"):
        client.encrypt(image, base / "bad", encrypted_pixels=np.ones((SIZE, SIZE - 1), bool))
    client.encrypt(image, base / "tampered", encrypted_pixels=chunk_mask(image, [(1, 0)]))
    np.save(base / "tampered" / "clear.npy", np.zeros((1, 1, SIZE, SIZE)))
    with pytest.raises(runtime.KeyStoreError, match="tampered"):
        server.infer(base / "tampered", base / "answer-tampered")


def test_chunk_pixel_mask_covers_the_selected_chunks():
    rng = np.random.default_rng(0)
    image = np.full((56, 56), 128, np.uint8)
    image[28:, :28] = rng.integers(0, 256, (28, 28))  # only this chunk has edges
    mask = chunk_pixel_mask(image)
    assert mask[28:, :28].all() and mask.sum() == 28 * 28


def test_the_cli_sends_the_unselected_chunks_of_neu_images_in_the_clear(tmp_path, capsys):
    """keygen / encrypt --selective-chunks / infer / decrypt for the paper-shaped chunk CNN at small-128
    (N = 2^14, no bootstrapping: keys in a second): the answer is the class the model gives in the clear."""
    import json

    from resnet_fhe.cli import main
    from resnet_fhe.data import dataset_files, load_dataset
    from resnet_fhe.models import load_model

    if not dataset_files("neu-cls"):
        pytest.skip("NEU-CLS not found")
    store = tmp_path / "store"
    assert main(["keygen", "--model", "chunk-cnn-neu-paper", "--preset", "small-128", "--calibration-images", "256",
                 "--store", str(store)]) == 0
    assert main(["encrypt", "--store", str(store), "--dataset", "neu-cls", "--start", "100", "--selective-chunks",
                 "--output", str(tmp_path / "query"), "--json", str(tmp_path / "e.json")]) == 0
    assert 0 < json.loads((tmp_path / "e.json").read_text())["clear_pixel_fraction"] < 1
    assert main(["infer", "--server", str(store / "server"), "--input", str(tmp_path / "query"),
                 "--output", str(tmp_path / "answer")]) == 0
    assert main(["decrypt", "--store", str(store), "--input", str(tmp_path / "answer"),
                 "--json", str(tmp_path / "d.json")]) == 0
    answer = json.loads((tmp_path / "d.json").read_text())
    image = load_dataset("neu-cls", "test").images[100:101]
    want = run_graph(load_model("chunk-cnn-neu-paper"), image / 255.0)
    assert np.argmax(answer["logits"][0]) == want.argmax()
    capsys.readouterr()
    assert main(["encrypt", "--store", str(store), "--sample", "--selective-chunks", "--output",
                 str(tmp_path / "colour")]) == 2
    assert "grey images" in capsys.readouterr().err
