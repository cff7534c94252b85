"""Which factor each encrypted tensor carries.

ReLU is positively homogeneous (relu(a x) = a relu(x) for a > 0), so a tensor can be stored as
scale * x for any positive scale, and linear layers fold the ratio of scales into their weights for free.
Tensors tied together (a ReLU's input and output, the operands and result of an Add) must share one
scale; each tied group takes 1 / (margin * its largest calibrated magnitude), which puts every
polynomial and bootstrapping input inside [-1/margin, 1/margin].
"""

from __future__ import annotations

from resnet_fhe.compiler.calibrate import Calibration
from resnet_fhe.errors import CompileError
from resnet_fhe.ir.graph import Add, AvgPool, Graph, Input, ReLU


def assign_scales(graph: Graph, calibration: Calibration, margin: float) -> dict[str, float]:
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
    missing = [n.name for n in graph.nodes if n.name not in calibration.ranges]
    if missing:
        raise CompileError(f"calibration has no range for {missing[:3]}: calibrate this same graph")
    group_range: dict[str, float] = {}
    for node in graph.nodes:
        root = find(node.name)
        group_range[root] = max(group_range.get(root, 0.0), calibration.ranges[node.name])
    scales: dict[str, float] = {}
    for node in graph.nodes:
        if isinstance(node, Input):
            scales[node.name] = 1.0  # the client encrypts pixels in [0, 1] as they are
            if find(node.name) != node.name:
                raise CompileError("the input cannot feed an activation or a residual add directly")
        elif isinstance(node, AvgPool):
            shape = graph.shapes[node.inputs[0]]
            scales[node.name] = scales[node.inputs[0]] * shape.height * shape.width  # it stores the sum
        else:
            # Rounded so that a plan is bit-for-bit reproducible whatever the BLAS summation order.
            scales[node.name] = float(f"{1.0 / (margin * group_range[find(node.name)]):.10g}")
    return scales
