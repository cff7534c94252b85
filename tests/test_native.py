"""The native extension (CMakeLists.txt, `make native`): OpenFHE built from source, loaded beside the
wheel. The backend's own tests run on both libraries (tests/test_openfhe_backend.py, fixture `library`);
these check what is particular to the build."""

import dataclasses
import importlib.util
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from resnet_fhe.backends.bootstrapping import STREAMED_KEYS
from resnet_fhe.backends.openfhe_backend import build_context, fhe_library
from resnet_fhe.errors import InputError
from resnet_fhe.plan.params import load_preset
from tests.helpers import native_library as native_module
from tests.helpers import wheel_library


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
    wheel_library()
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

    wheel = wheel_library()
    assert key_store_library({}) is wheel  # stores from before the field: the wheel's
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
    if importlib.util.find_spec("openfhe") is not None:  # where the wheel exists too
        assert not local.LocalDeployment(plan, threads=1, insecure=True).has_keys()  # its store is another
        with pytest.raises(local.KeyStoreError, match="'native' OpenFHE library"):
            local.LocalDeployment(plan, store=run.store, threads=1, insecure=True).prepare_keys()
    assert (run.store / "server" / "manifest.json").is_file()
    # Its bootstrap keys are per-stage tower files; a native store of OpenFHE's bootstrap keys or of
    # OpenFHE-serialized stage keys (made by earlier versions) is refused before any work, with what to do.
    manifest_path = run.store / "server" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["bootstrap"] == STREAMED_KEYS and not any(manifest["bootstrap_covers"].values())
    from resnet_fhe.runtime.server import Server

    for earlier in ("openfhe", "streamed"):
        manifest["bootstrap"] = earlier
        manifest_path.write_text(json.dumps(manifest))
        with pytest.raises(local.KeyStoreError, match="make the keys again"):
            Server(run.store / "server")


def _bootstrap_error_bits(params, context, keys, bootstrap, slots: int, seed: int = 0) -> float:
    """-log2 of the error std of `bootstrap` on uniform values in [-1, 1] at `slots`, encrypted with the
    one level a plan leaves for bootstrapping."""
    values = np.random.default_rng(seed).uniform(-1, 1, slots)
    plaintext = context.MakeCKKSPackedPlaintext(values, 1, params.multiplicative_depth - 1, None, slots)
    result = context.Decrypt(bootstrap(context.Encrypt(keys.publicKey, plaintext)), keys.secretKey)
    result.SetLength(slots)
    return float(-np.log2(np.std(np.array(result.GetRealPackedValue()) - values)))


def _streamed(context, params, secret_key, slots, **options):
    from resnet_fhe.backends.bootstrapping import MemoryStageKeys, StreamedBootstrap

    return StreamedBootstrap(context, params, MemoryStageKeys(context, params, secret_key, [slots]), **options)


@pytest.mark.parametrize("slots", [1024, 2048])  # sparse (partial sums) and full packing (two EvalMods)
def test_the_streamed_bootstrap_is_as_precise_as_openfhes(slots):
    """resnet-fhe's stage-by-stage bootstrap against the same build's EvalBootstrap, same keys' settings,
    INSECURE toy preset: the same levels out and the same error within half a bit."""
    from resnet_fhe.backends.openfhe_backend import setup_bootstrap

    native_module()
    params = load_preset("toy-insecure")
    context = build_context(params, library="native")
    keys = context.KeyGen()
    context.EvalMultKeyGen(keys.secretKey)
    streamed = _streamed(context, params, keys.secretKey, slots)
    setup_bootstrap(context, params, slots)
    context.EvalBootstrapKeyGen(keys.secretKey, slots)
    ours = _bootstrap_error_bits(params, context, keys, lambda ct: streamed.bootstrap_many([ct])[0], slots)
    theirs = _bootstrap_error_bits(params, context, keys, context.EvalBootstrap, slots)
    assert ours > 12 and abs(ours - theirs) < 0.5, (ours, theirs)


def test_the_streamed_bootstrap_is_right_where_openfhe_1_5_1_is_not():
    """OpenFHE 1.5.1 pre-rotates SlotsToCoeffs' remainder level by the wrong giant step whenever dim1
    makes the full levels' differ from it (here 512 slots, level budget {2, 2}, dim1 (0, 4)): its
    EvalBootstrap returns noise; the streamed bootstrap encodes each stage's diagonals itself."""
    import dataclasses

    from resnet_fhe.backends.openfhe_backend import setup_bootstrap

    native_module()
    params = dataclasses.replace(load_preset("toy-insecure"), level_budget=(2, 2), bootstrap_dim1=(0, 4),
                                 streamed_bootstrap_dim1=(0, 4))
    context = build_context(params, library="native")
    keys = context.KeyGen()
    context.EvalMultKeyGen(keys.secretKey)
    streamed = _streamed(context, params, keys.secretKey, 512)
    setup_bootstrap(context, params, 512)
    context.EvalBootstrapKeyGen(keys.secretKey, 512)
    assert _bootstrap_error_bits(params, context, keys, lambda ct: streamed.bootstrap_many([ct])[0], 512) > 12
    assert _bootstrap_error_bits(params, context, keys, context.EvalBootstrap, 512) < 4  # the bug, still there


def test_streamed_keys_and_transforms_from_files_give_what_memory_gives(tmp_path):
    """The server's way (FileStageKeys, diagonals streamed from a temporary folder) and the in-memory way
    give the same ciphertext up to the CKKS error, for a batch of two; the SlotsToCoeffs stages' key files
    are smaller per key (their keys keep only the towers and digits their level reads)."""
    from resnet_fhe.backends.bootstrapping import FileStageKeys, StreamedBootstrap, write_stage_keys

    native = native_module()
    params = load_preset("toy-insecure")
    context = build_context(params, library="native")
    keys = context.KeyGen()
    context.EvalMultKeyGen(keys.secretKey)
    names = write_stage_keys(context, params, keys.secretKey, 1024, tmp_path)
    from_files = StreamedBootstrap(context, params, FileStageKeys(context, lambda _, name: tmp_path / name))
    in_memory = _streamed(context, params, keys.secretKey, 1024, stream_transforms=False)
    values = np.random.default_rng(5).uniform(-1, 1, (2, 1024))
    cts = [context.Encrypt(keys.publicKey, context.MakeCKKSPackedPlaintext(v, 1, params.multiplicative_depth - 1,
                                                                            None, 1024)) for v in values]
    for bootstrapper in (from_files, in_memory):
        for ct, want in zip(bootstrapper.bootstrap_many(cts), values, strict=True):
            got = context.Decrypt(ct, keys.secretKey)
            got.SetLength(1024)
            assert np.max(np.abs(np.array(got.GetRealPackedValue()) - want)) < 2**-8
    transforms = native.StreamedBootstrap(context, [2, 2], [0, 0], 1024, 0)
    per_key = [(tmp_path / name).stat().st_size / len(transforms.StageRotations(stage))
               for stage, name in enumerate(list(names)[1:])]
    assert per_key[-1] < 0.8 * per_key[0]
    from_files.release()
    assert not list(Path(from_files._folder.name).iterdir())  # the encoded transforms' files are gone


def test_tower_files_round_trip_and_refuse_what_they_cannot_read(tmp_path):
    """Stage keys and diagonals in raw tower files: read back, they rotate and multiply as the originals;
    a truncated file, a file of another kind, an OpenFHE-serialized file and keys of another context are
    refused with a message naming the file."""
    native = native_module()
    params = load_preset("toy-insecure")
    context = build_context(params, library="native")
    keys = context.KeyGen()
    transforms = native.StreamedBootstrap(context, [2, 2], [0, 0], 1024, 0)
    key_file, diagonal_file = tmp_path / "stage-0.bin", tmp_path / "diagonals-0.bin"
    assert native.SerializeKeyMap(str(key_file), transforms.GenerateStageKeys(keys.secretKey, 0))
    assert native.SerializeStageDiagonals(str(diagonal_file), transforms.EncodeStage(0))
    read_keys = native.DeserializeKeyMap(str(key_file), context)
    assert len(read_keys) == len(transforms.StageRotations(0))
    assert len(native.DeserializeStageDiagonals(str(diagonal_file), context)) == len(transforms.EncodeStage(0))

    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(key_file.read_bytes()[:-8])
    with pytest.raises(RuntimeError, match=r"truncated\.bin is truncated"):
        native.DeserializeKeyMap(str(truncated), context)
    with pytest.raises(RuntimeError, match="holds no key map"):
        native.DeserializeKeyMap(str(diagonal_file), context)
    serialized = tmp_path / "cereal.bin"
    assert native.SerializeToFile(str(serialized), keys.publicKey, native.BINARY)
    with pytest.raises(RuntimeError, match=r"not a resnet-fhe tower file .*make the keys again"):
        native.DeserializeKeyMap(str(serialized), context)
    other = build_context(dataclasses.replace(params, scale_bits=params.scale_bits - 1), library="native")
    with pytest.raises(RuntimeError, match="modulus this context does not have"):
        native.DeserializeKeyMap(str(key_file), other)


def test_special_keys_are_refused_when_the_context_already_holds_one():
    """OpenFHE skips rotations the context's key table already has for the secret key: the special keys'
    map would silently lack that key, so making it is refused. (Stage keys are made by resnet-fhe's own
    key generation, which has no such table.)"""
    native_module()
    params = load_preset("toy-insecure")
    context = build_context(params, library="native")
    keys = context.KeyGen()
    transforms = native_module().StreamedBootstrap(context, [2, 2], [0, 0], 1024, 0)
    context.EvalRotateKeyGen(keys.secretKey, [transforms.SpecialRotations()[0]])
    with pytest.raises(RuntimeError, match="clear the context's automorphism keys"):
        transforms.GenerateSpecialKeys(keys.secretKey)
    assert len(transforms.GenerateStageKeys(keys.secretKey, 0)) == len(transforms.StageRotations(0))
    context.ClearEvalAutomorphismKeys()


def test_a_rotation_key_made_for_fewer_towers_rotates_there_and_is_refused_with_more(tmp_path):
    """RotationKeysAtTowers makes only what a key switch at that many towers reads (the native key store
    makes each rotation key for the levels its ops use): it rotates a ciphertext with that many towers as
    OpenFHE's full key does, it is a fraction of the full key's bytes, and a ciphertext with more towers
    (where OpenFHE would read towers the key lacks) is refused with a message instead."""
    native = native_module()
    params = load_preset("toy-insecure")
    context = build_context(params, library="native")
    keys = context.KeyGen()
    tag = keys.secretKey.GetKeyTag()
    values = np.random.default_rng(8).uniform(-1, 1, 64)
    fresh = context.Encrypt(keys.publicKey, context.MakeCKKSPackedPlaintext(values, 1, 0, None, 64))
    low = context.Compress(fresh, 3, 1)  # three towers
    sizes = {}
    for made_at in (3, None):
        context.ClearEvalAutomorphismKeys()
        if made_at is None:
            context.EvalRotateKeyGen(keys.secretKey, [3, -5])
        else:
            context.InsertEvalAutomorphismKey(native.RotationKeysAtTowers(keys.secretKey, [3, -5], made_at), tag)
        for rotation in (3, -5):
            rotated = context.Decrypt(context.EvalRotate(low, rotation), keys.secretKey)
            rotated.SetLength(64)
            assert np.max(np.abs(np.array(rotated.GetRealPackedValue()) - np.roll(values, -rotation))) < 1e-3
        path = tmp_path / f"keys-{made_at}.bin"
        assert context.SerializeEvalAutomorphismKey(str(path), native.BINARY)
        sizes[made_at] = path.stat().st_size
        if made_at is not None:
            with pytest.raises(ValueError, match="fewer RNS towers"):
                context.EvalRotate(fresh, 3)
    assert sizes[3] < 0.6 * sizes[None]
    context.ClearEvalAutomorphismKeys()


def test_the_bootstrap_measurement_reports_the_streamed_bootstrap(tmp_path):
    """bench/bootstrap_precision.py --backend native measures the streamed bootstrap as a server runs it
    (keys from per-stage files): its figures, at the INSECURE toy preset."""
    import importlib.util
    import json

    native_module()
    spec = importlib.util.spec_from_file_location("bootstrap_precision", Path(__file__).resolve().parents[1] /
                                                  "bench" / "bootstrap_precision.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "bootstrap.json"
    assert script.main(["--backend", "native", "--preset", "toy-insecure", "--slots", "1024", "--repeats", "1",
                        "--key-dir", str(tmp_path), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["bootstrap"] == "streamed" and report["error_std_bits"] > 12
    assert len(report["stage_keys"]) == 4 and report["key_bytes"] > 0  # level budget {2, 2}: four stages
    assert [p.name for p in tmp_path.iterdir()] == ["bootstrap.json"]  # the key folder is removed


def test_the_keygens_chacha20_is_rfc_8439s_across_its_refills():
    """Keygen's uniform bits come from ChaCha20 (native/src/key_sampling.h): RFC 8439's block function
    test vector (section 2.3.2: key 00..1f, nonce 000000090000004a00000000, block counter 1), and the
    keystream read on across the generator's eight-block refills equals streams started at those blocks."""
    native = native_module()
    key, nonce = bytes(range(32)), bytes.fromhex("000000090000004a00000000")
    stream = native.ChaCha20Keystream(key, nonce, 1, 64 * 20)
    assert stream[:64].hex() == ("10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
                                 "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e")
    for block in (7, 8, 9, 16, 17):
        assert native.ChaCha20Keystream(key, nonce, 1 + block, 64) == stream[64 * block:64 * (block + 1)]
    with pytest.raises(ValueError, match="32-byte key"):
        native.ChaCha20Keystream(key[:16], nonce, 0, 64)


@pytest.mark.parametrize("modulus", [3 * 2**38 + 1, 2**59 - 55])  # a quarter of draws rejected; almost none
def test_keygens_uniform_residues_fill_the_whole_range_evenly(modulus):
    """Residues as a key's uniform half is drawn: below the modulus, and spread evenly over 16 equal
    buckets of [0, modulus) (a chi-square far below what a bit mask one bit short, or a bias, would give)."""
    samples = native_module().UniformResidues(modulus, 160_000, bytes(range(1, 33)))
    assert samples.dtype == np.uint64 and int(samples.max()) < modulus
    counts = np.bincount((samples // np.uint64(-(-modulus // 16))).astype(np.int64), minlength=16)
    expected = len(samples) / 16
    assert len(counts) == 16 and float(((counts - expected) ** 2 / expected).sum()) < 50  # 15 degrees of freedom
