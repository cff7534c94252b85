"""Paired bootstraps: two real ciphertexts refreshed by one bootstrap, as a/sqrt2 + i*b/sqrt2.

At full packing (slots = ring dimension / 2) OpenFHE's bootstrap (coefficients to slots, modular
reduction, slots to coefficients) refreshes a ciphertext's real and imaginary slot parts alike: it
evaluates the modular reduction on both even when the imaginary parts hold nothing. So a register of
several ciphertexts can be bootstrapped in pairs: ciphertext 2j carries a/sqrt2 and 2j + 1 carries
i*b/sqrt2 (the "pair-in" carrier of plan/ops.py), their sum is bootstrapped once, and w + conj(w) = sqrt2*a
and w - conj(w) = i*sqrt2*b split it again with one key switch and no level ("pair-out"). With 8 images
per query ResNet20 bootstraps 44 ciphertexts per query; paired, 25. (At fewer slots OpenFHE's bootstrap
keeps only the real parts, so nothing is paired there.)

The factors cost no level where they can be folded: a linear transform multiplies its diagonals by them
(and divides by its input's), a linear-even ReLU absorbs sqrt2 and i*sqrt2 (its 2x^2 - 1 becomes
+-v^2 - 1, its linear coefficient c/sqrt2 or -i*c/sqrt2), and the identity shortcut of a residual add,
which drops levels anyway to meet the convolution it is added to, spends one of them on a ChangeCarrier.
A bootstrap is paired only where its producers and readers all allow this; otherwise it stays as it was.

Precision: the bootstrap refreshes a/sqrt2 and its error is multiplied back by sqrt2, which could cost
half a bit; at 32,768 slots it measured no worse than a single bootstrap (a smaller message, a smaller
error; the preset's `paired_precision_bits`, which the simulator's noise model uses).
"""

from __future__ import annotations

from resnet_fhe.plan.ops import (
    BOOTSTRAP_HEADROOM,
    PAIR_IN,
    PAIR_OUT,
    REAL,
    AddTensors,
    Bootstrap,
    ChangeCarrier,
    LinearTransform,
    Op,
    Polynomial,
    op_inputs,
)
from resnet_fhe.plan.params import CkksParameters
from resnet_fhe.plan.plan import Register


def pair_bootstraps(ops: list[Op], registers: dict[str, Register], params: CkksParameters) -> list[Op]:
    """`ops` as placed by levels.place_bootstraps (levels_in/out: what is available), with every bootstrap
    at full packing that can be paired made so, and the ChangeCarrier ops that needs; before trim_levels.
    Registers for new carrier copies are added to `registers`."""
    full = params.ring_dim // 2
    ops = list(ops)
    index = 0
    while index < len(ops):
        op = ops[index]
        if isinstance(op, Bootstrap) and op.slots == full and op.ciphertexts >= 2 and op.carrier == REAL:
            paired = _pair(ops, index, registers, params)
            if paired is not None:
                ops, index = paired
        index += 1
    return ops


def _readers(ops: list[Op], start: int, name: str) -> list[int]:
    """Indices from `start` of the ops reading `name`'s value, up to (and with) the next op writing it."""
    found = []
    for index in range(start, len(ops)):
        if name in op_inputs(ops[index]):
            found.append(index)
        if ops[index].output == name:
            break
    return found


def _writer(ops: list[Op], before: int, name: str) -> int | None:
    return next((i for i in range(before - 1, -1, -1) if ops[i].output == name), None)


def _pair(ops: list[Op], index: int, registers: dict[str, Register],
          params: CkksParameters) -> tuple[list[Op], int] | None:
    """The ops with bootstrap `index` paired and where it now sits, or None where it cannot be."""
    bootstrap = ops[index]
    name = bootstrap.input
    for reader in _readers(ops, index + 1, name):
        op = ops[reader]
        if not (isinstance(op, LinearTransform) or (isinstance(op, Polynomial) and op.linear_even)):
            return None
    producer = _writer(ops, index, name)
    if producer is None or any(not isinstance(ops[i], LinearTransform)
                               for i in _readers(ops, producer + 1, name) if i != index):
        return None
    # Decided first, applied only once every check has passed.
    marked: list[Op] = []  # ops whose output becomes pair-in
    renames: list[tuple[int, str, str]] = []  # (operand slot of the add, carrier copy, original register)
    inserts: list[tuple[int, Op]] = []  # (position in the original list, op)
    made = ops[producer]
    if isinstance(made, LinearTransform):
        marked.append(made)
    elif isinstance(made, AddTensors):
        for slot, operand in enumerate(made.inputs):
            source = _writer(ops, producer, operand)
            if source is not None and isinstance(ops[source], LinearTransform) \
                    and _readers(ops, source + 1, operand) == [producer]:
                marked.append(ops[source])
                continue
            available = params.fresh_levels if source is None else ops[source].level_out
            if available < made.level_in + 1:
                return None
            copy = f"{operand}.{PAIR_IN}@{made.name}"  # one copy per add: names stay unique
            inserts.append((producer, ChangeCarrier(copy, made.layer, operand, copy, made.slots, made.ciphertexts,
                                                    level_in=available, level_out=available - 1, carrier=PAIR_IN)))
            renames.append((slot, copy, operand))
        marked.append(made)
    elif isinstance(made, Polynomial):  # its output is real: change it in place, just before the bootstrap
        if made.level_out - 1 < BOOTSTRAP_HEADROOM:
            return None
        inserts.append((index, ChangeCarrier(f"{name}.{PAIR_IN}", made.layer, name, name, made.slots,
                                             made.ciphertexts, level_in=made.level_out,
                                             level_out=made.level_out - 1, carrier=PAIR_IN)))
    else:
        return None
    for op in marked:
        op.carrier = PAIR_IN
    for slot, copy, operand in renames:
        made.inputs[slot] = copy
        registers.setdefault(copy, registers[operand])
    bootstrap.carrier = PAIR_OUT
    result = list(ops)
    for position, op in sorted(inserts, key=lambda item: item[0], reverse=True):
        result.insert(position, op)
    return result, index + len(inserts)
