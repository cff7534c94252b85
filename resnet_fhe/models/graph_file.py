"""Any IR graph in the project's weights format: the layers as JSON in the header, their arrays in the .npz.

The CIFAR ResNets keep their own naming (models/cifar_resnet.py); every other network (a traced torch
model, the trained CNNs in weights/) is stored as architecture "graph": the header lists the nodes in
order, each with its type, inputs and scalar attributes, and array attributes live under
`<node>.<attribute>`. Loading rebuilds the Graph, whose shape inference then checks every array.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from resnet_fhe.errors import ModelError, WeightsError
from resnet_fhe.ir.graph import (
    Add,
    AvgPool,
    BatchNorm,
    Conv2d,
    Graph,
    Input,
    Linear,
    Node,
    Normalize,
    PolynomialActivation,
    ReLU,
    Shape,
    ShortcutA,
)
from resnet_fhe.models.weights_file import WeightsFile

ARCHITECTURE = "graph"
NODE_TYPES: dict[str, type[Node]] = {cls.__name__: cls for cls in (
    Input, Normalize, Conv2d, BatchNorm, ReLU, PolynomialActivation, Add, ShortcutA, AvgPool, Linear)}


def graph_to_weights(graph: Graph, provenance: dict[str, Any] | None = None) -> WeightsFile:
    """`graph` as a WeightsFile; `provenance` (where the numbers came from) goes into the header."""
    nodes, arrays = [], {}
    for node in graph.nodes:
        entry: dict[str, Any] = {"name": node.name, "type": type(node).__name__, "inputs": list(node.inputs)}
        for field in dataclasses.fields(node):
            if field.name in ("name", "inputs"):
                continue
            value = getattr(node, field.name)
            if isinstance(value, np.ndarray):
                arrays[f"{node.name}.{field.name}"] = value.astype(np.float32)
                entry[field.name] = {"array": f"{node.name}.{field.name}"}
            elif isinstance(value, Shape):
                entry[field.name] = [value.channels, value.height, value.width]
            else:
                entry[field.name] = list(value) if isinstance(value, tuple) else value
        nodes.append(entry)
    output = graph.shapes[graph.output.name]
    meta = {"architecture": ARCHITECTURE, "name": graph.name, "nodes": nodes,
            "input_shape": [graph.input.shape.channels, graph.input.shape.height, graph.input.shape.width],
            "num_classes": output.size, **(provenance or {})}
    return WeightsFile(arrays, meta)


def graph_from_weights(weights: WeightsFile) -> Graph:
    """The Graph stored by graph_to_weights, every array and attribute checked."""
    if weights.meta.get("architecture") != ARCHITECTURE:
        raise WeightsError(f"{weights.path}: architecture {weights.meta.get('architecture')!r} is not {ARCHITECTURE!r}")
    nodes = []
    for index, entry in enumerate(weights.meta.get("nodes") or []):
        try:
            cls = NODE_TYPES[entry["type"]]
            kwargs = {"name": str(entry["name"]), "inputs": tuple(entry["inputs"])}
            for field in dataclasses.fields(cls):
                if field.name in kwargs or field.name not in entry:
                    continue
                kwargs[field.name] = _attribute(weights, entry[field.name], field.name)
            nodes.append(cls(**kwargs))
        except (KeyError, TypeError, ValueError) as exc:
            raise WeightsError(f"{weights.path}: node {index} of the header is malformed ({exc!r})") from exc
    if not nodes:
        raise WeightsError(f"{weights.path}: the header lists no nodes")
    try:
        return Graph(nodes, str(weights.meta.get("name", "network")))
    except ModelError as exc:
        raise WeightsError(f"{weights.path}: {exc}") from exc


def _attribute(weights: WeightsFile, value: Any, field: str) -> Any:
    if isinstance(value, dict) and "array" in value:
        key = value["array"]
        if key not in weights.arrays:
            raise WeightsError(f"{weights.path}: array {key!r} is missing")
        array = weights.arrays[key]
        if not np.issubdtype(array.dtype, np.floating) or not np.all(np.isfinite(array)):
            raise WeightsError(f"{weights.path}: array {key!r} must hold finite floats")
        return array.astype(np.float64)
    if field == "shape":
        return Shape(*(int(v) for v in value))
    if field == "coefficients":
        return tuple(float(v) for v in value)
    if field == "im2col":
        return None if value is None else tuple(int(v) for v in value)
    return value
