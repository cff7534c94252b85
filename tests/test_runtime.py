"""Client/server split at the INSECURE toy preset: the server runs in its own process from the key
store's server part alone, and rejects tampered or mismatched files."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from resnet_fhe.backends.bootstrapping import STREAMED_KEYS
from resnet_fhe.backends.simulator import SimulatorBackend
from tests.helpers import random_images, toy_resnet_plan

runtime = pytest.importorskip("resnet_fhe.runtime")
ROOT = Path(__file__).resolve().parents[1]
SERVE = "import sys; from resnet_fhe.runtime import Server; Server(sys.argv[1]).infer(sys.argv[2], sys.argv[3])"


@pytest.fixture(scope="module")
def store(tmp_path_factory, library):
    """A toy key store made by each OpenFHE library (the conftest's `library`): every test here runs on both."""
    base = tmp_path_factory.mktemp(f"store-{library}")
    plan = toy_resnet_plan()
    client = runtime.Client.keygen(plan, base / "server", base / "client-secret", library)
    return plan, client, base


def _encrypted_batch(client, folder, seed, count=2):
    """`count` random images encrypted into folder/query<i>, with folder/answer<i> for the server."""
    images = random_images(count, (1, 8, 8), seed=seed).images
    folders = [(folder / f"query{i}", folder / f"answer{i}") for i in range(count)]
    for image, (query, _) in zip(images, folders, strict=True):
        client.encrypt(image, query)
    return images, folders


def _assert_answers_match_simulator(plan, client, images, answers):
    expected = SimulatorBackend(plan).run(images / 255.0)
    for answer, want in zip(answers, expected, strict=True):
        assert np.max(np.abs(client.decrypt(answer)[0] - want)) < 0.02 * max(1.0, np.max(np.abs(want)))


def _serve(server_dir, input_dir, output_dir):
    return subprocess.run([sys.executable, "-c", SERVE, str(server_dir), str(input_dir), str(output_dir)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_server_process_needs_no_secret_key(store):
    plan, client, base = store
    server_dir = base / "server"
    secret = (base / "client-secret" / "secret_key.bin").read_bytes()
    for path in server_dir.rglob("*"):
        if path.is_file():
            assert secret[-64:] not in path.read_bytes(), f"{path} contains the secret key"
    image = random_images(1, (1, 8, 8), seed=21).images[0]
    client.encrypt(image, base / "query")
    done = _serve(server_dir, base / "query", base / "answer")
    assert done.returncode == 0, done.stderr
    logits = client.decrypt(base / "answer")[0]
    expected = SimulatorBackend(plan).run(image[None] / 255.0)[0]
    assert np.max(np.abs(logits - expected)) < 0.02 * max(1.0, np.max(np.abs(expected)))


def test_tampered_key_file_is_rejected(store, tmp_path):
    import shutil

    _, client, base = store
    copy = tmp_path / "server"
    shutil.copytree(base / "server", copy)
    victim = next((copy / "rotations").glob("*.bin"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    client.encrypt(random_images(1, (1, 8, 8), seed=22).images[0], tmp_path / "query")
    done = _serve(copy, tmp_path / "query", tmp_path / "answer")
    assert done.returncode != 0 and "does not match its sha256" in done.stderr and victim.name in done.stderr


def test_mismatched_or_tampered_ciphertext_is_rejected(store, tmp_path):
    _, client, base = store
    client.encrypt(random_images(1, (1, 8, 8), seed=23).images[0], tmp_path / "query")
    with pytest.raises(runtime.KeyStoreError, match="holds"):
        client.decrypt(tmp_path / "query")  # an input is not an output
    ct = tmp_path / "query" / "ct0.bin"
    ct.write_bytes(ct.read_bytes()[:-10])
    server = runtime.Server(base / "server")
    with pytest.raises(runtime.KeyStoreError, match="tampered"):
        server.infer(tmp_path / "query", tmp_path / "answer")


def test_client_rejects_wrong_image(store):
    from resnet_fhe.errors import InputError

    _, client, base = store
    with pytest.raises(InputError, match="shape"):
        client.encrypt(np.zeros((3, 32, 32), np.uint8), base / "bad")


def test_server_batch_loads_each_phase_once_and_profiles_key_loading(store, tmp_path):
    from resnet_fhe.profiling import MemoryGuard, RssSampler

    plan, client, base = store
    images, folders = _encrypted_batch(client, tmp_path, seed=24)
    server = runtime.Server(base / "server")
    loads = []
    original = server.file
    server.file = lambda name: loads.append(name) or original(name)
    server.infer_batch(folders[:1])
    single = list(loads)
    loads.clear()
    with RssSampler() as sampler:
        guard = MemoryGuard(sampler, budget_gb=1000.0)
        server.infer_batch(folders, guard=guard)
    assert loads == single, "a batch of two loaded keys more often than one image does"
    assert any(p.key_load_seconds > 0 for p in guard.profiles)
    assert all(0 <= p.key_load_seconds <= p.seconds for p in guard.profiles)
    _assert_answers_match_simulator(plan, client, images, [a for _, a in folders])


def test_cli_infer_evaluates_a_batch_and_writes_its_profile(store, tmp_path):
    import json

    from resnet_fhe.cli import main

    plan, client, base = store
    images, folders = _encrypted_batch(client, tmp_path, seed=26)
    queries, answers = [q for q, _ in folders], [a for _, a in folders]
    assert main(["infer", "--server", str(base / "server"), "--input", *map(str, queries),
                 "--output", str(answers[0])]) == 2  # one answer folder per input, or nothing runs
    assert not answers[0].exists()
    assert main(["infer", "--server", str(base / "server"), "--input", *map(str, queries),
                 "--output", *map(str, answers), "--json", str(tmp_path / "infer.json")]) == 0
    profile = json.loads((tmp_path / "infer.json").read_text())
    assert profile["images"] == 2 and [p["layer"] for p in profile["layers"]] == plan.layers()
    _assert_answers_match_simulator(plan, client, images, answers)


def test_stopped_batch_resumes_from_its_checkpoint(store, tmp_path, monkeypatch):
    from resnet_fhe.plan.ops import Bootstrap
    from resnet_fhe.profiling import MemoryGuard, RssSampler
    from resnet_fhe.runtime.server import PhaseKeys

    plan, client, base = store
    images, folders = _encrypted_batch(client, tmp_path, seed=27)
    server = runtime.Server(base / "server")
    ops = server.plan.ops
    stop_at = [i for i, op in enumerate(ops) if isinstance(op, Bootstrap)][1]
    assert ops[stop_at].layer != ops[stop_at - 1].layer  # checkpoints are taken at layer boundaries
    load = PhaseKeys.load

    class Stopped(Exception):
        pass

    def stopping_load(keys, op):
        if op is ops[stop_at]:
            raise Stopped
        load(keys, op)

    monkeypatch.setattr(PhaseKeys, "load", stopping_load)
    with RssSampler() as sampler, pytest.raises(Stopped):
        server.infer_batch(folders, guard=MemoryGuard(sampler, 1000.0), checkpoint=tmp_path / "checkpoint",
                           checkpoint_every=0)
    monkeypatch.setattr(PhaseKeys, "load", load)
    assert not folders[0][1].exists()
    other = [(folders[1][0], folders[0][1]), folders[1]]  # other inputs must not pick up this checkpoint
    with pytest.raises(runtime.KeyStoreError, match="belongs to other inputs"):
        server.infer_batch(other, checkpoint=tmp_path / "checkpoint")
    with RssSampler() as sampler:
        guard = MemoryGuard(sampler, 1000.0)
        resumed = server.infer_batch(folders, guard=guard, checkpoint=tmp_path / "checkpoint")
    assert resumed.op == stop_at and resumed.seconds > 0
    assert [p.layer for p in guard.profiles] == plan.layers()  # the earlier run's layers, then the rest
    assert not (tmp_path / "checkpoint").exists()  # removed once the answers are written
    _assert_answers_match_simulator(plan, client, images, [a for _, a in folders])


def test_server_holds_the_keys_the_residency_policy_counts(store, tmp_path, monkeypatch):
    """Before every op the context holds exactly the bootstrap keys (once loaded) and the rotation keys
    KeyResidency counts: dropping a layer's keys keeps the bootstrap keys, loading them never adds to
    the kept bootstrap map, and a rotation the bootstrap keys include is not loaded again. A streamed
    bootstrap's keys (the native build) never enter the context's table: it holds the rotation keys alone."""
    from resnet_fhe.runtime.server import PhaseKeys

    plan, client, base = store
    assert len({op.slots for op in plan.ops if op.kind == "bootstrap"}) == 1  # one bootstrap key set
    client.encrypt(random_images(1, (1, 8, 8), seed=25).images[0], tmp_path / "query")
    server = runtime.Server(base / "server")
    tag, cc = server.manifest["key_tag"], server.context
    model, held, bootstrap_indices = PhaseKeys(server).residency, [], set()
    streamed = server.manifest.get("bootstrap") == STREAMED_KEYS
    load = PhaseKeys.load

    def checked_load(keys, op):
        load(keys, op)
        model.admit(op)
        if op.kind == "bootstrap" and not bootstrap_indices and not streamed:
            bootstrap_indices.update(cc.GetExistingEvalAutomorphismKeyIndices(tag))
        expected = {cc.FindAutomorphismIndex(k) for k in model.rotations}
        if model.bootstrap_slots is not None:
            expected |= bootstrap_indices
        held.append((op.name, set(cc.GetExistingEvalAutomorphismKeyIndices(tag)), expected))

    monkeypatch.setattr(PhaseKeys, "load", checked_load)
    server.infer(tmp_path / "query", tmp_path / "answer")
    assert len(held) == len(plan.ops) and (streamed or bootstrap_indices)
    # Some of the plan's rotations come with OpenFHE's bootstrap keys: after the first bootstrap, never
    # loaded; stage keys stand in for none.
    assert any(server.manifest["bootstrap_covers"].values()) != streamed
    assert all(loaded == expected for _, loaded, expected in held), [h[0] for h in held if h[1] != h[2]][:3]
    _assert_answers_match_simulator(plan, client, random_images(1, (1, 8, 8), seed=25).images, [tmp_path / "answer"])


def test_the_secret_key_is_readable_by_its_owner_only(store):
    _, _, base = store
    assert (base / "client-secret" / "secret_key.bin").stat().st_mode & 0o077 == 0
    assert (base / "client-secret").stat().st_mode & 0o077 == 0


def test_freed_heap_memory_goes_back_to_the_system():
    import ctypes
    import platform

    import psutil

    from resnet_fhe.runtime.heap import release_freed_memory

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("malloc_trim is glibc's")
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    process = psutil.Process()
    blocks = [libc.malloc(64 * 1024) for _ in range(3000)]  # under the mmap threshold: heap memory
    for block in blocks:
        ctypes.memset(block, 1, 64 * 1024)
    pin = libc.malloc(64)  # above the blocks: free() alone cannot shrink the heap past it
    for block in blocks:
        libc.free(block)
    before = process.memory_info().rss
    assert release_freed_memory()
    assert process.memory_info().rss < before - 100_000_000  # ~190 MB freed; most of it given back
    libc.free(pin)
