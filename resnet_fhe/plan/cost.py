"""Rough memory model of a plan under OpenFHE's RNS-CKKS with hybrid key switching.

Estimates, not measurements: a ciphertext holds 2 polynomials of ring_dim 64-bit words per RNS tower;
an evaluation key holds 2 * dnum polynomials over the towers of Q and of the special modulus P; the
number of keys bootstrapping needs grows with the slot count over the level budget. The OpenFHE backend
measures the real figures; this model only ranks phases and catches plans that cannot fit.
"""

from __future__ import annotations

import math

from resnet_fhe.plan.ops import LinearTransform
from resnet_fhe.plan.params import CkksParameters

WORD = 8


def towers(params: CkksParameters, level: int) -> int:
    """RNS towers of a ciphertext with `level` levels left."""
    return level + 1


def special_towers(params: CkksParameters) -> int:
    digit_bits = math.ceil((params.multiplicative_depth + 1) / params.num_large_digits) * params.scale_bits
    return math.ceil(digit_bits / 60)


def ciphertext_bytes(params: CkksParameters, level: int) -> int:
    return 2 * towers(params, level) * params.ring_dim * WORD


def key_bytes(params: CkksParameters) -> int:
    all_towers = params.multiplicative_depth + 1 + special_towers(params)
    return 2 * params.num_large_digits * all_towers * params.ring_dim * WORD


def bootstrap_key_count(params: CkksParameters, slots: int) -> int:
    """Keys of one bootstrap slot count: the preset's measured count where it has one for `slots`
    (bench/bootstrap_precision.py counts them; dim1 changes it, see CkksParameters), otherwise a rough
    guess: baby-step giant-step rotations per transform level plus conjugation."""
    figures = params.bootstrap_figures(slots)
    if figures is not None:
        return figures.key_count
    log_slots = int(math.log2(slots))
    count = 1
    for budget in params.level_budget:
        radix = 2 ** math.ceil(log_slots / budget)
        count += budget * (2 * math.ceil(math.sqrt(radix)) + 2)
    return count


def collapsed_layers(log_slots: int, budget: int) -> tuple[int, int, int]:
    """How OpenFHE splits a transform's log2(slots) FFT layers over `budget` levels (ckksrns-utils
    SelectLayers): (layers per level, full levels, layers left for one more level)."""
    layers = math.ceil(log_slots / budget)
    rows, rem = divmod(log_slots, layers)
    if rows + (rem != 0) < budget:
        layers -= 1
        rows, rem = divmod(log_slots, layers)
        while rows + (rem != 0) > budget:
            rows -= 1
            rem = log_slots - rows * layers
    return layers, rows, rem


def transform_plaintexts(slots: int, budget: int) -> int:
    """Encoded diagonals of one collapsed FFT: 2^(k+1) - 1 per level that merges k layers."""
    layers, rows, rem = collapsed_layers(max(1, int(math.log2(slots))), budget)
    return rows * (2 ** (layers + 1) - 1) + (2 ** (rem + 1) - 1 if rem else 0)


def bootstrap_bytes(params: CkksParameters, slots: int) -> int:
    """Keys plus OpenFHE's precomputed transforms. Both transforms' diagonals are kept over the special
    modulus too (they multiply hoisted rotations before the key switch's last step): CoeffsToSlots'
    at the top of the chain, SlotsToCoeffs' at the levels left after the approximate modular reduction.
    Measured at default-128, 16,384 slots: 4.5 GB at level budget {3,3}, 3.4 at {4,3}, 2.8 at {4,4}."""
    ring = params.ring_dim * WORD
    top = towers(params, params.multiplicative_depth) + special_towers(params)
    bottom = towers(params, params.levels_after_bootstrap + params.level_budget[1]) + special_towers(params)
    encode, decode = (transform_plaintexts(slots, budget) for budget in params.level_budget)
    return bootstrap_key_count(params, slots) * key_bytes(params) + (encode * top + decode * bottom) * ring


# A linear transform shares each encoded diagonal across the queries evaluated together, which needs their
# baby-step ciphertexts alive at once; groups are capped so a high-level transform's copies stay small.
LINEAR_GROUP_BYTES = 512 * 2**20


def baby_step_bytes(params: CkksParameters, op: LinearTransform) -> int:
    """One query's rotated copies of a linear transform's input."""
    return len(op.babies) * op.inputs * ciphertext_bytes(params, op.level_in)


def linear_group_size(params: CkksParameters, op: LinearTransform, queries: int) -> int:
    """How many queries a linear transform evaluates together (at least one)."""
    return max(1, min(queries, LINEAR_GROUP_BYTES // baby_step_bytes(params, op)))
