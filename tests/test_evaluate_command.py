"""``dlfs-ch3 evaluate`` as a user runs it: results, exit codes, one-line errors, no torch on the numpy path."""

import json
import subprocess
import sys

import pytest

from dlfs_ch3 import cli
from nn_torch import DeviceError


@pytest.mark.slow  # a second or more: the whole test set, or a fresh process
@pytest.mark.parametrize("mode", [["--batch-size", "100"], ["--loop"], []])
def test_numpy_backend_gives_the_books_accuracy(mode, data_dir, run_in_process):
    code, out, err = run_in_process("evaluate", "--backend", "numpy", "--json", *mode)
    assert code == 0, err
    out = json.loads(out)
    (result,) = out["results"]
    assert result["accuracy"] == 0.9352 and out["images"] == 10000
    assert result["mode"] == ("loop" if mode == ["--loop"] else "batch")
    assert result["batch_size"] == {"--batch-size": 100, "--loop": 1}.get(mode[0] if mode else None)


def test_the_numpy_path_and_a_bad_file_never_import_torch(data_dir):
    """torch takes seconds to import: --backend numpy never pays, nor does a file refused."""
    code = (
        "import sys; from dlfs_ch3.cli import main\n"
        "for args, want in ((['--backend', 'numpy', '--json'], 0), (['--weights', 'no.pkl'], 2)):\n"
        "    try:\n        main(['evaluate', *args])\n"
        "    except SystemExit as e:\n        assert e.code == want, e.code\n"
        "    assert 'torch' not in sys.modules, 'torch imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_the_human_readable_table(data_dir, run_in_process):
    code, out, err = run_in_process("evaluate", "--backend", "numpy", "--batch-size", "1000")
    assert code == 0 and "0.9352" in out and "numpy" in out and " ms" in out, err


@pytest.mark.parametrize(
    "args, text",
    [
        (["--batch-size", "0"], "expected a positive integer, got 0"),
        (["--device", "cuda"], "--device cuda applies to the torch backend"),
        (["--device", "mps"], "--device mps applies to the torch backend"),
        (["--backend", "jax"], "invalid choice: 'jax'"),
        (["--images", "x.idx"], "--images and --labels go together"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, text, run_in_process, assert_one_line_error):
    assert_one_line_error(run_in_process("evaluate", "--backend", "numpy", *args), text)


@pytest.mark.slow  # a second or more: a fresh process, or the whole test set
def test_a_missing_weights_file_is_one_line_and_exit_2(
    data_dir, run_command, assert_one_line_error
):
    assert_one_line_error(
        run_command("evaluate", "--weights", "/nonexistent/w.pkl"),
        "weights file not found: /nonexistent/w.pkl",
    )


def test_numpy_on_the_cpu_is_accepted(data_dir, run_in_process):
    code, out, err = run_in_process("evaluate", "--backend", "numpy", "--device", "cpu", "--json")
    assert code == 0, err
    assert [(r["backend"], r["device"], r["accuracy"]) for r in json.loads(out)["results"]] == [
        ("numpy", "cpu", 0.9352)
    ]


def test_help_documents_the_auto_backend(run_command):
    text = " ".join(run_command("evaluate", "--help").stdout.split())
    assert text.startswith("usage: dlfs-ch3 evaluate")
    assert (
        "auto (default): numpy and torch side by side if torch is installed, else numpy alone"
        in text
    )


def test_other_idx_files_are_evaluated_with_structure_checks_only(data_dir, run_in_process):
    data = data_dir / "mnist"
    code, out, err = run_in_process(
        "evaluate",
        "--backend",
        "numpy",
        "--json",
        "--images",
        data / "t10k-images-idx3-ubyte.gz",
        "--labels",
        data / "t10k-labels-idx1-ubyte.gz",
    )
    assert code == 0, err
    out = json.loads(out)
    assert "structure checked only" in out["source"] and out["results"][0]["accuracy"] == 0.9352


@pytest.mark.slow
def test_both_backends_side_by_side_agree(data_dir, run_command):
    proc = run_command("evaluate", "--json", "--device", "cpu", "--batch-size", "500")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [r["backend"] for r in out["results"]] == ["numpy", "torch"]
    assert all(r["accuracy"] == 0.9352 for r in out["results"])
    assert out["parity"] == {"ok": True, "mismatched_predictions": 0}


def test_the_table_says_parity(data_dir, run_in_process):
    code, out, err = run_in_process("evaluate", "--device", "cpu")
    assert code == 0 and "parity: OK" in out, err


def test_an_absent_device_is_one_line(run_in_process):
    code, out, err = run_in_process("evaluate", "--backend", "torch", "--device", "cuda:99")
    assert (code, out) == (2, "") and err.startswith("error: cuda:99") and err.count("\n") == 1, err


def test_an_empty_dataset_is_refused(tmp_path, data_dir, run_in_process):
    images, labels = tmp_path / "empty-images", tmp_path / "empty-labels"
    images.write_bytes(bytes([0, 0, 8, 3]) + (0).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
    labels.write_bytes(bytes([0, 0, 8, 1]) + (0).to_bytes(4, "big"))
    code, out, err = run_in_process(
        "evaluate", "--backend", "numpy", "--images", images, "--labels", labels
    )
    assert code == 2 and err == f"error: {images} holds no images: nothing to evaluate\n"


def test_out_of_memory_is_one_line_and_exit_2(capsys):
    def main(argv):
        raise MemoryError("Unable to allocate 73.0 TiB")

    with pytest.raises(SystemExit) as exit_info:
        cli.run_main(main, [])
    assert exit_info.value.code == 2
    assert (
        capsys.readouterr().err == "error: out of memory (Unable to allocate 73.0 TiB)\n"
    )  # no options to suggest


@pytest.mark.parametrize(
    "error, expected",
    [
        (RuntimeError("boom"), None),  # a bug, not bad input: the traceback shows
        (
            type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of\nmemory"),
            "error: out of memory (CUDA out of memory)\n",
        ),
        (DeviceError("cuda:3 is out of range"), "error: cuda:3 is out of range\n"),
    ],
)
def test_runtime_errors_are_bugs_except_out_of_memory_and_device_errors(capsys, error, expected):
    def main(argv):
        raise error

    with pytest.raises(SystemExit) as exit_info:
        cli.run_main(main, [])
    err = capsys.readouterr().err
    if expected is None:
        assert (
            exit_info.value.code == 3
            and "Traceback" in err
            and err.endswith("RuntimeError: boom\n")
        )
    else:
        assert exit_info.value.code == 2 and err.startswith(expected)
