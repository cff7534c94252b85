"""The local round trip (runtime.local) at the INSECURE toy preset: keygen and server in their own
processes, the key store cached per plan, the answers equal to the simulator's within the CKKS error."""

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from resnet_fhe.backends.simulator import SimulatorBackend
from tests.helpers import random_images, toy_resnet_plan

local = pytest.importorskip("resnet_fhe.runtime.local")


def test_a_second_run_reuses_the_cached_store_and_a_new_plan_replaces_it(tmp_path, monkeypatch):
    monkeypatch.setenv("RESNET_FHE_CACHE", str(tmp_path))
    plan = toy_resnet_plan()
    images = random_images(2, (1, 8, 8), seed=31).images
    first = local.LocalDeployment(plan, threads=1, insecure=True).classify(images)
    assert first.store.parent == tmp_path / "stores" and not first.keygen["reused"]
    assert first.keygen["seconds"] > 0 and first.keygen["peak_rss_gb"] > 0
    assert first.peak_rss_gb > 0 and first.process_seconds >= first.seconds > 0
    expected = SimulatorBackend(plan).run(images / 255.0)
    assert np.max(np.abs(first.logits - expected)) < 0.02 * max(1.0, np.max(np.abs(expected)))

    again = local.LocalDeployment(plan, threads=1, insecure=True).classify(images[:1], checkpoint=False)
    assert again.keygen["reused"] and again.keygen["seconds"] == first.keygen["seconds"]
    assert np.max(np.abs(again.logits[0] - expected[0])) < 0.02 * max(1.0, np.max(np.abs(expected)))

    other = toy_resnet_plan(relu_form="general")  # another plan of the same model and preset
    assert local.plan_digest(other) != local.plan_digest(plan)
    deployment = local.LocalDeployment(other, threads=1, insecure=True)
    assert not deployment.has_keys()
    deployment.prepare_keys()
    assert [p.name for p in (tmp_path / "stores").iterdir()] == [deployment.store.name]  # the stale one is gone


def test_an_insecure_preset_needs_consent(tmp_path):
    from resnet_fhe.runtime import KeyStoreError

    plan = toy_resnet_plan()
    with pytest.raises(KeyStoreError, match="keygen failed"):
        local.LocalDeployment(plan, store=tmp_path / "store", threads=1).prepare_keys()


def test_packed_plan_classifies_a_batch_as_queries_and_drops_the_padding(tmp_path):
    plan = toy_resnet_plan(images_per_query=2)
    images = random_images(3, (1, 8, 8), seed=32).images  # queries of 2 and 1 (padded)
    run = local.LocalDeployment(plan, store=tmp_path / "store", threads=1, insecure=True).classify(images)
    assert len(list((tmp_path / "store" / "queries").iterdir())) == 2
    expected = SimulatorBackend(plan).run(images / 255.0)
    assert run.logits.shape == expected.shape == (3, plan.classes)
    assert np.max(np.abs(run.logits - expected)) < 0.02 * max(1.0, np.max(np.abs(expected)))
    assert run.seconds_per_image == run.seconds / 3


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux only (PR_SET_PDEATHSIG, /proc)")
def test_a_keygen_or_server_child_dies_with_the_process_that_started_it(tmp_path):
    pid_file = tmp_path / "child.pid"
    child_code = ("import os, time; from resnet_fhe.runtime.local import follow_parent; follow_parent(); "
                  f"open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)")
    parent_code = ("import sys; from resnet_fhe.runtime.local import run_child; "
                   f"run_child([sys.executable, '-c', {child_code!r}], 1)")
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    deadline = time.monotonic() + 60
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and parent.poll() is None, "the child did not start"
        time.sleep(0.1)
    child = int(pid_file.read_text())
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 20
    while _running(child):
        assert time.monotonic() < deadline, "the child outlived its parent"
        time.sleep(0.1)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a killed orphan waits for init to reap it)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, IndexError):
        return False
