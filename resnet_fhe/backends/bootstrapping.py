"""How the OpenFHE backend bootstraps: OpenFHE's own EvalBootstrap (the wheel), or resnet-fhe's streamed
bootstrap (the native build, resnet_fhe._native.StreamedBootstrap), which holds one stage's rotation
keys at a time instead of every bootstrap key for the whole call.

The streamed bootstrap runs in stages: Begin (modulus raising), the CoeffsToSlots levels, EvalMod, the
SlotsToCoeffs levels, Finish. Each level's keys come from a StageKeys source just before the level and are
dropped after it; only the special keys
(conjugation, sparse-secret switching, partial sums) stay for the whole bootstrap. Key sources: in memory
(tests, one-process runs: MemoryStageKeys) or the key store's per-stage files (the server:
resnet_fhe.runtime.server).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Protocol

from resnet_fhe.errors import PlanError
from resnet_fhe.hashing import sha256_file
from resnet_fhe.plan.params import CkksParameters


class StageKeys(Protocol):
    """Where a streamed bootstrap's keys come from, per slot count."""

    def special(self, slots: int) -> object:
        """The keys every stage of a bootstrap at `slots` may use (held for the whole bootstrap)."""

    def stage(self, slots: int, stage: int) -> object:
        """One stage's rotation keys: the caller drops them after the stage."""


class OpenFHEBootstrap:
    """OpenFHE's EvalBootstrap: every bootstrap key in the context's key table for the whole call
    (openfhe_backend.setup_bootstrap and the bootstrap keys must be loaded first)."""

    def __init__(self, context):
        self.cc = context
        self.conjugation = context.GetCyclotomicOrder() - 1

    def bootstrap_many(self, cts: list[object]) -> list[object]:
        return [self.cc.EvalBootstrap(ct) for ct in cts]

    def conjugate(self, ct: object) -> object:
        """conj(ct), with the bootstrap keys' own conjugation key."""
        keys = self.cc.GetEvalAutomorphismKeyMap(ct.GetKeyTag())
        return self.cc.EvalAutomorphism(ct, self.conjugation, keys)


class StreamedBootstrap:
    """resnet-fhe's bootstrap on the native build: one stage's rotation keys resident at a time, and with
    `stream_transforms` the same stage's encoded diagonals only (written to a temporary folder by `prepare`,
    read back stage by stage: about 1 GB resident at N = 2^16 instead of 5 GB). Both are raw tower files,
    read at about the speed of copying them from the page cache (a second or so per bootstrap). Reading
    the next stage on a thread while one computes was tried and dropped: on two cores the reading then
    competes with the arithmetic: in the server's pipeline a bootstrap took 22.8-26.8 s with it and
    18.4-22.6 s without, at a 5.75 GB peak against 3.72 GB (bench/results/native-2026-12-01c/).

    `prepare(slots)` encodes that slot count's transforms (seconds) and `release` drops them; a bootstrap
    at a slot count not prepared prepares it first."""

    def __init__(self, context, params: CkksParameters, keys: StageKeys, stream_transforms: bool = True):
        self.cc, self.params, self.keys = context, params, keys
        self.stream_transforms = stream_transforms
        self.conjugation = context.GetCyclotomicOrder() - 1
        self._prepared: dict[int, tuple[object, list]] = {}  # slots -> (transforms, diagonals or paths)
        self._folder: tempfile.TemporaryDirectory | None = None

    def prepare(self, slots: int) -> None:
        if slots in self._prepared:
            return
        from resnet_fhe.backends.openfhe_backend import fhe_library

        fhe = fhe_library("native")
        transforms = new_streamed_bootstrap(self.cc, self.params, slots)
        stages = []
        for stage in range(transforms.stage_count):
            diagonals = transforms.EncodeStage(stage)
            if self.stream_transforms:
                if self._folder is None:
                    self._folder = tempfile.TemporaryDirectory(prefix="resnet-fhe-transforms-")
                path = Path(self._folder.name) / f"{slots}-stage-{stage}.bin"
                if not fhe.SerializeStageDiagonals(str(path), diagonals):
                    raise OSError(f"could not write the encoded transforms to {path}")
                diagonals = path
            stages.append(diagonals)
        self._prepared[slots] = (transforms, stages)

    def release(self, slots: int | None = None) -> None:
        """Drops the encoded transforms of `slots` (of every slot count when None)."""
        for key in list(self._prepared) if slots is None else [slots]:
            _, stages = self._prepared.pop(key, (None, []))
            for stage in stages:
                if isinstance(stage, Path):
                    stage.unlink(missing_ok=True)

    def _diagonals(self, stored) -> object:
        if not isinstance(stored, Path):
            return stored
        from resnet_fhe.backends.openfhe_backend import fhe_library

        return fhe_library("native").DeserializeStageDiagonals(str(stored), self.cc)

    def bootstrap_many(self, cts: list[object]) -> list[object]:
        """Every ciphertext refreshed, stage by stage across all of them: each stage's keys (and streamed
        diagonals) are read once per call, however many ciphertexts (of one slot count) it refreshes."""
        if not cts:
            return []
        slots = cts[0].GetSlots()
        if any(ct.GetSlots() != slots for ct in cts):
            raise PlanError("one streamed bootstrap call refreshes ciphertexts of one slot count")
        self.prepare(slots)
        transforms, stages = self._prepared[slots]
        special = self.keys.special(slots)

        cts = [transforms.Begin(ct, special) for ct in cts]
        for stage in range(len(stages)):
            if stage > 0 and transforms.IsCoeffsToSlots(stage - 1) and not transforms.IsCoeffsToSlots(stage):
                cts = [transforms.EvalMod(ct, special) for ct in cts]
            keys, diagonals = self.keys.stage(slots, stage), self._diagonals(stages[stage])
            cts = [transforms.ApplyStage(stage, ct, keys, diagonals) for ct in cts]
            del keys, diagonals  # freed before the next stage's are read
        return [transforms.Finish(ct, special) for ct in cts]

    def conjugate(self, ct: object) -> object:
        """conj(ct), with the special keys' conjugation key."""
        return self.cc.EvalAutomorphism(ct, self.conjugation, self.keys.special(ct.GetSlots()))


def new_streamed_bootstrap(context, params: CkksParameters, slots: int):
    """The native StreamedBootstrap of a preset at `slots`: its stages, key generation and evaluation."""
    from resnet_fhe.backends.openfhe_backend import fhe_library

    return fhe_library("native").StreamedBootstrap(context, list(params.level_budget),
                                                   list(params.streamed_bootstrap_dim1),
                                                   slots, params.bootstrap_correction_factor)


class MemoryStageKeys:
    """Every streamed-bootstrap key of the given slot counts, generated and held in memory (tests and
    one-process runs; a server streams them from its key store instead)."""

    def __init__(self, context, params: CkksParameters, secret_key, slot_counts: list[int]):
        self._special, self._stages = {}, {}
        for slots in slot_counts:
            transforms = new_streamed_bootstrap(context, params, slots)
            self._special[slots] = transforms.GenerateSpecialKeys(secret_key)
            self._stages[slots] = [transforms.GenerateStageKeys(secret_key, stage)
                                   for stage in range(transforms.stage_count)]

    def special(self, slots: int) -> object:
        return self._special[slots]

    def stage(self, slots: int, stage: int) -> object:
        return self._stages[slots][stage]


# One slot count's streamed bootstrap keys, in a folder of their own: the special keys and one file per stage,
# each a raw tower file of the native build (native/src/tower_files.h), as are a native store's rotation keys.
# A key store's manifest names them STREAMED_KEYS ("streamed" stores, OpenFHE-serialized, came before and are
# refused).
SPECIAL_KEYS_FILE = "special.bin"
STREAMED_KEYS = "streamed-towers"


def stage_keys_file(stage: int) -> str:
    return f"stage-{stage}.bin"


def write_stage_keys(context, params: CkksParameters, secret_key, slots: int, folder: Path) -> dict[str, str]:
    """Makes and writes one slot count's streamed bootstrap keys into `folder`, one stage at a time;
    returns each file's name and sha256. A stage's keys are written and hashed on a thread while the next
    stage's are made (at default-128, writing and hashing 8.4 GB took 20 s of a 52 s keygen),
    so at most two stages' keys are in memory. The context's key table must hold no automorphism keys of
    the secret key (OpenFHE skips rotations it already has a key for)."""
    from resnet_fhe.backends.openfhe_backend import fhe_library

    fhe = fhe_library("native")
    transforms = new_streamed_bootstrap(context, params, slots)
    folder.mkdir(parents=True, exist_ok=True)

    def write(name: str, keys) -> tuple[str, str]:
        if not fhe.SerializeKeyMap(str(folder / name), keys):
            raise OSError(f"writing the bootstrap keys to {folder / name} failed")
        return name, sha256_file(folder / name)

    digests: dict[str, str] = {}
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="key-writer") as writer:
        pending = writer.submit(write, SPECIAL_KEYS_FILE, transforms.GenerateSpecialKeys(secret_key))
        for stage in range(transforms.stage_count):
            keys = transforms.GenerateStageKeys(secret_key, stage)
            digests.update([pending.result()])  # the previous stage's keys, written: freed here
            pending = writer.submit(write, stage_keys_file(stage), keys)
            del keys
        digests.update([pending.result()])
    return digests


class FileStageKeys:
    """Streamed bootstrap keys read from files as the bootstrap needs them: `path(slots, name)` gives a
    file's path (the server checks it against the key store's manifest there). The special keys of a slot
    count stay loaded until release(); a stage's keys are read for every bootstrap and dropped after it."""

    def __init__(self, context, path: Callable[[int, str], Path]):
        from resnet_fhe.backends.openfhe_backend import fhe_library

        self._fhe = fhe_library("native")
        self._context = context
        self._path = path
        self._special: dict[int, object] = {}

    def special(self, slots: int) -> object:
        if slots not in self._special:
            self._special[slots] = self._fhe.DeserializeKeyMap(str(self._path(slots, SPECIAL_KEYS_FILE)),
                                                                self._context)
        return self._special[slots]

    def stage(self, slots: int, stage: int) -> object:
        return self._fhe.DeserializeKeyMap(str(self._path(slots, stage_keys_file(stage))), self._context)

    def release(self) -> None:
        self._special.clear()
