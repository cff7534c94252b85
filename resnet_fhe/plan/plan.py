"""The compiled plan: a deterministic, JSON-serialisable program of homomorphic ops, plus its constants.

The JSON holds everything a reviewer reads (ops, layouts, scales, levels, keys, polynomial
coefficients); the bulky diagonal vectors sit in a companion .npz whose sha256 the JSON records, so a
plan change always shows up as a diff.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from resnet_fhe.errors import InputError, PlanError
from resnet_fhe.im2col import im2col
from resnet_fhe.plan.layout import Layout
from resnet_fhe.plan.ops import OP_TYPES, REAL, BabyStep, Bootstrap, LinearTransform, Op
from resnet_fhe.plan.params import CkksParameters

# 2: levels are trimmed to what readers need, and the plan records the input's levels.
# 3: several images per query, bootstrap figures per slot count.
PLAN_VERSION = 5  # 4: carriers and paired bootstraps (plan/ops.py); 5: logits in channel blocks


@dataclass
class Register:
    """A tensor the circuit holds: its layout, and per channel the factor its stored values carry and
    its calibrated range (largest |value| before scaling)."""

    layout: Layout
    scale: list[float]
    range: list[float]

    def __post_init__(self) -> None:
        self.scale = [float(v) for v in np.broadcast_to(self.scale, (self.layout.channels,))]
        self.range = [float(v) for v in np.broadcast_to(self.range, (self.layout.channels,))]

    @property
    def bound(self) -> float:
        """The largest stored |value| on the calibration images."""
        return max(r * s for r, s in zip(self.range, self.scale, strict=True))

    def _scale_map(self) -> np.ndarray:
        return np.asarray(self.scale)[:, None, None]

    def to_slots(self, tensor: np.ndarray) -> list[np.ndarray]:
        """(N, C, H, W) in true units -> one (N, slots) array per ciphertext, scaled."""
        return self.layout.pack(tensor * self._scale_map().astype(tensor.dtype))

    def from_slots(self, cts: list[np.ndarray]) -> np.ndarray:
        """The inverse of to_slots: (N, C, H, W) in true units."""
        return self.layout.unpack(cts) / self._scale_map()


class ConstantsOnDisk(Mapping[str, np.ndarray]):
    """A plan's constants read from its .npz each time one is asked for, never all held.

    The server needs one linear transform's diagonals at a time; holding all of them (0.54 GB for the
    128-bit ResNet20 plan) would sit beside the bootstrap keys at the memory peak for nothing. Reading
    one op's arrays back costs a fraction of a second."""

    def __init__(self, path: Path):
        self.path = Path(path)
        with np.load(self.path, allow_pickle=False) as archive:
            self._names = tuple(archive.files)

    def __getitem__(self, key: str) -> np.ndarray:
        if key not in self._names:
            raise KeyError(key)
        with np.load(self.path, allow_pickle=False) as archive:
            return archive[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


@dataclass
class Plan:
    model: str
    params: CkksParameters
    input: str
    output: str
    classes: int
    registers: dict[str, Register]
    ops: list[Op]
    activations: dict[str, dict[str, Any]]
    calibration: dict[str, Any]
    constants: Mapping[str, np.ndarray] = field(default_factory=dict, repr=False)
    constants_sha256: str = ""
    input_levels: int = 0  # levels the client encrypts the input with (what the first ops need)
    # How the client arranges an image before encrypting: {"image_shape": [C, H, W], "im2col": [kh, kw,
    # stride, padding]} when the first convolution reads an im2col input (ir/passes.py: im2col_stem).
    input_transform: dict[str, list[int]] | None = None

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the images the client encrypts."""
        if self.input_transform is not None:
            return tuple(self.input_transform["image_shape"])  # type: ignore[return-value]
        layout = self.registers[self.input].layout
        return layout.channels, layout.height, layout.width

    def prepare_input(self, images: np.ndarray) -> np.ndarray:
        """Images (N, C, H, W) in [0, 1] -> the input register's tensor (the client's side of the plan)."""
        if images.ndim != 4 or images.shape[1:] != self.image_shape:
            raise InputError(f"the plan takes images (N, {', '.join(map(str, self.image_shape))}), got {images.shape}")
        if self.input_transform is None:
            return images
        kh, kw, stride, padding = self.input_transform["im2col"]
        return im2col(images, (kh, kw), stride, padding)

    @property
    def images_per_query(self) -> int:
        """Images that share one query's ciphertexts (plan/layout.py)."""
        return self.registers[self.input].layout.images

    @property
    def packing_suffix(self) -> str:
        """'-bB' for a plan of B > 1 images per query, '' otherwise: in its file and key-store names."""
        return f"-b{self.images_per_query}" if self.images_per_query > 1 else ""

    @property
    def bootstraps(self) -> int:
        """Bootstrap ops (each refreshes one register, of one or more ciphertexts)."""
        return sum(isinstance(op, Bootstrap) for op in self.ops)

    def bootstraps_per_query(self) -> int:
        """OpenFHE bootstraps one query costs (a paired bootstrap op refreshes two ciphertexts with one)."""
        return sum(op.bootstraps for op in self.ops if isinstance(op, Bootstrap))

    @property
    def complex_slots(self) -> bool:
        """Whether some register carries complex factors: its context needs OpenFHE's COMPLEX data type."""
        return any(op.carrier != REAL for op in self.ops)

    def bootstrap_slot_counts(self) -> list[int]:
        """The slot counts the plan bootstraps at (each needs its own bootstrap keys)."""
        return sorted({op.slots for op in self.ops if isinstance(op, Bootstrap)})

    def layers(self) -> list[str]:
        seen: list[str] = []
        for op in self.ops:
            if op.layer not in seen:
                seen.append(op.layer)
        return seen

    def seal(self) -> None:
        self.constants_sha256 = hash_constants(self.constants)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION, "model": self.model, "params": self.params.to_dict(),
            "input": self.input, "input_levels": self.input_levels, "output": self.output, "classes": self.classes,
            "registers": {k: {"layout": r.layout.to_dict(), "scale": r.scale, "range": r.range}
                          for k, r in self.registers.items()},
            "activations": self.activations, "calibration": self.calibration,
            "constants_sha256": self.constants_sha256,
            "ops": [_op_to_dict(op) for op in self.ops],
            **({"input_transform": self.input_transform} if self.input_transform is not None else {}),
        }

    def save(self, path: str | Path) -> tuple[Path, Path]:
        """Writes <path> (JSON) and <path minus .json>.npz (constants)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=1) + "\n")
        constants_path = path.with_suffix(".npz")
        np.savez_compressed(constants_path, **self.constants)
        return path, constants_path

    @classmethod
    def from_dict(cls, data: dict[str, Any], constants: Mapping[str, np.ndarray] | None = None) -> Plan:
        if data.get("version") != PLAN_VERSION:
            raise PlanError(f"plan version {data.get('version')} is not {PLAN_VERSION}: recompile it with "
                            "`resnet-fhe compile` (and make a new key store for it)")
        try:
            registers = {}
            for name, reg in data["registers"].items():
                layout = {k: v for k, v in reg["layout"].items() if k != "ciphertexts"}
                registers[name] = Register(Layout(**layout), reg["scale"], reg["range"])
            plan = cls(data["model"], CkksParameters.from_dict(data["params"]), data["input"], data["output"],
                       data["classes"], registers, [_op_from_dict(op) for op in data["ops"]], data["activations"],
                       data["calibration"], constants or {}, data["constants_sha256"], data["input_levels"],
                       data.get("input_transform"))
        except (KeyError, TypeError) as exc:
            raise PlanError(f"plan is malformed ({type(exc).__name__}: {exc})") from exc
        if constants is not None and hash_constants(constants) != plan.constants_sha256:
            raise PlanError("the plan's constants do not match its recorded sha256 (mixed-up or edited files)")
        return plan

    @classmethod
    def load(cls, path: str | Path, constants_on_disk: bool = False) -> Plan:
        """The plan at `path` with its .npz beside it: constants read into memory, or with
        `constants_on_disk` read back whenever used (a server's choice, see ConstantsOnDisk)."""
        path = Path(path)
        try:
            data = json.loads(path.read_text())
            if constants_on_disk:
                constants: Mapping[str, np.ndarray] = ConstantsOnDisk(path.with_suffix(".npz"))
            else:
                with np.load(path.with_suffix(".npz"), allow_pickle=False) as archive:
                    constants = {k: archive[k] for k in archive.files}
        except (OSError, ValueError) as exc:
            raise PlanError(f"cannot read plan {path} and its .npz ({exc}); the .npz is not checked in: "
                            "regenerate both with `resnet-fhe compile`") from exc
        return cls.from_dict(data, constants)


# What a client and server execute; calibration and activation notes are provenance only.
EXECUTABLE_FIELDS = ("params", "input", "input_levels", "output", "classes", "registers", "ops", "constants_sha256",
                     "input_transform")  # the last only where a plan has one (so older plans' digests stand)


def plan_differences(fresh: Any, stored: Any, path: str = "plan") -> list[str]:
    """Where two plan JSON trees differ. Floats may differ by 1e-7 relative: the least-squares ReLU fits
    move in their last digits with the BLAS thread count. Everything else, the constants' sha256
    included, must be identical."""
    if isinstance(fresh, dict) and isinstance(stored, dict):
        if fresh.keys() != stored.keys():
            return [f"{path}: keys {sorted(set(fresh) ^ set(stored))}"]
        return [d for key in fresh for d in plan_differences(fresh[key], stored[key], f"{path}.{key}")]
    if isinstance(fresh, list) and isinstance(stored, list):
        if len(fresh) != len(stored):
            return [f"{path}: length {len(fresh)} != {len(stored)}"]
        pairs = enumerate(zip(fresh, stored, strict=True))
        return [d for i, (a, b) in pairs for d in plan_differences(a, b, f"{path}[{i}]")]
    if isinstance(fresh, float) and isinstance(stored, float):
        return [] if np.isclose(fresh, stored, rtol=1e-7, atol=1e-12) else [f"{path}: {fresh} != {stored}"]
    return [] if fresh == stored else [f"{path}: {fresh!r} != {stored!r}"]


def executes_alike(plan: Plan, stored: dict[str, Any]) -> bool:
    """Whether a stored plan's JSON runs the same circuit as `plan` (what a key store made for it needs),
    in a format this engine still reads (a key store's server loads its stored plan)."""
    if stored.get("version") != PLAN_VERSION:
        return False
    fresh = json.loads(json.dumps(plan.to_dict()))
    return all((field in fresh) == (field in stored) and not plan_differences(fresh[field], stored[field], field)
               for field in EXECUTABLE_FIELDS if field in fresh or field in stored)


def hash_constants(constants: Mapping[str, np.ndarray]) -> str:
    digest = hashlib.sha256()
    for key in sorted(constants):
        value = np.ascontiguousarray(constants[key])
        digest.update(key.encode())
        digest.update(str(value.dtype).encode() + str(value.shape).encode())
        digest.update(value.tobytes())
    return digest.hexdigest()


def _op_to_dict(op: Op) -> dict[str, Any]:
    data = {"kind": op.kind, **dataclasses.asdict(op)}
    if data["carrier"] == REAL:  # the common case, left implicit
        del data["carrier"]
    if isinstance(op, LinearTransform):
        data["babies"] = [[b.offset, b.source, b.key] for b in op.babies]
        data["rotation_keys"] = sorted(op.rotation_keys())
    return data


def _op_from_dict(data: dict[str, Any]) -> Op:
    data = dict(data)
    kind = data.pop("kind", None)
    if kind not in OP_TYPES:
        raise PlanError(f"unknown op kind {kind!r}")
    data.pop("rotation_keys", None)
    if kind == "linear":
        data["babies"] = [BabyStep(*b) for b in data["babies"]]
    return OP_TYPES[kind](**data)
