"""The whole encrypted round trip on one machine: what the main job, `resnet-fhe evaluate --mode
encrypted` and a Python user call.

Client and server stay apart as they would be on two machines: keygen and the server each run in their
own process, so each one's peak memory is its own (the server's is what the memory budget is about),
and the server sees only the key store's server part. Key stores are cached: by default under
`$RESNET_FHE_CACHE` (else `~/.cache/resnet-fhe`) in a folder named by the plan's digest, so a second run
of the same plan skips keygen and a changed plan or preset gets a new store (the stale one of the same
model, preset and packing is removed: each is gigabytes; a packed plan's store sits beside the
single-image one, as a server may serve both).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from resnet_fhe.backends.openfhe_backend import fhe_library
from resnet_fhe.cache import cache_dir
from resnet_fhe.errors import ServerError
from resnet_fhe.plan.plan import EXECUTABLE_FIELDS, Plan, executes_alike
from resnet_fhe.plan.timing import OpCosts, fit_costs
from resnet_fhe.profiling.machine import cost_table_path, machine_name
from resnet_fhe.runtime.client import Client
from resnet_fhe.runtime.keystore import KeyStoreError, bootstrap_key_kind, stored_bootstrap_key_kind, stored_library

GB = 1e9


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def plan_digest(plan: Plan) -> str:
    """sha256 of what a key store depends on: the plan's executable fields."""
    data = plan.to_dict()
    fields = {k: data[k] for k in EXECUTABLE_FIELDS if k in data}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def _library_suffix(library: str) -> str:
    """What tells a native build's stores and cost tables from the wheel's: neither reads the other's."""
    return "" if library == "openfhe" else f"-{library}"


def _store_prefix(plan: Plan, library: str = "openfhe") -> str:
    return f"{plan.model}-{plan.params.name}{plan.packing_suffix}{_library_suffix(library)}"


def default_store(plan: Plan, library: str = "openfhe") -> Path:
    return cache_dir() / "stores" / f"{_store_prefix(plan, library)}-{plan_digest(plan)[:12]}"


@dataclass
class ChildRun:
    """A finished child process: exit status, wall seconds and its own peak RSS (the kernel's maxrss, the
    figure /usr/bin/time reports)."""

    returncode: int
    seconds: float
    peak_rss_gb: float


PARENT_ENV = "RESNET_FHE_PARENT_PID"  # set for keygen and server children: see follow_parent


def follow_parent() -> None:
    """In a keygen or server child of run_child: ask the kernel for SIGTERM when the process that started
    it dies (Linux), so a killed main job does not leave a server with gigabytes of keys running on both
    cores. Called first thing by the CLI; a no-op elsewhere. If the parent is already gone, exit now."""
    expected = os.environ.pop(PARENT_ENV, None)
    if expected is None or sys.platform != "linux":
        return
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # 1: PR_SET_PDEATHSIG
    if os.getppid() != int(expected):
        sys.exit("the process that started this one has exited")


def run_child(command: list[str], threads: int) -> ChildRun:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), PARENT_ENV: str(os.getpid())}
    started = time.perf_counter()
    child = subprocess.Popen(command, env=env)
    try:
        _, status, usage = os.wait4(child.pid, 0)
    except BaseException:  # Ctrl-C or an error here: the child goes too
        child.terminate()
        child.wait()
        raise
    child.returncode = os.waitstatus_to_exitcode(status)
    return ChildRun(child.returncode, time.perf_counter() - started, usage.ru_maxrss * 1024 / GB)


@dataclass
class EncryptedRun:
    """Decrypted logits and what the run cost. `seconds` is the server's evaluation of the batch (key
    loading included); `process_seconds` the server process's wall time (start-up and file reading too)."""

    logits: np.ndarray
    seconds: float
    process_seconds: float
    peak_rss_gb: float
    key_load_seconds: float
    key_store_gb: float
    keygen: dict
    store: Path
    resumed_from_op: int
    layers: list[dict] = field(default_factory=list)
    fitted_costs: OpCosts | None = None  # this machine's op costs, refitted from this run

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / len(self.logits)


class LocalDeployment:
    """A plan's key store on this machine, and encrypted classification through it."""

    def __init__(self, plan: Plan, store: Path | None = None, threads: int = 2, budget_gb: float = 15.0,
                 insecure: bool = False, library: str = "openfhe"):
        """`library`: the OpenFHE build that makes the keys and evaluates (fhe_library), checked here,
        before any key is made."""
        fhe_library(library)
        self.plan, self.threads, self.budget_gb, self.insecure = plan, threads, budget_gb, insecure
        self.library = library
        self.cached = store is None
        self.store = Path(store) if store is not None else default_store(plan, library)

    @property
    def server_dir(self) -> Path:
        return self.store / "server"

    def has_keys(self) -> bool:
        """True when the store already holds keys for this very plan."""
        manifest = self.server_dir / "manifest.json"
        if not manifest.is_file() or not (self.store / "client" / "secret_key.bin").is_file():
            return False
        try:
            stored = json.loads((self.server_dir / "plan.json").read_text())
            fields = json.loads(manifest.read_text())
        except (OSError, json.JSONDecodeError):
            return False
        return (stored_library(fields) == self.library and executes_alike(self.plan, stored)
                and stored_bootstrap_key_kind(fields) == bootstrap_key_kind(self.library))

    def cost_table(self) -> Path:
        """This machine's op costs; the native library's are its own (another build, other speeds)."""
        machine = machine_name(self.threads) + _library_suffix(self.library)
        return cost_table_path(cache_dir(), machine, self.plan.params.name, self.plan.bootstrap_slot_counts())

    def known_costs(self) -> OpCosts | None:
        """This machine's op costs from an earlier run (None before the first): what predicts a run's
        seconds per layer before it starts."""
        return OpCosts.load(self.cost_table())

    def key_store_gb(self) -> float:
        return sum(p.stat().st_size for p in self.server_dir.rglob("*") if p.is_file()) / GB

    def prepare_keys(self) -> dict:
        """Makes the key store unless it already holds this plan's keys. Returns the keygen figures:
        measured now, or (reused: true) those recorded when the store was made."""
        record = self.store / "keygen.json"
        if self.has_keys():
            _log(f"reusing the key store in {self.store} (made for this very plan)")
            figures = json.loads(record.read_text()) if record.is_file() else {}
            return {"seconds": figures.get("seconds"), "peak_rss_gb": figures.get("peak_rss_gb"), "reused": True}
        if self.cached:
            prefix = _store_prefix(self.plan, self.library)
            for stale in self.store.parent.glob(f"{prefix}-*"):
                if stale != self.store and re.fullmatch(re.escape(prefix) + r"-[0-9a-f]{12}", stale.name):
                    _log(f"removing the key store {stale}: it was made for another plan")
                    shutil.rmtree(stale)
        manifest = self.server_dir / "manifest.json"
        if not self.cached and manifest.is_file():  # a store the user named: never replaced across libraries
            try:
                made_by = stored_library(json.loads(manifest.read_text()))
            except (OSError, json.JSONDecodeError):
                made_by = self.library  # unreadable: replaced, as before
            if made_by != self.library:
                raise KeyStoreError(f"{self.store} holds keys of the {made_by!r} OpenFHE library, not "
                                    f"{self.library!r}: choose that backend, or another --store")
        if self.store.exists():
            shutil.rmtree(self.store)  # keys, queries and checkpoints of another plan
        self.store.mkdir(parents=True)
        plan_path = self.store / "plan-for-keygen.json"
        self.plan.save(plan_path)
        bootstraps = bool(self.plan.bootstrap_slot_counts())
        cost = " (a minute or two and ~6 GB with bootstrap keys at N = 2^16)" if bootstraps else ""
        _log(f"generating keys into {self.store}{cost}")
        command = [sys.executable, "-m", "resnet_fhe.cli", "keygen", "--plan", str(plan_path),
                   "--store", str(self.store), "--json", str(record), "--backend", self.library]
        command += ["--insecure"] if self.insecure else []
        child = run_child(command, self.threads)
        if child.returncode != 0:
            raise KeyStoreError(f"keygen failed (exit {child.returncode}); see its messages above")
        figures = {"seconds": round(child.seconds, 1), "peak_rss_gb": round(child.peak_rss_gb, 3)}
        record.write_text(json.dumps(figures, indent=1) + "\n")
        return {**figures, "reused": False}

    def classify(self, images: np.ndarray, checkpoint: bool = True) -> EncryptedRun:
        """Encrypts `images` (N, C, H, W) uint8 as queries of plan.images_per_query images (the last one
        padded), has the server evaluate all queries as one batch in its own process, and decrypts. With
        `checkpoint`, a stopped run resumes when called again with the same images on the same store."""
        keygen = self.prepare_keys()
        client = Client(self.server_dir, self.store / "client")
        per_query = self.plan.images_per_query
        folders = []
        for start in range(0, len(images), per_query):
            query_images = np.ascontiguousarray(images[start:start + per_query])
            name = hashlib.sha256(query_images.tobytes()).hexdigest()[:16]
            query, answer = self.store / "queries" / name, self.store / "answers" / name
            if query.is_dir():  # the same images on the same keys: reusing them lets a checkpoint resume
                _log(f"reusing the encrypted query in {query}")
            else:
                client.encrypt(query_images, query)
            shutil.rmtree(answer, ignore_errors=True)
            folders.append((query, answer))
        profile = self.store / "infer.json"
        profile.unlink(missing_ok=True)
        command = [sys.executable, "-m", "resnet_fhe.cli", "infer", "--server", str(self.server_dir),
                   "--input", *(str(q) for q, _ in folders), "--output", *(str(a) for _, a in folders),
                   "--budget-gb", str(self.budget_gb), "--json", str(profile)]
        if checkpoint:
            digest = hashlib.sha256("".join(q.name for q, _ in folders).encode()).hexdigest()[:16]
            command += ["--checkpoint", str(self.store / "checkpoints" / digest)]
        child = run_child(command, self.threads)
        if child.returncode != 0 or not profile.is_file():
            raise ServerError(f"the server stopped (exit {child.returncode}; its message is above); no logits")
        served = json.loads(profile.read_text())
        logits = np.concatenate([client.decrypt(answer) for _, answer in folders])
        costs = None
        if not served["resumed_from_op"]:  # a resumed run's early layers were timed by another process
            costs = fit_costs(self.plan.ops, self.plan.params, served["layers"], len(folders),
                              machine_name(self.threads))
            costs.save(self.cost_table())
        return EncryptedRun(logits, served["seconds"], child.seconds, max(served["peak_rss_gb"], child.peak_rss_gb),
                            served["key_load_seconds"], self.key_store_gb(), keygen, self.store,
                            served["resumed_from_op"], served["layers"], costs)
