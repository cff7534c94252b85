"""Time in the cost model: seconds per op predicted from a few per-machine costs.

An op's time under OpenFHE is close to linear in a handful of work counts, each scaled by the RNS towers
its ciphertexts carry: plaintext products, key switches (rotations), ciphertext products (a polynomial's
Paterson-Stockmeyer steps), and whole bootstraps. `OpCosts` holds the seconds per unit of each on one
machine at one thread count; `fit_costs` finds them by least squares from the per-layer profile of one
encrypted run there (`bench/fit_costs.py`, or the main job after each run), and `predict_seconds` puts
them back on any plan of the same preset, so the compiler and a user can see where time goes before a run.
These are estimates: machines differ several-fold, and costs fitted on one are meaningless on another.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from resnet_fhe.plan.cost import towers
from resnet_fhe.plan.ops import Bootstrap, ChangeCarrier, LinearTransform, Op, Polynomial, RotateSum
from resnet_fhe.plan.params import CkksParameters

WORK = ("bootstraps", "tower_products", "tower_key_switches", "tower_mults")


def polynomial_mults(degree: int) -> int:
    """Ciphertext products of OpenFHE's Chebyshev series (Paterson-Stockmeyer): about 2*sqrt(d) + log2 d."""
    return round(2 * math.sqrt(degree) + math.log2(max(degree, 2)))


def op_work(op: Op, params: CkksParameters) -> dict[str, float]:
    """The work counts of one op for one query, each weighted by the towers it runs at."""
    work = dict.fromkeys(WORK, 0.0)
    level_towers = towers(params, op.level_in)
    if isinstance(op, Bootstrap):
        work["bootstraps"] = op.bootstraps
    elif isinstance(op, LinearTransform):
        work["tower_products"] = op.terms * level_towers
        work["tower_key_switches"] = op.rotations() * level_towers
    elif isinstance(op, Polynomial):
        degree = op.degree // 2 if op.linear_even else op.degree
        work["tower_mults"] = op.ciphertexts * polynomial_mults(degree) * level_towers
    elif isinstance(op, RotateSum):
        work["tower_key_switches"] = len(op.steps) * op.ciphertexts * level_towers
    elif isinstance(op, ChangeCarrier):
        work["tower_products"] = op.ciphertexts * level_towers
    return work


@dataclass(frozen=True)
class OpCosts:
    """Seconds per unit of work (see WORK) on `machine`, fitted from `layers` measured layers."""

    machine: str
    preset: str
    bootstraps: float
    tower_products: float
    tower_key_switches: float
    tower_mults: float
    layers: int = 0

    def seconds(self, work: dict[str, float]) -> float:
        return sum(getattr(self, name) * work[name] for name in WORK)

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> OpCosts | None:
        try:
            return cls(**json.loads(Path(path).read_text()))
        except (OSError, ValueError, TypeError):
            return None


def layer_work(ops: list[Op], params: CkksParameters) -> dict[str, dict[str, float]]:
    """Work counts summed per layer, in execution order."""
    layers: dict[str, dict[str, float]] = {}
    for op in ops:
        total = layers.setdefault(op.layer, dict.fromkeys(WORK, 0.0))
        for name, value in op_work(op, params).items():
            total[name] += value
    return layers


def fit_costs(ops: list[Op], params: CkksParameters, profile: list[dict], queries: int, machine: str) -> OpCosts:
    """Least-squares costs (non-negative) from a measured per-layer profile of a batch of `queries`. Key
    loading is left out: it is I/O, reported on its own."""
    work = layer_work(ops, params)
    rows = [p for p in profile if p["layer"] in work]
    matrix = np.array([[work[p["layer"]][name] * queries for name in WORK] for p in rows])
    seconds = np.array([p["seconds"] - p.get("key_load_seconds", 0.0) for p in rows])
    active = [i for i in range(len(WORK)) if matrix[:, i].any()]
    while True:  # drop a column whose cost comes out negative and fit again: a tiny non-negative LS
        solution = np.linalg.lstsq(matrix[:, active], seconds, rcond=None)[0]
        if (solution >= 0).all() or len(active) == 1:
            break
        active.pop(int(np.argmin(solution)))
    costs = dict.fromkeys(WORK, 0.0)
    for index, value in zip(active, solution, strict=True):
        costs[WORK[index]] = max(float(value), 0.0)
    return OpCosts(machine=machine, preset=params.name, layers=len(rows), **costs)
