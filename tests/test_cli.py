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
    assert main(["evaluate", "--sample", "--backend", "native"]) == 2  # a library only for --mode encrypted


def test_evaluate_simulate_and_compile(tmp_path, capsys, cifar_dir):
    out = tmp_path / "sim.json"
    args = ["--model", "resnet20", "--calibration-images", "64", "--data-dir", str(cifar_dir)]
    assert main(["compile", *args, "-o", str(tmp_path / "plan.json")]) == 0
    assert (tmp_path / "plan.md").read_text().startswith("# resnet20")
    assert main(["evaluate", "--mode", "simulate", "--plan", str(tmp_path / "plan.json"), "--sample",
                 "--images", "4", "--noise", "--json", str(out), *args]) == 0
    result = json.loads(out.read_text())
    assert result["mode"] == "simulate" and result["bootstraps"] <= 21 and result["noise"]
    assert 0.0 <= result["agreement_with_plain"] <= 1.0 and result["max_abs_logit_error"] > 0
    assert "agreement" in capsys.readouterr().out
    assert main(["evaluate", "--mode", "simulate", "--plan", str(tmp_path / "plan.json"), "--sample",
                 "--images", "4", "--noise", "--bootstrap-error-bits", "4", "--json", str(out), *args]) == 0
    first = json.loads(out.read_text())
    assert first["noise_model"]["bootstrap_sigma"] == first["noise_model"]["paired_bootstrap_sigma"] == 2.0 ** -4
    assert main(["evaluate", "--mode", "simulate", "--plan", str(tmp_path / "plan.json"), "--sample", "--images",
                 "4", "--noise", "--bootstrap-error-bits", "4", "--seed", "1", "--json", str(out), *args]) == 0
    other = json.loads(out.read_text())  # another noise draw: other logits
    assert other["seed"] == 1 and other["max_abs_logit_error"] != first["max_abs_logit_error"]
    assert main(["evaluate", "--mode", "simulate", "--sample", "--images", "4", "--bootstrap-error-bits", "4",
                 *args]) == 2  # without --noise it would mean nothing
