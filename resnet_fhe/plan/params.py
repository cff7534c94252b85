"""CKKS parameter presets: plain literal data in circuits/presets/*.json, loaded into a frozen dataclass."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from resnet_fhe.errors import PlanError

PRESETS_DIR = Path(__file__).resolve().parents[2] / "circuits" / "presets"
SECURE_LEVELS = ("HEStd_128_classic", "HEStd_192_classic", "HEStd_256_classic")


def pair_arg(text: str) -> tuple[int, int]:
    """argparse type of the pairs a preset holds (level_budget, bootstrap_dim1) written `a,b` on a
    command line: two non-negative integers, refused as the command line is read."""
    try:
        first, second = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected two integers like 3,3, got {text!r}") from None
    if first < 0 or second < 0:
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return first, second


@dataclass(frozen=True)
class BootstrapFigures:
    """Bootstrapping at one slot count, measured with bench/bootstrap_precision.py: the error's standard
    deviation as -log2 (the noise model's), the number of keys (the memory estimate's) and the rotation
    steps (modulo N/2) among them (a linear layer's rotation that is one of them uses the bootstrap key
    instead of its own, plan/residency.py). `paired_precision_bits`: the error a paired bootstrap
    (compiler/pairing.py) leaves on each of its two registers' values, in their own units (`--complex-pair`
    measures it on a/sqrt2, so this is half a bit less than what that reports)."""

    precision_bits: float
    key_count: int
    rotations: tuple[int, ...] = ()
    paired_precision_bits: float | None = None


@dataclass(frozen=True)
class CkksParameters:
    """Everything the compiler and the backends need to know about the scheme.

    `bootstrap_depth` is what OpenFHE's GetBootstrapDepth returns for `level_budget` and the secret
    distribution (a test keeps the two in step); the compiler plans with `levels_after_bootstrap`.
    `bootstrap_measured` holds what bench/bootstrap_precision.py measured per slot count (the noise
    model's error, the memory estimate's key count, the rotations the keys include);
    `bootstrap_precision_bits` is the error assumed at a slot count not measured there.
    `bootstrap_dim1`: OpenFHE's dim1 for CoeffsToSlots and SlotsToCoeffs, the rotations each baby-step
    giant-step level hoists (0: OpenFHE's choice). Fewer hoisted rotations per level let more of the two
    transforms' rotation indices coincide, so bootstrapping needs fewer keys (16,384 slots, level budget
    {3,3}: 47 keys at (8, 4) against 66 at OpenFHE's choice, 2 GB less) for a few more key switches.
    `streamed_bootstrap_dim1`: the same for the native build's streamed bootstrap, which holds one stage's
    keys at a time and whose hoisted baby steps are cheap (fused key switches, no NTTs) where each giant
    step is a full key switch; so it takes more baby steps: at OpenFHE's choice (0, 0) a default-128
    image took 438.5 s against 523.4 s at (8, 4), for 99 stage keys against 63 (bench/results/
    native-2026-12-01c/).
    `bootstrap_correction_factor`: how far OpenFHE scales a message down before the modular reduction
    (0: OpenFHE's choice, 8 at N=2^16 and 16,384 slots). Each step less halves the error, down to the
    smallest it accepts, first_mod_bits - scale_bits (default-128: 6 gives 2^-12.1 against 2^-10.1, for
    messages up to 8 in magnitude alike).
    """

    name: str
    ring_dim: int
    scale_bits: int
    first_mod_bits: int
    multiplicative_depth: int
    num_large_digits: int
    level_budget: tuple[int, int]
    secret_key_dist: str
    security: str
    bootstrap_depth: int
    bootstrap_precision_bits: float
    bootstrap_dim1: tuple[int, int] = (0, 0)
    streamed_bootstrap_dim1: tuple[int, int] = (0, 0)
    bootstrap_correction_factor: int = 0
    bootstrap_measured: dict[int, BootstrapFigures] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if self.ring_dim & (self.ring_dim - 1) or self.ring_dim < 16:
            raise PlanError(f"preset {self.name}: ring_dim {self.ring_dim} must be a power of two")
        if self.levels_after_bootstrap < 2:
            raise PlanError(f"preset {self.name}: depth {self.multiplicative_depth} leaves "
                            f"{self.levels_after_bootstrap} levels after bootstrapping; at least 2 are needed")

    @property
    def bootstrapping(self) -> bool:
        """False for presets sized for circuits that fit their depth (bootstrap_depth 0): no bootstrap is
        placed, no level is kept for one and no bootstrap key is made."""
        return self.bootstrap_depth > 0

    @property
    def insecure(self) -> bool:
        return self.security not in SECURE_LEVELS

    @property
    def max_slots(self) -> int:
        return self.ring_dim // 2

    @property
    def levels_after_bootstrap(self) -> int:
        return self.multiplicative_depth - self.bootstrap_depth

    @property
    def fresh_levels(self) -> int:
        return self.multiplicative_depth

    def bootstrap_figures(self, slots: int) -> BootstrapFigures | None:
        return self.bootstrap_measured.get(slots)

    def bootstrap_precision_at(self, slots: int) -> float:
        """The bootstrap error's std (-log2) at `slots`: measured, else the preset's assumption."""
        figures = self.bootstrap_figures(slots)
        return figures.precision_bits if figures is not None else self.bootstrap_precision_bits

    def paired_bootstrap_precision_at(self, slots: int) -> float:
        """A paired bootstrap's error (-log2) at `slots`: measured, else half a bit worse than a single one
        (it refreshes a/sqrt2; the one measurement, at 32,768 slots, found it no worse)."""
        figures = self.bootstrap_figures(slots)
        if figures is not None and figures.paired_precision_bits is not None:
            return figures.paired_precision_bits
        return self.bootstrap_precision_at(slots) - 0.5

    def to_dict(self) -> dict:
        data = {**asdict(self), "level_budget": list(self.level_budget), "bootstrap_dim1": list(self.bootstrap_dim1),
                "streamed_bootstrap_dim1": list(self.streamed_bootstrap_dim1)}
        data["bootstrap_measured"] = {str(slots): {**asdict(f), "rotations": list(f.rotations)}
                                      for slots, f in sorted(self.bootstrap_measured.items())}
        return data

    @classmethod
    def from_dict(cls, data: dict) -> CkksParameters:
        """From a preset file or a plan's params (JSON lists back to tuples)."""
        data = dict(data)
        data["level_budget"] = tuple(data["level_budget"])
        data["bootstrap_dim1"] = tuple(data.get("bootstrap_dim1", (0, 0)))
        data["streamed_bootstrap_dim1"] = tuple(data.get("streamed_bootstrap_dim1", (0, 0)))
        data["bootstrap_measured"] = {
            int(slots): BootstrapFigures(f["precision_bits"], f["key_count"], tuple(f.get("rotations", ())),
                                         f.get("paired_precision_bits"))
            for slots, f in data.get("bootstrap_measured", {}).items()}
        return cls(**data)


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.json"))


def load_preset(name: str | Path) -> CkksParameters:
    path = Path(name) if str(name).endswith(".json") else PRESETS_DIR / f"{name}.json"
    if not path.is_file():
        raise PlanError(f"unknown preset {name!r}; available: {', '.join(available_presets())}")
    try:
        return CkksParameters.from_dict(json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError, KeyError) as exc:
        raise PlanError(f"preset file {path} is malformed ({exc})") from exc
