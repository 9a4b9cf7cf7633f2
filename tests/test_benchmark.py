"""``dlfs-ch3 benchmark`` as a user runs it, on a few images: JSON schema, accuracies, exit codes. No timings checked."""

import importlib.util
import json
import math
import os

import numpy as np
import pytest

from nn_numpy.network import BOOK_ACCURACY

VARIANTS = {
    "book_loop",
    "book_batch100",
    "numpy_plain",
    "project_numpy",
    "project_torch_cpu",
    "torch_cuda",
    "torch_cuda_with_copy",
    "onnxruntime",
}
ROW_KEYS = {
    "variant",
    "ms_median",
    "images_per_s",
    "ratio_to_numpy_plain",
    "ratio_to_bound",
    "accuracy",
}


def reference_accuracy(weights, test_images, test_labels, n):
    """Accuracy of the reference on the test set replicated to ``n`` images."""
    import nn_numpy

    pred = np.argmax(nn_numpy.predict(weights, nn_numpy.normalize(test_images)), axis=1)
    return nn_numpy.accuracy(np.resize(pred, n), np.resize(test_labels, n))


@pytest.mark.parametrize(
    "size, variants", [(500, None), (10100, "project_numpy,project_torch_cpu,onnxruntime")]
)
def test_json_rows_and_accuracies(
    tmp_path,
    weights,
    test_images,
    test_labels,
    size,
    variants,
    run_in_process,
    no_waits,
    load_command,
):
    out = tmp_path / "bench.json"
    code, stdout, err = run_in_process(
        "benchmark",
        "--size",
        size,
        "--repeats",
        2,
        "--json",
        out,
        *(["--variants", variants] if variants else []),
    )
    assert code == 0, err
    result = json.loads(out.read_text())
    flop = load_command("benchmark").FLOP_PER_IMAGE * size
    assert result["sgemm_gflops"] == 100.0 and math.isclose(result["bound_ms"], flop / 100e9 * 1e3)
    rows = {r["variant"]: r for r in result["rows"]}
    assert set(rows) <= VARIANTS and len(rows) == len(result["rows"])
    expected = {"project_numpy"} | (
        {"project_torch_cpu"} if importlib.util.find_spec("torch") else set()
    )
    expected |= {"book_loop", "book_batch100", "numpy_plain"} if variants is None else set()
    assert expected <= set(rows), sorted(rows)
    accuracy = reference_accuracy(weights, test_images, test_labels, size)
    for r in result["rows"]:
        assert ROW_KEYS <= set(r), r
        assert r["accuracy"] == accuracy, r
        assert math.isclose(r["images_per_s"], size / r["ms_median"] * 1e3)
        assert math.isclose(r["ratio_to_bound"], r["ms_median"] / result["bound_ms"])
        if variants is None:
            assert math.isclose(
                r["ratio_to_numpy_plain"], r["ms_median"] / rows["numpy_plain"]["ms_median"]
            )
        else:
            assert r["ratio_to_numpy_plain"] is None
    assert f"{size} images" in stdout and "compute bound" in stdout


@pytest.mark.slow
def test_full_test_set_scores_the_books_accuracy(tmp_path, data_dir, run_command):
    out = tmp_path / "bench.json"
    proc = run_command(
        "benchmark", "--repeats", "1", "--variants", "project_numpy,numpy_plain", "--json", out
    )
    assert proc.returncode == 0, proc.stderr
    assert [r["accuracy"] for r in json.loads(out.read_text())["rows"]] == [
        BOOK_ACCURACY,
        BOOK_ACCURACY,
    ]


@pytest.mark.slow  # a second or more: a fresh process, or the whole test set
def test_a_variant_with_wrong_predictions_fails_loudly(
    data_dir, monkeypatch, run_in_process, no_waits
):
    """nn_numpy.predict_labels made to say 0 for every image: exit 1 and the variant named."""
    import nn_numpy

    monkeypatch.setattr(nn_numpy, "predict_labels", lambda w, x, **k: np.zeros(len(x), np.int64))
    code, out, err = run_in_process(
        "benchmark", "--size", "500", "--repeats", "1", "--variants", "project_numpy"
    )
    assert code == 1, err
    assert "FAILED: project_numpy: " in out and "predictions differ" in out


@pytest.mark.parametrize(
    "args, text",
    [
        (["--variants", "numpy_plain,tensorflow"], "unknown variant(s) ['tensorflow']"),
        (["--size", "0"], "expected a positive integer, got 0"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(args, text, run_command, assert_one_line_error):
    assert_one_line_error(run_command("benchmark", *args), text)


def test_no_variant_able_to_run_is_one_line_and_exit_2(
    data_dir, monkeypatch, run_in_process, assert_one_line_error
):
    if importlib.util.find_spec("torch"):
        import torch

        monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert_one_line_error(
        run_in_process("benchmark", "--variants", "torch_cuda,torch_cuda_with_copy", "--size", 100),
        "error: none of the selected variants can run here: torch_cuda, torch_cuda_with_copy: ",
    )


def test_a_size_beyond_available_memory_is_refused_before_loading_anything(run_command):
    proc = run_command(
        "benchmark", "--size", "100000000000", "--data-dir", "/nonexistent/dir"
    )  # a data error would come later
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(
        "error: --size 100000000000: its uint8 images alone need 73015.7 GiB, but only "
    )
    assert not os.path.exists("/nonexistent/dir")


@pytest.mark.parametrize(
    "where, reason",
    [
        ("missing/bench.json", "folder {parent} does not exist"),
        ("read-only/bench.json", "folder {parent} is not writable"),
        ("read-only", "is a folder"),
    ],
)
def test_a_bad_json_path_is_refused_before_the_run_naming_it(tmp_path, where, reason, run_command):
    (tmp_path / "read-only").mkdir(mode=0o555)
    path = tmp_path / where
    proc = run_command(
        "benchmark", "--json", path, "--data-dir", "/nonexistent/dir"
    )  # checked before any data is loaded
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert str(path) in proc.stderr and reason.format(parent=path.parent) in proc.stderr, (
        proc.stderr
    )
    assert ".tmp" not in proc.stderr and sorted(p.name for p in tmp_path.iterdir()) == ["read-only"]
    assert list((tmp_path / "read-only").iterdir()) == []


@pytest.mark.slow  # a second or more: a fresh process, or the whole test set
def test_a_failed_json_write_names_the_users_path_and_leaves_no_temp_file(
    tmp_path, monkeypatch, data_dir, load_command, run_in_process, no_waits
):
    script = load_command("benchmark")

    def disk_full(obj, file, **kwargs):
        file.write('{"size": ')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(script.json, "dump", disk_full)
    path = tmp_path / "bench.json"
    code, _, err = run_in_process(
        script, "--size", 100, "--repeats", 1, "--variants", "project_numpy", "--json", path
    )
    assert code == 2 and err == f"error: cannot write --json {path}: No space left on device\n"
    assert list(tmp_path.iterdir()) == []


def test_an_empty_dataset_is_refused_not_replicated_into_blank_images(
    weights, monkeypatch, load_command, run_in_process
):
    script = load_command("benchmark")
    empty = np.zeros((0, 784), np.uint8), np.zeros(0, np.uint8)
    monkeypatch.setattr(script, "load_inputs", lambda args: (weights, *empty, "empty.idx"))
    code, _, err = run_in_process(
        script,
        "--images",
        "empty.idx",
        "--labels",
        "empty-labels.idx",
        "--size",
        100,
        "--repeats",
        1,
        "--variants",
        "project_numpy",
    )
    assert (
        code == 2 and err == "error: the dataset holds no images: nothing to replicate to --size\n"
    )
