"""Importing a trained torch model by tracing it (optional: needs the `torch` extra).

torch.fx records the module's forward as a graph of calls; each call is mapped to one IR node, so any
network built from the supported vocabulary imports, whatever its class or attribute names:

- modules: Conv2d (any stride and zero padding, groups 1, no dilation), BatchNorm2d, ReLU, Linear,
  Flatten, AvgPool2d / AdaptiveAvgPool2d over the whole map, Identity and Dropout (no-ops at inference),
  and a polynomial activation: any module with a `coefficients` attribute (power basis, c0 first);
- functions and methods: relu, x * x, x ** 2 and torch.square (the square activation), a + b (residual
  add), flatten / view / reshape to (batch, -1), adaptive_avg_pool2d(x, 1) and mean over (2, 3), and the
  CIFAR ResNets' option-A shortcut pad(x[:, :, ::s, ::s], (0, 0, 0, 0, p, p)).

Anything else is refused with a ModelError naming the module or call, before any weights are written.
The traced graph is checked against the module itself on random inputs (trace_module's `check`).
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from resnet_fhe.errors import ModelError
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
from resnet_fhe.models.graph_file import graph_to_weights
from resnet_fhe.models.weights_file import WeightsFile

SUPPORTED = ("Conv2d, BatchNorm2d, ReLU, Linear, Flatten, global AvgPool2d/AdaptiveAvgPool2d, Identity, Dropout, "
             "a module with `coefficients` (polynomial activation), x*x / x**2 / square, residual +, "
             "flatten/view/reshape(batch, -1), option-A shortcuts")
SQUARE = (0.0, 0.0, 1.0)


def _numpy(tensor: Any) -> np.ndarray:
    return tensor.detach().cpu().double().numpy()


def _single(value: Any, what: str, where: str) -> int:
    values = tuple(value) if isinstance(value, tuple | list) else (value, value)
    if len(set(values)) != 1:
        raise ModelError(f"{where}: {what} {values} must be the same in both directions")
    return int(values[0])


class _Builder:
    """Walks a torch.fx graph and emits IR nodes; `alias` maps an fx node to the IR node holding its value
    (a flatten or dropout emits nothing), `pending` holds strided views waiting for their shortcut pad."""

    def __init__(self, module: Any, input_shape: tuple[int, int, int], mean: Any, std: Any):
        self.modules = dict(module.named_modules())
        self.nodes: list[Node] = [Input("input", (), Shape(*input_shape))]
        self.shapes: dict[str, Shape] = {"input": Shape(*input_shape)}
        self.alias: dict[str, str] = {}
        self.pending: dict[str, tuple[str, int]] = {}
        self.first = "input"
        if mean is not None or std is not None:
            channels = input_shape[0]
            self.emit(Normalize("normalize", ("input",), np.broadcast_to(np.asarray(mean, float), (channels,)).copy(),
                                np.broadcast_to(np.asarray(std, float), (channels,)).copy()))
            self.first = "normalize"

    def emit(self, node: Node) -> str:
        self.nodes.append(node)
        self.shapes[node.name] = node.output_shape([self.shapes[name] for name in node.inputs])
        return node.name

    def source(self, arg: Any, where: str) -> str:
        name = getattr(arg, "name", None)
        if name is None or name not in self.alias:
            raise ModelError(f"{where}: an input that is not a traced tensor ({arg!r}) is not supported")
        if name in self.pending:
            raise ModelError(f"{where}: a strided view x[:, :, ::s, ::s] is only supported inside an option-A "
                             "shortcut pad")
        return self.alias[name]

    def module_node(self, fx_node: Any) -> None:
        import torch.nn as nn

        where = f"module {fx_node.target!r}"
        module = self.modules[fx_node.target]
        name, src = fx_node.name, self.source(fx_node.args[0], where)
        where = f"{where} ({type(module).__name__})"
        if hasattr(module, "coefficients"):
            coefficients = np.asarray(_numpy(module.coefficients) if hasattr(module.coefficients, "detach")
                                      else module.coefficients, dtype=float).ravel()
            self.alias[name] = self.emit(PolynomialActivation(name, (src,), tuple(float(c) for c in coefficients)))
        elif isinstance(module, nn.Conv2d):
            if module.groups != 1 or _single(module.dilation, "dilation", where) != 1:
                raise ModelError(f"{where}: groups and dilation must be 1")
            if module.padding_mode != "zeros" or isinstance(module.padding, str):
                raise ModelError(f"{where}: only explicit zero padding is supported")
            bias = None if module.bias is None else _numpy(module.bias)
            self.alias[name] = self.emit(Conv2d(name, (src,), _numpy(module.weight), bias,
                                                _single(module.stride, "stride", where),
                                                _single(module.padding, "padding", where)))
        elif isinstance(module, nn.BatchNorm2d):
            if not module.track_running_stats or module.running_mean is None:
                raise ModelError(f"{where}: BatchNorm needs running statistics")
            gamma = _numpy(module.weight) if module.affine else np.ones(module.num_features)
            beta = _numpy(module.bias) if module.affine else np.zeros(module.num_features)
            self.alias[name] = self.emit(BatchNorm(name, (src,), gamma, beta, _numpy(module.running_mean),
                                                   _numpy(module.running_var), float(module.eps)))
        elif isinstance(module, nn.ReLU):
            self.alias[name] = self.emit(ReLU(name, (src,)))
        elif isinstance(module, nn.Linear):
            bias = None if module.bias is None else _numpy(module.bias)
            self.alias[name] = self.emit(Linear(name, (src,), _numpy(module.weight), bias))
        elif isinstance(module, nn.Flatten):
            if module.start_dim != 1 or module.end_dim != -1:
                raise ModelError(f"{where}: only Flatten(start_dim=1) is supported")
            self.alias[name] = src
        elif isinstance(module, nn.Identity | nn.Dropout):
            self.alias[name] = src
        elif isinstance(module, nn.AdaptiveAvgPool2d | nn.AvgPool2d):
            self.global_pool(name, src, module, where)
        else:
            raise ModelError(f"{where} is not supported; supported: {SUPPORTED}")

    def global_pool(self, name: str, src: str, module: Any, where: str) -> None:
        import torch.nn as nn

        shape = self.shapes[src]
        if isinstance(module, nn.AdaptiveAvgPool2d):
            whole = module.output_size in (1, (1, 1))
        else:
            kernel = module.kernel_size if isinstance(module.kernel_size, tuple) else (module.kernel_size,) * 2
            whole = tuple(kernel) == (shape.height, shape.width) and not module.padding
        if not whole:
            raise ModelError(f"{where}: only a global average pool (over the whole {shape} map) is supported")
        self.alias[name] = self.emit(AvgPool(name, (src,)))

    def function_node(self, fx_node: Any) -> None:
        import torch
        import torch.nn.functional as F

        target, args, name = fx_node.target, fx_node.args, fx_node.name
        label = getattr(target, "__name__", str(target))
        where = f"call {label!r} ({name})"
        square = (target in (operator.mul, torch.mul) and len(args) == 2 and args[0] is args[1]) or \
            (target in (operator.pow, torch.pow) and len(args) == 2 and args[1] == 2) or \
            target in (torch.square, "square")
        pool = (target is F.adaptive_avg_pool2d and tuple(args[1:]) in ((1,), ((1, 1),))) or \
            (target == "mean" and tuple(args[1:]) in (((2, 3),), ([2, 3],)))
        if square:
            self.alias[name] = self.emit(PolynomialActivation(name, (self.source(args[0], where),), SQUARE))
        elif target in (operator.add, torch.add, "add") and len(args) == 2 and not fx_node.kwargs:
            inputs = tuple(self.source(a, where) for a in args)
            self.alias[name] = self.emit(Add(name, inputs))
        elif target in (F.relu, torch.relu, "relu"):
            self.alias[name] = self.emit(ReLU(name, (self.source(args[0], where),)))
        elif target in (torch.flatten, "flatten"):
            if tuple(args[1:]) not in ((1,), (1, -1)) and fx_node.kwargs.get("start_dim") != 1:
                raise ModelError(f"{where}: only flatten(x, 1) is supported")
            self.alias[name] = self.source(args[0], where)
        elif target in ("view", "reshape", torch.reshape):
            if len(args) != 3 or args[2] != -1 or not _is_batch_size(args[1]):
                raise ModelError(f"{where}: only view/reshape to (batch, -1) is supported")
            self.alias[name] = self.source(args[0], where)
        elif target == "size":
            self.alias[name] = name  # only ever read by view/reshape's batch dimension
        elif pool:
            self.alias[name] = self.emit(AvgPool(name, (self.source(args[0], where),)))
        elif target is operator.getitem:
            self.strided_view(fx_node, where)
        elif target is F.pad:
            self.shortcut_pad(fx_node, where)
        else:
            raise ModelError(f"{where} is not supported; supported: {SUPPORTED}")

    def strided_view(self, fx_node: Any, where: str) -> None:
        src_arg, index = fx_node.args
        if not (isinstance(index, tuple) and len(index) == 4 and index[0] == index[1] == slice(None)
                and index[2] == index[3] and isinstance(index[2], slice) and index[2].start in (None, 0)
                and index[2].stop is None and (index[2].step or 1) >= 1):
            raise ModelError(f"{where}: only x[:, :, ::s, ::s] (an option-A shortcut) is supported")
        self.alias[fx_node.name] = self.source(src_arg, where)
        self.pending[fx_node.name] = (self.alias[fx_node.name], index[2].step or 1)

    def shortcut_pad(self, fx_node: Any, where: str) -> None:
        src_arg, pads = fx_node.args[0], tuple(fx_node.args[1])
        view = self.pending.get(getattr(src_arg, "name", None))
        if view is None or len(pads) != 6 or any(pads[:4]) or pads[4] != pads[5]:
            raise ModelError(f"{where}: only pad(x[:, :, ::s, ::s], (0, 0, 0, 0, p, p)) (an option-A shortcut) is "
                             "supported")
        src, stride = view
        out_channels = self.shapes[src].channels + 2 * int(pads[4])
        self.alias[fx_node.name] = self.emit(ShortcutA(fx_node.name, (src,), out_channels, stride))


def _is_batch_size(arg: Any) -> bool:
    """`x.size(0)` or `x.shape[0]` as traced."""
    return getattr(arg, "op", None) in ("call_method", "call_function") and (
        (arg.target == "size" and tuple(arg.args[1:]) == (0,)) or
        (arg.target is operator.getitem and arg.args[1] == 0))


def _tracer():
    import torch.fx

    class Tracer(torch.fx.Tracer):
        """Keeps polynomial-activation modules (a `coefficients` attribute) as leaves, so their forward,
        whatever arithmetic it uses, is not traced into."""

        def is_leaf_module(self, module, qualified_name):
            return hasattr(module, "coefficients") or super().is_leaf_module(module, qualified_name)

    return Tracer()


def trace_module(module: Any, input_shape: tuple[int, int, int], mean: Any = None, std: Any = None,
                 name: str | None = None, check: bool = True) -> Graph:
    """The IR of torch module `module` taking (N, *input_shape) inputs; with `mean`/`std` the graph starts
    with the input normalisation the model was trained with (then the client encrypts raw pixels in
    [0, 1]). With `check`, the graph's logits on random inputs must equal the module's (float32 error)."""
    import torch

    module = module.eval()
    try:
        fx_graph = _tracer().trace(module)
    except Exception as exc:  # torch.fx raises many types for dynamic control flow
        raise ModelError(f"torch.fx cannot trace {type(module).__name__} ({exc}); only static networks of "
                         f"{SUPPORTED} import") from exc
    builder = _Builder(module, input_shape, mean, std)
    output = None
    for fx_node in fx_graph.nodes:
        if fx_node.op == "placeholder":
            if builder.alias:
                raise ModelError(f"{type(module).__name__}.forward takes more than one input")
            builder.alias[fx_node.name] = builder.first
        elif fx_node.op == "call_module":
            builder.module_node(fx_node)
        elif fx_node.op in ("call_function", "call_method"):
            builder.function_node(fx_node)
        elif fx_node.op == "output":
            output = builder.source(fx_node.args[0], "the output")
        elif fx_node.op == "get_attr" and fx_node.users:  # an unread one is the tracer's own bookkeeping
            raise ModelError(f"parameter {fx_node.target!r} used outside a supported module; supported: {SUPPORTED}")
    if output != builder.nodes[-1].name:
        raise ModelError("the module's output must be its last layer")
    graph = Graph(builder.nodes, name or type(module).__name__)
    if check:
        from resnet_fhe.ir.interpret import run_graph

        rng = np.random.default_rng(0)
        images = rng.uniform(0, 1, (4, *input_shape))
        normalized = images if mean is None else (images - np.asarray(mean, float).reshape(-1, 1, 1)) / \
            np.asarray(std, float).reshape(-1, 1, 1)
        with torch.no_grad():
            dtype = next(module.parameters(), torch.zeros(())).dtype
            expected = module(torch.tensor(normalized, dtype=dtype)).double().numpy()
        found = run_graph(graph, images)
        error = float(np.max(np.abs(found - expected)) / max(float(np.max(np.abs(expected))), 1e-12))
        if error > 1e-4:
            raise ModelError(f"the traced graph of {type(module).__name__} differs from the module (relative "
                             f"error {error:.2e}): an operation was traced that the importer misreads")
    return graph


def weights_from_module(module: Any, input_shape: tuple[int, int, int], provenance: dict | None = None,
                        name: str | None = None, mean: Any = None, std: Any = None) -> WeightsFile:
    """The traced module in the project's weights format (architecture "graph"), with its provenance."""
    graph = trace_module(module, input_shape, mean, std, name)
    return graph_to_weights(graph, {"source": {"kind": "torch module", "class": type(module).__name__},
                                    **(provenance or {})})
