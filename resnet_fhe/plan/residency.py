"""Which evaluation keys the server holds while each op runs: one policy for the runtime and the estimate.

Bootstrap keys (a slot count's rotation keys plus OpenFHE's precomputed transforms, about 12 GB at the
128-bit preset) are loaded at the first bootstrap and kept until a bootstrap at another slot count
comes; plans bootstrap at one slot count (compiler/levels.py), so that is once per run. Rotation keys of
linear layers are stored one per file (~100 MB each) and loaded when an op needs them; every bootstrap
drops them, so the bootstrap, the largest working set, runs beside no other keys. A stage's convolution
between two bootstraps then loads its few keys again (a fraction of a second each, from the page cache).
Between two bootstraps the held rotation keys are capped (`max_rotations`): an op whose keys would take
the held set past the cap starts from an empty set, so a stage transition (a strided convolution, then
the shortcut's own keys) does not hold two ops' keys beside the bootstrap keys. A rotation whose key is
in the held bootstrap set (`bootstrap_covers`: many small and power-of-two steps are) is not loaded at
all: the server takes that from its key store's manifest, the estimate from the preset's measurement.
The server's PhaseKeys follows this class; the plan's memory estimate counts what it reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from resnet_fhe.plan.ops import Bootstrap, Op
from resnet_fhe.plan.params import CkksParameters


def own_rotation_keys(op: Op, params: CkksParameters, bootstrap_slots: int | None) -> set[int]:
    """The rotation keys `op` needs beyond those the preset's bootstrap keys at `bootstrap_slots` include
    (None: no bootstrap keys): what the server loads for it once bootstrap keys are held."""
    residency = KeyResidency.for_params(params)
    residency.bootstrap_slots = bootstrap_slots
    needed = op.rotation_keys()
    return needed - residency.covered(needed)


@dataclass(frozen=True)
class KeyChange:
    """What to do before an op: drop every rotation key held, drop the bootstrap keys, load these."""

    drop_rotations: bool = False
    drop_bootstrap: bool = False
    load_bootstrap: int | None = None  # slot count
    load_rotations: frozenset[int] = frozenset()


HELD_ROTATION_KEYS = 5  # the compiler's default keys per op (CompileOptions.max_keys_per_phase)


@dataclass
class KeyResidency:
    bootstrap_slots: int | None = None
    rotations: set[int] = field(default_factory=set)
    max_rotations: int = HELD_ROTATION_KEYS
    bootstrap_covers: Mapping[int, frozenset[int]] = field(default_factory=dict)  # slots -> rotation indices
    ring_slots: int = 0  # rotation indices are compared modulo this (N/2); 0: exactly

    @classmethod
    def for_params(cls, params: CkksParameters) -> KeyResidency:
        """The policy as the plan estimates it, with the preset's measured bootstrap rotations."""
        covers = {slots: frozenset(f.rotations) for slots, f in params.bootstrap_measured.items()}
        return cls(bootstrap_covers=covers, ring_slots=params.max_slots)

    def covered(self, needed: set[int]) -> set[int]:
        """The indices of `needed` whose keys the held bootstrap keys include."""
        held = self.bootstrap_covers.get(self.bootstrap_slots, frozenset()) if self.bootstrap_slots else frozenset()
        if not held:
            return set()
        return {r for r in needed if (r % self.ring_slots if self.ring_slots else r) in held}

    def admit(self, op: Op) -> KeyChange:
        """Records the keys `op` needs and returns how the held set changes before it runs."""
        if isinstance(op, Bootstrap):
            change = KeyChange(drop_rotations=bool(self.rotations),
                               drop_bootstrap=self.bootstrap_slots not in (None, op.slots),
                               load_bootstrap=None if self.bootstrap_slots == op.slots else op.slots)
            self.rotations.clear()
            self.bootstrap_slots = op.slots
            return change
        needed = op.rotation_keys()
        needed -= self.covered(needed)
        if len(self.rotations | needed) > max(self.max_rotations, len(needed)):
            self.rotations = set(needed)
            return KeyChange(drop_rotations=True, load_rotations=frozenset(needed))
        load = needed - self.rotations
        self.rotations |= load
        return KeyChange(load_rotations=frozenset(load))
