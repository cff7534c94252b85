"""Which evaluation keys the server holds while each op runs: one policy for the runtime and the estimate.

Bootstrap keys (a slot count's rotation keys plus OpenFHE's precomputed transforms, about 12 GB at the
128-bit preset) are loaded at the first bootstrap and kept until a bootstrap at another slot count
comes; plans bootstrap at one slot count (compiler/levels.py), so that is once per run. Rotation keys of
linear layers are stored one per file (~100 MB each) and loaded when an op needs them; every bootstrap
drops them, so the bootstrap, the largest working set, runs beside no other keys. A stage's convolution
between two bootstraps then loads its few keys again (a fraction of a second each, from the page cache).
The server's PhaseKeys follows this class; the plan's memory estimate counts what it reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from resnet_fhe.plan.ops import Bootstrap, Op


@dataclass(frozen=True)
class KeyChange:
    """What to do before an op: drop every rotation key held, drop the bootstrap keys, load these."""

    drop_rotations: bool = False
    drop_bootstrap: bool = False
    load_bootstrap: int | None = None  # slot count
    load_rotations: frozenset[int] = frozenset()


@dataclass
class KeyResidency:
    bootstrap_slots: int | None = None
    rotations: set[int] = field(default_factory=set)

    def admit(self, op: Op) -> KeyChange:
        """Records the keys `op` needs and returns how the held set changes before it runs."""
        if isinstance(op, Bootstrap):
            change = KeyChange(drop_rotations=bool(self.rotations),
                               drop_bootstrap=self.bootstrap_slots not in (None, op.slots),
                               load_bootstrap=None if self.bootstrap_slots == op.slots else op.slots)
            self.rotations.clear()
            self.bootstrap_slots = op.slots
            return change
        load = op.rotation_keys() - self.rotations
        self.rotations |= load
        return KeyChange(load_rotations=frozenset(load))
