"""Graph + calibration + CKKS preset -> Plan.

The pipeline: assign scales, give every tensor a slot layout, lower each layer to ops (linear maps to
baby-step giant-step transforms, ReLU to a polynomial chosen against an error target), then account
levels and place bootstraps.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from numpy.polynomial import chebyshev

from resnet_fhe.compiler.calibrate import DEFAULT_CALIBRATION_IMAGES, Calibration
from resnet_fhe.compiler.levels import BOOTSTRAP_HEADROOM, place_bootstraps, trim_levels, widen_bootstraps
from resnet_fhe.compiler.linear import Entries, build_linear_transform
from resnet_fhe.compiler.lowering import (
    bias_vectors,
    channel_move_entries,
    channel_step,
    conv_entries,
    conv_keys,
    dense_entries,
    dense_keys,
    dense_layout,
    head_layout,
    pooled_linear_entries,
    subsample_entries,
    subsample_step,
)
from resnet_fhe.compiler.pairing import pair_bootstraps
from resnet_fhe.compiler.polynomial import MIN_DEPTH, choose_relu
from resnet_fhe.compiler.scales import assign_scales
from resnet_fhe.errors import CompileError
from resnet_fhe.ir.graph import (
    Add,
    AvgPool,
    Conv2d,
    Graph,
    Input,
    Linear,
    Node,
    PolynomialActivation,
    ReLU,
    Shape,
    ShortcutA,
)
from resnet_fhe.plan.layout import Layout
from resnet_fhe.plan.ops import AddTensors, Bootstrap, LinearTransform, Op, Polynomial, RotateSum, depth_of_degree
from resnet_fhe.plan.params import CkksParameters
from resnet_fhe.plan.plan import Plan, Register
from resnet_fhe.plan.residency import own_rotation_keys


@dataclass(frozen=True)
class CompileOptions:
    """margin: calibrated ranges are mapped to [-1/margin, 1/margin], headroom for unseen inputs (a
    polynomial diverges just outside [-1, 1]; 1.4 covers what held-out images reached, see calibrate.py).
    relu_error: target relative RMS error of each ReLU polynomial on its calibration samples.
    relu_form: "general" or "linear-even" (a*x + even(x): same depth, about half the evaluation time;
    see compiler/polynomial.py).
    max_keys_per_phase: rotation keys one op may need beyond those the bootstrap keys include (the server
    holds those anyway; before the first bootstrap it holds none, and an op there loads all its keys).
    uniform_bootstrap_slots: bootstrap every register at the plan's largest slot count, so the plan needs
    one set of bootstrap keys (compiler/levels.py: widen_bootstraps).
    images_per_query: images packed into the same ciphertexts (a power of two; plan/layout.py): each
    bootstrap, polynomial and rotation then serves all of them (compiler/packing.py chooses it).
    pair_bootstraps: at full packing, refresh two ciphertexts with one bootstrap (compiler/pairing.py):
    fewer bootstraps for half a bit of bootstrap precision.
    shallow_transitions: a ReLU whose readers spend more than one level before a bootstrap can come (a
    strided convolution and its compaction spend three) gets the polynomial that leaves them those
    levels, so no bootstrap is needed between it and them, instead of the deepest polynomial and one
    more bootstrap. ResNet20 at default-128: 17 bootstraps instead of 19 (about 8 % less time), but
    degree 54 instead of 238 at the two ReLUs before a stage transition cost accuracy (simulated, 10,000
    test images: top-1 91.39 % and agreement 97.31 % against 91.63 % and 98.70 %), so it is off by
    default."""

    margin: float = 1.4
    relu_error: float = 0.02
    relu_form: str = "linear-even"
    max_keys_per_phase: int = 5
    uniform_bootstrap_slots: bool = True
    images_per_query: int = 1
    pair_bootstraps: bool = True
    shallow_transitions: bool = False


SHALLOW_TRANSITIONS_HELP = ("a shallower ReLU before each stage transition instead of one more bootstrap there: "
                            "faster, less accurate (CompileOptions.shallow_transitions)")


class _Lowerer:
    def __init__(self, graph: Graph, calibration: Calibration, params: CkksParameters, options: CompileOptions,
                 bootstrap_slots: int | None):
        self.graph, self.params, self.options, self.calibration = graph, params, options, calibration
        self.bootstrap_slots = bootstrap_slots  # whose bootstrap keys the server holds beside linear layers'

        self.scales = assign_scales(graph, calibration, options.margin)
        self.registers: dict[str, Register] = {}
        self.ops: list[Op] = []
        self.reserve: dict[str, int] = {}
        self.constants: dict[str, np.ndarray] = {}
        self.activations: dict[str, dict] = {}
        # Without bootstrapping every key is the linear layers' own and the whole set is small (N <= 2^15):
        # the server holds it at once, so no per-op limit applies.
        self.key_limit = options.max_keys_per_phase if params.bootstrapping else float("inf")

    def layout(self, name: str) -> Layout:
        return _tensor_layout(self.graph.shapes[name], self.params, self.options)

    def add_register(self, name: str, layout: Layout, scale: np.ndarray, value_range: np.ndarray) -> None:
        scale, value_range = np.atleast_1d(scale), np.atleast_1d(value_range)
        if layout.channels == 1 and len(scale) > 1:  # a dense layer's row (lowering.dense_layout)
            if not np.allclose(scale, scale[0]):
                raise CompileError(f"{name}: a vector in one block needs one scale for all entries (a compiler bug)")
            scale, value_range = scale[:1], value_range.max(keepdims=True)
        self.registers[name] = Register(layout, list(scale), list(value_range))

    def linear(self, name: str, layer: str, source: str, target: str, entries: Entries, step: int,
               keys: list[int], target_layout: Layout, bias: np.ndarray | None = None, reserve: int = 0, *,
               purpose: str) -> None:
        src = self.registers[source].layout
        self.linear_op(*build_linear_transform(
            name, layer, source, target, entries, slots_in=src.slots, slots_out=target_layout.slots,
            inputs=src.ciphertexts, outputs=target_layout.ciphertexts, giant_step=step, keys=keys, bias=bias,
            purpose=purpose), reserve)

    def linear_op(self, op: LinearTransform, constants: dict[str, np.ndarray], reserve: int) -> None:
        own = own_rotation_keys(op, self.params, self.bootstrap_slots)
        if len(own) > self.key_limit:
            raise CompileError(f"{op.name} needs keys {sorted(own)} beside bootstrapping's, more than "
                               f"max_keys_per_phase={self.options.max_keys_per_phase}")
        self.ops.append(op)
        self.constants.update(constants)
        self.reserve[op.name] = reserve

    def conv_transform(self, name: str, layer: str, source: str, target: str, weight: np.ndarray, padding: int,
                       stride: int, kernel: tuple[int, int], bias: np.ndarray | None, reserve: int = 0) -> None:
        """The convolution as a LinearTransform with the channel group (lowering.conv_entries) that needs the
        fewest rotations within the key limit: ResNet20's last stage (64 channels per ciphertext) 48 instead
        of 71 at g = 2, its middle stage 32 instead of 39."""
        src, out = self.registers[source].layout, self.registers[target].layout
        best = None
        group = 1
        while group <= src.per_ct:  # rotations fall, then rise again as babies outnumber the giants saved
            op, constants = build_linear_transform(
                name, layer, source, target, conv_entries(weight, padding, stride, src, out, group),
                slots_in=src.slots, slots_out=out.slots, inputs=src.ciphertexts, outputs=out.ciphertexts,
                giant_step=group * src.channel_stride, keys=conv_keys(src, kernel, group), bias=bias,
                purpose="conv")
            if best is not None and op.rotations() >= best[0].rotations():
                break
            own = own_rotation_keys(op, self.params, self.bootstrap_slots)
            if group == 1 or len(own) <= self.key_limit:
                best = op, constants
            group *= 2
        self.linear_op(*best, reserve)

    def lower(self, node: Node) -> None:
        if isinstance(node, Input):
            self.add_register(node.name, self.layout(node.name), self.scales[node.name],
                              self.calibration.ranges[node.name])
            return
        out_layout = self.layout(node.name)
        scale = self.scales[node.name]
        self.add_register(node.name, out_layout, scale, self.calibration.ranges[node.name])
        handler = {Conv2d: self.conv, ReLU: self.relu, Add: self.add, ShortcutA: self.shortcut_a,
                   AvgPool: self.avgpool, Linear: self.linear_layer,
                   PolynomialActivation: self.polynomial_activation}.get(type(node))
        if handler is None:
            raise CompileError(f"{type(node).__name__} {node.name!r} has no encrypted lowering; fold "
                               "BatchNorm and the input normalisation first (resnet_fhe.models.load_model)")
        handler(node)

    def conv(self, node: Conv2d) -> None:
        source = node.inputs[0]
        src, out = self.registers[source].layout, self.registers[node.name].layout
        scale_out = self.scales[node.name]
        weight = node.weight * (scale_out[:, None] / self.scales[source][None, :])[:, :, None, None]
        bias = None if node.bias is None else bias_vectors(_scale_channels(node.bias, scale_out), out)
        kernel = node.weight.shape[2:]
        if node.stride == 1:
            if (src.height, src.width) != (out.height, out.width):
                raise CompileError(f"{node.name}: stride-1 convolutions must keep the feature-map size "
                                   "(use padding (k-1)/2)")
            self.conv_transform(node.name, node.name, source, node.name, weight, node.padding, 1, kernel, bias)
            return
        full = Layout.for_shape(out.channels, src.height, src.width, self.params.max_slots, src.images)
        self.add_register(f"{node.name}.full", full, self.scales[node.name], self.calibration.ranges[node.name])
        self.conv_transform(f"{node.name}.full", node.name, source, f"{node.name}.full", weight, node.padding,
                            node.stride, kernel, None, reserve=2)
        self.compact(node.name, f"{node.name}.full", node.stride, 0, np.ones(out.channels), bias)

    def compact(self, layer: str, source: str, stride: int, channel_offset: int, factor: np.ndarray,
                bias: np.ndarray | None) -> None:
        """Subsample by `stride` inside each block, then move channels into the output layout, multiplying
        source channel c by factor[c]."""
        src, out = self.registers[source].layout, self.registers[layer].layout
        if stride > 1:
            sub = replace(src, height=out.height, width=out.width)
            name = f"{layer}.subsample"
            self.add_register(name, sub, self.registers[source].scale, self.registers[source].range)
            step = subsample_step(src, stride, sub)
            self.linear(name, layer, source, name, subsample_entries(src, stride, sub), step, [1, step], sub,
                        reserve=1, purpose="subsample")
            source, src = name, sub
        entries = channel_move_entries(src, out, channel_offset, factor)
        step = channel_step(src, out)
        keys = [step, *np.unique(entries.baby).tolist()]
        self.linear(f"{layer}.pack", layer, source, layer, entries, step, keys, out, bias, purpose="pack")

    def shortcut_a(self, node: ShortcutA) -> None:
        source = node.inputs[0]
        channels = self.graph.shapes[source].channels
        pad = (node.out_channels - channels) // 2
        factor = self.scales[node.name][pad:pad + channels] / self.scales[source]
        self.compact(node.name, source, node.stride, pad, factor, None)

    def relu(self, node: ReLU) -> None:
        source = node.inputs[0]
        samples = (self.calibration.activation_samples[source] * self.scales[source][:, None]).ravel()
        # Levels for the readers that follow, one kept for bootstrapping.
        max_depth = self.params.levels_after_bootstrap - 1 - BOOTSTRAP_HEADROOM
        if self.options.shallow_transitions:
            spent = max((_levels_before_bootstrap(reader) for reader in self.graph.consumers(node.name)), default=1)
            shallow = self.params.levels_after_bootstrap - spent - BOOTSTRAP_HEADROOM
            if MIN_DEPTH <= shallow < max_depth:  # else no polynomial that short is accurate enough
                max_depth = shallow
        choice = choose_relu(samples, self.options.relu_error, max_depth, self.options.relu_form)
        layout = self.registers[source].layout  # slot-wise: the output keeps it (a dense layer's may be wider)
        self.add_register(node.name, layout, self.scales[node.name], self.calibration.ranges[node.name])
        self.ops.append(Polynomial(node.name, node.name, source, node.name, layout.slots, layout.ciphertexts,
                                   [float(f"{c:.10g}") for c in choice.coefficients], choice.depth))
        self.activations[node.name] = {"degree": choice.degree, "depth": choice.depth,
                                       "relative_error": round(choice.error, 6),
                                       "calibrated_max_input": round(float(np.max(np.abs(samples))), 6)}

    def polynomial_activation(self, node: PolynomialActivation) -> None:
        """Exact, unlike a ReLU stand-in. A monomial c x^k (scales.py) keeps per-channel scales: its stored
        output is the stored input to the k (the square: one EvalSquare, one level). Any other polynomial
        p is rewritten for the tensor-wide scales a, b of its input and output: q(u) = b p(u / a)."""
        source = node.inputs[0]
        layout = self.registers[source].layout
        self.add_register(node.name, layout, self.scales[node.name], self.calibration.ranges[node.name])
        if node.monomial:
            power = np.zeros(node.degree + 1)
            power[-1] = 1.0
            function = "square" if node.degree == 2 else "power"
        else:
            a, b = float(self.scales[source][0]), float(self.scales[node.name][0])
            power = b * np.asarray(node.coefficients) / a ** np.arange(node.degree + 1)
            function = "polynomial"
        depth = 1 if function == "square" else depth_of_degree(node.degree)
        coefficients = chebyshev.poly2cheb(power)
        self.ops.append(Polynomial(node.name, node.name, source, node.name, layout.slots, layout.ciphertexts,
                                   [float(f"{c:.15g}") for c in coefficients], depth, function))
        self.activations[node.name] = {"degree": node.degree, "depth": depth, "relative_error": 0.0,
                                       "function": function}

    def add(self, node: Add) -> None:
        layout = self.registers[node.name].layout
        for name in node.inputs:
            if self.registers[name].layout != layout or not np.allclose(self.scales[name], self.scales[node.name]):
                raise CompileError(f"{node.name}: operands differ in layout or scale (a compiler bug)")
        self.ops.append(AddTensors(node.name, node.name, list(node.inputs), node.name, layout.slots,
                                   layout.ciphertexts))

    def avgpool(self, node: AvgPool) -> None:
        source = node.inputs[0]
        src = self.registers[source].layout
        consumers = self.graph.consumers(node.name)
        if len(consumers) != 1 or not isinstance(consumers[0], Linear):
            raise CompileError(f"{node.name}: a global average pool must feed a Linear layer")
        # The sum stays in slot 0 of each channel block, in the input's layout; the Linear reads it there.
        steps = [1 << k for k in range(src.block.bit_length() - 1)]
        chunk = self.options.max_keys_per_phase
        groups = [steps[i:i + chunk] for i in range(0, len(steps), chunk)] or [[]]
        for index, group in enumerate(groups):
            target = node.name if index == len(groups) - 1 else f"{node.name}.sum{index}"
            self.add_register(target, src, self.scales[node.name], self.calibration.ranges[node.name])
            self.ops.append(RotateSum(target, node.name, source, target, src.slots, src.ciphertexts, group))
            self.reserve[target] = 1  # the Linear after it cannot bootstrap a sum outside [-1, 1]
            source = target

    def linear_layer(self, node: Linear) -> None:
        """After a global pool: on the block sums (pooled_linear_entries); else on the whole tensor, in
        torch's flatten order (dense_entries)."""
        if isinstance(self.graph.node(node.inputs[0]), AvgPool):
            self.linear_head(node)
            return
        source = node.inputs[0]
        src = self.registers[source].layout
        out = dense_layout(src, node.weight.shape[0], self.params.max_slots)
        self.add_register(node.name, out, self.scales[node.name], self.calibration.ranges[node.name])
        in_scale = np.asarray(self.registers[source].scale)
        per_input = np.repeat(in_scale, src.height * src.width)  # flatten order of the input's layout
        weight = node.weight * (self.scales[node.name][:, None] / per_input[None, :])
        bias = None if node.bias is None else bias_vectors(
            (node.bias * self.scales[node.name]).reshape(out.channels, out.height, out.width), out)
        entries, babies = dense_entries(src, weight, out)
        self.linear(node.name, node.name, source, node.name, entries, babies, dense_keys(babies), out, bias,
                    purpose="linear")

    def linear_head(self, node: Linear) -> None:
        source = node.inputs[0]
        src = self.registers[source].layout
        out = head_layout(src, node.weight.shape[0])
        scale_out = self.scales[node.name]
        self.add_register(node.name, out, scale_out, self.calibration.ranges[node.name])
        weight = node.weight * (scale_out[:, None] / self.scales[source][None, :])
        bias = None if node.bias is None else bias_vectors(_scale_channels(node.bias, scale_out), out)
        entries, giant_step = pooled_linear_entries(src, weight, out)
        self.linear(node.name, node.name, source, node.name, entries, giant_step, [src.channel_stride], out, bias,
                    purpose="linear")


def _tensor_layout(shape: Shape, params: CkksParameters, options: CompileOptions) -> Layout:
    """Where a graph tensor sits in slots (one layout rule for every tensor of a plan)."""
    return Layout.for_shape(shape.channels, shape.height, shape.width, params.max_slots, options.images_per_query)


def _levels_before_bootstrap(reader: Node) -> int:
    """Levels `reader` spends from its input before any bootstrap can refresh what it computes: one per
    linear op its lowering chains (a strided convolution: full, subsample, pack; a strided shortcut:
    subsample, pack; see _Lowerer.conv and .compact), none for a residual add."""
    if isinstance(reader, Conv2d):
        return 3 if reader.stride > 1 else 1
    if isinstance(reader, ShortcutA):
        return 2 if reader.stride > 1 else 1
    return 0 if isinstance(reader, Add) else 1


def _input_transform(node: Input) -> dict[str, list[int]] | None:
    """What the client does to an image before encrypting it (Plan.input_transform)."""
    if node.im2col is None:
        return None
    return {"image_shape": [node.shape.channels, node.shape.height, node.shape.width], "im2col": list(node.im2col)}


def _scale_channels(bias: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """A bias of shape (C,) or (C, H, W) times a per-channel scale."""
    return bias * scale.reshape((-1,) + (1,) * (bias.ndim - 1))


def compile_graph(graph: Graph, calibration: Calibration, params: CkksParameters,
                  options: CompileOptions | None = None, model: str | None = None) -> Plan:
    options = options or CompileOptions()
    # Lowering counts the keys an op needs beyond the bootstrap keys, before bootstraps are placed: it
    # assumes the widest tensor's slot count (what widen_bootstraps gives when that tensor is bootstrapped)
    # and lowers again with the placed one if that differs (placement depends on levels, not on keys).
    bootstrap_slots = None
    if options.uniform_bootstrap_slots:
        bootstrap_slots = max(_tensor_layout(shape, params, options).slots for shape in graph.shapes.values())
    for _ in range(2):
        lowerer = _Lowerer(graph, calibration, params, options, bootstrap_slots)
        for node in graph.nodes:
            lowerer.lower(node)
        ops = place_bootstraps(lowerer.ops, lowerer.reserve, lowerer.registers, graph.input.name, params)
        if options.uniform_bootstrap_slots:
            widen_bootstraps(ops)
        if options.pair_bootstraps:
            ops = pair_bootstraps(ops, lowerer.registers, params)
        placed = {op.slots for op in ops if isinstance(op, Bootstrap)}
        if len(placed) != 1 or placed == {bootstrap_slots}:
            break
        bootstrap_slots = placed.pop()
    output = graph.output
    input_levels = trim_levels(ops, graph.input.name, output.name)
    plan = Plan(model or graph.name, params, graph.input.name, output.name, graph.shapes[output.name].size,
                lowerer.registers, ops, lowerer.activations,
                {**calibration.to_dict(), "margin": options.margin, "relu_error_target": options.relu_error,
                 "relu_form": options.relu_form},
                lowerer.constants, input_levels=input_levels, input_transform=_input_transform(graph.input))
    plan.seal()
    return plan


def compile_model(model: str, preset: str, options: CompileOptions | None = None,
                  calibration_images: int = DEFAULT_CALIBRATION_IMAGES, data_dir: str | None = None) -> Plan:
    """The plan for a shipped model name (or weights path) under a named preset, calibrated on training
    images of the data set the model was trained on: what `resnet-fhe compile` writes to circuits/."""
    from resnet_fhe.compiler.calibrate import calibrate
    from resnet_fhe.data import load_dataset
    from resnet_fhe.models import load_model, model_dataset
    from resnet_fhe.plan.params import load_preset

    graph = load_model(model)
    calibration = calibrate(graph, load_dataset(model_dataset(model), "train", data_dir), images=calibration_images)
    return compile_graph(graph, calibration, load_preset(preset), options, model=model)
