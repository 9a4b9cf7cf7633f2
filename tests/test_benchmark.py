"""scripts/benchmark.py as a user runs it, on a few images: JSON schema, accuracies, exit codes. No timings checked."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nn_numpy.network import BOOK_ACCURACY

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"
VARIANTS = {"book_loop", "book_batch100", "numpy_plain", "project_numpy", "project_torch_cpu", "torch_cuda",
            "torch_cuda_with_copy", "onnxruntime"}
ROW_KEYS = {"variant", "ms_median", "images_per_s", "ratio_to_numpy_plain", "ratio_to_bound", "accuracy"}


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=300,
                          env=os.environ)


def reference_accuracy(weights, test_images, test_labels, n):
    """Accuracy of the reference on the test set replicated to ``n`` images."""
    import nn_numpy

    pred = np.argmax(nn_numpy.predict(weights, nn_numpy.normalize(test_images)), axis=1)
    return nn_numpy.accuracy(np.resize(pred, n), np.resize(test_labels, n))


@pytest.mark.parametrize("size, variants", [(2000, None), (12000, "project_numpy,project_torch_cpu,onnxruntime")])
def test_json_rows_and_accuracies(tmp_path, weights, test_images, test_labels, size, variants):
    out = tmp_path / "bench.json"
    proc = run("--size", str(size), "--repeats", "2", "--json", str(out), *(["--variants", variants] if variants else []))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out.read_text())
    assert isinstance(result["bound_ms"], float) and result["bound_ms"] > 0
    rows = {r["variant"]: r for r in result["rows"]}
    assert set(rows) <= VARIANTS and len(rows) == len(result["rows"])
    expected = {"project_numpy", "project_torch_cpu"}
    expected |= {"book_loop", "book_batch100", "numpy_plain"} if variants is None else set()
    assert expected <= set(rows), sorted(rows)
    accuracy = reference_accuracy(weights, test_images, test_labels, size)
    for r in result["rows"]:
        assert ROW_KEYS <= set(r), r
        assert r["accuracy"] == accuracy, r
        assert math.isclose(r["images_per_s"], size / r["ms_median"] * 1e3)
        assert math.isclose(r["ratio_to_bound"], r["ms_median"] / result["bound_ms"])
        if variants is None:
            assert math.isclose(r["ratio_to_numpy_plain"], r["ms_median"] / rows["numpy_plain"]["ms_median"])
        else:
            assert r["ratio_to_numpy_plain"] is None
    assert f"{size} images" in proc.stdout and "compute bound" in proc.stdout


def test_full_test_set_scores_the_books_accuracy(tmp_path):
    out = tmp_path / "bench.json"
    proc = run("--repeats", "1", "--variants", "project_numpy,numpy_plain", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    assert [r["accuracy"] for r in json.loads(out.read_text())["rows"]] == [BOOK_ACCURACY, BOOK_ACCURACY]


def test_a_variant_with_wrong_predictions_fails_loudly():
    """nn_numpy.predict_labels made to say 0 for every image: exit 1 and the variant named."""
    code = ("import runpy, sys, numpy as np, nn_numpy\n"
            "nn_numpy.predict_labels = lambda w, x, **k: np.zeros(len(x), np.int64)\n"
            f"sys.argv = ['benchmark.py', '--size', '500', '--repeats', '1', '--variants', 'project_numpy']\n"
            f"runpy.run_path({str(SCRIPT)!r}, run_name='__main__')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=SCRIPT.parents[1])
    assert proc.returncode == 1, proc.stderr
    assert "FAILED: project_numpy: " in proc.stdout and "predictions differ" in proc.stdout


@pytest.mark.parametrize("args, text", [
    (["--variants", "numpy_plain,tensorflow"], "unknown variant(s) ['tensorflow']"),
    (["--size", "0"], "expected a positive integer, got 0"),
])
def test_bad_arguments_are_one_line_and_exit_2(args, text):
    proc = run(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert text in proc.stderr.strip().splitlines()[-1]
