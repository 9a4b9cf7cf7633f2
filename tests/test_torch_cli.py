"""scripts/parity_report.py as users run it: JSON on stdout, exit codes 0/1/2, one-line errors."""

import json

import pytest
import torch

from nn_numpy.network import BOOK_ACCURACY, LAYER_OUTPUTS

QUIET = {"PYTHONWARNINGS": "ignore"}


def test_json_is_one_object_with_per_layer_figures(data_dir, run_script):
    result = run_script("parity_report.py", "--json", "--device", "cpu", env=QUIET)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1
    report = json.loads(result.stdout)
    assert report["ok"] is True and report["mismatched_predictions"] == 0
    assert (report["device"], report["dtype"], report["images"]) == ("cpu", "float32", 10000)
    assert report["matmul_precision"] == "highest (TF32 off)" and report["tf32"] is False
    assert list(report["layers"]) == list(LAYER_OUTPUTS)
    for figures in report["layers"].values():
        assert figures["mismatched"] == 0 and 0 < figures["max_abs"] <= report["tolerance"]["atol"] * 2
    assert report["accuracy"] == {"numpy": BOOK_ACCURACY, "torch": BOOK_ACCURACY}
    assert 0 < report["min_top2_margin"]["numpy"] < 0.01


def test_float64_batched_table(capsys, data_dir, load_script):
    code = load_script("parity_report.py").main(["--device", "cpu", "--dtype", "float64", "--batch-size", "3000"])
    out = capsys.readouterr().out
    assert code == 0
    assert "dtype float64" in out and "parity: OK, all 10000 predictions identical" in out
    assert [line.split()[0] for line in out.splitlines() if line.split()[0] in LAYER_OUTPUTS] == list(LAYER_OUTPUTS)


def test_tf32_is_reported_and_the_settings_restored(capsys, data_dir, load_script):
    from nn_torch import matmul_precision

    before = matmul_precision()
    code = load_script("parity_report.py").main(["--device", "cpu", "--tf32", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["tf32"] is True and report["matmul_precision"] == "high (TF32 on)"
    assert matmul_precision() == before
    load_script("parity_report.py").main(["--device", "cpu", "--tf32"])
    assert "note: TF32 applies to float32 matmuls on CUDA GPUs only" in capsys.readouterr().out


def test_a_parity_failure_exits_1(monkeypatch, capsys, data_dir, load_script):
    from nn_torch import MnistNet

    forward_layers = MnistNet.forward_layers

    def off_by_a_little(self, x):
        layers = forward_layers(self, x)
        return {**layers, "a3": layers["a3"] + 1e-3}
    monkeypatch.setattr(MnistNet, "forward_layers", off_by_a_little)
    code = load_script("parity_report.py").main(["--device", "cpu", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1 and report["ok"] is False
    assert report["layers"]["a3"]["mismatched"] == 100000 and report["layers"]["y"]["mismatched"] == 0


def test_bad_device_exits_2_with_one_line_and_no_traceback(run_script):
    result = run_script("parity_report.py", "--device", "cuda:99", env=QUIET)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and result.stderr.startswith("error: cuda:99 is ")


@pytest.mark.parametrize("args, message", [
    (["--device", "tpu"], "unknown device 'tpu'"),
    (["--dtype", "float16"], "invalid choice: 'float16'"),
    (["--batch-size", "0"], "expected a positive integer, got 0"),
    (["--images", "x.gz"], "--images and --labels go together"),
])
def test_bad_input_exits_2_with_one_line(args, message, run_in_process):
    code, out, err = run_in_process("parity_report.py", *args)
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and message in err


def test_a_missing_weights_file_exits_2_with_one_line(run_in_process, data_dir):
    code, out, err = run_in_process("parity_report.py", "--weights", "/nonexistent/w.pkl")
    assert code == 2 and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("error: weights file not found: /nonexistent/w.pkl")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA; the absent-CUDA message cannot occur")
def test_debug_shows_the_traceback(run_script):
    result = run_script("parity_report.py", "--device", "cuda", "--debug", env=QUIET)
    assert result.returncode != 0 and "Traceback" in result.stderr and "DeviceError" in result.stderr
