"""Which factor each channel of each encrypted tensor carries.

ReLU is positively homogeneous (relu(a x) = a relu(x) for a > 0), so channel c of a tensor can be
stored as scale[c] * x[c] for any positive scale, and linear layers fold the ratio of scales into their
weights for free. Scaling per channel rather than per tensor matters because channel ranges differ by
2-4x within a tensor: with one scale most channels would use a fraction of [-1, 1], and a polynomial's
error is fixed in absolute terms on that interval. Tensors tied together (a ReLU's input and output, the
operands and result of an Add) must share their scales; each tied group takes, channel by channel,
1 / (margin * the largest calibrated magnitude), which puts every polynomial and bootstrapping input
inside [-1/margin, 1/margin].

A polynomial activation c x^k (c > 0, TenSEAL's square) is homogeneous too: its output keeps
scale[c]^k / c per channel and needs no range of its own. Any other polynomial is not, so its input and
output each take one scale for all channels (from the largest channel's range), and the compiler
rewrites the polynomial for those two factors (compile.py).

Channels that are (nearly) dead on the calibration images are given the range
CHANNEL_FLOOR * the tensor's largest, not their own: a tiny calibrated range would otherwise turn a
rare unseen activation of that channel into a value far outside [-1, 1].
"""

from __future__ import annotations

import numpy as np

from resnet_fhe.compiler.calibrate import Calibration
from resnet_fhe.errors import CompileError
from resnet_fhe.ir.graph import Add, AvgPool, Graph, Input, Linear, PolynomialActivation, ReLU

CHANNEL_FLOOR = 0.1


def assign_scales(graph: Graph, calibration: Calibration, margin: float) -> dict[str, np.ndarray]:
    if margin < 1.0:
        raise CompileError(f"margin {margin} must be at least 1")
    parent = {node.name: node.name for node in graph.nodes}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    for node in graph.nodes:
        if isinstance(node, ReLU | Add):
            for name in node.inputs:
                union(name, node.name)
    tied = [n.name for n in graph.nodes if isinstance(n, PolynomialActivation) and n.monomial
            and any(find(other.name) == find(n.name) for other in graph.nodes if other is not n)]
    if tied:
        raise CompileError(f"{tied[0]}: a monomial activation's output sets its own scale (its input's to the "
                           "power) and cannot feed a ReLU or a residual add directly")
    missing = [n.name for n in graph.nodes if n.name not in calibration.ranges]
    if missing:
        raise CompileError(f"calibration has no range for {missing[:3]}: calibrate this same graph")
    uniform = {find(name) for node in graph.nodes if isinstance(node, PolynomialActivation) and not node.monomial
               for name in (*node.inputs, node.name)}
    # A Linear on a whole tensor writes its vector where one scale covers it (lowering.dense_layout).
    uniform |= {find(node.name) for node in graph.nodes
                if isinstance(node, Linear) and not isinstance(graph.node(node.inputs[0]), AvgPool)}
    group_range: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        root = find(node.name)
        group_range[root] = np.maximum(group_range.get(root, 0.0), calibration.ranges[node.name])
    scales: dict[str, np.ndarray] = {}
    for node in graph.nodes:
        channels = graph.shapes[node.name].channels
        if isinstance(node, Input):
            scales[node.name] = np.ones(channels)  # the client encrypts pixels in [0, 1] as they are
            if find(node.name) != node.name:
                raise CompileError("the input cannot feed an activation or a residual add directly")
        elif isinstance(node, AvgPool):
            shape = graph.shapes[node.inputs[0]]
            scales[node.name] = scales[node.inputs[0]] * shape.height * shape.width  # it stores the sum
        elif isinstance(node, PolynomialActivation) and node.monomial:
            scales[node.name] = scales[node.inputs[0]] ** node.degree / node.coefficients[-1]
        else:
            ranges = group_range[find(node.name)]
            ranges = np.maximum(ranges, CHANNEL_FLOOR * ranges.max())
            if find(node.name) in uniform:
                ranges = np.full_like(ranges, ranges.max())
            # Rounded so that a plan is bit-for-bit reproducible whatever the BLAS summation order.
            scales[node.name] = np.array([float(f"{v:.10g}") for v in 1.0 / (margin * ranges)])
    return scales
