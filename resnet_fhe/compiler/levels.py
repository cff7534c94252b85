"""Level accounting and automatic bootstrap placement.

Walks the ops in order, tracking how many levels each register has left. When an op (plus the levels
reserved for the ops chained after it) needs more than its input has, the input is bootstrapped in
place first. Bootstrapping needs its input in [-1, 1]: the register's calibrated range times its scale
must stay within 1, which the compiler's scale assignment guarantees and this pass verifies.
"""

from __future__ import annotations

from resnet_fhe.errors import CompileError
from resnet_fhe.plan.ops import Bootstrap, Op, op_inputs
from resnet_fhe.plan.params import CkksParameters
from resnet_fhe.plan.plan import Register

# OpenFHE's bootstrapping (FLEXIBLEAUTO) rescales its input once more before raising the modulus, so a
# ciphertext that may be bootstrapped must keep one level: measured, a register at 0 levels fails with
# "DropLastElement(): Removing last element of DCRTPoly renders it invalid".
BOOTSTRAP_HEADROOM = 1


def place_bootstraps(ops: list[Op], reserve: dict[str, int], registers: dict[str, Register], input_name: str,
                     params: CkksParameters) -> list[Op]:
    remaining = {input_name: params.fresh_levels}
    placed: list[Op] = []
    for op in ops:
        need = op.levels + reserve.get(op.name, 0) + BOOTSTRAP_HEADROOM
        if need > params.levels_after_bootstrap:
            raise CompileError(f"{op.name} needs {need} consecutive levels (one kept for bootstrapping); "
                               f"{params.name} leaves {params.levels_after_bootstrap} after bootstrapping")
        for name in op_inputs(op):
            if remaining[name] < need:
                register = registers[name]
                if register.bound > 1.0 + 1e-9:
                    raise CompileError(f"{name} must be bootstrapped before {op.name} but its values reach "
                                       f"{register.bound:.3f} > 1 (calibrated range x scale)")
                placed.append(Bootstrap(f"{name}.bootstrap@{op.name}", op.layer, name, name,
                                        register.layout.slots, register.layout.ciphertexts,
                                        level_in=remaining[name], level_out=params.levels_after_bootstrap))
                remaining[name] = params.levels_after_bootstrap
        op.level_in = min(remaining[name] for name in op_inputs(op))
        op.level_out = op.level_in - op.levels
        remaining[op.output] = op.level_out
        placed.append(op)
    return placed
