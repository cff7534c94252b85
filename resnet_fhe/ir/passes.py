"""Graph rewrites that keep the function and remove layers the encrypted circuit should not pay for."""

from __future__ import annotations

import dataclasses

import numpy as np

from resnet_fhe.ir.graph import BatchNorm, Conv2d, Graph, Node, Normalize, PolynomialActivation
from resnet_fhe.ir.interpret import conv2d


def fold_batchnorm(graph: Graph) -> Graph:
    """Merges each BatchNorm into the Conv2d that alone feeds it."""
    nodes: list[Node] = []
    renamed: dict[str, str] = {}
    by_name = {node.name: node for node in graph.nodes}
    for node in graph.nodes:
        node = _rename_inputs(node, renamed)
        source = by_name.get(node.inputs[0]) if node.inputs else None
        if isinstance(node, BatchNorm) and isinstance(source, Conv2d) and len(graph.consumers(source.name)) == 1:
            index = next(i for i, done in enumerate(nodes) if done.name == source.name)
            conv = nodes[index]
            scale, shift = node.scale_shift()
            bias = np.zeros(conv.weight.shape[0]) if conv.bias is None else conv.bias
            bias_scale = scale if bias.ndim == 1 else scale[:, None, None]
            bias_shift = shift if bias.ndim == 1 else shift[:, None, None]
            nodes[index] = Conv2d(conv.name, conv.inputs, conv.weight * scale[:, None, None, None],
                                  bias * bias_scale + bias_shift, conv.stride, conv.padding)
            renamed[node.name] = conv.name
            continue
        nodes.append(node)
    return graph.replace(nodes)


def fold_input_normalization(graph: Graph) -> Graph:
    """Merges a Normalize right after the Input into the first convolution, so the client encrypts raw
    pixels in [0, 1].

    Exact, padding included: the convolution pads the *normalised* image with zeros, i.e. the raw image
    with `mean`, so the folded bias is a full map whose border entries differ from the interior.
    """
    if len(graph.nodes) < 3 or not isinstance(graph.nodes[1], Normalize):
        return graph
    norm, conv = graph.nodes[1], graph.nodes[2]
    if not isinstance(conv, Conv2d) or conv.inputs != (norm.name,) or len(graph.consumers(norm.name)) != 1:
        return graph
    inv_std = 1.0 / norm.std
    weight = conv.weight * inv_std[None, :, None, None]
    shape = graph.shapes[graph.input.name]
    # conv(normalised) = conv_w/std(x) - conv_w/std(mean everywhere inside the image, 0 in the padding)
    mean_image = np.broadcast_to(norm.mean[:, None, None], (shape.channels, shape.height, shape.width))
    offset = conv2d(mean_image[None].astype(np.float64), weight, conv.stride, conv.padding)[0]
    bias = np.zeros(conv.weight.shape[0]) if conv.bias is None else conv.bias
    bias_map = (bias if bias.ndim == 3 else bias[:, None, None]) - offset
    folded = Conv2d(conv.name, (graph.input.name,), weight, bias_map, conv.stride, conv.padding)
    return graph.replace([graph.nodes[0], folded, *graph.nodes[3:]])


def im2col_stem(graph: Graph) -> Graph:
    """A strided first convolution computed on an im2col input (resnet_fhe.im2col): the client sends each
    output position's receptive field as channels and the convolution becomes 1x1, stride 1, unpadded.
    Same function; one level and a few rotations instead of three levels (full-grid convolution,
    subsample, channel move) under CKKS. A stride-1 stem is left as it is: im2col would multiply its
    input's slots by kh * kw for nothing.

    Elementwise polynomials between the input and the convolution (a pixel-wise input transform, such as
    the even function of a model for pixel-encrypted images) move with it onto the im2col input: they
    commute with copying pixels, and also with the zero padding where they map 0 to 0."""
    if len(graph.nodes) < 2 or graph.input.im2col is not None:
        return graph
    chain, source = [], graph.input.name
    for node in graph.nodes[1:]:
        if node.inputs != (source,) or len(graph.consumers(source)) != 1:
            return graph
        if not isinstance(node, PolynomialActivation):
            break
        chain.append(node)
        source = node.name
    else:
        return graph  # no convolution after the polynomials
    conv = graph.nodes[1 + len(chain)]
    if not isinstance(conv, Conv2d) or conv.stride == 1 or len(graph.consumers(source)) != 1 or \
            (conv.padding and any(node.coefficients[0] for node in chain)):
        return graph
    out_c, in_c, kh, kw = conv.weight.shape
    stem = dataclasses.replace(graph.input, im2col=(kh, kw, conv.stride, conv.padding))
    flat = Conv2d(conv.name, conv.inputs, conv.weight.reshape(out_c, in_c * kh * kw, 1, 1), conv.bias, 1, 0)
    return graph.replace([stem, *chain, flat, *graph.nodes[2 + len(chain):]])


def _rename_inputs(node: Node, renamed: dict[str, str]) -> Node:
    if not any(name in renamed for name in node.inputs):
        return node
    return dataclasses.replace(node, inputs=tuple(renamed.get(name, name) for name in node.inputs))
