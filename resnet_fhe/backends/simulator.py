"""Executes a plan on slot vectors with numpy: the encrypted circuit's exact slot semantics, batched.

Each register is a list of (queries, slots) arrays, one per ciphertext. Rotations are cyclic shifts
(slot p takes slot p + k), narrowing a ciphertext sums its periods, widening repeats it: the same
meaning the OpenFHE backend gives each op. Carriers (plan/ops.py) do not change values and are not
simulated. An optional noise model adds Gaussian error where CKKS loses precision (after bootstrapping,
after each rescale), to predict encrypted accuracy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.polynomial import chebyshev

from resnet_fhe.errors import PlanError
from resnet_fhe.plan.layout import pad_images
from resnet_fhe.plan.ops import AddTensors, Bootstrap, ChangeCarrier, LinearTransform, Polynomial, RotateSum
from resnet_fhe.plan.plan import Plan


@dataclass(frozen=True)
class NoiseModel:
    """Standard deviations of the Gaussian error added to every slot (in stored, scaled units).

    `paired_bootstrap_sigma`: what a paired bootstrap (compiler/pairing.py) leaves on each of its two
    registers; it refreshes a/sqrt2, so without a measurement it is taken as sqrt2 times `bootstrap_sigma`."""

    bootstrap_sigma: float
    rescale_sigma: float
    paired_bootstrap_sigma: float | None = None

    @classmethod
    def from_params(cls, plan: Plan) -> NoiseModel:
        """The preset's measured bootstrap errors at the slot count the plan bootstraps at (the widest)."""
        params = plan.params
        slots = max(plan.bootstrap_slot_counts(), default=params.max_slots)
        return cls(2.0 ** -params.bootstrap_precision_at(slots), 2.0 ** -(params.scale_bits - 20),
                   2.0 ** -params.paired_bootstrap_precision_at(slots))

    def sigma(self, where: str) -> float:
        if where == "paired bootstrap":
            return self.paired_bootstrap_sigma or np.sqrt(2) * self.bootstrap_sigma
        return {"bootstrap": self.bootstrap_sigma, "rescale": self.rescale_sigma}[where]


@dataclass
class Diagnostics:
    """Largest |input| seen by each polynomial and bootstrap: above 1 the approximation diverges."""

    max_input: dict[str, float] = field(default_factory=dict)

    def record(self, name: str, arrays: list[np.ndarray]) -> None:
        value = max(float(np.max(np.abs(a))) for a in arrays)
        self.max_input[name] = max(self.max_input.get(name, 0.0), value)

    def out_of_range(self) -> dict[str, float]:
        return {k: v for k, v in self.max_input.items() if v > 1.0}


def rotate(values: np.ndarray, k: int) -> np.ndarray:
    """Slot p of the result holds slot p + k of the input (OpenFHE's EvalRotate)."""
    return np.roll(values, -k, axis=-1)


class SimulatorBackend:
    def __init__(self, plan: Plan, noise: NoiseModel | None = None, exact_activations: bool = False,
                 seed: int = 0, dtype: type = np.float64, tabulate: bool = False):
        """`tabulate` evaluates polynomials from a checked table (fast bulk accuracy runs); `dtype`
        float32 halves memory traffic for the same purpose. Exactness checks keep the defaults."""
        missing = [op.constants for op in plan.ops if isinstance(op, LinearTransform)
                   and f"{op.constants}.diagonals" not in plan.constants]
        if missing:
            raise PlanError(f"the plan lacks constants for {missing[:3]}: load it with its .npz")
        self.plan, self.noise, self.exact = plan, noise, exact_activations
        self.rng = np.random.default_rng(seed)
        self.dtype = dtype
        self.tabulate = tabulate
        self._tables: dict[str, _PolynomialTable] = {}
        self.diagnostics = Diagnostics()
        self._groups: dict[str, dict[tuple[int, int], list[tuple[int, int, int]]]] = {}

    def encode_input(self, images: np.ndarray) -> list[np.ndarray]:
        """Images (N, C, H, W) -> one (queries, slots) array per input ciphertext; the last query is
        padded with copies of its last image when N is not a multiple of the plan's images per query."""
        layout = self.plan.registers[self.plan.input].layout
        tensor = self.plan.prepare_input(np.asarray(images))
        padded = pad_images(np.asarray(tensor, dtype=self.dtype), layout.images)
        return self.plan.registers[self.plan.input].to_slots(padded)

    def decode_output(self, cts: list[np.ndarray]) -> np.ndarray:
        """The output tensor, flattened per image (logits for a classifier), in true units; a padded
        query's copies included."""
        register = self.plan.registers[self.plan.output]
        values = register.from_slots([c.astype(np.float64) for c in cts])
        return values.reshape(len(values), -1)

    def run(self, images: np.ndarray, batch_size: int = 64, guard=None) -> np.ndarray:
        """Logits (N, classes) for pixels in [0, 1] of shape (N, C, H, W).

        `guard` (a profiling.MemoryGuard) is told before and after every op."""
        per_query = self.plan.images_per_query
        batch_size = -(-batch_size // per_query) * per_query  # whole queries
        parts = [self.run_batch(images[s:s + batch_size], guard) for s in range(0, len(images), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.plan.classes))

    def run_batch(self, images: np.ndarray, guard=None) -> np.ndarray:
        registers = {self.plan.input: self._noisy(self.encode_input(images), "rescale")}
        for op in self.plan.ops:
            if guard is not None:
                guard.begin(op.layer)
            if isinstance(op, LinearTransform):
                result = self._noisy(self._linear(op, registers[op.input]), "rescale")
            elif isinstance(op, Polynomial):
                self.diagnostics.record(op.name, registers[op.input])
                result = self._noisy(self._polynomial(op, registers[op.input]), "rescale")
            elif isinstance(op, Bootstrap):
                self.diagnostics.record(op.name, registers[op.input])
                cts = registers[op.input]
                paired = len(cts) - len(cts) % 2 if op.paired else 0  # an odd last one goes alone
                result = self._noisy(cts[:paired], "paired bootstrap") + self._noisy(cts[paired:], "bootstrap")
            elif isinstance(op, ChangeCarrier):
                result = self._noisy(registers[op.input], "rescale")
            elif isinstance(op, AddTensors):
                result = [a + b for a, b in zip(registers[op.inputs[0]], registers[op.inputs[1]], strict=True)]
            elif isinstance(op, RotateSum):
                result = list(registers[op.input])
                for step in op.steps:
                    result = [r + rotate(r, step) for r in result]
            else:
                raise PlanError(f"the simulator has no rule for {type(op).__name__}")
            registers[op.output] = result
            if guard is not None:
                guard.end(op)
        if guard is not None:
            guard.finish()
        return self.decode_output(registers[self.plan.output])[: len(images)]

    def _noisy(self, cts: list[np.ndarray], where: str) -> list[np.ndarray]:
        if self.noise is None:
            return cts
        sigma = self.noise.sigma(where)
        return [c + self.dtype(sigma) * self.rng.standard_normal(c.shape, dtype=self.dtype) for c in cts]

    def _polynomial(self, op: Polynomial, cts: list[np.ndarray]) -> list[np.ndarray]:
        if self.exact and op.function == "relu":
            return [np.maximum(c, 0) for c in cts]
        if not self.tabulate:
            coefficients = np.asarray(op.coefficients, dtype=self.dtype)
            return [chebyshev.chebval(c, coefficients) for c in cts]
        table = self._tables.get(op.name)
        if table is None:
            table = self._tables[op.name] = _PolynomialTable(np.asarray(op.coefficients))
        return [table(c) for c in cts]

    def _term_groups(self, op: LinearTransform) -> dict[tuple[int, int], list[tuple[int, int, int]]]:
        """(output ct, giant) -> [(term row, input ct, baby index)], built once per op."""
        if op.name not in self._groups:
            groups: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
            for row, (out_ct, giant, in_ct, baby) in enumerate(self.plan.constants[f"{op.constants}.terms"]):
                groups.setdefault((int(out_ct), int(giant)), []).append((row, int(in_ct), int(baby)))
            self._groups[op.name] = groups
        return self._groups[op.name]

    def _linear(self, op: LinearTransform, cts: list[np.ndarray]) -> list[np.ndarray]:
        diagonals = self.plan.constants[f"{op.constants}.diagonals"]
        if diagonals.dtype != self.dtype:
            diagonals = self.plan.constants[f"{op.constants}.diagonals"] = diagonals.astype(self.dtype)
        repeat = op.slots // op.slots_in
        babies = []  # (input ct * babies + baby index) -> rotated input
        for x in cts:
            x = np.tile(x, (1, repeat)) if repeat > 1 else x
            rotated: dict[int, np.ndarray] = {0: x}
            for step in op.babies[1:]:
                rotated[step.offset] = rotate(rotated[step.source], step.key)
            babies.extend(rotated[step.offset] for step in op.babies)
        stacked = np.stack(babies)
        per_ct = len(op.babies)
        groups = self._term_groups(op)
        outputs = []
        for out_ct in range(op.outputs):
            acc = None
            for giant in range(op.giants - 1, -1, -1):
                if acc is not None:
                    acc = rotate(acc, op.giant_step)
                terms = groups.get((out_ct, giant))
                if not terms:
                    continue
                rows = np.array([t[0] for t in terms])
                flat = np.array([t[1] * per_ct + t[2] for t in terms])
                # Terms are sorted, so rows (and usually babies) are contiguous: slices avoid copies.
                source = stacked[flat[0]:flat[-1] + 1] if np.array_equal(flat, np.arange(flat[0], flat[-1] + 1)) \
                    else stacked[flat]
                part = np.einsum("bkn,bn->kn", source, diagonals[rows[0]:rows[-1] + 1])
                acc = part if acc is None else acc + part
            if acc is None:
                acc = np.zeros((cts[0].shape[0], op.slots), dtype=self.dtype)
            for step in op.fold_steps():
                acc = acc + rotate(acc, step)
            acc = acc[:, : op.slots_out]
            if op.has_bias:
                acc = acc + self.plan.constants[f"{op.constants}.bias"][out_ct].astype(self.dtype)
            outputs.append(acc)
        return outputs


class _PolynomialTable:
    """Piecewise-linear table of a Chebyshev series on a uniform grid of [-1, 1]; exact outside it.

    A bulk accuracy run spends most of its time in high-degree polynomials; the table is far faster, and
    its deviation from the exact series is measured when it is built: above TABLE_TOLERANCE (well below
    CKKS's own error) the exact series is used instead.
    """

    POINTS = 1 << 18
    TABLE_TOLERANCE = 1e-5

    def __init__(self, coefficients: np.ndarray):
        self.coefficients = coefficients
        grid = np.linspace(-1.0, 1.0, self.POINTS + 1)
        values = chebyshev.chebval(grid, coefficients)
        self.values = values.astype(np.float32)
        self.slopes = np.diff(values).astype(np.float32)
        probe = np.random.default_rng(0).uniform(-1, 1, 20000).astype(np.float32)
        self.deviation = float(np.max(np.abs(self._lookup(probe) - chebyshev.chebval(probe, coefficients))))
        self.usable = self.deviation <= self.TABLE_TOLERANCE

    def _lookup(self, values: np.ndarray) -> np.ndarray:
        position = (values + np.float32(1.0)) * np.float32(self.POINTS / 2)
        index = position.astype(np.int32)
        np.clip(index, 0, self.POINTS - 1, out=index)
        return self.values[index] + (position - index) * self.slopes[index]

    def __call__(self, values: np.ndarray) -> np.ndarray:
        if not self.usable:
            return chebyshev.chebval(values, self.coefficients).astype(values.dtype)
        result = self._lookup(values).astype(values.dtype, copy=False)
        outside = np.abs(values) > 1.0
        if outside.any():
            result[outside] = chebyshev.chebval(values[outside].astype(np.float64), self.coefficients)
        return result
