"""Polynomial stand-ins for ReLU, fitted on [-1, 1] (the compiler scales every activation input into it).

Degrees are the largest OpenFHE evaluates at each multiplicative depth (its Paterson-Stockmeyer
Chebyshev evaluation), so a degree is never paid for in levels without being used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.polynomial import chebyshev

from resnet_fhe.errors import CompileError

# Largest degree OpenFHE's EvalChebyshevSeries evaluates within a depth
# (openfhe.GetMultiplicativeDepthByCoeffVector; checked by a test).
MAX_DEGREE_AT_DEPTH = {3: 5, 4: 13, 5: 27, 6: 59, 7: 119, 8: 247, 9: 495, 10: 1007}


def depth_of_degree(degree: int) -> int:
    for depth, top in sorted(MAX_DEGREE_AT_DEPTH.items()):
        if degree <= top:
            return depth
    raise CompileError(f"degree {degree} is beyond the supported {max(MAX_DEGREE_AT_DEPTH.values())}")


MIN_DEPTH = 5  # below degree 27 no ReLU stand-in keeps a CIFAR ResNet's accuracy
UNIFORM_WEIGHT = 0.05  # share of the least-squares weight spread evenly over [-1, 1]


def relu_chebyshev(degree: int, samples: np.ndarray | None = None) -> np.ndarray:
    """Chebyshev coefficients of a degree-`degree` stand-in for max(x, 0) on [-1, 1].

    With samples: least squares weighted by where the calibration activations actually fall (most sit
    near 0, where ReLU's kink is hardest), plus a uniform share over [-1, 1] so that the polynomial stays
    close to ReLU on the whole interval. Without: Chebyshev interpolation. Either way shifted so that
    p(0) = 0 exactly, which keeps empty slots empty, so block padding never leaks into a pool.
    """
    if samples is None:
        coefficients = chebyshev.chebinterpolate(lambda x: np.maximum(x, 0.0), degree)
    else:
        grid = np.cos(np.pi * (np.arange(4 * degree + 4) + 0.5) / (4 * degree + 4))
        points = np.concatenate([samples, grid])
        weights = np.concatenate([np.full(len(samples), (1 - UNIFORM_WEIGHT) / len(samples)),
                                  np.full(len(grid), UNIFORM_WEIGHT / len(grid))])
        root = np.sqrt(weights)
        vandermonde = chebyshev.chebvander(points, degree) * root[:, None]
        coefficients = np.linalg.lstsq(vandermonde, np.maximum(points, 0.0) * root, rcond=None)[0]
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


def choose_relu(samples: np.ndarray, target: float, max_depth: int) -> ActivationChoice:
    """The cheapest depth whose interpolant meets the relative-error target on the calibration samples;
    the deepest allowed when none does (the summary reports the error reached)."""
    depths = [d for d in sorted(MAX_DEGREE_AT_DEPTH) if MIN_DEPTH <= d <= max_depth]
    if not depths:
        raise CompileError(f"no ReLU polynomial fits in {max_depth} levels (at least {MIN_DEPTH} are needed)")
    choice = None
    for depth in depths:
        coefficients = relu_chebyshev(MAX_DEGREE_AT_DEPTH[depth], samples)
        choice = ActivationChoice(MAX_DEGREE_AT_DEPTH[depth], depth, coefficients,
                                  relative_error(coefficients, samples))
        if choice.error <= target:
            break
    return choice
