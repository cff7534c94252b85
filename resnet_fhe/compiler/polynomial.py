"""Polynomial stand-ins for ReLU, fitted on [-1, 1] (the compiler scales every activation input into it).

Two forms. "general": any Chebyshev series of the largest degree OpenFHE evaluates at the depth (its
Paterson-Stockmeyer evaluation), so a degree is never paid for in levels without being used.
"linear-even": a*x plus an even polynomial, as max(x, 0) = x/2 + |x|/2 is. Since T_2k(x) = T_k(2x^2 - 1),
the even part is a series of half the degree in y = 2x^2 - 1: one level for y, then the largest degree of
one level less, so the same depth holds a degree 2 * MAX_DEGREE_AT_DEPTH[depth - 1] (238 against 247 at
depth 8) evaluated with about half the work (plan.ops.Polynomial.linear_even tells a backend so).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import chebyshev

from resnet_fhe.errors import CompileError
from resnet_fhe.plan.ops import MAX_DEGREE_AT_DEPTH

MIN_DEPTH = 5  # below degree 27 no ReLU stand-in keeps a CIFAR ResNet's accuracy
UNIFORM_WEIGHT = 0.05  # share of the least-squares weight spread evenly over [-1, 1]
RELU_FORMS = ("general", "linear-even")


def relu_degree(depth: int, form: str = "general") -> int:
    """The degree of a `form` stand-in that fills `depth` levels."""
    if form not in RELU_FORMS:
        raise CompileError(f"unknown ReLU form {form!r}; choose one of {', '.join(RELU_FORMS)}")
    return MAX_DEGREE_AT_DEPTH[depth] if form == "general" else 2 * MAX_DEGREE_AT_DEPTH[depth - 1]


def relu_chebyshev(degree: int, samples: np.ndarray | None = None, form: str = "general") -> np.ndarray:
    """Chebyshev coefficients of a degree-`degree` stand-in for max(x, 0) on [-1, 1].

    Least squares weighted by where the calibration activations actually fall (most sit near 0, where
    ReLU's kink is hardest), plus a uniform share over [-1, 1] so that the polynomial stays close to ReLU
    on the whole interval; without samples, the uniform share alone (Chebyshev nodes). "linear-even"
    keeps only T_1 and the even terms. Either way shifted so that p(0) = 0 exactly, which keeps empty
    slots empty, so block padding never leaks into a pool.
    """
    if form not in RELU_FORMS:
        raise CompileError(f"unknown ReLU form {form!r}; choose one of {', '.join(RELU_FORMS)}")
    grid = np.cos(np.pi * (np.arange(4 * degree + 4) + 0.5) / (4 * degree + 4))
    if samples is None:
        points, weights = grid, np.full(len(grid), 1.0 / len(grid))
    else:
        points = np.concatenate([samples, grid])
        weights = np.concatenate([np.full(len(samples), (1 - UNIFORM_WEIGHT) / len(samples)),
                                  np.full(len(grid), UNIFORM_WEIGHT / len(grid))])
    terms = np.arange(degree + 1) if form == "general" else np.array([1, *range(0, degree + 1, 2)])
    root = np.sqrt(weights)
    vandermonde = chebyshev.chebvander(points, degree)[:, terms] * root[:, None]
    coefficients = np.zeros(degree + 1)
    coefficients[terms] = np.linalg.lstsq(vandermonde, np.maximum(points, 0.0) * root, rcond=None)[0]
    coefficients[0] -= chebyshev.chebval(0.0, coefficients)
    return coefficients


def relative_error(coefficients: np.ndarray, samples: np.ndarray) -> float:
    """RMS of p(x) - relu(x) over the samples, relative to the RMS of relu(x)."""
    exact = np.maximum(samples, 0.0)
    scale = max(float(np.sqrt(np.mean(exact**2))), 1e-12)
    return float(np.sqrt(np.mean((chebyshev.chebval(samples, coefficients) - exact) ** 2))) / scale


@dataclass
class ActivationChoice:
    degree: int
    depth: int
    coefficients: np.ndarray
    error: float


def choose_relu(samples: np.ndarray, target: float, max_depth: int, form: str = "general") -> ActivationChoice:
    """The cheapest depth whose stand-in meets the relative-error target on the calibration samples;
    the deepest allowed when none does (the summary reports the error reached)."""
    depths = [d for d in sorted(MAX_DEGREE_AT_DEPTH) if MIN_DEPTH <= d <= max_depth]
    if not depths:
        raise CompileError(f"no ReLU polynomial fits in {max_depth} levels (at least {MIN_DEPTH} are needed)")
    choice = None
    for depth in depths:
        degree = relu_degree(depth, form)
        coefficients = relu_chebyshev(degree, samples, form)
        choice = ActivationChoice(degree, depth, coefficients, relative_error(coefficients, samples))
        if choice.error <= target:
            break
    return choice
