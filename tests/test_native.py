"""The native extension (CMakeLists.txt, `make native`): OpenFHE built from source, loaded beside the
wheel. The backend's own tests run on both libraries (tests/test_openfhe_backend.py, fixture `library`);
these check what is particular to the build."""

import shutil
import subprocess

import numpy as np
import pytest

from resnet_fhe.backends.openfhe_backend import build_context, fhe_library
from resnet_fhe.errors import InputError
from resnet_fhe.plan.params import load_preset
from tests.helpers import native_library as native_module


def test_an_unknown_library_is_refused_with_the_choices():
    with pytest.raises(InputError, match="openfhe, native"):
        fhe_library("gpu")


def test_the_extension_links_the_pinned_openfhe_release():
    assert native_module().OPENFHE_VERSION == "1.5.1"  # cmake/OpenFHE.cmake pins v1.5.1


def test_the_extension_exports_no_openfhe_symbols():
    """OpenFHE's symbols stay inside the module (static archives, --exclude-libs): exported, they could
    bind to the wheel's libOPENFHE*.so of another version in the same process."""
    module = native_module()
    if shutil.which("nm") is None:
        pytest.skip("nm (binutils) not installed")
    listing = subprocess.run(["nm", "-D", "--defined-only", module.__file__], capture_output=True, text=True,
                             check=True).stdout
    exported = [line.split()[-1] for line in listing.splitlines() if line.strip()]
    assert "PyInit__native" in exported
    assert not [name for name in exported if "lbcrypto" in name]


def test_both_libraries_in_one_process_give_the_same_rotated_products():
    """A context of each library, used alternately in one process: same values back from each (within
    the CKKS error), so neither disturbs the other's global key tables."""
    native_module()
    fhe_library("openfhe")
    params = load_preset("toy-insecure")
    values = np.random.default_rng(3).uniform(-1, 1, 64)
    results = []
    for library in ("openfhe", "native", "openfhe"):
        context = build_context(params, library=library)
        keys = context.KeyGen()
        context.EvalMultKeyGen(keys.secretKey)
        context.EvalRotateKeyGen(keys.secretKey, [3])
        ct = context.Encrypt(keys.publicKey, context.MakeCKKSPackedPlaintext(values, 1, 0, None, 64))
        out = context.EvalRotate(context.EvalMult(ct, ct), 3)
        plain = context.Decrypt(out, keys.secretKey)
        plain.SetLength(64)
        results.append(np.array(plain.GetRealPackedValue()))
    want = np.roll(values * values, -3)
    for got in results:
        assert np.max(np.abs(got - want)) < 1e-3


def test_a_key_store_names_its_library_and_a_foreign_one_is_refused():
    from resnet_fhe.runtime.keystore import KeyStoreError, key_store_library

    assert key_store_library({}) is fhe_library("openfhe")  # stores from before the field: the wheel's
    with pytest.raises(KeyStoreError, match="'gpu' OpenFHE library"):
        key_store_library({"library": "gpu"})


def test_a_local_deployment_on_the_native_library_keeps_a_store_of_its_own(tmp_path, monkeypatch):
    """keygen (its own process, `keygen --backend native`), server and client all on the native build,
    at the INSECURE toy preset; the answer is the simulator's within the CKKS error."""
    import json

    from resnet_fhe.backends.simulator import SimulatorBackend
    from resnet_fhe.runtime import local
    from tests.helpers import random_images, toy_resnet_plan

    native_module()
    monkeypatch.setenv("RESNET_FHE_CACHE", str(tmp_path))
    plan = toy_resnet_plan()
    images = random_images(1, (1, 8, 8), seed=41).images
    run = local.LocalDeployment(plan, threads=1, insecure=True, library="native").classify(images, checkpoint=False)
    assert run.store.name.startswith(f"{plan.model}-{plan.params.name}-native-")
    assert json.loads((run.store / "server" / "manifest.json").read_text())["library"] == "native"
    expected = SimulatorBackend(plan).run(images / 255.0)
    assert np.max(np.abs(run.logits - expected)) < 0.02 * max(1.0, np.max(np.abs(expected)))
    assert not local.LocalDeployment(plan, threads=1, insecure=True).has_keys()  # the wheel's store is another
    with pytest.raises(local.KeyStoreError, match="'native' OpenFHE library"):  # named, it is never replaced
        local.LocalDeployment(plan, store=run.store, threads=1, insecure=True).prepare_keys()
    assert (run.store / "server" / "manifest.json").is_file()
