"""Every command as a user runs it against bad input: exit codes 0/1/2, one-line errors and warnings,
tracebacks only with --debug, and the output saying which data was hash-checked."""

import gzip
import pickle
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dlfs_ch3.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[1]
# The commands that take the data options (fetch-data only fills a folder, run-notebook reads no data,
# gpu-check takes no --weights or --images, check-port takes a reader's code), and the book's two
# scripts, which take them too.
SCRIPTS = [
    c for c in COMMANDS if c not in ("fetch-data", "run-notebook", "gpu-check", "check-port")
] + [
    "neuralnet_mnist.py",
    "neuralnet_mnist_batch.py",
]


def run(script, *args, run_command):
    """A command (``dlfs-ch3 <name>``) or one of the book's scripts, in a fresh process."""
    if script in COMMANDS:
        return run_command(script, *args)
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


IMAGES, LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"


def idx(array):
    """uint8 array -> IDX bytes."""
    return (
        bytes([0, 0, 8, array.ndim])
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.tobytes()
    )


@pytest.fixture(scope="module")
def small_set(tmp_path_factory, test_set):
    """The first 300 test images and labels as hand-made IDX files: a dataset whose hash nobody knows."""
    folder = tmp_path_factory.mktemp("small")
    images, labels = test_set
    (folder / "images.idx").write_bytes(idx(images[:300].reshape(300, 28, 28)))
    (folder / "labels.idx.gz").write_bytes(gzip.compress(idx(labels[:300])))
    return folder / "images.idx", folder / "labels.idx.gz"


# --- exit code 2, one line, a traceback only with --debug: every command ---------------------------------


@pytest.mark.slow  # a second or more: a fresh process, or the whole test set
@pytest.mark.parametrize("script", SCRIPTS)
def test_every_command_gives_one_line_errors_and_a_traceback_only_with_debug(
    script, tmp_path, data_dir, run_in_process, run_command, needs_torch
):
    """In process for the commands (one of them also as a fresh process), as a fresh process for the book's."""
    needs_torch(script)

    def run(*args):
        if script not in COMMANDS:
            return subprocess.run(
                [sys.executable, str(ROOT / "scripts" / script), *map(str, args)],
                capture_output=True,
                text=True,
                timeout=300,
            )
        code, out, err = run_in_process(script, *args)
        return subprocess.CompletedProcess(args, code, out, err)

    missing = str(tmp_path / "missing.pkl")
    for proc, says in (
        (run("--no-such-option"), "unrecognized arguments: --no-such-option"),
        (run("--weights", missing), f"weights file not found: {missing}"),
    ):
        assert (
            proc.returncode == 2
            and proc.stderr.count("\n") == 1
            and proc.stderr.startswith("error: ")
            and says in proc.stderr
            and "Traceback" not in proc.stderr
        ), proc.stderr
    debug = (
        run_command(script, "--weights", missing, "--debug")
        if script == "evaluate"
        else run("--weights", missing, "--debug")
    )
    assert (
        debug.returncode == 2
        and "Traceback" in debug.stderr
        and "DataNotFoundError" in debug.stderr
    )


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_command_names_a_damaged_images_file(
    script, tmp_path, small_set, run_command, run_in_process, needs_torch
):
    needs_torch(script)
    bad = tmp_path / "images.idx"
    bad.write_bytes(small_set[0].read_bytes()[:-1])
    args = ["--images", bad, "--labels", small_set[1]]
    code, out, err = (
        run_in_process(script, *args)
        if script in COMMANDS
        else (lambda p: (p.returncode, p.stdout, p.stderr))(
            run(script, *args, run_command=run_command)
        )
    )
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert (
        err
        == f"error: {bad}: dimensions 300x28x28 of uint8 need 235200 bytes, but the file holds only 235199\n"
    )


# --- warnings are one line too -------------------------------------------------------------------------


def test_float64_weights_are_converted_and_said_in_one_line(
    tmp_path, weights, small_set, run_command
):
    path = tmp_path / "w64.pkl"
    path.write_bytes(pickle.dumps({k: v.astype(np.float64) for k, v in weights.items()}))
    proc = run_command(
        "evaluate",
        "--backend",
        "numpy",
        "--weights",
        str(path),
        "--images",
        str(small_set[0]),
        "--labels",
        str(small_set[1]),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"warning: {path}: converted W1 float64, b1 float64, W2 float64, b2 float64, "
        "W3 float64, b3 float64 to float32"
    ]


# --- what the output says about the data -----------------------------------------------------------------


@pytest.mark.parametrize("script", ["evaluate", "parity-report"])
def test_other_idx_files_are_structure_checked_only_and_say_so(
    script, small_set, run_in_process, needs_torch
):
    needs_torch(script)
    extra = ["--backend", "numpy"] if script == "evaluate" else ["--device", "cpu"]
    code, out, err = run_in_process(
        script, *extra, "--images", small_set[0], "--labels", small_set[1]
    )
    assert code == 0, err
    assert f"300 images from {small_set[0]} (hash unknown: structure checked only)" in out


def test_the_mnist_test_set_says_sha256_verified_only_when_it_was(tmp_path, data_dir, run_command):
    (tmp_path / "mnist").mkdir()
    shutil.copyfile(data_dir / "sample_weight.pkl", tmp_path / "sample_weight.pkl")
    shutil.copyfile(data_dir / "mnist" / IMAGES, tmp_path / "mnist" / IMAGES)
    raw_labels = tmp_path / "mnist" / LABELS[:-3]
    raw_labels.write_bytes(gzip.decompress((data_dir / "mnist" / LABELS).read_bytes()))
    proc = run_command("evaluate", "--backend", "numpy", "--data-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (
        f"10000 images from MNIST test set from {raw_labels} (hash unknown: structure checked only)"
        in proc.stdout
    )

    shutil.copyfile(
        data_dir / "mnist" / LABELS, tmp_path / "mnist" / LABELS
    )  # the .gz, once present, is the one used
    proc = run_command("evaluate", "--backend", "numpy", "--data-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "10000 images from MNIST test set (SHA-256 verified)" in proc.stdout


# --- exit code 1, and devices, in process so torch can be patched ----------------------------------------


def test_evaluate_exits_1_when_the_backends_disagree(
    monkeypatch, small_set, run_in_process, needs_torch
):
    needs_torch()
    import nn_torch

    predict_labels = nn_torch.predict_labels

    def one_wrong(*args, **kwargs):
        labels = predict_labels(*args, **kwargs)
        if len(labels) > 7:  # the warm-up call sees one image
            labels[7] = (labels[7] + 1) % 10
        return labels

    monkeypatch.setattr(nn_torch, "predict_labels", one_wrong)
    code, out, _ = run_in_process(
        "evaluate", "--device", "cpu", "--images", small_set[0], "--labels", small_set[1]
    )
    assert code == 1 and "parity: FAILED, 1 of 300 predictions differ" in out


@pytest.mark.parametrize("script", ["evaluate", "parity-report"])
def test_a_cuda_index_out_of_range_is_one_line(
    script, monkeypatch, small_set, run_in_process, needs_torch
):
    needs_torch()
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    extra = ["--backend", "torch"] if script == "evaluate" else []
    code, out, err = run_in_process(
        script, *extra, "--device", "cuda:2", "--images", small_set[0], "--labels", small_set[1]
    )
    assert (code, out) == (2, "")
    assert err.splitlines() == ["error: cuda:2 is out of range: 2 CUDA device(s), cuda:0 to cuda:1"]
