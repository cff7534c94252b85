"""A plan as tables a reviewer reads: per layer the ops, levels, bootstraps, keys and estimated memory."""

from __future__ import annotations

from collections import OrderedDict

from resnet_fhe.plan.cost import baby_step_bytes, bootstrap_bytes, ciphertext_bytes, key_bytes, linear_group_size
from resnet_fhe.plan.ops import (
    Bootstrap,
    ChangeCarrier,
    LinearTransform,
    Polynomial,
    RotateSum,
    last_readers,
    op_inputs,
)
from resnet_fhe.plan.plan import Plan
from resnet_fhe.plan.residency import KeyResidency, own_rotation_keys
from resnet_fhe.plan.timing import OpCosts, op_work

GB = 1e9


def layer_rows(plan: Plan, queries: int = 1, costs: OpCosts | None = None) -> list[dict]:
    """One row per layer, in execution order, with op counts, the phase's estimated peak memory and,
    given a machine's fitted op costs (plan.timing), its predicted seconds for the batch (else None).

    The estimate counts what the server holds while the op runs: the keys KeyResidency keeps (the
    bootstrap keys, the few rotation keys held beside them, and the relinearisation key),
    the live registers and the op's working set, its constants included (the server reads them per
    op). `queries` is the batch the server evaluates op by op (each query holds plan.images_per_query
    images in the same ciphertexts): every query keeps its own live registers, keys are shared, and a
    linear transform works on a group of queries at once (plan.cost.linear_group_size)."""
    params = plan.params
    last_use = last_readers(plan.ops)
    residency = KeyResidency.for_params(params)
    bootstrap_slots = max((op.slots for op in plan.ops if isinstance(op, Bootstrap)), default=None)
    fixed = key_bytes(params)  # the relinearisation key; constants are read per op (plan.ConstantsOnDisk)
    live: dict[str, int] = {plan.input: plan.registers[plan.input].layout.ciphertexts}
    rows: OrderedDict[str, dict] = OrderedDict()
    for index, op in enumerate(plan.ops):
        row = rows.setdefault(op.layer, {
            "layer": op.layer, "ops": [], "rotations": 0, "plaintext_products": 0, "ciphertext_products": 0,
            "bootstraps": 0, "bootstrap_slots": set(), "rotation_keys": set(), "max_keys_per_op": 0,
            "level_in": op.level_in, "level_out": op.level_out, "memory_gb": 0.0, "polynomial": "",
            "seconds": None if costs is None else 0.0})
        row["ops"].append(op.kind)
        row["level_out"] = op.level_out
        if costs is not None:
            row["seconds"] += queries * costs.seconds(op_work(op, params))
        keys = op.rotation_keys()
        row["rotation_keys"] |= keys
        row["max_keys_per_op"] = max(row["max_keys_per_op"], len(own_rotation_keys(op, params, bootstrap_slots)))
        if isinstance(op, LinearTransform):
            row["rotations"] += op.rotations()
            row["plaintext_products"] += op.terms
        elif isinstance(op, RotateSum):
            row["rotations"] += len(op.steps) * op.ciphertexts
        elif isinstance(op, Polynomial):
            # Paterson-Stockmeyer: about 2*sqrt(degree) ciphertext products per ciphertext.
            row["ciphertext_products"] += op.ciphertexts * round(2 * op.degree ** 0.5)
            row["polynomial"] = f"deg {op.degree} (depth {op.depth})"
        elif isinstance(op, Bootstrap):
            row["bootstraps"] += op.bootstraps
            row["bootstrap_slots"].add(op.slots)
        elif isinstance(op, ChangeCarrier):
            row["plaintext_products"] += op.ciphertexts
        live[op.output] = plan.registers[op.output].layout.ciphertexts
        held = queries * sum(count * ciphertext_bytes(params, params.levels_after_bootstrap) for count in live.values())
        working = 0
        if isinstance(op, LinearTransform):
            group = linear_group_size(params, op, queries)
            working = group * (baby_step_bytes(params, op) + 2 * op.outputs * ciphertext_bytes(params, op.level_in))
            working += op.terms * op.slots * 8  # its diagonals, read from the plan's .npz for this op
        residency.admit(op)
        keys_memory = len(residency.rotations) * key_bytes(params)
        if residency.bootstrap_slots is not None:
            keys_memory += bootstrap_bytes(params, residency.bootstrap_slots)
        if isinstance(op, Bootstrap):
            working += 4 * ciphertext_bytes(params, params.multiplicative_depth)
        row["memory_gb"] = max(row["memory_gb"], (fixed + held + working + keys_memory) / GB)
        for name in op_inputs(op):
            if last_use.get(name) == index and name != op.output:
                live.pop(name, None)
    for row in rows.values():
        row["bootstrap_slots"] = sorted(row["bootstrap_slots"])
        row["rotation_keys"] = sorted(row["rotation_keys"])
        row["memory_gb"] = round(row["memory_gb"], 2)
        if row["seconds"] is not None:
            row["seconds"] = round(row["seconds"], 1)
    return list(rows.values())


def render_summary(plan: Plan) -> str:
    params = plan.params
    rows = layer_rows(plan)
    lines = [
        f"# {plan.model} under preset {params.name}",
        "",
        f"Generated by `resnet-fhe compile`; do not edit. {params.description}",
        "",
        f"- ring dimension {params.ring_dim}, scale 2^{params.scale_bits}, first modulus {params.first_mod_bits} "
        f"bits, depth {params.multiplicative_depth}, dnum {params.num_large_digits}, level budget "
        f"{list(params.level_budget)}, {params.secret_key_dist}, {params.security}",
        f"- levels: {params.fresh_levels} on a fresh ciphertext, {params.levels_after_bootstrap} after "
        f"bootstrapping (bootstrap depth {params.bootstrap_depth})",
        f"- images per query: {plan.images_per_query} (figures below are per query)",
        f"- **bootstraps: {plan.bootstraps}** (OpenFHE bootstraps per query: {sum(r['bootstraps'] for r in rows)}"
        f"{', two ciphertexts in one where paired (compiler/pairing.py)' if plan.complex_slots else ''}), "
        f"rotations: {sum(r['rotations'] for r in rows)}, "
        f"plaintext products: {sum(r['plaintext_products'] for r in rows)}",
        f"- most rotation keys any one op needs beyond the bootstrap keys: "
        f"{max(r['max_keys_per_op'] for r in rows)}. A layer's row below lists all keys of its ops, those the "
        "bootstrap keys include too (a strided convolution is a convolution, a subsample and a pack, each with "
        "its own few keys)",
        f"- estimated peak memory of the largest phase: {max(r['memory_gb'] for r in rows):.1f} GB (rough "
        "model in resnet_fhe/plan/cost.py; the server holds the bootstrap keys plus a few rotation keys "
        "that bootstrapping's keys do not include, see resnet_fhe/plan/residency.py)",
        f"- calibration: {plan.calibration['images']} training images, margin {plan.calibration['margin']}, "
        f"ReLU error target {plan.calibration['relu_error_target']}",
        f"- constants sha256: `{plan.constants_sha256}`",
        "",
        "| layer | ops | levels in->out | rotations | pt products | bootstraps (slots) | ReLU polynomial "
        "| rotation keys | est. GB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        boot = f"{r['bootstraps']} ({', '.join(map(str, r['bootstrap_slots']))})" if r["bootstraps"] else "-"
        ops = ", ".join(dict.fromkeys(r["ops"]))
        lines.append(f"| {r['layer']} | {ops} | {r['level_in']}->{r['level_out']} | {r['rotations']} | "
                     f"{r['plaintext_products']} | {boot} | {r['polynomial']} | "
                     f"{' '.join(map(str, r['rotation_keys']))} | {r['memory_gb']} |")
    return "\n".join(lines) + "\n"
