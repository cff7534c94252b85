"""Checkpoints of a long batch: every query's live registers after an op, so a stopped server resumes
there instead of starting over. A 128-bit ResNet20 batch runs for hours; a killed process, a reboot or
the memory guard would otherwise throw all of it away.

Layout: `state.json` names the next op and, per query, the live registers, each a ciphertext folder
under `step-<op>/image<i>/` (i: the query's index in the batch). A new step is written completely
before state.json is replaced (atomic rename), and only then is the previous step removed, so a crash
while writing leaves the last good checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from resnet_fhe.hashing import sha256_file
from resnet_fhe.runtime.ciphertexts import HEADER, read_ciphertexts, write_ciphertexts
from resnet_fhe.runtime.keystore import KeyStoreError

STATE = "state.json"


def input_digest(folders: list[Path]) -> list[str]:
    """What identifies a batch's inputs: the sha256 of each input folder's header (it lists its files' sums)."""
    return [sha256_file(Path(folder) / HEADER) for folder in folders]


class Checkpoint:
    def __init__(self, folder: Path, store_id: str, inputs: list[str], fhe, interval_seconds: float = 600.0):
        self.folder, self.store_id, self.inputs, self.fhe = Path(folder), store_id, inputs, fhe
        self.interval = interval_seconds
        self._last_write = time.monotonic()

    def load(self) -> tuple[int, list[dict[str, list]], dict] | None:
        """(next op, registers per image, the notes saved with them), or None when there is no checkpoint."""
        state_path = self.folder / STATE
        if not state_path.is_file():
            return None
        state = json.loads(state_path.read_text())
        if state.get("store_id") != self.store_id or state.get("inputs") != self.inputs:
            raise KeyStoreError(f"the checkpoint in {self.folder} belongs to other inputs or another key store; "
                                "delete the folder to start over")
        step = self.folder / f"step-{state['next_op']}"
        registers = [{name: read_ciphertexts(step / f"image{i}" / name, name, self.store_id, self.fhe)
                      for name in names} for i, names in enumerate(state["registers"])]
        return state["next_op"], registers, state.get("notes", {})

    def save(self, next_op: int, registers: list[dict[str, list]], notes: dict, force: bool = False) -> bool:
        """Writes a checkpoint when `interval_seconds` have passed since the last one (or when forced);
        `notes` (JSON) travel with it, such as the time and profile of the work done so far."""
        if not force and time.monotonic() - self._last_write < self.interval:
            return False
        step = self.folder / f"step-{next_op}"
        shutil.rmtree(step, ignore_errors=True)
        for i, image in enumerate(registers):
            for name, cts in image.items():
                write_ciphertexts(step / f"image{i}" / name, cts, name, self.store_id, self.fhe)
        state = {"store_id": self.store_id, "inputs": self.inputs, "next_op": next_op,
                 "registers": [sorted(image) for image in registers], "notes": notes}
        temporary = self.folder / f"{STATE}.tmp"
        temporary.write_text(json.dumps(state, indent=1))
        os.replace(temporary, self.folder / STATE)
        for old in self.folder.glob("step-*"):
            if old != step:
                shutil.rmtree(old, ignore_errors=True)
        self._last_write = time.monotonic()
        return True

    def clear(self) -> None:
        """Removes the checkpoint once the batch's answers are written."""
        shutil.rmtree(self.folder, ignore_errors=True)
