"""Compiled plans cached on disk: calibrating on 8,192 training images and fitting 19 ReLUs takes minutes,
and a plan is a pure function of its inputs.

The cache key covers every input: the engine's own source (so a compiler change recompiles), the
weights file, the preset file, the compile options, the number of calibration images and the training
data's files (path, size, modification time). A plan read back must still load and match its constants'
sha256 (Plan.load checks), else it is compiled again.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from resnet_fhe.cache import cache_dir
from resnet_fhe.compiler.compile import CompileOptions, compile_model
from resnet_fhe.errors import PlanError
from resnet_fhe.hashing import sha256_file
from resnet_fhe.plan.plan import Plan

PACKAGE = Path(__file__).resolve().parents[1]


def _key(model: str, preset: str, options: CompileOptions, calibration_images: int, data_dir: Path | None) -> str:
    from resnet_fhe.data import dataset_files
    from resnet_fhe.models import model_dataset
    from resnet_fhe.models.weights_file import resolve_weights_path
    from resnet_fhe.plan.params import PRESETS_DIR

    digest = hashlib.sha256()
    for source in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(source.relative_to(PACKAGE)).encode() + sha256_file(source).encode())
    preset_path = Path(preset) if str(preset).endswith(".json") else PRESETS_DIR / f"{preset}.json"
    for path in (resolve_weights_path(model), preset_path):
        digest.update(sha256_file(path).encode() if path.is_file() else str(path).encode())
    data = sorted((str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns)
                  for p in dataset_files(model_dataset(model), "train", data_dir))
    digest.update(json.dumps([model, preset, asdict(options), calibration_images, data]).encode())
    return digest.hexdigest()[:16]


def compile_model_cached(model: str, preset: str, options: CompileOptions, calibration_images: int,
                         data_dir: Path | None = None) -> Plan:
    """compile_model, or the plan it returned before for exactly the same inputs."""
    name = f"{Path(model).stem}-{Path(preset).stem}-{_key(model, preset, options, calibration_images, data_dir)}"
    path = cache_dir() / "plans" / f"{name}.json"
    if path.is_file():
        try:
            plan = Plan.load(path)
            print(f"using the compiled plan cached in {path}", file=sys.stderr, flush=True)
            return plan
        except PlanError:
            pass  # unreadable or partly written: compile again
    plan = compile_model(model, preset, options, calibration_images, data_dir)
    partial = path.with_name(f"{name}.partial-{os.getpid()}.json")  # two processes may compile it at once
    plan.save(partial)  # the .npz first, then the JSON last: a reader never sees a JSON without its constants
    partial.with_suffix(".npz").replace(path.with_suffix(".npz"))
    partial.replace(path)
    return plan
