"""The project's weights format: one .npz holding float arrays under our layer names and a JSON header.

The header (`__meta__`, a 0-d unicode array, so no pickle is ever needed to read it) says which
architecture the arrays belong to, the preprocessing the model was trained with, and where the numbers
came from. Loading checks every array against the architecture, so a truncated or edited file fails with
a message naming the array, not with a shape error deep inside a convolution.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from resnet_fhe.errors import WeightsError

FORMAT = "resnet-fhe-weights"
VERSION = 1
META_KEY = "__meta__"
WEIGHTS_DIR = Path(__file__).resolve().parents[2] / "weights"


@dataclass
class WeightsFile:
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]
    path: str = "<memory>"

    def array(self, key: str, shape: tuple[int, ...]) -> np.ndarray:
        """The array `key`, checked to have `shape`, as float64."""
        if key not in self.arrays:
            raise WeightsError(f"{self.path}: array {key!r} is missing")
        value = self.arrays[key]
        if value.shape != shape:
            raise WeightsError(f"{self.path}: array {key!r} has shape {value.shape}, expected {shape}")
        if not np.issubdtype(value.dtype, np.floating) or not np.all(np.isfinite(value)):
            raise WeightsError(f"{self.path}: array {key!r} must hold finite floats ({value.dtype})")
        return value.astype(np.float64)

    def save(self, path: str | Path) -> None:
        meta = {"format": FORMAT, "version": VERSION, **self.meta}
        header = np.array(json.dumps(meta, indent=1, sort_keys=True))
        np.savez_compressed(path, **{META_KEY: header}, **dict(sorted(self.arrays.items())))


def resolve_weights_path(model: str | Path) -> Path:
    """A path as given, or a model name such as 'resnet20' looked up in the repository's weights/."""
    candidate = Path(model)
    if candidate.suffix == ".npz" or candidate.exists():
        return candidate
    return WEIGHTS_DIR / f"{model}.npz"


def load_weights(model: str | Path) -> WeightsFile:
    path = resolve_weights_path(model)
    if not path.is_file():
        known = sorted(p.stem for p in WEIGHTS_DIR.glob("*.npz"))
        raise WeightsError(f"weights file {path} not found (models shipped in {WEIGHTS_DIR}: {', '.join(known)})")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise WeightsError(f"{path} is not a readable .npz weights file ({exc})") from exc
    if META_KEY not in arrays:
        raise WeightsError(f"{path} has no {META_KEY} header: convert it with weights/convert.py first")
    try:
        meta = json.loads(str(arrays.pop(META_KEY)))
    except json.JSONDecodeError as exc:
        raise WeightsError(f"{path}: the {META_KEY} header is not valid JSON ({exc})") from exc
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise WeightsError(f"{path}: format {meta.get('format')!r} v{meta.get('version')} is not {FORMAT} v{VERSION}")
    return WeightsFile(arrays, meta, str(path))
