"""The homomorphic operations a plan is made of.

Each op reads and writes *registers*: named tensors held as a list of ciphertexts of `slots` slots each.
Every op has exactly one meaning on slot vectors, shared by the simulator and the OpenFHE backend:

- a rotation by k maps slot p to the value of slot p + k (mod slots), OpenFHE's EvalRotate(ct, k);
- a ciphertext of n slots encodes an n-periodic vector, so widening n is free (the data repeats) and
  narrowing it sums the periods (`fold`).

Large numeric data (diagonal vectors) lives in the plan's constants, keyed by the op's `constants` name.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BabyStep:
    """rot(x, offset) computed as rot(rot(x, source), key): a chain of cheap single-key rotations."""

    offset: int
    source: int
    key: int


@dataclass
class LinearTransform:
    """y_j = sum_g rot(sum_{i,b} rot(x_i, b) * D[j,g,i,b], g * giant_step)  (+ bias_j), then fold.

    Evaluated Horner-style over g, so every giant step uses the one rotation key `giant_step`: the
    reference's 'few keys' idea, generalised. Costs one level (the plaintext products).
    """

    name: str
    layer: str
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
    kind: str = "linear"
    level_in: int = 0
    level_out: int = 0

    @property
    def levels(self) -> int:
        return 1

    def rotation_keys(self) -> set[int]:
        keys = {b.key % self.slots for b in self.babies if b.offset != 0}
        if self.giants > 1:
            keys.add(self.giant_step % self.slots)
        keys.update(self.fold_steps())
        return keys - {0}

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
class Polynomial:
    """p(x) = sum_k coefficients[k] T_k(x) on [-1, 1], slot-wise on every ciphertext of the register."""

    name: str
    layer: str
    input: str
    output: str
    slots: int
    ciphertexts: int
    coefficients: list[float]
    depth: int
    function: str = "relu"
    kind: str = "polynomial"
    level_in: int = 0
    level_out: int = 0

    @property
    def levels(self) -> int:
        return self.depth

    @property
    def degree(self) -> int:
        return len(self.coefficients) - 1

    def rotation_keys(self) -> set[int]:
        return set()


@dataclass
class Bootstrap:
    """Refreshes every ciphertext of the register to the preset's levels_after_bootstrap."""

    name: str
    layer: str
    input: str
    output: str
    slots: int
    ciphertexts: int
    kind: str = "bootstrap"
    level_in: int = 0
    level_out: int = 0

    @property
    def levels(self) -> int:
        return 0

    def rotation_keys(self) -> set[int]:
        return set()


@dataclass
class AddTensors:
    """Slot-wise sum of two registers with the same layout (a residual connection)."""

    name: str
    layer: str
    inputs: list[str]
    output: str
    slots: int
    ciphertexts: int
    kind: str = "add"
    level_in: int = 0
    level_out: int = 0

    @property
    def input(self) -> str:
        return self.inputs[0]

    @property
    def levels(self) -> int:
        return 0

    def rotation_keys(self) -> set[int]:
        return set()


@dataclass
class RotateSum:
    """x += rot(x, step) for each step in turn: sums windows of slots (a global average pool's sum)."""

    name: str
    layer: str
    input: str
    output: str
    slots: int
    ciphertexts: int
    steps: list[int] = field(default_factory=list)
    kind: str = "rotate_sum"
    level_in: int = 0
    level_out: int = 0

    @property
    def levels(self) -> int:
        return 0

    def rotation_keys(self) -> set[int]:
        return {s % self.slots for s in self.steps} - {0}


Op = LinearTransform | Polynomial | Bootstrap | AddTensors | RotateSum
OP_TYPES: dict[str, type] = {
    "linear": LinearTransform, "polynomial": Polynomial, "bootstrap": Bootstrap, "add": AddTensors,
    "rotate_sum": RotateSum,
}


def op_inputs(op: Op) -> list[str]:
    return list(op.inputs) if isinstance(op, AddTensors) else [op.input]
