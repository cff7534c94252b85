"""How a feature map sits in ciphertext slots.

Channel-major blocks: channel c occupies a block of `block` slots (the next power of two >= H*W),
row-major inside it, and `per_ct = slots // block` channels share one ciphertext; a tensor with more
channels than fit spans several ciphertexts. Powers of two keep rotations by whole blocks cyclic.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from resnet_fhe.errors import CompileError


def next_pow2(value: int) -> int:
    return 1 << max(0, int(value) - 1).bit_length()


@dataclass(frozen=True)
class Layout:
    channels: int
    height: int
    width: int
    block: int
    slots: int

    @classmethod
    def for_shape(cls, channels: int, height: int, width: int, max_slots: int) -> Layout:
        block = next_pow2(height * width)
        if block > max_slots:
            raise CompileError(f"a {height}x{width} channel needs {block} slots; the preset offers {max_slots}")
        return cls(channels, height, width, block, min(max_slots, next_pow2(channels) * block))

    @property
    def per_ct(self) -> int:
        return self.slots // self.block

    @property
    def ciphertexts(self) -> int:
        return -(-self.channels // self.per_ct)

    def position(self, channel: np.ndarray, row: np.ndarray, col: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(ciphertext index, slot) of tensor entries."""
        return channel // self.per_ct, (channel % self.per_ct) * self.block + row * self.width + col

    def pack(self, tensor: np.ndarray) -> list[np.ndarray]:
        """(N, C, H, W) -> one (N, slots) array per ciphertext, zeros outside the tensor."""
        n = tensor.shape[0]
        cts = np.zeros((self.ciphertexts, n, self.slots), dtype=tensor.dtype)
        c, h, w = np.meshgrid(np.arange(self.channels), np.arange(self.height), np.arange(self.width),
                              indexing="ij")
        ct, slot = self.position(c.ravel(), h.ravel(), w.ravel())
        cts[ct, :, slot] = tensor.reshape(n, -1).T
        return list(cts)

    def unpack(self, cts: list[np.ndarray]) -> np.ndarray:
        """The inverse of pack: (N, C, H, W) from per-ciphertext (N, slots) arrays."""
        c, h, w = np.meshgrid(np.arange(self.channels), np.arange(self.height), np.arange(self.width),
                              indexing="ij")
        ct, slot = self.position(c.ravel(), h.ravel(), w.ravel())
        stacked = np.stack(cts)
        return stacked[ct, :, slot].T.reshape(stacked.shape[1], self.channels, self.height, self.width)

    def to_dict(self) -> dict:
        return {"channels": self.channels, "height": self.height, "width": self.width, "block": self.block,
                "slots": self.slots, "ciphertexts": self.ciphertexts}
