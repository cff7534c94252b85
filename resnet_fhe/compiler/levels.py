"""Level accounting: automatic bootstrap placement, then trimming every register to the levels it needs.

Placement walks the ops in order, tracking how many levels each register has left. When an op (plus the
levels reserved for the ops chained after it) needs more than its input has, the input is bootstrapped in
place first. Bootstrapping needs its input in [-1, 1]: the register's calibrated range times its scale
must stay within 1, which the compiler's scale assignment guarantees and this pass verifies.

Trimming walks back from the output and gives every register the levels its readers need, no more. Every
RNS tower a ciphertext carries costs time in each op that touches it, so the backends drop the towers
above these levels as soon as a register is written (and store it rescaled), and the client encrypts at
the level the first ops need rather than the whole chain.
"""

from __future__ import annotations

from resnet_fhe.errors import CompileError
from resnet_fhe.plan.ops import BOOTSTRAP_HEADROOM, Bootstrap, Op, op_inputs
from resnet_fhe.plan.params import CkksParameters
from resnet_fhe.plan.plan import Register

# Levels the network's output keeps for decryption (one RNS tower, enough to decrypt; measured).
OUTPUT_LEVELS = 0


def place_bootstraps(ops: list[Op], reserve: dict[str, int], registers: dict[str, Register], input_name: str,
                     params: CkksParameters) -> list[Op]:
    remaining = {input_name: params.fresh_levels}
    placed: list[Op] = []
    headroom = BOOTSTRAP_HEADROOM if params.bootstrapping else 0
    for op in ops:
        need = op.levels + reserve.get(op.name, 0) + headroom
        if not params.bootstrapping:
            short = [name for name in op_inputs(op) if remaining[name] < op.levels]
            if short:
                raise CompileError(f"{op.name} needs {op.levels} more level(s) but {short[0]} has "
                                   f"{remaining[short[0]]} left, and {params.name} does not bootstrap: the "
                                   "network is too deep for this preset (choose one with more depth)")
        elif need > params.levels_after_bootstrap:
            raise CompileError(f"{op.name} needs {need} consecutive levels (one kept for bootstrapping); "
                               f"{params.name} leaves {params.levels_after_bootstrap} after bootstrapping")
        for name in op_inputs(op) if params.bootstrapping else ():
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


def trim_levels(ops: list[Op], input_name: str, output_name: str) -> int:
    """Sets each op's level_out to the levels its readers need and level_in to what its inputs then hold;
    returns the levels the input is encrypted with. Runs after place_bootstraps, whose levels are what
    is available: a register never needs more than that, and the pass checks it."""
    need: dict[str, int] = {output_name: OUTPUT_LEVELS}
    available = {id(op): op.level_out for op in ops}
    for op in reversed(ops):
        out_need = need.pop(op.output, OUTPUT_LEVELS)
        if out_need > available[id(op)]:
            raise CompileError(f"{op.name}: its readers need {out_need} levels but it leaves "
                               f"{available[id(op)]} (a compiler bug)")
        op.level_out = out_need
        in_need = BOOTSTRAP_HEADROOM if isinstance(op, Bootstrap) else op.levels + out_need
        for name in op_inputs(op):
            need[name] = max(need.get(name, 0), in_need)
    levels = {input_name: need[input_name]}
    for op in ops:
        op.level_in = min(levels[name] for name in op_inputs(op))
        levels[op.output] = op.level_out
    return need[input_name]


def widen_bootstraps(ops: list[Op]) -> None:
    """Bootstraps every register at the plan's largest slot count.

    A register of n slots holds an n-periodic vector, so bootstrapping it at a multiple of n changes
    nothing in its values; the cost of one bootstrap barely depends on the slot count (the same
    coefficients-to-slots depth and keys per level at 4,096-16,384 slots), while each slot count has its
    own ~6 GB of bootstrap keys to generate, store and load. One slot count makes one key set.
    """
    bootstraps = [op for op in ops if isinstance(op, Bootstrap)]
    widest = max((op.slots for op in bootstraps), default=0)
    for op in bootstraps:
        op.slots = widest
