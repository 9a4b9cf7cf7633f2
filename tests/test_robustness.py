"""Every script as a user runs it against bad input: exit codes 0/1/2, one-line errors and warnings,
tracebacks only with --debug, and the output saying which data was hash-checked."""

import gzip
import importlib.util
import os
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli import run_main

ROOT = Path(__file__).resolve().parents[1]
# The data-reading scripts: cli.py is their helpers; run_notebook.py reads no data (tests/test_notebook.py);
# gpu_check.py takes no --weights or --images and needs CUDA before anything (tests/test_gpu_check.py)
SCRIPTS = sorted(p.name for p in (ROOT / "scripts").glob("*.py")
                 if p.name not in ("cli.py", "run_notebook.py", "gpu_check.py"))
DATA = Path(os.environ["NN_DATA_DIR"])  # set by the root conftest.py
IMAGES, LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


def run(script, *args):
    return subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "MPLBACKEND": "Agg"})


def load_script(name):
    spec = importlib.util.spec_from_file_location(name[:-3], ROOT / "scripts" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_in_process(name, args, capsys):
    """``(exit code, stdout, stderr)`` of ``run_main(script.main, args)``, so tests can patch torch first."""
    with pytest.raises(SystemExit) as exit:
        run_main(load_script(name).main, args)
    out, err = capsys.readouterr()
    return exit.value.code, out, err


def assert_one_line_error(proc, text):
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: ") and text in proc.stderr, proc.stderr


def idx(array):
    """uint8 array -> IDX bytes."""
    return bytes([0, 0, 8, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


@pytest.fixture(scope="module")
def small_set(tmp_path_factory, test_set):
    """The first 300 test images and labels as hand-made IDX files: a dataset whose hash nobody knows."""
    folder = tmp_path_factory.mktemp("small")
    images, labels = test_set
    (folder / "images.idx").write_bytes(idx(images[:300].reshape(300, 28, 28)))
    (folder / "labels.idx.gz").write_bytes(gzip.compress(idx(labels[:300])))
    return folder / "images.idx", folder / "labels.idx.gz"


# --- exit code 2, one line, a traceback only with --debug: every script in scripts/ ----------------------

@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_gives_one_line_errors_and_a_traceback_only_with_debug(script, tmp_path):
    assert_one_line_error(run(script, "--no-such-option"), "unrecognized arguments: --no-such-option")
    missing = str(tmp_path / "missing.pkl")
    assert_one_line_error(run(script, "--weights", missing), f"weights file not found: {missing}")
    debug = run(script, "--weights", missing, "--debug")
    assert debug.returncode == 2 and "Traceback" in debug.stderr and "DataNotFoundError" in debug.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_script_names_a_damaged_images_file(script, tmp_path, small_set):
    bad = tmp_path / "images.idx"
    bad.write_bytes(small_set[0].read_bytes()[:-1])
    assert_one_line_error(run(script, "--images", str(bad), "--labels", str(small_set[1])),
                          f"{bad}: dimensions 300x28x28 of uint8 need 235200 bytes, but the file holds only 235199")


# --- warnings are one line too -------------------------------------------------------------------------

def test_float64_weights_are_converted_and_said_in_one_line(tmp_path, weights, small_set):
    path = tmp_path / "w64.pkl"
    path.write_bytes(pickle.dumps({k: v.astype(np.float64) for k, v in weights.items()}))
    proc = run("evaluate.py", "--backend", "numpy", "--weights", str(path),
               "--images", str(small_set[0]), "--labels", str(small_set[1]))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [f"warning: {path}: converted W1 float64, b1 float64, W2 float64, b2 float64, "
                                        "W3 float64, b3 float64 to float32"]


# --- what the output says about the data -----------------------------------------------------------------

@pytest.mark.parametrize("script", ["evaluate.py", "parity_report.py"])
def test_other_idx_files_are_structure_checked_only_and_say_so(script, small_set, test_set):
    extra = ["--backend", "numpy"] if script == "evaluate.py" else ["--device", "cpu"]
    proc = run(script, *extra, "--images", str(small_set[0]), "--labels", str(small_set[1]))
    assert proc.returncode == 0, proc.stderr
    assert f"300 images from {small_set[0]} (hash unknown: structure checked only)" in proc.stdout


def test_the_mnist_test_set_says_sha256_verified_only_when_it_was(tmp_path):
    (tmp_path / "mnist").mkdir()
    shutil.copyfile(DATA / "sample_weight.pkl", tmp_path / "sample_weight.pkl")
    shutil.copyfile(DATA / "mnist" / IMAGES, tmp_path / "mnist" / IMAGES)
    raw_labels = tmp_path / "mnist" / LABELS[:-3]
    raw_labels.write_bytes(gzip.decompress((DATA / "mnist" / LABELS).read_bytes()))
    proc = run("evaluate.py", "--backend", "numpy", "--data-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert f"10000 images from MNIST test set from {raw_labels} (hash unknown: structure checked only)" in proc.stdout

    shutil.copyfile(DATA / "mnist" / LABELS, tmp_path / "mnist" / LABELS)  # the .gz, once present, is the one used
    proc = run("evaluate.py", "--backend", "numpy", "--data-dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "10000 images from MNIST test set (SHA-256 verified)" in proc.stdout


# --- exit code 1, and devices, in process so torch can be patched ----------------------------------------

def test_evaluate_exits_1_when_the_backends_disagree(monkeypatch, capsys, small_set):
    import nn_torch.evaluate

    predict_labels = nn_torch.evaluate.predict_labels

    def one_wrong(*args, **kwargs):
        labels = predict_labels(*args, **kwargs)
        if len(labels) > 7:  # the warm-up call sees one image
            labels[7] = (labels[7] + 1) % 10
        return labels
    monkeypatch.setattr(nn_torch.evaluate, "predict_labels", one_wrong)
    code, out, _ = run_in_process("evaluate.py", ["--device", "cpu", "--images", str(small_set[0]),
                                                  "--labels", str(small_set[1])], capsys)
    assert code == 1 and "parity: FAILED, 1 of 300 predictions differ" in out


@pytest.mark.parametrize("script", ["evaluate.py", "parity_report.py"])
def test_a_cuda_index_out_of_range_is_one_line(script, monkeypatch, capsys, small_set):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    extra = ["--backend", "torch"] if script == "evaluate.py" else []
    code, out, err = run_in_process(script, [*extra, "--device", "cuda:2", "--images", str(small_set[0]),
                                             "--labels", str(small_set[1])], capsys)
    assert (code, out) == (2, "")
    assert err.splitlines() == ["error: cuda:2 is out of range: 2 CUDA device(s), cuda:0 to cuda:1"]
