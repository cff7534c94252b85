"""The homomorphic operations a plan is made of.

Each op reads and writes *registers*: named tensors held as a list of ciphertexts of `slots` slots each.
Every op has exactly one meaning on slot vectors, shared by the simulator and the OpenFHE backend:

- a rotation by k maps slot p to the value of slot p + k (mod slots), OpenFHE's EvalRotate(ct, k);
- a ciphertext of n slots encodes an n-periodic vector, so widening n is free (the data repeats) and
  narrowing it sums the periods (`fold`).

Large numeric data (diagonal vectors) lives in the plan's constants, keyed by the op's `constants` name.

A register's ciphertexts may hold its slot values times a constant per ciphertext, its *carrier*
(`carrier_factors`), so that two real ciphertexts share one bootstrap as a + ib: an op's `carrier` says
what its output carries. Carriers never change the values an op means, so the simulator ignores them; the
OpenFHE backend applies them (compiler/pairing.py says where and why).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from resnet_fhe.errors import PlanError

# Largest degree OpenFHE's EvalChebyshevSeries evaluates within a depth
# (openfhe.GetMultiplicativeDepthByCoeffVector; checked by a test).
MAX_DEGREE_AT_DEPTH = {3: 5, 4: 13, 5: 27, 6: 59, 7: 119, 8: 247, 9: 495, 10: 1007}


# OpenFHE's bootstrapping (FLEXIBLEAUTO) rescales its input once more before raising the modulus, so a
# ciphertext that may be bootstrapped must keep one level, and needs no more: bootstrapping keeps only
# its first tower: measured, a register at 0 levels fails with
# "DropLastElement(): Removing last element of DCRTPoly renders it invalid".
BOOTSTRAP_HEADROOM = 1


def rotation_index(step: int, slots: int) -> int:
    """The rotation a backend asks OpenFHE for: `step` reduced to (-slots/2, slots/2].

    On a ciphertext holding an n-periodic vector, rotating by k and by k - n is the same map, but OpenFHE
    keeps one key per index of the whole ring: a single signed representative lets tensors of every slot
    count share keys (-1 serves 16,384, 8,192 and 4,096 slots alike, where 16383, 8191 and 4095 would
    each need a key of their own)."""
    r = step % slots
    return r - slots if r > slots // 2 else r


# Carriers (see the module docstring). "pair-in": ciphertexts 2j and 2j + 1 hold a/sqrt2 and i*b/sqrt2, so
# their sum a/sqrt2 + i*b/sqrt2 stays within the unit disc and one bootstrap refreshes both; "pair-out":
# what such a bootstrap leaves once its output w is split as w + conj(w) = sqrt2*a and
# w - conj(w) = i*sqrt2*b, with no level spent. An odd last ciphertext carries 1 in both.
REAL, PAIR_IN, PAIR_OUT = "real", "pair-in", "pair-out"
CARRIERS = (REAL, PAIR_IN, PAIR_OUT)


def carrier_factors(carrier: str, ciphertexts: int) -> np.ndarray:
    """The constant each ciphertext of a register with this carrier holds its slot values times."""
    if carrier not in CARRIERS:
        raise PlanError(f"unknown carrier {carrier!r} (one of {', '.join(CARRIERS)})")
    factors = np.ones(ciphertexts, dtype=np.complex128)
    if carrier != REAL:
        even = ciphertexts - ciphertexts % 2
        magnitude = np.sqrt(0.5) if carrier == PAIR_IN else np.sqrt(2.0)
        factors[:even:2], factors[1:even:2] = magnitude, 1j * magnitude
    return factors


def depth_of_degree(degree: int) -> int:
    for depth, top in sorted(MAX_DEGREE_AT_DEPTH.items()):
        if degree <= top:
            return depth
    raise PlanError(f"degree {degree} is beyond the supported {max(MAX_DEGREE_AT_DEPTH.values())}")


@dataclass
class _Op:
    """Fields every op has. `level_in`/`level_out` are filled by bootstrap placement."""

    kind: ClassVar[str] = ""
    levels: ClassVar[int] = 0  # levels the op consumes

    name: str
    layer: str
    level_in: int = field(default=0, kw_only=True)
    level_out: int = field(default=0, kw_only=True)
    carrier: str = field(default=REAL, kw_only=True)  # what the output's ciphertexts carry

    def rotation_keys(self) -> set[int]:
        return set()


@dataclass
class BabyStep:
    """rot(x, offset) computed as rot(rot(x, source), key): a chain of cheap single-key rotations."""

    offset: int
    source: int
    key: int


@dataclass
class LinearTransform(_Op):
    """y_j = sum_g rot(sum_{i,b} rot(x_i, b) * D[j,g,i,b], g * giant_step)  (+ bias_j), then fold.

    Evaluated Horner-style over g, so every giant step uses the one rotation key `giant_step`: the
    reference's 'few keys' idea, generalised. Costs one level (the plaintext products).
    """

    input: str
    output: str
    slots_in: int
    slots: int  # the working slot count
    slots_out: int
    inputs: int  # ciphertexts in
    outputs: int  # ciphertexts out
    giant_step: int
    giants: int
    babies: list[BabyStep]
    terms: int  # plaintext products
    has_bias: bool
    constants: str
    purpose: str = "linear"  # what the map does: conv, subsample, pack, linear
    kind: ClassVar[str] = "linear"
    levels: ClassVar[int] = 1

    def rotation_keys(self) -> set[int]:
        steps = [b.key for b in self.babies if b.offset != 0] + self.fold_steps()
        if self.giants > 1:
            steps.append(self.giant_step)
        return {rotation_index(step, self.slots) for step in steps} - {0}

    def fold_steps(self) -> list[int]:
        steps, step = [], self.slots_out
        while step < self.slots:
            steps.append(step)
            step *= 2
        return steps

    def rotations(self) -> int:
        """Key switches per evaluation (hoisting aside)."""
        babies = sum(1 for b in self.babies if b.offset != 0) * self.inputs
        return babies + self.outputs * (max(self.giants - 1, 0) + len(self.fold_steps()))


@dataclass
class Polynomial(_Op):
    """p(x) = sum_k coefficients[k] T_k(x) on [-1, 1], slot-wise on every ciphertext of the register."""

    input: str
    output: str
    slots: int
    ciphertexts: int
    coefficients: list[float]
    depth: int
    function: str = "relu"
    kind: ClassVar[str] = "polynomial"

    @property
    def levels(self) -> int:  # type: ignore[override]
        return self.depth

    @property
    def degree(self) -> int:
        return len(self.coefficients) - 1

    @property
    def linear_even(self) -> bool:
        """a*x + even(x) with an even part that fits the op's depth as a series in y = 2x^2 - 1 (half
        the degree, after the one level y takes): a backend may evaluate it that way, at half the work."""
        c = self.coefficients
        return len(c) > 3 and not any(c[3::2]) and depth_of_degree(self.degree // 2) + 1 <= self.depth


@dataclass
class Bootstrap(_Op):
    """Refreshes every ciphertext of the register to the preset's levels_after_bootstrap.

    With carrier "pair-out" its input carries "pair-in" and each pair of ciphertexts is added, bootstrapped
    once and split again by a conjugation: half the bootstraps (plaintext-free key switch per pair)."""

    input: str
    output: str
    slots: int
    ciphertexts: int
    kind: ClassVar[str] = "bootstrap"

    @property
    def paired(self) -> bool:
        return self.carrier == PAIR_OUT

    @property
    def bootstraps(self) -> int:
        """OpenFHE bootstraps per query."""
        return self.ciphertexts - self.ciphertexts // 2 if self.paired else self.ciphertexts


@dataclass
class ChangeCarrier(_Op):
    """The same slot values under another carrier: one plaintext product per ciphertext, one level."""

    input: str
    output: str
    slots: int
    ciphertexts: int
    kind: ClassVar[str] = "carrier"
    levels: ClassVar[int] = 1


@dataclass
class AddTensors(_Op):
    """Slot-wise sum of two registers with the same layout (a residual connection)."""

    inputs: list[str]
    output: str
    slots: int
    ciphertexts: int
    kind: ClassVar[str] = "add"


@dataclass
class RotateSum(_Op):
    """x += rot(x, step) for each step in turn: sums windows of slots (a global average pool's sum)."""

    input: str
    output: str
    slots: int
    ciphertexts: int
    steps: list[int] = field(default_factory=list)
    kind: ClassVar[str] = "rotate_sum"

    def rotation_keys(self) -> set[int]:
        return {rotation_index(s, self.slots) for s in self.steps} - {0}


Op = LinearTransform | Polynomial | Bootstrap | AddTensors | RotateSum | ChangeCarrier
OP_TYPES: dict[str, type] = {cls.kind: cls for cls in (LinearTransform, Polynomial, Bootstrap, AddTensors, RotateSum,
                                                       ChangeCarrier)}


def op_inputs(op: Op) -> list[str]:
    return list(op.inputs) if isinstance(op, AddTensors) else [op.input]


def input_carriers(ops: list[Op], input_name: str) -> list[dict[str, str]]:
    """For each op, the carrier of each register it reads, as the ops before it leave them."""
    current = {input_name: REAL}
    seen = []
    for op in ops:
        seen.append({name: current[name] for name in op_inputs(op)})
        current[op.output] = op.carrier
    return seen


def last_readers(ops: list[Op]) -> dict[str, int]:
    """Register name -> index of the last op that reads it: after that op the register can be freed."""
    return {name: index for index, op in enumerate(ops) for name in op_inputs(op)}
