"""The server: evaluates a plan on ciphertext files with the key store's public part only.

Keys are loaded per phase, verified against the manifest, and dropped at every change of bootstrap slot
count (see plan.residency), so the resident set is one stage's keys, never the whole key store. Several
images are evaluated as one batch, op by op, so each phase's keys are loaded once per batch.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

from resnet_fhe.backends.openfhe_backend import OpenFHEBackend
from resnet_fhe.plan.ops import Bootstrap
from resnet_fhe.plan.plan import Plan
from resnet_fhe.plan.residency import KeyResidency
from resnet_fhe.runtime.checkpoint import Checkpoint, input_digest
from resnet_fhe.runtime.ciphertexts import read_ciphertexts, write_ciphertexts
from resnet_fhe.runtime.heap import release_freed_memory
from resnet_fhe.runtime.keystore import KeyStoreError, read_manifest, verified


class PhaseKeys:
    """Loads each op's evaluation keys before it runs, and drops all of them when KeyResidency says so."""

    def __init__(self, server: Server):
        self.server = server
        self.loaded: set[str] = set()
        self.residency = KeyResidency()

    def load(self, op) -> None:
        import openfhe

        server, cc = self.server, self.server.context
        if self.residency.admit(op):
            self.drop()
        if isinstance(op, Bootstrap):
            wanted = f"bootstrap/{op.slots}.bin"
            if wanted in self.loaded:
                return
            cc.EvalBootstrapSetup(list(server.plan.params.level_budget), [0, 0], op.slots)
            path = str(server.file(wanted))
            ok = openfhe.DeserializeEvalBootstrapKey(path, openfhe.BINARY, cc, server.manifest["key_tag"], op.slots)
        else:
            wanted = server.manifest["phases"].get(op.name)
            if wanted is None or wanted in self.loaded:
                return
            path = str(server.file(wanted))
            ok = cc.DeserializeEvalAutomorphismKey(path, openfhe.BINARY)
        if not ok:
            raise KeyStoreError(f"could not load evaluation keys from {path}")
        self.loaded.add(wanted)

    def drop(self) -> None:
        self.server.context.ClearEvalAutomorphismKeys()
        if any(name.startswith("bootstrap/") for name in self.loaded):
            self.server.context.ClearBootstrapPrecom()
        self.loaded.clear()
        release_freed_memory()


class Server:
    def __init__(self, server_dir: Path):
        import openfhe

        self.server_dir = Path(server_dir)
        self.manifest = read_manifest(self.server_dir)
        self._checked: dict[str, tuple[int, int]] = {}
        self.file("plan.npz")
        self.plan = Plan.load(self.file("plan.json"))
        self.context, ok = openfhe.DeserializeCryptoContext(str(self.file("context.bin")), openfhe.BINARY)
        mult = self.file("mult_key.bin")
        openfhe.ClearEvalMultKeys()  # OpenFHE's key cache is per process: this server owns it
        if not ok or not self.context.DeserializeEvalMultKey(str(mult), openfhe.BINARY):
            raise KeyStoreError(f"could not read the context or relinearisation key in {self.server_dir}")
        self.backend = OpenFHEBackend(self.plan, self.context)

    def file(self, name: str) -> Path:
        """A key store file, hashed against the manifest the first time this server reads it.

        Bootstrap key files are gigabytes; hashing them again for every image would cost seconds each.
        Later reads check that size and modification time are unchanged since the hash, which catches a
        file replaced or rewritten while the server runs.
        """
        path = self.server_dir / name
        stat = path.stat() if path.is_file() else None
        if stat is None or self._checked.get(name) != (stat.st_size, stat.st_mtime_ns):
            verified(self.server_dir, self.manifest, name)
            stat = path.stat()
            self._checked[name] = (stat.st_size, stat.st_mtime_ns)
        return path

    def infer(self, input_folder: Path, output_folder: Path, guard=None) -> None:
        self.infer_batch([(Path(input_folder), Path(output_folder))], guard=guard)

    def infer_batch(self, folders: list[tuple[Path, Path]], guard=None, checkpoint: Path | None = None,
                    checkpoint_every: float = 600.0) -> Resumed:
        """Evaluates every (input folder, output folder) pair; all inputs are read and checked first, so a
        bad file fails the batch before any long computation.

        With `checkpoint` (a folder), every image's live registers are saved there at the first layer
        boundary after each `checkpoint_every` seconds, with the guard's profile so far, and a later call
        with the same inputs resumes from the last save. Returns where it started and how many seconds
        the earlier runs had spent (both 0 for a fresh run)."""
        started = time.perf_counter()
        batch = [read_ciphertexts(Path(source), self.plan.input, self.manifest["store_id"]) for source, _ in folders]
        saver, resume, after_op, before = None, None, None, Resumed(0, 0.0)
        if checkpoint is not None:
            saver = Checkpoint(checkpoint, self.manifest["store_id"], input_digest([source for source, _ in folders]),
                               checkpoint_every)
            loaded = saver.load()
            if loaded is not None:
                next_op, registers, notes = loaded
                resume, before = (next_op, registers), Resumed(next_op, notes.get("seconds", 0.0))
                if guard is not None:
                    guard.restore(notes.get("profiles", []))
            ops = self.plan.ops

            def after_op(next_op: int, registers: list[dict[str, list]]) -> None:
                if next_op < len(ops) and ops[next_op].layer != ops[next_op - 1].layer:  # layer boundaries only
                    profiles = [] if guard is None else [p.to_dict() for p in guard.profiles]
                    saver.save(next_op, registers,
                               {"seconds": before.seconds + time.perf_counter() - started, "profiles": profiles})

        keys = PhaseKeys(self)
        try:
            results = self.backend.run_batch(batch, guard=guard, keys=keys, resume=resume, after_op=after_op)
        finally:
            keys.drop()
        for (_, target), result in zip(folders, results, strict=True):
            write_ciphertexts(Path(target), result, self.plan.output, self.manifest["store_id"])
        if saver is not None:
            saver.clear()
        return before


class Resumed(NamedTuple):
    """Where a batch resumed from a checkpoint: the op it started at and the seconds spent before."""

    op: int
    seconds: float
