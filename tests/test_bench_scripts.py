"""The benchmark scripts refuse bad arguments before any long work starts."""

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("conflict", [["--skip-reference", "earlier.json"], ["--packed-images", "8"],
                                      ["--fresh-keys"]])
def test_compare_reference_refuses_conflicting_modes(tmp_path, capsys, conflict):
    compare = _script("compare_reference")
    with pytest.raises(SystemExit):
        compare.main(["--reference-only", *conflict, "--json", str(tmp_path / "x.json")])
    assert "--reference-only runs the reference alone" in capsys.readouterr().err


@pytest.mark.parametrize("figures", [[], {"test_images": [0, 1], "threads": 2, "reference": {"set": 4}},
                                     {"test_images": [8, 9], "threads": 2, "reference": {"set": 1}}])
def test_compare_reference_checks_skipped_figures_before_compiling(tmp_path, cifar_dir, capsys, monkeypatch,
                                                                   figures):
    import resnet_fhe.compiler.plan_cache as plan_cache

    def no_compile(*args, **kwargs):
        raise AssertionError("compiled before checking --skip-reference")

    monkeypatch.setattr(plan_cache, "compile_model_cached", no_compile)
    compare = _script("compare_reference")
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps(figures))
    out = tmp_path / "out.json"
    code = compare.main(["--images", "2", "--start", "8", "--data-dir", str(cifar_dir), "--skip-reference",
                         str(earlier), "--json", str(out)])
    assert code == 2 and not out.exists()
    assert str(earlier) in capsys.readouterr().err


def test_encode_timing_refuses_towers_outside_the_chain(capsys):
    assert _script("encode_timing").main(["--towers", "0,3"]) == 2
    assert "--towers" in capsys.readouterr().err


def test_main_job_refuses_a_backend_for_the_simulator(capsys):
    with pytest.raises(SystemExit):
        _script("resnet20").parse(["--simulate", "--backend", "native"])
    assert "--backend chooses the OpenFHE library of an encrypted run" in capsys.readouterr().err


def test_main_job_checks_the_native_build_before_compiling(tmp_path, capsys, monkeypatch):
    """An encrypted run on a library that is not built stops at once, saying how to build it."""
    import resnet_fhe.backends.openfhe_backend as backend
    import resnet_fhe.compiler.plan_cache as plan_cache
    from resnet_fhe.errors import PlanError

    def not_built(name: str = "openfhe"):
        raise PlanError("the native backend is not built for this interpreter: run `make native`")

    def no_compile(*args, **kwargs):
        raise AssertionError("compiled before checking --backend")

    monkeypatch.setattr(backend, "fhe_library", not_built)
    monkeypatch.setattr(plan_cache, "compile_model_cached", no_compile)
    assert _script("resnet20").main(["--backend", "native", "--json", str(tmp_path / "x.json")]) == 2
    assert "make native" in capsys.readouterr().err


def test_pixel_attack_writes_every_figure_for_the_grey_sets(tmp_path):
    script = _script("pixel_attack")
    if not (script.DATA / script.GREY_SETS["mnist"]).is_file():
        pytest.skip(f"MNIST not found under {script.DATA}")
    out = tmp_path / "attack.json"
    assert script.main(["--dataset", "mnist", "--images", "20", "--json", str(out)]) == 0
    figures = json.loads(out.read_text())["results"]["mnist"]
    assert figures["images"] == 20 and 0 <= figures["pixels_recovered_exactly"] <= 1
    assert figures["psnr_recovered_db"] > figures["psnr_encrypted_db"]
    with pytest.raises(SystemExit):
        script.main(["--images", "0"])


def test_selective_encryption_measures_each_encoding(tmp_path):
    script = _script("selective_encryption")
    if not script.DATA.is_file():
        pytest.skip(f"NEU-CLS not found at {script.DATA}")
    out = tmp_path / "selective.json"
    assert script.main(["--images", "2", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    per_image = result["per_image"]
    assert per_image["whole_image_packed"]["ciphertexts"] == 2 and per_image["every_chunk"]["ciphertexts"] == 16
    selected = result["encrypted_chunk_fraction"] * 16
    assert per_image["selected_chunks"]["ciphertexts"] == pytest.approx(selected)
    assert per_image["every_chunk"]["bytes"] == pytest.approx(8 * per_image["whole_image_packed"]["bytes"], rel=0.01)
    with pytest.raises(SystemExit):
        script.main(["--images", "0"])


def test_compare_tenseal_runs_both_systems_on_the_same_images(tmp_path, mnist_data):
    """Two MNIST test images through TenSEAL's tutorial pipeline and resnet-fhe's 128-bit small-128 plan:
    every figure of the issue's table is written, and both systems classify the images the plain model does."""
    pytest.importorskip("tenseal")
    out = tmp_path / "compare.json"
    assert _script("compare_tenseal").main(["--images", "2", "--single", "0", "--datasets", "mnist",
                                            "--json", str(out)]) == 0
    result = json.loads(out.read_text())["mnist"]
    for system in ("resnet_fhe", "tenseal"):
        figures = result[system]
        assert set(figures) >= {"accuracy", "f1", "seconds_per_image", "peak_rss_gb", "images"}
        assert figures["images"] == 2 and figures["accuracy"] == 1.0 and figures["seconds_per_image"] > 0
    assert result["resnet_fhe"]["agreement_with_plain"] == 1.0
    assert min(result[system]["ciphertext_bytes_per_image"] for system in ("resnet_fhe", "tenseal")) > 0
    assert result["resnet_fhe"]["security"] == "HEStd_128_classic"
    assert result["ratios"]["seconds_per_image"] > 0


def test_compare_tenseal_refuses_a_model_of_another_shape():
    compare = _script("compare_tenseal")
    with pytest.raises(SystemExit, match="not a TenSEAL-tutorial-shaped CNN"):
        compare.tutorial_layers("resnet20")


def test_train_mnist_pixel_encrypts_each_image_with_its_own_key():
    """The pixel-encrypted training images (issue 14): every pixel is p or 255 - p, the keys differ per
    image and per seed (a new view of each image every epoch)."""
    import numpy as np

    train = _script("train_mnist")
    images = np.repeat(np.linspace(0, 1, 28 * 28, dtype=np.float32).reshape(1, 1, 28, 28), 3, axis=0)
    first, again, other = (train.pixel_encrypted(images, seed) for seed in (5, 5, 6))
    pixels, encrypted = np.rint(images * 255), np.rint(first * 255)
    assert np.all((encrypted == pixels) | (encrypted == 255 - pixels))
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert not np.array_equal(first[0], first[1])  # independent keys per image


def test_privacy_checks_its_inputs_before_any_work(tmp_path, capsys, monkeypatch):
    privacy = _script("privacy")
    with pytest.raises(SystemExit):
        privacy.main(["--json", str(tmp_path / "p.json"), "--test-images", "0"])
    monkeypatch.setattr(privacy, "WEIGHTS", tmp_path)
    with pytest.raises(SystemExit):
        privacy.main(["--json", str(tmp_path / "p.json"), "--only", "mnist", "neu_cls"])
    assert ("weights not found: cryptondl-mnist, chunk-cnn-neu, chunk-cnn-neu-paper, chunk-cnn-neu-server-view"
            in capsys.readouterr().err)
    assert not (tmp_path / "p.json").exists()


def test_privacy_writes_the_pixel_figures_of_a_grey_set(tmp_path, mnist_data):
    """A few MNIST images: the issue's three accuracies (the pixel-trained weights where shipped) and the
    attack, without CKKS."""
    privacy = _script("privacy")
    out = tmp_path / "p.json"
    assert privacy.main(["--json", str(out), "--only", "mnist", "--test-images", "50", "--attack-images", "5",
                         "--ckks-images", "0"]) == 0
    figures = json.loads(out.read_text())["mnist"]
    assert figures["test_images"] == 50 and figures["accuracy_plain_model"] >= 0.9
    assert figures["attack"]["images"] == 5 and figures["attack"]["psnr_recovered_db"] > 0
    if figures["pixel_model"]:
        assert 0 <= figures["accuracy_encrypted_images"] <= 1 and 0 <= figures["accuracy_plain_images"] <= 1


def test_train_neu_hides_exactly_the_selected_chunks():
    import numpy as np

    from resnet_fhe.imagecrypt import select_chunks

    train = _script("train_neu")
    rng = np.random.default_rng(1)
    images = np.full((2, 1, 112, 112), 100, np.uint8)
    images[0, 0, :28, 28:56] = rng.integers(0, 256, (28, 28))
    view = train.server_view(images)
    assert select_chunks(images[0, 0])[0, 1] and select_chunks(images[0, 0]).sum() == 1
    assert (view[0, 0, :28, 28:56] == 0).all() and (view[0, 0, 28:] == 100).all()
    np.testing.assert_array_equal(view[1], images[1])


def test_learned_attack_refuses_bad_arguments_before_training(tmp_path, capsys):
    attack = _script("learned_attack")
    with pytest.raises(SystemExit):
        attack.main(["--epochs", "0", "--json", str(tmp_path / "a.json")])
    assert "must be positive" in capsys.readouterr().err
    import numpy as np

    plain = np.full((2, 1, 4, 4), 0.5)
    assert attack.psnr(plain, plain + 0.1).round(6).tolist() == [20.0, 20.0]


def test_pixel_bound_pairs_the_runs_and_recovers_a_known_trend(tmp_path, capsys):
    """bench/pixel_bound.py: plain and invariant --scratch runs of one size and seed pair up (other JSON,
    an unfinished run's empty file and fine-tuned runs are left out), seeds of one size are averaged, and
    gaps that follow 3 + 10,000 / N exactly give a = 3 and 3.2 pp at 50,000 images."""
    bound = _script("pixel_bound")

    def run(name, images, seed, plain, accuracy, start="random"):
        field = "plain_images" if plain else "encrypted_images"
        (tmp_path / f"{name}.json").write_text(json.dumps(
            {"start": start, "train_images": images, "seed": seed, "pixel_encrypted_training": not plain,
             "test_accuracy_torch": {field: accuracy}}))

    for n in (5000, 10000, 20000):
        run(f"plain-{n}", n, 0, True, 0.8)
        run(f"invariant-{n}", n, 0, False, 0.8 - (3 + 10_000 / n) / 100)
    run("plain-20000-seed1", 20000, 1, True, 0.9)
    run("invariant-20000-seed1", 20000, 1, False, 0.9 - 0.045)  # with seed 0's 3.5 pp: a mean of 4 pp
    run("invariant-orphan", 40000, 0, False, 0.5)
    run("fine-tuned", None, 0, False, 0.86, start="weights/resnet20.npz")
    (tmp_path / "unfinished.json").write_text("")
    (tmp_path / "privacy.json").write_text(json.dumps({"mnist": {}}))
    with pytest.raises(SystemExit):
        bound.main([str(tmp_path / "nowhere")])
    assert "no such folder" in capsys.readouterr().err
    assert bound.main([str(tmp_path), "--json", str(tmp_path / "out" / "bound.json")]) == 0
    result = json.loads((tmp_path / "out" / "bound.json").read_text())
    assert [(row["train_images"], row["seed"]) for row in result["runs"]] == [(5000, 0), (10000, 0), (20000, 0),
                                                                              (20000, 1)]
    assert result["mean_gap_pp"] == {"5000": 5.0, "10000": 4.0, "20000": 4.0}
    (tmp_path / "invariant-20000-seed1.json").unlink()
    (tmp_path / "plain-20000-seed1.json").unlink()
    bound.main([str(tmp_path), "--json", str(tmp_path / "bound.json")])
    fits = json.loads((tmp_path / "bound.json").read_text())["fits"]
    assert fits["a + b / N"]["a_pp"] == pytest.approx(3.0, abs=0.01)
    assert fits["a + b / N"]["gap_at_50000_pp"] == pytest.approx(3.2, abs=0.01)
    assert "3.2 pp at 50,000 images" in capsys.readouterr().out
