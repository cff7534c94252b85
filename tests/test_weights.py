import numpy as np
import pytest

from resnet_fhe.errors import WeightsError
from resnet_fhe.models import ResNetSpec, build_cifar_resnet, load_weights, random_resnet_weights
from resnet_fhe.models.convert import convert_state_dict, rename_torch_key


@pytest.mark.parametrize("depth", [20, 32, 44, 56])
def test_shipped_weights_load_and_build(depth):
    weights = load_weights(f"resnet{depth}")
    assert weights.meta["depth"] == depth and weights.meta["shortcut"] == "A"
    graph = build_cifar_resnet(weights)
    assert graph.shapes[graph.output.name].channels == 10
    assert sum(type(n).__name__ == "ReLU" for n in graph.nodes) == depth - 1


def test_torch_key_mapping():
    assert rename_torch_key("module.layer2.1.bn2.running_var") == "stage2.block1.bn2.var"
    assert rename_torch_key("module.bn1.num_batches_tracked") is None
    assert rename_torch_key("layer1.0.shortcut.0.weight") == "stage1.block0.shortcut.conv.weight"
    with pytest.raises(WeightsError):
        rename_torch_key("features.0.weight")


def _save_modified(tmp_path, drop=None, reshape=None):
    weights = load_weights("resnet20")
    if drop:
        del weights.arrays[drop]
    if reshape:
        weights.arrays[reshape] = weights.arrays[reshape][:-1]
    path = tmp_path / "broken.npz"
    weights.save(path)
    return path


def test_missing_array_is_named(tmp_path):
    path = _save_modified(tmp_path, drop="stage2.block1.conv1.weight")
    with pytest.raises(WeightsError, match=r"stage2\.block1\.conv1\.weight.*missing"):
        build_cifar_resnet(load_weights(path))


def test_misshapen_array_is_named(tmp_path):
    path = _save_modified(tmp_path, reshape="head.linear.bias")
    with pytest.raises(WeightsError, match=r"head\.linear\.bias.*shape"):
        build_cifar_resnet(load_weights(path))


def test_unreadable_and_foreign_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"garbage")
    with pytest.raises(WeightsError, match="not a readable"):
        load_weights(bad)
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    with pytest.raises(WeightsError, match="header"):
        load_weights(foreign)
    with pytest.raises(WeightsError, match="not found"):
        load_weights("resnet99")


def test_conversion_round_trip_from_state_dict(tmp_path):
    spec = ResNetSpec(depth=8, widths=(4, 8, 16), shortcut="B")
    ours = random_resnet_weights(spec, seed=3)
    inverse = {"stem.conv": "conv1", "stem.bn": "bn1", "head.linear": "linear"}
    fields = {"gamma": "weight", "beta": "bias", "mean": "running_mean", "var": "running_var"}
    state = {}
    for key, value in ours.arrays.items():
        torch_key = key
        for a, b in inverse.items():
            torch_key = torch_key.replace(a, b)
        torch_key = torch_key.replace("stage", "layer").replace(".block", ".").replace("shortcut.conv", "shortcut.0")
        torch_key = torch_key.replace("shortcut.bn", "shortcut.1")
        parts = torch_key.rsplit(".", 1)
        torch_key = f"{parts[0]}.{fields.get(parts[1], parts[1])}"
        state["module." + torch_key] = value
    converted = convert_state_dict(state, {"file": "memory"})
    assert set(converted.arrays) == set(ours.arrays)
    assert converted.meta["shortcut"] == "B" and converted.meta["depth"] == 8
    path = tmp_path / "converted.npz"
    converted.save(path)
    assert load_weights(path).meta["widths"] == [4, 8, 16]
