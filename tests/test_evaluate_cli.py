"""scripts/evaluate.py as a user runs it: results, exit codes, one-line errors, no torch on the numpy path."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "evaluate.py"
HAS_TORCH = __import__("importlib").util.find_spec("torch") is not None


@pytest.mark.parametrize("mode", [["--batch-size", "100"], ["--loop"], []])
def test_numpy_backend_gives_the_books_accuracy(mode, data_dir, run_script):
    proc = run_script("evaluate.py", "--backend", "numpy", "--json", *mode)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    (result,) = out["results"]
    assert result["accuracy"] == 0.9352 and out["images"] == 10000
    assert result["mode"] == ("loop" if mode == ["--loop"] else "batch")
    assert result["batch_size"] == {"--batch-size": 100, "--loop": 1}.get(mode[0] if mode else None)


def test_numpy_path_never_imports_torch(data_dir):
    code = (f"import sys; sys.argv = ['evaluate.py', '--backend', 'numpy', '--json']; "
            f"import runpy\ntry:\n    runpy.run_path({str(SCRIPT)!r}, run_name='__main__')\n"
            f"except SystemExit as e:\n    assert e.code == 0, e.code\n"
            f"assert 'torch' not in sys.modules, 'torch was imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_human_readable_table(data_dir, run_script):
    proc = run_script("evaluate.py", "--backend", "numpy", "--batch-size", "1000")
    assert proc.returncode == 0, proc.stderr
    assert "0.9352" in proc.stdout and "numpy" in proc.stdout and " ms" in proc.stdout


@pytest.mark.parametrize("args, text", [
    (["--batch-size", "0"], "expected a positive integer, got 0"),
    (["--device", "cuda"], "--device cuda applies to the torch backend"),
    (["--device", "mps"], "--device mps applies to the torch backend"),
    (["--backend", "jax"], "invalid choice: 'jax'"),
    (["--images", "x.idx"], "--images and --labels go together"),
])
def test_bad_input_is_one_line_and_exit_2(args, text, run_script, assert_one_line_error):
    assert_one_line_error(run_script("evaluate.py", "--backend", "numpy", *args), text)


def test_a_missing_weights_file_is_one_line_and_exit_2(data_dir, run_script, assert_one_line_error):
    assert_one_line_error(run_script("evaluate.py", "--weights", "/nonexistent/w.pkl"),
                          "weights file not found: /nonexistent/w.pkl")


def test_numpy_on_the_cpu_is_accepted(data_dir, run_script):
    proc = run_script("evaluate.py", "--backend", "numpy", "--device", "cpu", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [(r["backend"], r["device"], r["accuracy"]) for r in json.loads(proc.stdout)["results"]] == [
        ("numpy", "cpu", 0.9352)]


def test_help_documents_the_auto_backend(run_script):
    text = " ".join(run_script("evaluate.py", "--help").stdout.split())
    assert "auto (default): numpy and torch side by side if torch is installed, else numpy alone" in text


def test_other_idx_files_are_evaluated_with_structure_checks_only(data_dir, run_script):
    data = data_dir / "mnist"
    proc = run_script("evaluate.py", "--backend", "numpy", "--json", "--images", str(data / "t10k-images-idx3-ubyte.gz"),
               "--labels", str(data / "t10k-labels-idx1-ubyte.gz"))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert "structure checked only" in out["source"] and out["results"][0]["accuracy"] == 0.9352


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install 'dlfs-ch3[torch]')")
def test_both_backends_side_by_side_agree(data_dir, run_script):
    proc = run_script("evaluate.py", "--json", "--device", "cpu", "--batch-size", "500")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert [r["backend"] for r in out["results"]] == ["numpy", "torch"]
    assert all(r["accuracy"] == 0.9352 for r in out["results"])
    assert out["parity"] == {"ok": True, "mismatched_predictions": 0}
    table = run_script("evaluate.py", "--device", "cpu")
    assert table.returncode == 0 and "parity: OK" in table.stdout, table.stderr


@pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed (pip install 'dlfs-ch3[torch]')")
def test_absent_device_is_one_line(run_script, assert_one_line_error):
    assert_one_line_error(run_script("evaluate.py", "--backend", "torch", "--device", "cuda:99"), "cuda:99")


def test_an_empty_dataset_is_refused(tmp_path, data_dir, run_script, assert_one_line_error):
    images, labels = tmp_path / "empty-images", tmp_path / "empty-labels"
    images.write_bytes(bytes([0, 0, 8, 3]) + (0).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
    labels.write_bytes(bytes([0, 0, 8, 1]) + (0).to_bytes(4, "big"))
    assert_one_line_error(run_script("evaluate.py", "--backend", "numpy", "--images", str(images), "--labels", str(labels)),
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
