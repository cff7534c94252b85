"""How many images one query packs into the same ciphertexts (plan/layout.py), chosen for a batch.

Packing B images pays each bootstrap, polynomial and key switch once for all B, but only where a tensor
leaves slots free: ResNet20 on CIFAR-10 fills 16,384 of N/2 = 32,768 slots per image in stage 1, 8,192
in stage 2 and 4,096 in stage 3, so B = 2, 4 and 8 fill them. Past the B at which every feature map
fills whole ciphertexts nothing more is shared (a larger batch is simply more queries), and a query
that is not full still pays for full ciphertexts, so the choice is the smallest power of two that holds
the batch, capped there; then halved while the plan's memory estimate exceeds the budget.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from resnet_fhe.errors import CompileError
from resnet_fhe.ir.graph import Graph
from resnet_fhe.plan.layout import next_pow2
from resnet_fhe.plan.params import CkksParameters
from resnet_fhe.plan.plan import Plan
from resnet_fhe.plan.summary import layer_rows


def packing_limit(graph: Graph, params: CkksParameters) -> int:
    """The largest useful images per query: where the narrowest feature map (in slots per image) fills a
    ciphertext, bounded by the widest channel block that must still fit B times."""
    maps = [s for s in graph.shapes.values() if s.height * s.width > 1]
    if not maps:
        return 1
    narrowest = min(next_pow2(s.channels) * next_pow2(s.height * s.width) for s in maps)
    widest_block = max(next_pow2(s.height * s.width) for s in maps)
    return max(1, min(params.max_slots // narrowest, params.max_slots // widest_block))


def images_per_query_arg(text: str) -> int:
    """argparse type of --images-per-query: a power of two, refused as the command line is read."""
    value = int(text) if text.strip().lstrip("-").isdigit() else 0
    if value < 1 or value & (value - 1):
        raise argparse.ArgumentTypeError(f"expected a power of two (1, 2, 4, 8, ...), not {text!r}")
    return value


def check_packing(graph: Graph, params: CkksParameters, images_per_query: int) -> None:
    """Refuses, before any compiling, images per query that the layouts cannot hold."""
    limit = packing_limit(graph, params)
    if images_per_query < 1 or images_per_query & (images_per_query - 1) or images_per_query > limit:
        raise CompileError(f"images per query must be a power of two from 1 to {limit} for {graph.name} at "
                           f"{params.name}, not {images_per_query}")


@dataclass(frozen=True)
class PackingChoice:
    plan: Plan
    images_per_query: int
    queries: int
    estimated_peak_gb: float
    reason: str


def plan_for_batch(graph: Graph, params: CkksParameters, images: int, budget_gb: float,
                   compile_with: Callable[[int], Plan], images_per_query: int | None = None) -> PackingChoice:
    """The plan for classifying `images` images: compiled by `compile_with(B)` at the B given, or else
    at the B chosen as the module says (halved, and compiled again, while its estimated peak exceeds
    `budget_gb`). The reason says what was picked and why, for the user."""
    if images < 1:
        raise CompileError(f"a batch needs at least one image, not {images}")
    limit = packing_limit(graph, params)
    if images_per_query is not None:
        check_packing(graph, params, images_per_query)
        chosen, why = images_per_query, "as asked"
    else:
        chosen = min(next_pow2(images), limit)
        why = (f"the smallest power of two holding {images} image(s)" if chosen < limit else
               f"{limit} fill every feature map's ciphertexts; more would only add queries")
    while True:
        plan = compile_with(chosen)
        queries = -(-images // chosen)
        peak = max(row["memory_gb"] for row in layer_rows(plan, queries=queries))
        if peak <= budget_gb or chosen == 1 or images_per_query is not None:
            break
        why = f"halved from {chosen}: its estimated peak {peak:.1f} GB exceeds the {budget_gb:g} GB budget"
        chosen //= 2
    reason = f"{chosen} image(s) per query, {queries} quer{'y' if queries == 1 else 'ies'} ({why})"
    return PackingChoice(plan, chosen, queries, peak, reason)
