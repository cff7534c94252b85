"""Linear layers -> slot-level entries for build_linear_transform.

Every function here returns the map of one layer in its layouts, already multiplied by the scale factor
that takes the input's stored scale to the output's. The decompositions (giant, baby) follow the layout:
a channel block difference is made of giant steps of one or more blocks, a spatial offset is a baby
rotation.
"""

from __future__ import annotations

import numpy as np

from resnet_fhe.compiler.linear import Entries, baby_chain
from resnet_fhe.errors import CompileError
from resnet_fhe.plan.layout import Layout


def _grid(*sizes: int) -> list[np.ndarray]:
    return [a.ravel() for a in np.meshgrid(*[np.arange(s) for s in sizes], indexing="ij")]


def _same_images(source: Layout, target: Layout) -> int:
    if source.images != target.images:
        raise CompileError(f"a layer maps {source.images} images per query to {target.images} (a compiler bug)")
    return source.images


def conv_entries(weight: np.ndarray, padding: int, stride: int, source: Layout, target: Layout,
                 channel_group: int = 1) -> Entries:
    """A convolution computed at stride 1 on the input grid; only the output positions a stride-`stride`
    convolution keeps (rows and columns 0, s, 2s, ...) are produced, in `target` (same grid as `source`).

    With d = input channel - output channel (mod the input's channels per ciphertext) and g the channel
    group: giant = d // g (step: g channels), baby = the tap's spatial offset dy*W + dx plus d % g
    channels. g = 1 needs the tap keys and the one channel key; a larger g trades giant rotations for
    baby ones (the compiler picks it, compile.py). With several images per query each image's entries
    repeat at its own offset.
    """
    out_c, in_c, kh, kw = weight.shape
    if (source.height, source.width, source.block) != (target.height, target.width, target.block):
        raise CompileError("conv_entries expects the output on the input's grid")
    images = _same_images(source, target)
    out_h = (source.height + 2 * padding - kh) // stride + 1
    out_w = (source.width + 2 * padding - kw) // stride + 1
    if stride * (out_h - 1) > source.height - 1 or stride * (out_w - 1) > source.width - 1:
        raise CompileError(f"padding {padding} with kernel {kh}x{kw} puts stride-{stride} outputs off the grid")
    m, o, i, a, b, h, w = _grid(images, out_c, in_c, kh, kw, out_h, out_w)
    row, col = h * stride, w * stride
    src_row, src_col = row + a - padding, col + b - padding
    keep = (src_row >= 0) & (src_row < source.height) & (src_col >= 0) & (src_col < source.width)
    keep &= weight[o, i, a, b] != 0
    m, o, i, a, b, row, col, src_row, src_col = (v[keep] for v in (m, o, i, a, b, row, col, src_row, src_col))
    out_ct, out_slot = target.position(o, row, col, m)
    in_ct, in_slot = source.position(i, src_row, src_col, m)
    shift = ((i % source.per_ct) - (o % target.per_ct)) % source.per_ct
    baby = (a - padding) * source.width + (b - padding) + (shift % channel_group) * source.channel_stride
    return Entries(out_ct, out_slot, in_ct, in_slot, shift // channel_group, baby, weight[o, i, a, b])


def conv_keys(layout: Layout, kernel: tuple[int, int], channel_group: int = 1) -> list[int]:
    """Single-step keys from which every baby offset is chained: +-1 and +-W (as in the reference), and
    one channel when babies span several (`channel_group` > 1)."""
    keys = [layout.channel_stride] if channel_group > 1 else []
    if kernel[1] > 1:
        keys += [1, -1]
    if kernel[0] > 1:
        keys += [layout.width, -layout.width]
    return keys


def subsample_entries(source: Layout, stride: int, target: Layout) -> Entries:
    """Within each block: (c, s*h, s*w) -> (c, h, w). Giant step s*W - W' per output row, baby (s-1)*w."""
    if target.block != source.block or target.slots != source.slots:
        raise CompileError("subsample keeps blocks and slots")
    m, c, h, w = _grid(_same_images(source, target), source.channels, target.height, target.width)
    out_ct, out_slot = target.position(c, h, w, m)
    in_ct, in_slot = source.position(c, h * stride, w * stride, m)
    return Entries(out_ct, out_slot, in_ct, in_slot, h, w * (stride - 1), np.ones(len(c)))


def subsample_step(source: Layout, stride: int, target: Layout) -> int:
    return stride * source.width - target.width


def channel_move_entries(source: Layout, target: Layout, channel_offset: int, scale: np.ndarray) -> Entries:
    """Moves channel c of `source` (block size b), times scale[c], to channel c + offset of `target`
    (block b'), same grid.

    Giant = the index of c's block (one per channel and image) within its input ciphertext (step b - b');
    the baby absorbs the constant shift of each (input ciphertext, output ciphertext) pair, so a few keys
    suffice.
    """
    if (source.height, source.width) != (target.height, target.width):
        raise CompileError("channel moves keep the spatial grid")
    images = _same_images(source, target)
    m, c, h, w = _grid(images, source.channels, source.height, source.width)
    out_ct, out_slot = target.position(c + channel_offset, h, w, m)
    in_ct, in_slot = source.position(c, h, w, m)
    slots = max(source.slots, target.slots)
    step = channel_step(source, target)
    giant = (c % source.per_ct) * images + m if step else np.zeros_like(c)
    baby = (in_slot - out_slot - giant * step) % slots
    return Entries(out_ct, out_slot, in_ct, in_slot, giant, baby, np.asarray(scale, dtype=np.float64)[c])


def channel_step(source: Layout, target: Layout) -> int:
    return source.block - target.block


def pooled_linear_entries(source: Layout, weight: np.ndarray, target: Layout) -> tuple[Entries, int]:
    """Linear layer on block sums (slot 0 of each channel block, left there by a RotateSum), and its giant step.

    Output j of image m goes to slot 0 of channel block j (`head_layout`), so every entry moves a whole
    number d = (c - j) mod per_ct of channel strides: baby-step giant-step over d, babies d % n and
    giants d // n (step n strides, n the power of two nearest sqrt(per_ct)). At most per_ct diagonals
    and about 2 sqrt(per_ct) rotations, against classes x channels products when each output had its
    own slot offset; for one image both keys (64 and 512 slots at ResNet20's last stage) are bootstrap keys.
    """
    classes, channels = weight.shape
    m, j, c = _grid(_same_images(source, target), classes, channels)
    keep = weight[j, c] != 0
    m, j, c = m[keep], j[keep], c[keep]
    in_ct, in_slot = source.position(c, np.zeros_like(c), np.zeros_like(c), m)
    out_ct, out_slot = target.position(j, np.zeros_like(j), np.zeros_like(j), m)
    babies = 1 << round(np.log2(source.per_ct) / 2)
    shift = (c % source.per_ct - j % target.per_ct) % source.per_ct
    entries = Entries(out_ct, out_slot, in_ct, in_slot, shift // babies, (shift % babies) * source.channel_stride,
                      weight[j, c])
    return entries, babies * source.channel_stride


def dense_entries(source: Layout, weight: np.ndarray, target: Layout) -> tuple[Entries, int]:
    """A Linear layer on a whole tensor, flattened in (C, H, W) order as torch's flatten does, into
    `target` (dense_layout), and its giant step.

    Whatever the two layouts, entry (j, k) moves input slot s_k to output slot t_j: a rotation by
    r = s_k - t_j modulo the output's slot count (a wider input is folded onto it afterwards), split into
    babies r % n and giants r // n (step n: the power of two with the fewest baby and giant rotations for
    the shifts that occur), and one plaintext per (giant, baby) pair that occurs: at most as many as the
    output has slots, whatever the input's size (TenSEAL's MNIST CNN: 127 instead of 256 at 4 channels,
    instead of 1,024 at 16). dense_layout makes r the same for every image of a query, so packing B
    images adds no plaintexts.
    """
    outputs, inputs = weight.shape
    if inputs != source.channels * source.height * source.width:
        raise CompileError(f"a {weight.shape} weight does not take a {source.channels}x{source.height}x"
                           f"{source.width} input")
    m, j, k = _grid(_same_images(source, target), outputs, inputs)
    keep = weight[j, k] != 0
    m, j, k = m[keep], j[keep], k[keep]
    in_ct, in_slot = source.position(*np.unravel_index(k, (source.channels, source.height, source.width)), m)
    out_ct, out_slot = target.position(*np.unravel_index(j, (target.channels, target.height, target.width)), m)
    slots = max(source.slots, target.slots)
    # A narrower output is summed over its replicas (the transform's fold steps), so each entry may land
    # on the replica of its output slot nearest below its input: every shift is then under target.slots.
    shift = (in_slot - out_slot) % target.slots
    landing = (in_slot - shift) % slots
    # The shifts of a dense map form a cyclic interval or a few (in - out spans -(outputs - 1) .. inputs - 1):
    # count from the end of the largest gap, so that a wrapped interval costs no extra giants (its
    # start goes into the babies' offsets).
    distinct = np.unique(shift)
    gaps = np.diff(np.append(distinct, distinct[0] + slots))
    starts = {0, int(distinct[(int(np.argmax(gaps)) + 1) % len(distinct)])}

    def rotations(choice: tuple[int, int]) -> int:
        base, n = choice
        relative = (distinct - base) % slots
        chain = baby_chain(list((relative % n + base) % slots), dense_keys(n), slots)
        return len(chain) - 1 + int(relative.max()) // n

    base, babies = min(((b, 1 << e) for b in sorted(starts) for e in range(slots.bit_length())), key=rotations)
    relative = (shift - base) % slots
    return Entries(out_ct, landing, in_ct, in_slot, relative // babies, (relative % babies + base) % slots,
                   weight[j, k]), babies


def dense_keys(babies: int) -> list[int]:
    """The keys dense_entries' babies are chained from (each baby one rotation from another), and its giant."""
    return [1, -1, babies]


def dense_layout(source: Layout, outputs: int, max_slots: int) -> Layout:
    """Where a dense_entries layer writes its vector. Up to one block: in each image's block of the
    input's block size, as one row of `outputs` entries (logical shape 1 x 1 x outputs), so output j
    of image m sits at the same offset from input k of image m for every m (the rotations and
    plaintexts of a packed query are those of one image); the register then carries one scale for
    all entries (scales.py). Longer vectors: one slot per output and image."""
    if outputs <= source.block:
        return Layout(1, 1, outputs, source.block, min(max_slots, source.block * source.images), source.images)
    return Layout.for_shape(outputs, 1, 1, max_slots, source.images)


def head_layout(source: Layout, classes: int) -> Layout:
    """The logits of pooled_linear_entries: output j where the pooled input keeps channel j's sum."""
    return Layout(classes, 1, 1, source.block, source.slots, source.images)


def bias_vectors(bias: np.ndarray, layout: Layout) -> np.ndarray:
    """(ciphertexts, slots) vectors holding a bias of shape (C,) or (C, H, W) at the layout's positions."""
    full = bias if bias.ndim == 3 else np.broadcast_to(bias[:, None, None], (layout.channels, layout.height,
                                                                                layout.width))
    query = np.broadcast_to(np.asarray(full, dtype=np.float64), (layout.images, *full.shape))
    return np.stack(layout.pack(query))[:, 0]
