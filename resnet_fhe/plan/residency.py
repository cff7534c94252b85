"""Which evaluation keys the server holds while each op runs: one policy for the runtime and the estimate.

Reloading gigabytes of bootstrap keys before every bootstrap cost ~100 s per bootstrap at the 128-bit
preset (measured), so keys accumulate while the bootstrap slot count stays the same: a stage's
convolutions share a handful of rotation keys. Everything is dropped when a bootstrap at another slot
count comes, so the resident set is one slot count's bootstrap keys plus the rotation keys used since.
The server's PhaseKeys follows this class; the plan's memory estimate counts what it reports.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from resnet_fhe.plan.ops import Bootstrap, Op


@dataclass
class KeyResidency:
    bootstrap_slots: int | None = None
    rotations: set[int] = field(default_factory=set)

    def admit(self, op: Op) -> bool:
        """Records the keys `op` needs; True when everything held must be dropped before loading them."""
        holds = self.bootstrap_slots is not None or bool(self.rotations)
        drop = isinstance(op, Bootstrap) and op.slots != self.bootstrap_slots and holds
        if drop:
            self.rotations.clear()
        if isinstance(op, Bootstrap):
            self.bootstrap_slots = op.slots
        self.rotations |= op.rotation_keys()
        return drop
