"""How a feature map sits in ciphertext slots.

Channel-major blocks: channel c occupies a block of `block` slots (the next power of two >= H*W),
row-major inside it, and `per_ct` channels share one ciphertext; a tensor with more channels than fit
spans several ciphertexts. Powers of two keep rotations by whole blocks cyclic.

Several images can share the ciphertexts (`images` > 1, one query of B images): the image index sits
between channel and position, so slot = (channel * B + image) * block + position. A channel's step is
then B blocks, and every rotation a convolution uses (a tap offset inside a block, a whole number of
channel steps) moves each image's data within that image: a layer needs as many keys at any B (a
channel step's key is B times the block).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from resnet_fhe.errors import CompileError, InputError


def next_pow2(value: int) -> int:
    return 1 << max(0, int(value) - 1).bit_length()


@dataclass(frozen=True)
class Layout:
    channels: int
    height: int
    width: int
    block: int
    slots: int
    images: int = 1

    def __post_init__(self) -> None:
        if self.images < 1 or self.images & (self.images - 1):
            raise CompileError(f"images per ciphertext must be a power of two, not {self.images}")
        if self.per_ct < 1:
            raise CompileError(f"{self.images} images of a {self.height}x{self.width} channel need "
                               f"{self.images * self.block} slots; the layout has {self.slots}")

    @classmethod
    def for_shape(cls, channels: int, height: int, width: int, max_slots: int, images: int = 1) -> Layout:
        block = next_pow2(height * width)
        if block * images > max_slots:
            raise CompileError(f"{images} image(s) of a {height}x{width} channel need {block * images} slots; "
                               f"the preset offers {max_slots}")
        return cls(channels, height, width, block, min(max_slots, next_pow2(channels) * block * images), images)

    @property
    def channel_stride(self) -> int:
        """Slots between channel c and c + 1 of one image within a ciphertext."""
        return self.block * self.images

    @property
    def per_ct(self) -> int:
        """Channels per ciphertext (each with all its images)."""
        return self.slots // (self.block * self.images)

    @property
    def ciphertexts(self) -> int:
        return -(-self.channels // self.per_ct)

    def position(self, channel: np.ndarray, row: np.ndarray, col: np.ndarray,
                 image: np.ndarray | int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(ciphertext index, slot) of tensor entries of image `image` of the query."""
        slot = ((channel % self.per_ct) * self.images + image) * self.block
        return channel // self.per_ct, slot + row * self.width + col

    def _grid(self) -> tuple[np.ndarray, np.ndarray]:
        """(ciphertext, slot) of every entry of a (images, C, H, W) query, in that array's order."""
        m, c, h, w = (a.ravel() for a in np.meshgrid(np.arange(self.images), np.arange(self.channels),
                                                     np.arange(self.height), np.arange(self.width), indexing="ij"))
        return self.position(c, h, w, m)

    def pack(self, tensor: np.ndarray) -> list[np.ndarray]:
        """(N, C, H, W), N a multiple of `images` -> one (N / images, slots) array per ciphertext (a row
        per query of `images` consecutive images), zeros outside the tensor."""
        if tensor.shape[0] % self.images:
            raise InputError(f"{tensor.shape[0]} images do not fill queries of {self.images}: pad them "
                             "(pad_images)")
        queries = tensor.shape[0] // self.images
        cts = np.zeros((self.ciphertexts, queries, self.slots), dtype=tensor.dtype)
        ct, slot = self._grid()
        cts[ct, :, slot] = tensor.reshape(queries, -1).T
        return list(cts)

    def unpack(self, cts: list[np.ndarray]) -> np.ndarray:
        """The inverse of pack: (N, C, H, W) from per-ciphertext (queries, slots) arrays."""
        ct, slot = self._grid()
        stacked = np.stack(cts)
        values = stacked[ct, :, slot].T
        return values.reshape(stacked.shape[1] * self.images, self.channels, self.height, self.width)

    def to_dict(self) -> dict:
        data = {"channels": self.channels, "height": self.height, "width": self.width, "block": self.block,
                "slots": self.slots, "ciphertexts": self.ciphertexts}
        if self.images > 1:  # a single-image layout reads as it always has
            data.update(images=self.images)
        return data


def pad_images(images: np.ndarray, per_query: int) -> np.ndarray:
    """`images` with copies of the last one appended up to a multiple of `per_query` (their results are
    dropped). Not blanks: an all-black image lies far outside the calibrated activation ranges, its
    polynomials diverge, and under CKKS one diverging slot ruins the whole ciphertext (measured: the
    query's answer no longer decrypts), the other images' results with it."""
    missing = -len(images) % per_query
    if not missing:
        return images
    return np.concatenate([images, np.repeat(images[-1:], missing, axis=0)])
