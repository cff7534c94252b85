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


def test_compare_reference_refuses_conflicting_modes(tmp_path):
    compare = _script("compare_reference")
    earlier = tmp_path / "earlier.json"
    earlier.write_text("{}")
    with pytest.raises(SystemExit):
        compare.main(["--reference-only", "--skip-reference", str(earlier), "--json", str(tmp_path / "x.json")])


def test_compare_reference_checks_skipped_figures_before_compiling(tmp_path, cifar_dir, capsys):
    compare = _script("compare_reference")
    earlier = tmp_path / "earlier.json"
    earlier.write_text(json.dumps({"test_images": [0, 1], "threads": 2, "reference": {"seconds_per_image": 1.0}}))
    out = tmp_path / "out.json"
    code = compare.main(["--images", "2", "--start", "8", "--data-dir", str(cifar_dir), "--skip-reference",
                         str(earlier), "--json", str(out)])
    assert code == 2 and not out.exists()
    assert "test images [8, 9]" in capsys.readouterr().err


def test_encode_timing_refuses_towers_outside_the_chain(capsys):
    assert _script("encode_timing").main(["--towers", "0,3"]) == 2
    assert "--towers" in capsys.readouterr().err
