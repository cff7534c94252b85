"""The memory model's account of OpenFHE's bootstrapping (plan/cost.py) and of the keys held (residency)."""

import dataclasses

from resnet_fhe.plan.cost import bootstrap_bytes, collapsed_layers, key_bytes, transform_plaintexts
from resnet_fhe.plan.ops import Bootstrap
from resnet_fhe.plan.params import load_preset
from resnet_fhe.plan.residency import KeyResidency


def test_transform_levels_split_as_openfhe_splits_them():
    # OpenFHE's SelectLayers: 14 layers (16,384 slots) over 3 levels merge 5 + 5 + 4, over 4: 4 + 4 + 4 + 2.
    assert collapsed_layers(14, 3) == (5, 2, 4)
    assert collapsed_layers(14, 4) == (4, 3, 2)
    assert collapsed_layers(12, 3) == (4, 3, 0)
    assert transform_plaintexts(16384, 3) == 63 + 63 + 31
    assert transform_plaintexts(4096, 3) == 3 * 31


def test_bootstrap_memory_uses_the_presets_measured_key_count():
    params = load_preset("default-128")
    measured = params.bootstrap_figures(16384)
    assert measured is not None and measured.key_count > 0
    fewer = dataclasses.replace(params, bootstrap_measured={
        16384: dataclasses.replace(measured, key_count=measured.key_count - 10)})
    assert bootstrap_bytes(params, 16384) - bootstrap_bytes(fewer, 16384) == 10 * key_bytes(params)
    # Elsewhere (a slot count not measured) the rough guess stands in, whatever the preset measured.
    assert bootstrap_bytes(params, 4096) == bootstrap_bytes(fewer, 4096)


class _Rotating:
    """Stands in for a linear op: all the residency policy reads is the op's rotation keys."""

    def __init__(self, keys: set[int]):
        self.keys = keys

    def rotation_keys(self) -> set[int]:
        return set(self.keys)


def test_rotations_the_bootstrap_keys_include_are_not_loaded():
    residency = KeyResidency(bootstrap_covers={16384: frozenset({1, 32})}, ring_slots=32768)
    assert residency.admit(_Rotating({1, -1})).load_rotations == {1, -1}  # no bootstrap keys held yet
    bootstrap = Bootstrap("refresh", "layer", input="x", output="y", slots=16384, ciphertexts=1)
    assert residency.admit(bootstrap).load_bootstrap == 16384
    # 1, 32 and 32 + N/2 (the same automorphism as 32) come with the bootstrap keys.
    assert residency.admit(_Rotating({1, -1, 32, 32768 + 32})).load_rotations == {-1}


def test_held_rotation_keys_are_capped_between_bootstraps():
    residency = KeyResidency(max_rotations=3)
    residency.admit(_Rotating({1, 2}))
    change = residency.admit(_Rotating({3, 4}))  # 4 keys would be held: start afresh
    assert change.drop_rotations and change.load_rotations == {3, 4} and residency.rotations == {3, 4}
    change = residency.admit(_Rotating({3}))
    assert not change.drop_rotations and not change.load_rotations
