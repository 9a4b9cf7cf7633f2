"""The commands' promises, tried from outside: exit 2 and one line for every out-of-range option and bad
environment, a traceback (exit 3) for a bug, a quiet end when the reader of stdout leaves, output paths that
are pipes or links, special files given as input, and "SHA-256 verified" only for verified bytes."""

import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dlfs_ch3 import cli

ROOT = Path(__file__).resolve().parents[1]
LABELS = "t10k-labels-idx1-ubyte.gz"


# --- item 11: every out-of-range option is exit 2 and one line ------------------------------------------


@pytest.mark.parametrize(
    "script, args, text",
    [
        (
            "sgd-steps",
            ["--lr", "1e39"],
            "argument --lr: expected at most 3.403e+38 (float32's largest)",
        ),
        (
            "sgd-steps",
            ["--lr", "inf", "--dtype", "float64"],
            "argument --lr: expected a finite positive number, got inf",
        ),
        ("sgd-steps", ["--lr", "nan"], "argument --lr: expected a finite positive number, got nan"),
        ("sgd-steps", ["--lr", "0"], "argument --lr: expected a finite positive number, got 0"),
        (
            "sgd-steps",
            ["--lr", "-0.1"],
            "argument --lr: expected a finite positive number, got -0.1",
        ),
        ("sgd-steps", ["--lr", "fast"], "argument --lr: expected a positive number, got 'fast'"),
        ("sgd-steps", ["--steps", "0"], "argument --steps: expected a positive integer, got 0"),
        (
            "sgd-steps",
            ["--batch-size", "-1"],
            "argument --batch-size: expected a positive integer, got -1",
        ),
        ("sgd-steps", ["--seed", "-1"], "argument --seed: expected a non-negative integer, got -1"),
        (
            "evaluate",
            ["--batch-size", "0"],
            "argument --batch-size: expected a positive integer, got 0",
        ),
        (
            "parity-report",
            ["--batch-size", "1.5"],
            "argument --batch-size: expected a positive integer, got '1.5'",
        ),
        ("benchmark", ["--size", "0"], "argument --size: expected a positive integer, got 0"),
        (
            "benchmark",
            ["--repeats", "-3"],
            "argument --repeats: expected a positive integer, got -3",
        ),
    ],
)
def test_an_out_of_range_option_is_exit_2_and_one_line(run_in_process, script, args, text):
    code, out, err = run_in_process(script, *args)
    assert (
        (code, out) == (2, "")
        and err.count("\n") == 1
        and err.startswith("error: ")
        and text in err
    ), err


@pytest.fixture(scope="module")
def sgd_steps(load_command):
    return load_command("sgd-steps")


@given(st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=20)))
@pytest.mark.slow  # about a second: 200 examples
def test_any_lr_is_accepted_in_range_or_refused_with_exit_2(sgd_steps, text):
    for dtype, largest in (("float32", cli.FLOAT32_MAX), ("float64", sys.float_info.max)):
        try:
            lr = sgd_steps.parse_args(["--lr", text, "--dtype", dtype]).lr
        except SystemExit as done:
            assert done.code == 2
            continue
        assert 0 < lr <= largest


@pytest.mark.parametrize(
    "script, advice",
    [
        ("figures", ""),
        ("benchmark", ": try a smaller --size"),
        ("evaluate", ": try a smaller --batch-size"),
    ],
)
def test_out_of_memory_suggests_only_options_the_script_has(
    run_in_process, monkeypatch, script, advice, tmp_path, load_command, needs_torch
):
    needs_torch(script)

    def no_memory(args):
        raise MemoryError("Unable to allocate 7.5 GiB")

    monkeypatch.setattr(load_command(script), "load_inputs", no_memory)
    extra = ["--out", tmp_path] if script == "figures" else []
    code, out, err = run_in_process(script, *extra)
    assert (code, out) == (
        2,
        "",
    ) and err == f"error: out of memory (Unable to allocate 7.5 GiB){advice}\n"


@pytest.mark.slow  # a second or more: a fresh process, or the whole test set
@pytest.mark.parametrize(
    "script, args",
    [
        ("evaluate", ["--backend", "numpy"]),
        (
            "benchmark",
            ["--size", "100", "--repeats", "1", "--variants", "project_numpy", "--json", "-"],
        ),
    ],
)
def test_a_reader_leaving_stdout_ends_quietly(script, args, data_dir):
    """A real pipe whose reader left before the command wrote: no 'Broken pipe', no 'lost sys.stderr'."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "dlfs_ch3", script, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=300) == cli.EXIT_BROKEN_PIPE
    assert (
        "Broken pipe" not in err and "BrokenPipeError" not in err and "lost sys.stderr" not in err
    ), err


# --- item 12: exit 2 only for errors raised on purpose; a bug shows its traceback -------------------------


@pytest.mark.parametrize(
    "error",
    [
        ValueError("shapes (10,784) and (50,784) not aligned"),
        OSError(9, "Bad file"),
        RuntimeError("value cannot be converted to type float without overflow"),
    ],
)
@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_a_bug_shows_its_traceback_and_exits_3(
    run_in_process, monkeypatch, small_idx, error, debug
):
    import nn_numpy.evaluate

    def broken(*args):
        raise error

    monkeypatch.setattr(nn_numpy.evaluate, "_logits_into", broken)
    code, out, err = run_in_process("evaluate", "--backend", "numpy", *small_idx, *debug)
    assert code == cli.EXIT_BUG == 3
    assert err.startswith("Traceback (most recent call last):") and "_logits_into" in err
    assert err.splitlines()[-1] == f"{type(error).__name__}: {error}"


def test_a_script_error_raised_on_purpose_is_still_one_line(run_in_process, small_idx, needs_torch):
    needs_torch()
    code, out, err = run_in_process(
        "sgd-steps", "--device", "cpu", "--batch-size", "301", *small_idx
    )
    assert (code, err) == (2, "error: --batch-size 301 is larger than the 300 images\n")


# --- item 8: output paths that are pipes, devices or links ------------------------------------------------

BENCH = ["--size", "100", "--repeats", "1", "--variants", "project_numpy"]


def test_benchmark_json_dash_writes_json_alone_to_stdout(run_in_process, small_idx, no_waits):
    code, out, err = run_in_process("benchmark", *BENCH, *small_idx, "--json", "-")
    assert code == 0, err
    result = json.loads(out)
    assert result["size"] == 100 and [r["variant"] for r in result["rows"]] == ["project_numpy"]
    assert "project_numpy" in err  # the table went to stderr


def test_benchmark_json_into_a_fifo_is_written_through(
    run_in_process, small_idx, tmp_path, no_waits
):
    fifo = tmp_path / "results"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(
        target=lambda: got.append(open(fifo).read()), daemon=True
    )  # never blocks exit
    reader.start()
    code, _, err = run_in_process("benchmark", *BENCH, *small_idx, "--json", fifo)
    reader.join(timeout=60)
    assert code == 0, err
    assert json.loads(got[0])["size"] == 100 and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["results"]


def test_benchmark_json_through_a_symlink_updates_its_target(
    run_in_process, small_idx, tmp_path, no_waits
):
    target, link = tmp_path / "run1.json", tmp_path / "latest.json"
    target.write_text("old")
    link.symlink_to(target)
    code, _, err = run_in_process("benchmark", *BENCH, *small_idx, "--json", link)
    assert code == 0, err
    assert link.is_symlink() and json.loads(target.read_text())["size"] == 100
    assert sorted(os.listdir(tmp_path)) == ["latest.json", "run1.json"]


# --- item 7: special files given as input -----------------------------------------------------------------


def test_a_fifo_given_as_images_is_one_line(
    run_command, assert_one_line_error, small_idx, tmp_path
):
    fifo = tmp_path / "images.idx"
    os.mkfifo(fifo)
    proc = run_command(
        "evaluate", "--backend", "numpy", "--images", fifo, "--labels", small_idx[3], timeout=120
    )
    assert_one_line_error(proc, f"{fifo}: cannot read it (a FIFO, not a regular file)")


def test_weights_linking_to_dev_zero_are_one_line(
    run_command, assert_one_line_error, small_idx, tmp_path
):
    """Memory-limited: a regression reads /dev/zero until memory runs out instead of hanging the machine."""
    link = tmp_path / "sample_weight.pkl"
    link.symlink_to("/dev/zero")
    proc = run_command(
        "evaluate",
        "--backend",
        "numpy",
        "--weights",
        link,
        *small_idx,
        timeout=120,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)),
    )
    assert_one_line_error(proc, f"{link}: cannot read it (a character device, not a regular file)")


# --- item 1: "SHA-256 verified" only for verified bytes ---------------------------------------------------


def test_a_forged_cache_is_not_used_and_the_run_is_right(run_command, tmp_path, data_dir):
    (tmp_path / "mnist").mkdir()
    shutil.copyfile(data_dir / "sample_weight.pkl", tmp_path / "sample_weight.pkl")
    for name in (LABELS, "t10k-images-idx3-ubyte.gz"):
        shutil.copyfile(data_dir / "mnist" / name, tmp_path / "mnist" / name)
    proc = run_command("evaluate", "--backend", "numpy", "--data-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    cache = next((tmp_path / "mnist").glob("t10k-labels-idx1-ubyte.*.npy"))
    np.save(cache, np.zeros(10000, np.uint8))  # the right name, shape and dtype; all labels 0
    proc = run_command("evaluate", "--backend", "numpy", "--data-dir", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "10000 images from MNIST test set (SHA-256 verified)" in proc.stdout
    assert "0.9352" in proc.stdout and "0.0980" not in proc.stdout, proc.stdout


@pytest.fixture(scope="module")
def small_idx(tmp_path_factory, test_set):
    """``["--images", path, "--labels", path]``: the first 300 test images and labels as IDX files."""
    folder = tmp_path_factory.mktemp("small")
    images, labels = test_set
    (folder / "images.idx").write_bytes(
        bytes([0, 0, 8, 3]) + np.array([300, 28, 28], ">u4").tobytes() + images[:300].tobytes()
    )
    (folder / "labels.idx").write_bytes(
        bytes([0, 0, 8, 1]) + np.array([300], ">u4").tobytes() + labels[:300].tobytes()
    )
    return ["--images", str(folder / "images.idx"), "--labels", str(folder / "labels.idx")]


def test_a_missing_optional_package_is_one_line_not_a_bug(tmp_path):
    code = (
        "import sys; sys.modules['nbclient'] = None; from dlfs_ch3.cli import main; "
        "main(['run-notebook', '--check'])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr == (
        "error: dlfs-ch3 run-notebook needs nbclient and ipykernel: pip install "
        "'dlfs-ch3[notebook]'\n"
    )


BROKEN_NOTEBOOKS = {
    "not JSON": "hello, not JSON\n",
    "empty": "",
    "a list": "[1, 2]",
    "a number": "42",
    "no cells": '{"nbformat": 4, "nbformat_minor": 5, "metadata": {}}',
    "cells not a list": '{"cells": 3, "nbformat": 4, "nbformat_minor": 5, "metadata": {}}',
    "a cell without source": '{"cells": [{"cell_type": "code"}], "nbformat": 4, "nbformat_minor": 5, '
    '"metadata": {}}',
    "nbformat 99": '{"cells": [], "nbformat": 99, "nbformat_minor": 0, "metadata": {}}',
    "cut short": '{"cells": [{"cell_type": "code", "source": "1',
}


@pytest.mark.parametrize("kind", ["missing", "fifo", "too large", *BROKEN_NOTEBOOKS])
def test_a_bad_notebook_is_one_line(run_in_process, tmp_path, kind):
    pytest.importorskip(
        "nbclient", reason="the notebook extra is missing: pip install -e '.[notebook]'"
    )
    path = tmp_path / "chapter.ipynb"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "too large":
        with open(path, "wb") as f:
            f.truncate(3 << 30)
    elif kind != "missing":
        path.write_text(BROKEN_NOTEBOOKS[kind])
    code, out, err = run_in_process("run-notebook", path, "--check")
    says = {
        "missing": f"error: cannot read {path}: No such file or directory",
        "fifo": f"error: cannot read {path}: a FIFO, not a regular file",
        "too large": f"error: {path}: 3.0 GiB, more than any notebook can be (64.0 MiB at most)",
    }
    assert (code, out) == (2, "") and err.count("\n") == 1, err
    assert err.startswith(says.get(kind, f"error: {path}: not a notebook (")), err


def test_an_unreadable_data_file_is_one_line_not_a_bug(run_in_process, monkeypatch, data_dir):
    """An OS error on the user's own data dir is wrapped where the file is opened (chmod 000 would not stop root)."""
    from nn_numpy.data import fetch

    def denied(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(fetch, "open_regular", denied)
    code, out, err = run_in_process("evaluate", "--backend", "numpy", "--data-dir", data_dir)
    assert (code, out) == (2, "") and err == (
        f"error: {data_dir / 'sample_weight.pkl'}: cannot read it (Permission "
        "denied): replace it with the file by hand\n"
    )


# --- issue 17, item 5: bad environments are one line and exit 2 ------------------------------------------


def test_a_closed_stdout_is_one_line(data_dir):
    proc = subprocess.run(
        f"{sys.executable} -m dlfs_ch3 evaluate --backend numpy >&-",
        shell=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (
        proc.returncode == 2
        and proc.stderr == "error: stdout is closed: run with it open, or send it to /dev/null\n"
    )


def test_a_file_name_that_is_not_utf8_is_printed_not_a_crash(tmp_path, test_set):
    folder = tmp_path / os.fsdecode(b"images-\xff")
    folder.mkdir()
    images, labels = folder / "images.idx", folder / "labels.idx"
    images.write_bytes(
        bytes([0, 0, 8, 3]) + np.array([10, 28, 28], ">u4").tobytes() + test_set[0][:10].tobytes()
    )
    labels.write_bytes(
        bytes([0, 0, 8, 1]) + np.array([10], ">u4").tobytes() + test_set[1][:10].tobytes()
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "dlfs_ch3",
            "evaluate",
            "--backend",
            "numpy",
            "--images",
            images,
            "--labels",
            labels,
        ],
        capture_output=True,
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        b"10 images from " in proc.stdout
        and b"(hash unknown: structure checked only)" in proc.stdout
    )


@pytest.mark.parametrize(
    "data_dir_is", ["a symlink loop", "a name too long", "a file", "of no such user"]
)
def test_a_bad_data_dir_is_one_line(run_in_process, tmp_path, data_dir_is):
    path = {
        "a symlink loop": tmp_path / "loop",
        "a name too long": tmp_path / ("x" * 300),
        "a file": tmp_path / "file",
        "of no such user": "~nosuchuser/x",
    }[data_dir_is]
    if data_dir_is == "a symlink loop":
        path.symlink_to(tmp_path / "loop2")
        (tmp_path / "loop2").symlink_to(path)
    if data_dir_is == "a file":
        path.write_text("x")
    code, out, err = run_in_process("evaluate", "--backend", "numpy", "--data-dir", path)
    assert (
        (code, out) == (2, "")
        and err.count("\n") == 1
        and err.startswith(f"error: data dir {path}")
    ), err


@pytest.fixture(scope="module")
def broken_torch(tmp_path_factory):
    """A ``torch`` whose import fails as a half-removed install does: a PYTHONPATH that shadows it."""
    folder = tmp_path_factory.mktemp("broken-torch")
    (folder / "torch").mkdir()
    (folder / "torch" / "__init__.py").write_text(
        'raise OSError("libtorch_cpu.so: cannot open shared object file: No such file or directory")\n'
    )
    return {"PYTHONPATH": str(folder)}


@pytest.mark.parametrize("command", ["parity-report", "precision", "figures", "sgd-steps"])
def test_a_broken_torch_is_one_line_for_the_commands_that_need_it(
    command, broken_torch, run_command, assert_one_line_error
):
    assert_one_line_error(
        run_command(command, env=broken_torch),
        f"dlfs-ch3 {command} needs PyTorch: torch is installed but `import torch` fails "
        "(OSError: libtorch_cpu.so: cannot open shared object file",
    )


@pytest.mark.slow  # a fresh process
def test_a_broken_torch_leaves_evaluate_to_numpy_with_one_note(broken_torch, run_command, data_dir):
    proc = run_command("evaluate", "--data-dir", data_dir, env=broken_torch)
    assert proc.returncode == 0 and proc.stderr.startswith(
        "note: evaluating with NumPy alone: torch is installed but `import torch` fails (OSError:"
    )
    assert (
        proc.stderr.count("\n") == 1
        and "numpy    cpu" in proc.stdout
        and "torch " not in proc.stdout
    )
    proc = run_command("evaluate", "--backend", "both", "--data-dir", data_dir, env=broken_torch)
    assert proc.returncode == 2 and proc.stderr.startswith(
        "error: --backend both needs PyTorch: torch is installed"
    )


def _run_with(stdout, stderr, *args):
    """``dlfs-ch3 *args`` with its stdout and stderr as given (file objects, or -1 for closed)."""
    import subprocess

    command = [sys.executable, "-m", "dlfs_ch3", *map(str, args)]
    close = [fd for fd, s in ((1, stdout), (2, stderr)) if s == -1]
    preexec = (lambda: [os.close(fd) for fd in close]) if close else None
    return subprocess.run(
        command,
        stdout=None if stdout == -1 else stdout,
        stderr=None if stderr == -1 else stderr,
        preexec_fn=preexec,
        timeout=120,
    )


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_stdout_is_one_line_and_exit_2(tmp_path, data_dir):
    err = tmp_path / "err"
    with open("/dev/full", "w") as full, open(err, "w") as e:
        proc = _run_with(
            full, e, "evaluate", "--backend", "numpy", "--data-dir", data_dir, "--json"
        )
    assert (
        proc.returncode == 2
        and err.read_text() == "error: cannot write the output: No space left on device\n"
    )


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_full_or_closed_stderr_never_costs_the_results_or_the_exit_code(
    tmp_path, data_dir, weights
):
    import json
    import pickle

    wide = tmp_path / "w64.pkl"  # loads with a one-line warning on stderr
    wide.write_bytes(pickle.dumps({k: v.astype(np.float64) for k, v in weights.items()}))
    args = ["evaluate", "--backend", "numpy", "--data-dir", data_dir, "--weights", wide]
    for stderr in ("full", -1):
        out = tmp_path / "out"
        with open(out, "w") as o, open("/dev/full", "w") as full:
            proc = _run_with(o, full if stderr == "full" else -1, *args, "--json")
        assert (
            proc.returncode == 0 and json.loads(out.read_text())["results"][0]["accuracy"] == 0.9352
        )
        with open(out, "w") as o, open("/dev/full", "w") as full:
            proc = _run_with(
                o,
                full if stderr == "full" else -1,
                "evaluate",
                "--weights",
                tmp_path / "no.pkl",
                "--json",
            )
        assert (
            proc.returncode == 2 and out.read_text() == ""
        )  # the error went nowhere, not to stdout
