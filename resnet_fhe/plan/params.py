"""CKKS parameter presets: plain literal data in circuits/presets/*.json, loaded into a frozen dataclass."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from resnet_fhe.errors import PlanError

PRESETS_DIR = Path(__file__).resolve().parents[2] / "circuits" / "presets"
SECURE_LEVELS = ("HEStd_128_classic", "HEStd_192_classic", "HEStd_256_classic")


@dataclass(frozen=True)
class CkksParameters:
    """Everything the compiler and the backends need to know about the scheme.

    `bootstrap_depth` is what OpenFHE's GetBootstrapDepth returns for `level_budget` and the secret
    distribution (a test keeps the two in step); the compiler plans with `levels_after_bootstrap`.
    `bootstrap_precision_bits` feeds the simulator's noise model.
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
    description: str = ""

    def __post_init__(self) -> None:
        if self.ring_dim & (self.ring_dim - 1) or self.ring_dim < 16:
            raise PlanError(f"preset {self.name}: ring_dim {self.ring_dim} must be a power of two")
        if self.levels_after_bootstrap < 2:
            raise PlanError(f"preset {self.name}: depth {self.multiplicative_depth} leaves "
                            f"{self.levels_after_bootstrap} levels after bootstrapping; at least 2 are needed")

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

    def to_dict(self) -> dict:
        return {**asdict(self), "level_budget": list(self.level_budget)}


def available_presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.json"))


def load_preset(name: str | Path) -> CkksParameters:
    path = Path(name) if str(name).endswith(".json") else PRESETS_DIR / f"{name}.json"
    if not path.is_file():
        raise PlanError(f"unknown preset {name!r}; available: {', '.join(available_presets())}")
    try:
        data = json.loads(path.read_text())
        data["level_budget"] = tuple(data["level_budget"])
        return CkksParameters(**data)
    except (json.JSONDecodeError, TypeError, KeyError) as exc:
        raise PlanError(f"preset file {path} is malformed ({exc})") from exc
