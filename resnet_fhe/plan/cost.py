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
    """Rotation keys of CoeffsToSlots + SlotsToCoeffs (baby-step giant-step per level) plus conjugation."""
    log_slots = int(math.log2(slots))
    count = 1
    for budget in params.level_budget:
        radix = 2 ** math.ceil(log_slots / budget)
        count += budget * (2 * math.ceil(math.sqrt(radix)) + 2)
    return count


def bootstrap_bytes(params: CkksParameters, slots: int) -> int:
    """Keys plus the precomputed plaintext matrices of the two linear transforms."""
    log_slots = int(math.log2(slots))
    matrices = sum(b * 2 ** math.ceil(log_slots / b) for b in params.level_budget)
    plaintext = towers(params, params.multiplicative_depth) * params.ring_dim * WORD
    return bootstrap_key_count(params, slots) * key_bytes(params) + matrices * plaintext


# A linear transform shares each encoded diagonal across the images evaluated together, which needs their
# baby-step ciphertexts alive at once; groups are capped so a high-level transform's copies stay small.
LINEAR_GROUP_BYTES = 512 * 2**20


def baby_step_bytes(params: CkksParameters, op: LinearTransform) -> int:
    """One image's rotated copies of a linear transform's input."""
    return len(op.babies) * op.inputs * ciphertext_bytes(params, op.level_in)


def linear_group_size(params: CkksParameters, op: LinearTransform, images: int) -> int:
    """How many images a linear transform evaluates together (at least one)."""
    return max(1, min(images, LINEAR_GROUP_BYTES // baby_step_bytes(params, op)))
