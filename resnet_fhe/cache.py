"""Where resnet-fhe keeps what is slow to make and safe to reuse: compiled plans and key stores."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "RESNET_FHE_CACHE"


def cache_dir() -> Path:
    """$RESNET_FHE_CACHE, else ~/.cache/resnet-fhe."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "resnet-fhe")
