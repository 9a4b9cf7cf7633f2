"""``dlfs-ch3 parity-report`` as users run it: JSON on stdout, exit codes 0/1/2, one-line errors, and with
``--exact`` each side against the exact result, reduced precision named."""

import json
import os
from decimal import Decimal

import numpy as np
import pytest
import torch

from nn_numpy.network import BOOK_ACCURACY, LAYER_OUTPUTS

FIGURES = {
    "max_abs_error",
    "max_error_over_bound",
    "max_error_over_probabilistic_bound",
    "ulp_median",
    "ulp_p99",
    "ulp_max",
}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory, test_set):
    """``["--images", path, "--labels", path]``: 3 test images, 2224 among them (the smallest top-2 margin)."""
    folder, rows = tmp_path_factory.mktemp("three"), [0, 2224, 9999]
    (folder / "images.idx").write_bytes(
        bytes([0, 0, 8, 3]) + np.array([3, 28, 28], ">u4").tobytes() + test_set[0][rows].tobytes()
    )
    (folder / "labels.idx").write_bytes(
        bytes([0, 0, 8, 1]) + np.array([3], ">u4").tobytes() + test_set[1][rows].tobytes()
    )
    return ["--images", folder / "images.idx", "--labels", folder / "labels.idx"], test_set[0][rows]


@pytest.fixture(scope="module")
def cached(tmp_path_factory, data_dir):
    """``["--data-dir", folder]``: the data through links, in a folder where --exact may cache its reference
    (the shared data dir is read-only in CI): computed once for the whole module, not once per run."""
    folder = tmp_path_factory.mktemp("data")
    (folder / "mnist").mkdir()
    for name in (
        "sample_weight.pkl",
        "mnist/t10k-images-idx3-ubyte.gz",
        "mnist/t10k-labels-idx1-ubyte.gz",
    ):
        (folder / name).symlink_to(data_dir / name)
    return ["--data-dir", folder]


def report(run_in_process, *args):
    code, out, err = run_in_process("parity-report", "--device", "cpu", "--json", *args)
    assert len(out.splitlines()) == 1, err
    return code, json.loads(out)


def test_json_is_one_object_with_per_layer_figures(data_dir, run_in_process):
    code, r = report(run_in_process)
    assert code == 0 and r["ok"] is True and r["mismatched_predictions"] == 0
    assert (r["device"], r["dtype"], r["images"]) == ("cpu", "float32", 10000)
    assert r["matmul_precision"] == "highest (TF32 off)" and r["tf32"] is False and "exact" not in r
    assert list(r["layers"]) == list(LAYER_OUTPUTS)
    assert all(
        f["mismatched"] == 0 and 0 <= f["max_abs"] <= r["tolerance"]["atol"]
        for f in r["layers"].values()
    )
    assert r["accuracy"] == {"numpy": BOOK_ACCURACY, "torch": BOOK_ACCURACY}
    assert 0 < r["min_top2_margin"]["numpy"] < 0.01


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exact_gives_six_figures_per_side_and_layer_every_ratio_within_its_bound(
    cached, run_in_process, dtype
):
    code, r = report(run_in_process, "--exact", "--dtype", dtype, *cached)
    assert code == 0 and r["exact_verdict"] == {
        "ok": True,
        "precision": {"numpy": dtype, "torch": dtype},
        "beyond": [],
    }
    assert list(r["exact"]) == ["numpy", "torch"] and list(r["closer"]) == list(LAYER_OUTPUTS)
    for side in r["exact"].values():
        assert list(side) == list(LAYER_OUTPUTS)
        for f in side.values():
            assert (
                set(f) == FIGURES
                and 0 <= f["max_error_over_bound"] <= 1
                and f["ulp_median"] <= f["ulp_p99"] <= f["ulp_max"]
            )


@pytest.mark.slow
@pytest.mark.parametrize("fmt, name", [("tf32", "TF32"), ("bf16", "bfloat16")])
def test_emulated_reduced_precision_is_caught_and_named(cached, run_in_process, fmt, name):
    code, out, err = run_in_process(
        "parity-report", "--device", "cpu", "--exact", "--emulate", fmt, *cached
    )
    last = out.splitlines()[-1]
    assert (
        code == 1
        and last.startswith("exact: FAILED: torch a1 is ")
        and "x its float32 bound" in last
    )
    assert last.endswith(f"its matmuls ran in reduced precision ({name})") and "numpy" not in last


def test_the_report_agrees_with_an_exact_computation_made_outside_the_project(
    small_set, run_in_process
):
    """Three images: NumPy's float32 errors per layer, against 60-digit decimal arithmetic."""
    from test_exact import decimal_forward

    import nn_numpy
    from nn_numpy.data.weights import load_weights

    args, pixels = small_set
    code, r = report(run_in_process, "--exact", *args)
    assert code == 0 and r["images"] == 3 and "structure checked only" in r["source"]
    weights = load_weights(data_dir=None)
    ours = nn_numpy.forward_layers(weights, nn_numpy.normalize(pixels))
    truth = [decimal_forward(weights, image) for image in pixels]
    for k in LAYER_OUTPUTS:
        worst = max(
            abs(Decimal(float(ours[k][i][j])) - truth[i][k][j])
            for i in range(3)
            for j in range(ours[k].shape[1])
        )
        assert float(worst) == pytest.approx(r["exact"]["numpy"][k]["max_abs_error"], rel=1e-9), k


def test_float64_batched_table(capsys, data_dir, load_command):
    code = load_command("parity-report").main(
        ["--device", "cpu", "--dtype", "float64", "--batch-size", "3000"]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "dtype float64" in out and "parity: OK, all 10000 predictions identical" in out
    assert [
        line.split()[0] for line in out.splitlines() if line.split()[0] in LAYER_OUTPUTS
    ] == list(LAYER_OUTPUTS)


def test_tf32_is_reported_and_the_settings_restored(capsys, data_dir, load_command):
    from nn_torch import matmul_precision

    before = matmul_precision()
    code = load_command("parity-report").main(["--device", "cpu", "--tf32", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert code == 0 and r["tf32"] is True and r["matmul_precision"] == "high (TF32 on)"
    assert matmul_precision() == before
    load_command("parity-report").main(["--device", "cpu", "--tf32"])
    assert "note: TF32 applies to float32 matmuls on CUDA GPUs only" in capsys.readouterr().out


def test_a_parity_failure_exits_1(monkeypatch, capsys, data_dir, load_command):
    from nn_torch import MnistNet

    forward_layers = MnistNet.forward_layers

    def off_by_a_little(self, x):
        layers = forward_layers(self, x)
        return {**layers, "a3": layers["a3"] + 1e-3}

    monkeypatch.setattr(MnistNet, "forward_layers", off_by_a_little)
    code = load_command("parity-report").main(["--device", "cpu", "--json"])
    r = json.loads(capsys.readouterr().out)
    assert code == 1 and r["ok"] is False
    assert r["layers"]["a3"]["mismatched"] == 100000 and r["layers"]["y"]["mismatched"] == 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--device", "tpu"], "unknown device 'tpu'"),
        (["--device", "cuda:99"], "cuda:99 is "),
        (["--dtype", "float16"], "invalid choice: 'float16'"),
        (["--batch-size", "0"], "expected a positive integer, got 0"),
        (["--images", "x.gz"], "--images and --labels go together"),
        (["--emulate", "fp8"], "invalid choice: 'fp8'"),
        (
            ["--emulate", "tf32", "--dtype", "float64"],
            "argument --emulate: tf32 rounds float32 matmul inputs",
        ),
        (["--weights", "/nonexistent/w.pkl"], "weights file not found: /nonexistent/w.pkl"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    args, message, run_in_process, assert_one_line_error, data_dir
):
    assert_one_line_error(run_in_process("parity-report", *args), message)


@pytest.mark.slow
@pytest.mark.skipif(
    torch.cuda.is_available(), reason="this machine has CUDA; the absent-CUDA message cannot occur"
)
def test_debug_shows_the_traceback(run_in_process):
    code, out, err = run_in_process("parity-report", "--device", "cuda", "--debug")
    assert code == 2 and "Traceback" in err and "DeviceError" in err, err


def _sides(weights, pixels, dtype="float32"):
    import nn_numpy

    layers = nn_numpy.forward_layers(weights, nn_numpy.normalize(pixels, dtype))
    return {"numpy": layers, "torch": {k: v.copy() for k, v in layers.items()}}


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_the_exact_verdict_is_never_ok_on_nan_or_inf(weights, test_set, value):
    from dlfs_ch3.parity_report import against_exact

    sides = _sides(weights, test_set[0][:3])
    sides["torch"]["a2"][1, 4] = value
    figures, _, verdict = against_exact(weights, test_set[0][:3], sides, "float32", None)
    assert verdict["ok"] is False and verdict["precision"]["torch"] == "unexplained"
    assert verdict["beyond"] == [
        "torch a2 is NaN or inf, and no lower precision explains a1's error: a bug"
    ]
    assert figures["torch"]["a2"]["max_error_over_bound"] == np.inf
    assert figures["numpy"]["a2"]["max_error_over_bound"] <= 1


@pytest.mark.parametrize("change", [("b2", 1e19), ("W1", 1e18)])
def test_weights_that_overflow_the_bounds_get_one_line_not_a_verdict(weights, test_set, change):
    from dlfs_ch3.parity_report import against_exact
    from nn_numpy.errors import NNError

    key, factor = change
    big = {**weights, key: weights[key] * np.float32(factor)}
    with np.errstate(all="ignore"):
        sides = _sides(big, test_set[0][:3])
    with pytest.raises(NNError, match="^the weights overflow: y's exact value or its proven bound"):
        against_exact(big, test_set[0][:3], sides, "float32", None)


def _torch_side_moved(monkeypatch, layer, by):
    """torch's ``layer`` moved by ``by(pixels)``, the other layers as computed."""
    from nn_torch import MnistNet

    real = MnistNet.forward_layers

    def moved(self, x):
        layers = real(self, x)
        pixels = np.rint(x.double().numpy() * 255).astype(np.uint8)
        return {
            **layers,
            layer: layers[layer] + torch.from_numpy(by(pixels)).to(layers[layer].dtype),
        }

    monkeypatch.setattr(MnistNet, "forward_layers", moved)


def test_the_table_exits_1_when_parity_holds_but_an_element_is_beyond_its_bound(
    small_set, run_in_process, monkeypatch
):
    _torch_side_moved(monkeypatch, "y", lambda p: np.full((len(p), 10), 2e-6))  # within 1e-5
    code, out, _ = run_in_process("parity-report", "--device", "cpu", "--exact", *small_set[0])
    assert "parity: OK" in out and "exact: FAILED: torch y is" in out and code == 1


def test_a_parity_failure_fails_the_run_even_when_every_element_is_within_its_bound(
    small_set, run_in_process, monkeypatch, weights
):
    from nn_numpy import exact

    def half_the_bound(pixels):
        return (
            0.5 * exact.bounds(weights, pixels, exact.reference(weights, pixels), "float32")["a1"]
        )

    _torch_side_moved(monkeypatch, "a1", half_the_bound)
    code, r = report(run_in_process, "--exact", *small_set[0])
    assert r["exact_verdict"]["ok"] is True and r["layers"]["a1"]["mismatched"] > 0
    assert code == 1 and r["ok"] is False


def test_closer_names_the_side_nearer_the_exact_result(weights, test_set):
    from dlfs_ch3.parity_report import against_exact

    sides = _sides(weights, test_set[0][:3])
    sides["torch"]["a3"] = sides["torch"]["a3"] + np.float32(1e-6)
    _, closer, _ = against_exact(weights, test_set[0][:3], sides, "float32", None)
    assert closer["a3"] == "numpy" and closer["a1"] == "tie"


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM (Linux)")
def test_memory_follows_the_batch_size_not_the_number_of_images(tmp_path, test_set):
    """8,000 images at --batch-size 100 against 500: the peak grows by about the images' own uint8
    bytes (6 MB), not by every layer of both sides (50 MB)."""
    import subprocess
    import sys

    def started(n):
        """A fresh process running parity-report on ``n`` images, printing its exit code and peak MB."""
        rows = np.arange(n) % len(test_set[0])
        images, labels = tmp_path / f"i{n}.idx", tmp_path / f"l{n}.idx"
        images.write_bytes(
            bytes([0, 0, 8, 3])
            + np.array([n, 28, 28], ">u4").tobytes()
            + test_set[0][rows].tobytes()
        )
        labels.write_bytes(
            bytes([0, 0, 8, 1]) + np.array([n], ">u4").tobytes() + test_set[1][rows].tobytes()
        )
        code = (
            "import sys; from dlfs_ch3.cli import main\n"
            "try:\n"
            f"    main(['parity-report', '--device', 'cpu', '--batch-size', '100', '--json', '--images', {str(images)!r}, '--labels', {str(labels)!r}])\n"
            "except SystemExit as e:\n"
            "    hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
            "    print(e.code, int(hwm.split()[1]) // 1024, file=sys.stderr)\n"
        )
        return subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def peak_mb(proc):
        _, err = proc.communicate(timeout=300)
        code, mb = map(int, err.split()[-2:])
        assert code == 0, err
        return mb

    small, large = map(
        peak_mb, [started(500), started(8000)]
    )  # side by side: peaks are per process
    assert large - small < 25, (small, large)  # 7 MB here; 50 MB with every layer kept
