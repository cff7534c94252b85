"""Image transforms that protect pixels without running the network under CKKS (issue 14's schemes).

- `pixel`: pixel-based image encryption after Sirichotedumrong, Kinoshita and Kiya (IEEE Access 2019):
  a keyed negative-positive transformation of every colour component and a keyed shuffle of each
  pixel's colour components, with an independent key for every image; and the grey-scale variant (Deng,
  Hu and Fan, CyberC 2023), negative-positive only.
- `chunks`: the chunk selection of Jia et al. (J. Cloud Computing 2023): an image cut into chunks, each
  scored by its Sobel gradient magnitude, and only the chunks above a threshold chosen for CKKS.

numpy only at run time. Keys come from a seeded generator and are never written beside the images.
"""

from resnet_fhe.imagecrypt.chunks import (
    chunk_grid,
    chunk_pixel_mask,
    chunk_scores,
    equalize_histogram,
    resize_bilinear,
    select_chunks,
    sobel_magnitude,
)
from resnet_fhe.imagecrypt.pixel import PixelKey, decrypt, encrypt, encrypt_batch, image_keys

__all__ = ["PixelKey", "chunk_grid", "chunk_pixel_mask", "chunk_scores", "decrypt", "encrypt", "encrypt_batch",
           "equalize_histogram", "image_keys", "resize_bilinear", "select_chunks", "sobel_magnitude"]
