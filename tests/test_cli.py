import json

from resnet_fhe.cli import main


def test_evaluate_plain_on_sample_writes_json(tmp_path, capsys):
    out = tmp_path / "result.json"
    assert main(["evaluate", "--model", "resnet20", "--mode", "plain", "--sample", "--images", "10",
                 "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["model"] == "resnet20" and result["split"] == "test" and result["images"] == 10
    assert result["correct"] == round(result["top1"] * 10)
    assert "top-1" in capsys.readouterr().out


def test_errors_are_one_line_without_traceback(tmp_path, capsys):
    assert main(["evaluate", "--data-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "nowhere" in err and "Traceback" not in err
    assert main(["evaluate", "--model", "resnet99", "--sample"]) == 2
