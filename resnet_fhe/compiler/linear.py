"""Lowers a linear map on slots to a LinearTransform op (baby-step giant-step over diagonals).

A lowering describes its map entry by entry: output (ciphertext, slot) += value * input (ciphertext, slot),
and says how it reaches the source: `giant` steps of `giant_step` plus a `baby` rotation. This module
checks that every such path really lands on the source slot, so a wrong lowering fails at compile time
instead of producing silently wrong encrypted results.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from resnet_fhe.errors import CompileError
from resnet_fhe.plan.ops import BabyStep, LinearTransform


@dataclass
class Entries:
    out_ct: np.ndarray
    out_slot: np.ndarray
    in_ct: np.ndarray
    in_slot: np.ndarray
    giant: np.ndarray
    baby: np.ndarray
    value: np.ndarray

    @classmethod
    def concat(cls, parts: list[Entries]) -> Entries:
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in cls.__dataclass_fields__))


def baby_chain(offsets: list[int], keys: list[int], slots: int) -> list[BabyStep]:
    """How to compute each baby rotation from x with single-key rotations (shortest chains, by BFS)."""
    keys = sorted({k % slots for k in keys} - {0})
    wanted = {o % slots for o in offsets} - {0}
    parent: dict[int, tuple[int, int]] = {0: (0, 0)}
    queue = deque([0])
    while queue and not wanted.issubset(parent):
        node = queue.popleft()
        for key in keys:
            nxt = (node + key) % slots
            if nxt not in parent:
                parent[nxt] = (node, key)
                queue.append(nxt)
    missing = wanted - set(parent)
    if missing:
        raise CompileError(f"rotations {sorted(missing)[:5]} cannot be built from keys {keys}")
    needed: set[int] = set()
    for offset in wanted:
        while offset != 0 and offset not in needed:
            needed.add(offset)
            offset = parent[offset][0]
    order = sorted(needed, key=lambda o: _chain_length(o, parent))
    return [BabyStep(0, 0, 0)] + [BabyStep(int(o), int(parent[o][0]), int(parent[o][1])) for o in order]


def _chain_length(offset: int, parent: dict[int, tuple[int, int]]) -> int:
    length = 0
    while offset != 0:
        offset = parent[offset][0]
        length += 1
    return length


def build_linear_transform(
    name: str, layer: str, source: str, target: str, entries: Entries, *, slots_in: int, slots_out: int,
    inputs: int, outputs: int, giant_step: int, keys: list[int], bias: np.ndarray | None = None,
    purpose: str = "linear",
) -> tuple[LinearTransform, dict[str, np.ndarray]]:
    """The op and its constants: `<name>.diagonals` (T, slots), `<name>.terms` (T, 4) rows of
    (output ct, giant, input ct, baby index), and `<name>.bias` (outputs, slots_out) when given.

    With slots_out < slots the result is folded (the sum of its slots_out-periodic replicas) before it is
    cut to slots_out, so an entry may land on any slot of the same residue modulo slots_out."""
    slots = max(slots_in, slots_out)
    giant = entries.giant.astype(np.int64)
    baby = entries.baby.astype(np.int64) % slots
    if np.any(giant < 0) or np.any(giant * giant_step >= slots + giant_step):
        raise CompileError(f"{name}: giant indices out of range")
    # The path out_slot -> + giant*step + baby must reach a copy of the source slot (inputs repeat
    # with period slots_in when they are narrower than the working slot count).
    reached = (entries.out_slot + giant * giant_step + baby) % slots
    if np.any(reached % slots_in != entries.in_slot % slots_in):
        bad = int(np.argmax(reached % slots_in != entries.in_slot % slots_in))
        raise CompileError(f"{name}: entry {bad} reaches slot {reached[bad]}, not {entries.in_slot[bad]} "
                           "(a lowering bug)")
    if np.any(entries.out_slot >= slots):
        raise CompileError(f"{name}: output slots beyond {slots}")
    chain = baby_chain(list(np.unique(baby)), keys, slots)
    offsets = np.array([step.offset % slots for step in chain])
    order = np.argsort(offsets)
    b_idx = order[np.searchsorted(offsets[order], baby)]
    giants = int(giant.max()) + 1 if len(giant) else 1
    # One integer key per (output ct, giant, input ct, baby): unique rows become a 1-d unique.
    dims = np.array([outputs, giants, inputs, len(chain)], dtype=np.int64)
    key = ((entries.out_ct * dims[1] + giant) * dims[2] + entries.in_ct) * dims[3] + b_idx
    unique_keys, term_of_entry = np.unique(key, return_inverse=True)
    terms = np.stack(np.unravel_index(unique_keys, tuple(dims)), axis=1).astype(np.int64)
    # D[g][p + g*step] = M[g][p]: the pre-rotation that lets the giant rotation come last.
    position = term_of_entry.ravel() * slots + (entries.out_slot + giant * giant_step) % slots
    diagonals = np.bincount(position, weights=entries.value, minlength=len(terms) * slots).reshape(len(terms), slots)
    op = LinearTransform(
        name=name, layer=layer, input=source, output=target, slots_in=slots_in, slots=slots, slots_out=slots_out,
        inputs=inputs, outputs=outputs, giant_step=int(giant_step % slots), giants=giants, babies=chain,
        terms=len(terms), has_bias=bias is not None, constants=name, purpose=purpose,
    )
    constants = {f"{name}.diagonals": diagonals, f"{name}.terms": terms}
    if bias is not None:
        constants[f"{name}.bias"] = np.asarray(bias, dtype=np.float64)
    return op, constants
