"""The plaintext reference: folding is exact, the forward matches torch, and the published accuracy holds."""

import numpy as np
import pytest

from resnet_fhe.data import load_cifar10, load_sample
from resnet_fhe.errors import InputError
from resnet_fhe.ir import fold_batchnorm, fold_input_normalization, run_graph
from resnet_fhe.ir.graph import Normalize
from resnet_fhe.models import ResNetSpec, build_cifar_resnet, load_model, load_weights, random_resnet_weights


def _pixels(count=16, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, 3, 32, 32)) / 255.0


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_folded_and_unfolded_forms_agree(shortcut):
    spec = ResNetSpec(depth=14, widths=(8, 16, 32), shortcut=shortcut)
    graph = build_cifar_resnet(random_resnet_weights(spec, seed=1, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.25)))
    folded = fold_input_normalization(fold_batchnorm(graph))
    assert not any(isinstance(n, Normalize) for n in folded.nodes)
    assert len(folded.nodes) < len(graph.nodes)
    x = _pixels()
    np.testing.assert_allclose(run_graph(folded, x), run_graph(graph, x), rtol=0, atol=1e-10)


def test_resnet20_folding_is_exact_on_real_images():
    images = load_sample().images[:8] / 255.0
    unfolded = build_cifar_resnet(load_weights("resnet20"))
    np.testing.assert_allclose(run_graph(load_model("resnet20"), images), run_graph(unfolded, images),
                               rtol=0, atol=1e-10)


def test_wrong_image_shape_and_dtype_are_rejected():
    graph = load_model("resnet20")
    with pytest.raises(InputError, match=r"\(N, 3, 32, 32\)"):
        run_graph(graph, np.zeros((2, 32, 32, 3)))
    with pytest.raises(InputError, match="floating"):
        run_graph(graph, np.zeros((2, 3, 32, 32), np.uint8))


def test_numpy_forward_equals_torch():
    torch = pytest.importorskip("torch", reason="torch is an optional extra; install resnet-fhe[torch]")
    from resnet_fhe.models.torch_resnet import torch_resnet_from_weights

    weights = load_weights("resnet20")
    model = torch_resnet_from_weights(weights).eval()
    images = load_sample().images[:16] / 255.0
    mean = np.array(weights.meta["preprocessing"]["mean"])[:, None, None]
    std = np.array(weights.meta["preprocessing"]["std"])[:, None, None]
    with torch.no_grad():
        expected = model(torch.tensor((images - mean) / std, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(run_graph(load_model("resnet20"), images), expected, atol=1e-4)


@pytest.mark.slow
def test_resnet20_top1_on_full_test_set(cifar_dir):
    test = load_cifar10("test", cifar_dir)
    logits = run_graph(load_model("resnet20"), test.images.astype(np.float32) / 255, dtype=np.float32)
    correct = int((logits.argmax(axis=1) == test.labels).sum())
    assert correct == 9173  # 91.73 %, as measured with torch in the weights' PROVENANCE.md
