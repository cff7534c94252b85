"""Chebyshev series on CKKS ciphertexts: OpenFHE's Paterson-Stockmeyer shape with fewer rescales.

The shape is the usual one: baby powers T_1 .. T_7 of the input, giant powers T_8, T_16, T_32, ...,
and a recursive split p = q * T_m + r (m the largest giant not above the degree) down to leaves of
degree below 8, each a weighted sum of baby powers. What differs from OpenFHE's EvalChebyshevSeries is
level bookkeeping: OpenFHE brings every baby power to a leaf's level again in every leaf (a scalar
product and a rescale per power, 16 leaves at degree 119), here each baby power is brought once to each
level a leaf needs, so a leaf is scalar products and additions only. At default-128 a degree-119 series
(the even half of a linear-even ReLU) took 1.65 s instead of 2.74 s, same depth, same error (2 threads,
2-core AMD EPYC; `bench/series_timing.py`, bench/results/series-timing-stage1.block1.relu1.json).

`series_depth` says how many levels `evaluate_series` spends on a degree; it is not the optimum at
every degree (degree 5 and 13 take one level more than OpenFHE), so the backend uses this evaluation
only where the plan's depth allows it, and OpenFHE's otherwise.
"""

from __future__ import annotations

import numpy as np

BABIES = 8  # baby powers T_1 .. T_{BABIES - 1}; giants T_BABIES, 2 * T_BABIES, ...


def _baby_depths() -> list[int]:
    """Levels spent by T_i (i < BABIES), each the product of the two powers that halve its index."""
    depths = [0, 0]
    for i in range(2, BABIES):
        depths.append(max(depths[i // 2], depths[i - i // 2]) + 1)
    return depths


BABY_DEPTHS = _baby_depths()


def _giant_depth(m: int) -> int:
    """T_{2n} = 2 T_n^2 - 1, from T_{BABIES/2} up."""
    depth, power = BABY_DEPTHS[BABIES // 2], BABIES // 2
    while power < m:
        depth, power = depth + 1, 2 * power
    return depth


def split_series(coefficients: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """(q, r) with sum_j c_j T_j = q(x) * T_m(x) + r(x), for a series of degree below 2m.

    From T_j = 2 T_m T_{j-m} - T_{2m-j} (m <= j <= 2m): q takes c_m at 0 and 2 c_j at j - m, r keeps
    c_0 .. c_{m-1} less c_j at 2m - j."""
    c = np.asarray(coefficients, dtype=np.float64)
    if not m <= len(c) - 1 < 2 * m:
        raise ValueError(f"split_series needs a degree in [{m}, {2 * m}), not {len(c) - 1}")
    q = np.zeros(len(c) - m)
    r = c[:m].copy()
    q[0] = c[m]
    for j in range(m + 1, len(c)):
        q[j - m] = 2 * c[j]
        r[2 * m - j] -= c[j]
    return q, r


def _trimmed(coefficients: np.ndarray) -> np.ndarray:
    nonzero = np.flatnonzero(coefficients)
    return coefficients[:nonzero[-1] + 1] if len(nonzero) else coefficients[:1]


def _giant_for(degree: int) -> int:
    m = BABIES
    while 2 * m <= degree:
        m *= 2
    return m


def _depth(coefficients: np.ndarray) -> int:
    c = _trimmed(coefficients)
    degree = len(c) - 1
    if degree < BABIES:
        used = np.flatnonzero(c[1:]) + 1
        return BABY_DEPTHS[int(used.max())] + 1 if len(used) else 0
    m = _giant_for(degree)
    q, r = split_series(c, m)
    return max(max(_depth(q), _giant_depth(m)) + 1, _depth(r))


def series_depth(degree: int) -> int:
    """Levels evaluate_series spends on a series of `degree` with no zero coefficients."""
    return _depth(np.ones(degree + 1))


def evaluate_series(cc, ct, coefficients: np.ndarray, levels_left):
    """sum_j c_j T_j(ct) (c_0 counted once, unlike OpenFHE's series), for ct in [-1, 1].

    `levels_left(ct)` is the backend's count of a ciphertext's remaining levels (it knows the chain)."""
    c = _trimmed(np.asarray(coefficients, dtype=np.float64))
    if len(c) - 1 < 1:
        raise ValueError("a series of degree 0 is a constant, not a ciphertext")
    return _SeriesEvaluation(cc, ct, len(c) - 1, levels_left).node(c)[0]


class _SeriesEvaluation:
    """The powers of one input and the recursion over them. A class rather than nested functions: a
    recursive closure is a reference cycle, which kept every power (~0.5 GB at 128 bits) alive until
    Python's cycle collector ran, measured as 0.5 GB more peak in the bootstrap that followed."""

    def __init__(self, cc, ct, degree: int, levels_left):
        self.cc, self.levels_left = cc, levels_left
        self.highest = min(degree, BABIES - 1)
        powers = [None, self.rescaled(ct)]
        for i in range(2, max(self.highest, BABIES // 2) + 1):
            product = cc.EvalMult(powers[i // 2], powers[i - i // 2])
            product = cc.EvalAdd(product, product)
            powers.append(self.rescaled(cc.EvalSub(product, powers[1] if i % 2 else 1.0)))
        self.giants: dict[int, object] = {}
        m = BABIES // 2
        while 2 * m <= degree:
            square = cc.EvalSquare(powers[m] if m < BABIES else self.giants[m])
            self.giants[2 * m] = self.rescaled(cc.EvalSub(cc.EvalAdd(square, square), 1.0))
            m *= 2
        self.powers = powers
        self.leveled: dict[int, list] = {}

    def rescaled(self, x):
        return self.cc.Compress(x, self.levels_left(x) + 1, 1) if x.GetNoiseScaleDeg() > 1 else x

    def babies_at(self, depth: int) -> list:
        """The baby powers at a leaf's depth, made once, when first needed: adding a zero ciphertext of
        that depth is how OpenFHE lowers a ciphertext's level with its scale kept right."""
        if depth not in self.leveled:
            top = max(i for i in range(1, self.highest + 1) if BABY_DEPTHS[i] == depth)
            zero = self.cc.EvalSub(self.powers[top], self.powers[top])
            self.leveled[depth] = [None] + [
                self.powers[i] if BABY_DEPTHS[i] == depth else self.cc.EvalAdd(self.powers[i], zero)
                for i in range(1, top + 1)]
        return self.leveled[depth]

    def leaf(self, terms: np.ndarray):
        used = np.flatnonzero(terms[1:]) + 1
        if not len(used):
            return None
        babies = self.babies_at(max(BABY_DEPTHS[i] for i in used))
        total = self.cc.EvalLinearWSum([babies[i] for i in used], [float(terms[i]) for i in used])
        return self.cc.EvalAdd(total, float(terms[0])) if terms[0] else total

    def node(self, terms: np.ndarray):
        """(ciphertext or None, constant): the series, or its constant when it has no other term."""
        terms = _trimmed(terms)
        if len(terms) - 1 < BABIES:
            return self.leaf(terms), float(terms[0])
        m = _giant_for(len(terms) - 1)
        q, r = split_series(terms, m)
        q_ct, q_constant = self.node(q)
        giant = self.giants[m]
        product = self.cc.EvalMult(giant, q_constant) if q_ct is None else self.cc.EvalMult(q_ct, giant)
        r_ct, r_constant = self.node(r)
        return (self.cc.EvalAdd(product, r_constant) if r_ct is None else self.cc.EvalAdd(product, r_ct)), 0.0
