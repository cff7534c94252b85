"""The server: evaluates a plan on ciphertext files with the key store's public part only.

Keys are loaded per phase, verified against the manifest, and dropped at every change of bootstrap slot
count (see plan.residency), so the resident set is one stage's keys, never the whole key store. Several
queries (each of the plan's images per query) are evaluated as one batch, op by op, so each phase's keys
are loaded once per batch.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from resnet_fhe.backends.bootstrapping import FileStageKeys, StreamedBootstrap
from resnet_fhe.backends.openfhe_backend import (
    OpenFHEBackend,
    clear_bootstrap_setup,
    setup_bootstrap,
    streams_bootstrap_keys,
)
from resnet_fhe.errors import InputError
from resnet_fhe.plan.plan import Plan
from resnet_fhe.plan.residency import KeyResidency
from resnet_fhe.runtime.checkpoint import Checkpoint, input_digest
from resnet_fhe.runtime.ciphertexts import query_images, read_ciphertexts, read_clear_part, write_ciphertexts
from resnet_fhe.runtime.heap import release_freed_memory
from resnet_fhe.runtime.keystore import (
    KeyStoreError,
    bootstrap_key_kind,
    key_store_library,
    read_manifest,
    stored_bootstrap_key_kind,
    stored_library,
    verified,
)


class PhaseKeys:
    """Loads each op's evaluation keys before it runs and drops them as KeyResidency says.

    OpenFHE keeps one automorphism-key map per secret key, with no call to remove one key, so dropping a
    linear layer's keys while keeping the bootstrap keys works on whole maps: the bootstrap keys' map is
    kept aside (`bootstrap_keys`, references to the same key objects, no copy) and put back after every
    clear. Rotation keys are loaded into a fresh map that the bootstrap keys are then merged into, so the
    kept map itself never receives them.
    """

    def __init__(self, server: Server):
        self.server = server
        covers = server.manifest.get("bootstrap_covers", {})  # measured by the client at keygen
        self.residency = KeyResidency(
            bootstrap_covers={int(slots): frozenset(indices) for slots, indices in covers.items()},
            ring_slots=server.plan.params.max_slots)
        self.bootstrap_keys = None  # the bootstrap keys' automorphism map, while loaded
        self.rotations_loaded = False  # the context's map holds rotation keys (and is not bootstrap_keys)

    def load(self, op) -> None:
        server, cc, fhe = self.server, self.server.context, self.server.fhe
        change = self.residency.admit(op)
        if change.drop_bootstrap:
            self.drop()
        elif change.drop_rotations:
            self._clear_rotations()
        streamed = isinstance(server.backend.bootstrapper, StreamedBootstrap)
        if change.load_bootstrap is not None and streamed:
            server.backend.bootstrapper.prepare(change.load_bootstrap)  # its keys come stage by stage
        elif change.load_bootstrap is not None:
            self._clear_rotations()
            setup_bootstrap(cc, server.plan.params, change.load_bootstrap)
            path = str(server.file(f"bootstrap/{change.load_bootstrap}.bin"))
            tag = server.manifest["key_tag"]
            if not fhe.DeserializeEvalBootstrapKey(path, fhe.BINARY, cc, tag, change.load_bootstrap):
                raise KeyStoreError(f"could not load bootstrap keys from {path}")
            self.bootstrap_keys = cc.GetEvalAutomorphismKeyMap(tag)
        if change.load_rotations:
            fresh = not self.rotations_loaded
            if fresh:
                cc.ClearEvalAutomorphismKeys()
            for index in sorted(change.load_rotations):
                name = server.manifest["rotation_keys"].get(str(index))
                if name is None:
                    raise KeyStoreError(f"{op.name} needs rotation key {index}, which the key store lacks "
                                        "(made for another plan?)")
                path = str(server.file(name))
                if streamed:  # the native build's stores hold raw tower files (native/src/tower_files.h)
                    cc.InsertEvalAutomorphismKey(fhe.DeserializeKeyMap(path, cc), server.manifest["key_tag"])
                elif not cc.DeserializeEvalAutomorphismKey(path, fhe.BINARY):
                    raise KeyStoreError(f"could not load evaluation keys from {path}")
            if fresh and self.bootstrap_keys is not None:
                cc.InsertEvalAutomorphismKey(self.bootstrap_keys, server.manifest["key_tag"])
            self.rotations_loaded = True

    def _clear_rotations(self) -> None:
        """Back to the bootstrap keys alone (or no automorphism keys at all)."""
        if not self.rotations_loaded:
            return
        cc = self.server.context
        cc.ClearEvalAutomorphismKeys()
        if self.bootstrap_keys is not None:
            cc.InsertEvalAutomorphismKey(self.bootstrap_keys, self.server.manifest["key_tag"])
        self.rotations_loaded = False
        # The streamed bootstrap's stage keys, read next, reuse the freed memory at once: giving it back
        # lowered no peak and cost a second of page faults per bootstrap (bench/results/native-2026-12-01c/).
        if not isinstance(self.server.backend.bootstrapper, StreamedBootstrap):
            release_freed_memory()

    def drop(self) -> None:
        bootstrapper = self.server.backend.bootstrapper
        if isinstance(bootstrapper, StreamedBootstrap):
            bootstrapper.release()
            bootstrapper.keys.release()
        self.server.context.ClearEvalAutomorphismKeys()
        if self.bootstrap_keys is not None:
            clear_bootstrap_setup(self.server.context)
        self.bootstrap_keys, self.rotations_loaded = None, False
        release_freed_memory()


class Server:
    def __init__(self, server_dir: Path):
        self.server_dir = Path(server_dir)
        self.manifest = read_manifest(self.server_dir)
        self.fhe = fhe = key_store_library(self.manifest)
        self._checked: dict[str, tuple[int, int]] = {}
        self.file("plan.npz")
        self.plan = Plan.load(self.file("plan.json"), constants_on_disk=True)
        self.context, ok = fhe.DeserializeCryptoContext(str(self.file("context.bin")), fhe.BINARY)
        mult = self.file("mult_key.bin")
        fhe.ClearEvalMultKeys()  # OpenFHE's key cache is per process: this server owns it
        if not ok or not self.context.DeserializeEvalMultKey(str(mult), fhe.BINARY):
            raise KeyStoreError(f"could not read the context or relinearisation key in {self.server_dir}")
        self.backend = OpenFHEBackend(self.plan, self.context, bootstrapper=self._bootstrapper())

    def _bootstrapper(self) -> StreamedBootstrap | None:
        """The streamed bootstrap over this store's per-stage key files, or None for OpenFHE's own
        EvalBootstrap; refuses a store whose bootstrap keys do not fit the library's bootstrap."""
        library = stored_library(self.manifest)
        kind = stored_bootstrap_key_kind(self.manifest)
        if kind != bootstrap_key_kind(library):
            raise KeyStoreError(f"the bootstrap keys in {self.server_dir} are {kind!r} keys, which this version's "
                                f"{library} build does not read (a store of an earlier version?): make the keys "
                                "again (`resnet-fhe keygen`)")
        if not streams_bootstrap_keys(library):
            return None
        files = FileStageKeys(self.context, lambda slots, name: self.file(f"bootstrap/{slots}/{name}"))
        return StreamedBootstrap(self.context, self.plan.params, files)

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

    def _clear_part(self, folder: Path, images: int) -> np.ndarray | None:
        """The pixels a selectively encrypted query sent in the clear, checked against the plan."""
        clear = read_clear_part(folder)
        expected = (images, *self.plan.image_shape)
        if clear is not None and (clear.shape != expected or not np.all((clear >= 0) & (clear <= 1))):
            raise InputError(f"{folder}: the clear pixels must be floats in [0, 1] of shape {expected}, got "
                             f"{clear.dtype} {clear.shape}")
        return clear

    def infer(self, input_folder: Path, output_folder: Path, guard=None) -> None:
        self.infer_batch([(Path(input_folder), Path(output_folder))], guard=guard)

    def infer_batch(self, folders: list[tuple[Path, Path]], guard=None, checkpoint: Path | None = None,
                    checkpoint_every: float = 600.0) -> Resumed:
        """Evaluates every (input folder, output folder) pair; all inputs are read and checked first, so a
        bad file fails the batch before any long computation.

        With `checkpoint` (a folder), every query's live registers are saved there at the first layer
        boundary after each `checkpoint_every` seconds, with the guard's profile so far, and a later call
        with the same inputs resumes from the last save. Returns where it started and how many seconds
        the earlier runs had spent (both 0 for a fresh run)."""
        started = time.perf_counter()
        batch = [read_ciphertexts(Path(source), self.plan.input, self.manifest["store_id"], self.fhe)
                 for source, _ in folders]
        images = [query_images(Path(source)) for source, _ in folders]
        for (source, _), count in zip(folders, images, strict=True):
            if not 1 <= count <= self.plan.images_per_query:
                raise InputError(f"{source} says it holds {count} images; this plan's queries hold 1 to "
                                 f"{self.plan.images_per_query}")
        clear = [self._clear_part(Path(source), count) for (source, _), count in zip(folders, images, strict=True)]
        batch = [cts if part is None else self.backend.add_clear_input(cts, part)
                 for cts, part in zip(batch, clear, strict=True)]
        saver, resume, after_op, before = None, None, None, Resumed(0, 0.0)
        if checkpoint is not None:
            saver = Checkpoint(checkpoint, self.manifest["store_id"], input_digest([source for source, _ in folders]),
                               self.fhe, checkpoint_every)
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
        for (_, target), result, count in zip(folders, results, images, strict=True):
            write_ciphertexts(Path(target), result, self.plan.output, self.manifest["store_id"], self.fhe, count)
        if saver is not None:
            saver.clear()
        return before


class Resumed(NamedTuple):
    """Where a batch resumed from a checkpoint: the op it started at and the seconds spent before."""

    op: int
    seconds: float
