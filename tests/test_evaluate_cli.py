"""scripts/evaluate.py as a user runs it: results, exit codes, one-line errors, no torch on the numpy path."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "evaluate.py"
HAS_TORCH = __import__("importlib").util.find_spec("torch") is not None


def run(*args, env=None):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=full_env, timeout=300)


def assert_one_line_error(proc, text):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert text in lines[0]


@pytest.mark.parametrize("mode", [["--batch-size", "100"], ["--loop"], []])
def test_numpy_backend_gives_the_books_accuracy(mode):
    proc = run("--backend", "numpy", "--json", *mode)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    (result,) = out["results"]
    assert result["accuracy"] == 0.9352 and out["images"] == 10000
    assert result["mode"] == ("loop" if mode == ["--loop"] else "batch")
    assert result["batch_size"] == {"--batch-size": 100, "--loop": 1}.get(mode[0] if mode else None)


def test_numpy_path_never_imports_torch():
    code = (f"import sys; sys.argv = ['evaluate.py', '--backend', 'numpy', '--json']; "
            f"import runpy\ntry:\n    runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
            f"except SystemExit as e:\n    assert e.code == 0, e.code\n"
            f"assert 'torch' not in sys.modules, 'torch was imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_human_readable_table():
    proc = run("--backend", "numpy", "--batch-size", "1000")
    assert proc.returncode == 0, proc.stderr
    assert "0.9352" in proc.stdout and "numpy" in proc.stdout and " ms" in proc.stdout


@pytest.mark.parametrize("args, text", [
    (["--batch-size", "0"], "expected a positive integer, got 0"),
    (["--device", "cuda"], "--device applies to the torch backend"),
    (["--backend", "jax"], "invalid choice: 'jax'"),
    (["--weights", "/nonexistent/w.pkl"], "/nonexistent/w.pkl"),
    (["--images", "x.idx"], "--images and --labels go together"),
])
def test_bad_input_is_one_line_and_exit_2(args, text):
    assert_one_line_error(run("--backend", "numpy", *args), text)


def test_missing_data_offline_names_files_and_directory(tmp_path):
    refused = "http://127.0.0.1:9/"  # discard port: nothing listens, the connection is refused
    proc = run("--backend", "numpy", "--data-dir", str(tmp_path), env={"NN_MNIST_MIRRORS": refused, "NN_WEIGHTS_URL": refused + "w.pkl"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert str(tmp_path) in proc.stderr.strip().splitlines()[-1]


def test_other_idx_files_are_evaluated_with_structure_checks_only():
    data = Path(os.environ["NN_DATA_DIR"]) / "mnist"
    proc = run("--backend", "numpy", "--json", "--images", str(data / "t10k-images-idx3-ubyte.gz"),
               "--labels", str(data / "t10k-labels-idx1-ubyte.gz"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "structure checked only" in out["source"] and out["results"][0]["accuracy"] == 0.9352


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install 'dlfs-ch3[torch]')")
def test_both_backends_side_by_side_agree():
    proc = run("--json", "--device", "cpu", "--batch-size", "500")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [r["backend"] for r in out["results"]] == ["numpy", "torch"]
    assert all(r["accuracy"] == 0.9352 for r in out["results"])
    assert out["parity"] == {"ok": True, "mismatched_predictions": 0}
    table = run("--device", "cpu")
    assert table.returncode == 0 and "parity: OK" in table.stdout, table.stderr


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install 'dlfs-ch3[torch]')")
def test_absent_device_is_one_line():
    assert_one_line_error(run("--backend", "torch", "--device", "cuda:99"), "cuda:99")


def test_an_empty_dataset_is_refused(tmp_path):
    images, labels = tmp_path / "empty-images", tmp_path / "empty-labels"
    images.write_bytes(bytes([0, 0, 8, 3]) + (0).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
    labels.write_bytes(bytes([0, 0, 8, 1]) + (0).to_bytes(4, "big"))
    assert_one_line_error(run("--backend", "numpy", "--images", str(images), "--labels", str(labels)),
                          "holds no images: nothing to evaluate")


def test_out_of_memory_is_one_line_and_exit_2(capsys):
    from cli import run_main

    def main(argv):
        raise MemoryError("Unable to allocate 73.0 TiB")
    with pytest.raises(SystemExit) as exit_info:
        run_main(main, [])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: out of memory (Unable to allocate 73.0 TiB)\n"  # no parser: no options to suggest


@pytest.mark.parametrize("error, expected", [
    (RuntimeError("boom"), None),  # a bug, not bad input: the traceback shows
    (type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of\nmemory"), "error: out of memory (CUDA out of memory)\n"),
    (__import__("nn_torch").DeviceError("cuda:3 is out of range"), "error: cuda:3 is out of range\n"),
])
def test_runtime_errors_are_bugs_except_out_of_memory_and_device_errors(capsys, error, expected):
    from cli import run_main

    def main(argv):
        raise error
    if expected is None:
        with pytest.raises(SystemExit) as exit_info:
            run_main(main, [])
        err = capsys.readouterr().err
        assert exit_info.value.code == 3 and "Traceback" in err and err.endswith("RuntimeError: boom\n")
        return
    with pytest.raises(SystemExit) as exit_info:
        run_main(main, [])
    assert exit_info.value.code == 2 and capsys.readouterr().err.startswith(expected)
