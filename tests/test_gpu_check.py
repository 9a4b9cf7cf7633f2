"""scripts/gpu_check.py without a GPU: reading each step's real output, judging the goals on fake
results, the report it writes, its budget, the OOM step (out-of-memory faked on CPU), and the
one-line exit 2 where CUDA is absent."""

import json
import os
import re

import pytest
import torch

from nn_numpy.data.errors import NNError
from nn_numpy.network import LAYER_OUTPUTS


@pytest.fixture(scope="module")
def gpu_check(load_script):
    return load_script("gpu_check.py")


def parity(device="cuda:0", dtype="float32", max_abs=1e-6, ok=True, precision="highest (TF32 off)"):
    """A parity_report.py --json report with every layer at ``max_abs``."""
    return {"ok": ok, "images": 10000, "device": device, "dtype": dtype, "matmul_precision": precision,
            "mismatched_predictions": 0 if ok else 3, "min_top2_margin": {"torch": 1.2e-3},
            "layers": {k: {"max_abs": max_abs, "max_rel": max_abs, "mismatched": 0 if ok or k != "a3" else 5}
                       for k in LAYER_OUTPUTS}}


def bench(size, variant, ms_median, ms_min=None):
    return {"size": size, "rows": [{"variant": variant, "ms_median": ms_median, "ms_min": ms_min or ms_median,
                                    "ms_p25": ms_median, "ms_p75": ms_median, "repeats": 50,
                                    "images_per_s": size / ms_median * 1e3, "accuracy": 0.9352}]}


def step(data, rc=0, error=None):
    return {"command": "python scripts/x.py", "rc": rc, "seconds": 1.0, "error": error, "data": data}


def results_all_met():
    """What an H200 might give if every goal holds."""
    return {"date": "2026-01-01 00:00 UTC", "seconds": 200.0, "budget_s": 450,
            "environment": {"device": "cuda:0", "gpu": "NVIDIA H200", "driver": "570.1", "torch": "2.13.0+cu128",
                            "cuda": "12.8", "cpu": "some CPU", "cores": 16, "python": "3.11.7"},
            "steps": {"parity_suite": step({"passed": 129, "deselected": 160, "errors": 0}),
                      "parity_float32": step(parity()),
                      "parity_float64": step(parity(dtype="float64", max_abs=1e-15)),
                      "bench_small": step(bench(10_000, "torch_cuda_with_copy", 0.8, 0.7)),
                      "bench_large": step(bench(10_000_000, "torch_cuda", 50.0)),
                      "oom_halving": step({"device": "cuda:0", "images": 1_000_000, "batch_size": 1_000_000,
                                           "memory_limit_bytes": 2**30, "mismatched": 0, "error": None, "halving_lines": [
                                               "cuda:0 out of memory: halving the batch to 500000 images and going on"]}),
                      "parity_tf32": step(parity(max_abs=1e-3, ok=False, precision="high (TF32 on)")),
                      "sgd_steps": step({"device": "cuda:0", "max_weight_diff": 6e-8, "layer": "W1",
                                         "tolerance": 1e-6})}}


def verdict(gpu_check, results, words):
    """The (met, evidence) of the one goal whose text holds ``words``."""
    found = [(met, evidence) for goal, met, evidence in gpu_check.judge(results) if words in goal]
    assert len(found) == 1, words
    return found[0]


def test_every_goal_met_exits_0_and_the_report_says_so(gpu_check):
    results = results_all_met()
    goals = gpu_check.judge(results)
    assert len(goals) == 7 and all(met is True for _, met, _ in goals), goals
    assert gpu_check.exit_code(goals) == 0
    text = gpu_check.render(results, goals)
    assert text.count("| **met** |") == 7
    for fact in ("NVIDIA H200", "570.1", "2.13.0+cu128", "| CUDA (torch built with) | 12.8 |", "0.700", "0.800",
                 "2e+08", "1000x", "halving the batch to 500000"):
        assert fact in text, fact
    assert "dry run" not in text


MISSED = [
    (lambda r: r["steps"]["bench_small"].update(data=bench(10_000, "torch_cuda_with_copy", 1.5, 0.9)),
     "at most 1 ms", "median 1.500 ms, min 0.900 ms"),
    (lambda r: r["steps"]["bench_large"].update(data=bench(10_000_000, "torch_cuda", 200.0)),
     "M images/s", "50.0 M images/s"),
    (lambda r: r["steps"]["bench_small"].update(rc=1, error="FAILED: torch_cuda_with_copy: 3 of 10000 differ"),
     "at most 1 ms", "wrong predictions: FAILED"),
    (lambda r: r["steps"]["parity_float64"].update(data=parity(dtype="float64", ok=False)),
     "parity on cuda", "float64: 3 predictions differ, layers beyond tolerance: a3"),
    (lambda r: r["steps"]["parity_float32"].update(data=parity(device="cpu")), "parity on cuda", "ran on cpu"),
    (lambda r: r["steps"]["parity_float32"].update(data=parity(precision="high (TF32 on)")),
     "parity on cuda", "float32: ran with high (TF32 on)"),
    (lambda r: r["steps"]["parity_suite"].update(data={"passed": 120, "failed": 9, "errors": 0}),
     "parity suite", "9 failed"),
    (lambda r: r["steps"]["oom_halving"]["data"].update(mismatched=4), "out-of-memory", "4 of 1,000,000 labels"),
    (lambda r: r["steps"]["oom_halving"]["data"].update(mismatched=None, error="cuda:0 is out of memory even for a "
                                                        "batch of one image"), "out-of-memory", "then cuda:0 is out"),
    (lambda r: r["steps"]["parity_tf32"].update(data=parity(max_abs=3e-6, precision="high (TF32 on)")),
     "TF32 on", "3x"),
    (lambda r: r["steps"]["sgd_steps"]["data"].update(max_weight_diff=2e-6), "SGD", "2.00e-06"),
    (lambda r: r["steps"]["sgd_steps"]["data"].update(device="cpu"), "SGD", "ran on cpu, not cuda"),
]
NOT_MEASURED = [
    (lambda r: r["steps"].pop("bench_small"), "at most 1 ms", "not measured: no bench_small result"),
    (lambda r: r["steps"]["bench_large"].update(rc=None, data=None, error="timed out after 180 s"),
     "M images/s", "not measured: timed out after 180 s"),
    (lambda r: r["steps"]["bench_large"].update(command=None, rc=None, data=None, error="not run: --skip-large"),
     "M images/s", "not run: --skip-large"),
    (lambda r: r["steps"]["bench_small"].update(data=bench(10_000, "project_torch_cpu", 9.0)),
     "at most 1 ms", "gave no torch_cuda_with_copy row, only project_torch_cpu"),
    (lambda r: r["steps"]["parity_float32"].update(rc=2, data=None, error="error: cuda is not available"),
     "parity on cuda", "float32: not measured: error: cuda is not available (exit 2)"),
    (lambda r: r["steps"]["parity_suite"].update(data={"skipped": 129, "deselected": 160, "errors": 0}),
     "parity suite", "no cuda case ran (129 skipped, 160 deselected)"),
    (lambda r: r["steps"]["oom_halving"]["data"].update(halving_lines=[]), "out-of-memory", "ran without an out-of"),
    (lambda r: r["steps"]["parity_tf32"].update(data=None, rc=3, error="Traceback"), "TF32 on", "Traceback (exit 3)"),
    (lambda r: r["steps"]["sgd_steps"].update(data=None, rc=1, error="unreadable output: x"), "SGD", "unreadable"),
]


@pytest.mark.parametrize("expected, change, words, evidence", [(False, *case) for case in MISSED]
                         + [(None, *case) for case in NOT_MEASURED])
def test_a_goal_missed_or_not_measured_is_never_a_pass(gpu_check, expected, change, words, evidence):
    """One result changed: its goal is missed (False) or not measured (None), the others stay met."""
    results = results_all_met()
    change(results)
    goals = gpu_check.judge(results)
    met, said = verdict(gpu_check, results, words)
    assert met is expected and evidence in said, said
    # only the TF32 goal may follow the float32 parity report it divides by
    assert all(m in (True, expected) for _, m, _ in goals) and sum(m is not True for _, m, _ in goals) <= 2
    assert gpu_check.exit_code(goals) == 1
    assert gpu_check.render(results, goals).count(f"| {gpu_check.MET[expected]} |") == sum(
        m is expected for _, m, _ in goals)


def test_tf32_ratio_per_layer(gpu_check):
    results = results_all_met()
    results["steps"]["parity_float32"]["data"]["layers"]["y"]["max_abs"] = 0.0
    ratios = gpu_check.tf32_ratios(results)
    assert list(ratios) == list(LAYER_OUTPUTS)
    assert ratios["a1"] == pytest.approx(1000) and ratios["y"] is None
    text = gpu_check.render(results, gpu_check.judge(results))
    assert "| TF32 on / off | 1e+03x | 1e+03x | 1e+03x | 1e+03x | 1e+03x | - | | |" in text
    results["steps"]["parity_tf32"]["data"] = parity(max_abs=2e-2)  # 20,000x: more than "roughly a thousand"
    met, said = verdict(gpu_check, results, "TF32 on")
    assert met is False and "2e+04x" in said


def test_report_cells_keep_their_pipes_escaped(gpu_check):
    results = results_all_met()
    text = gpu_check.render(results, gpu_check.judge(results))
    assert r"max \|W_numpy - W_torch\| 6.00e-08 (in W1)" in text
    assert all(line.count("|") - line.count(r"\|") == 4 for line in text.splitlines() if line.startswith("| SGD"))


def test_real_outputs_of_the_steps_are_read(gpu_check, run_script, tmp_path, data_dir):
    """Each script's real output, as gpu_check runs it (on cpu here), through the step's parse."""
    proc = run_script("parity_report.py", "--device", "cpu", "--json", "--tf32")
    report = json.loads(proc.stdout)
    proc = run_script("sgd_steps.py", "--device", "cpu", "--steps", "1")
    sgd = gpu_check.parse_sgd(proc.stdout)
    assert sgd["device"] == "cpu" and 0 <= sgd["max_weight_diff"] <= sgd["tolerance"] == 1e-6
    out = tmp_path / "bench.json"
    run_script("benchmark.py", "--size", 100, "--repeats", 1, "--variants", "project_torch_cpu", "--json", out)
    results = results_all_met()
    results["steps"].update(parity_tf32=step(report), sgd_steps=step(sgd), bench_small=step(gpu_check.read_json(out)))
    assert gpu_check.tf32_ratios(results)["a1"] == report["layers"]["a1"]["max_abs"] / 1e-6
    assert verdict(gpu_check, results, "SGD")[0] is False  # it ran on cpu
    assert verdict(gpu_check, results, "at most 1 ms")[0] is None  # no torch_cuda_with_copy row
    assert "| 100 | project_torch_cpu |" in gpu_check.render(results, gpu_check.judge(results))


@pytest.mark.parametrize("summary, counts", [
    ("129 passed, 160 deselected in 12.3s", {"passed": 129, "deselected": 160, "errors": 0}),
    ("2 failed, 127 passed, 160 deselected in 9.1s", {"failed": 2, "passed": 127, "deselected": 160, "errors": 0}),
    ("1 error in 0.5s", {"errors": 1}),
])
def test_pytest_summary_is_read(gpu_check, summary, counts):
    assert gpu_check.parse_pytest(f"....\nshort test summary info\n{summary}\n") == counts


def test_no_pytest_summary_is_an_error(gpu_check):
    with pytest.raises(ValueError, match="no pytest summary"):
        gpu_check.parse_pytest("ImportError while loading conftest\n")


def test_every_command_is_accepted_by_its_script(gpu_check, load_script, tmp_path):
    """The command lines gpu_check builds parse with each script's own options (a wrong flag or variant fails)."""
    args = gpu_check.parse_args(["--data-dir", "d"])
    built = gpu_check.steps(args, str(tmp_path))
    assert [name for name, *_ in built] == ["parity_suite", "parity_float32", "parity_float64", "bench_small",
                                            "oom_halving", "parity_tf32", "sgd_steps", "bench_large"]
    for name, argv, limit, parse in built:
        if argv[1] == "-m":
            assert argv[2:6] == ["pytest", "-m", "cuda", "-q"]
            continue
        parsed = load_script(os.path.basename(argv[1])).parse_args(argv[2:])
        assert parsed.data_dir == "d" and getattr(parsed, "device", "cuda") == "cuda"
    flags = {name: argv for name, argv, *_ in built}
    assert "--tf32" in flags["parity_tf32"] and "float64" in flags["parity_float64"]
    assert "torch_cuda,torch_cuda_with_copy" in flags["bench_large"] and "10000000" in flags["bench_large"]


def test_budget_spent_means_not_run(gpu_check, monkeypatch, tmp_path, capsys, data_dir):
    """main's wiring with the steps faked: too small a budget runs nothing and the report says why."""
    ran = []
    monkeypatch.setattr(gpu_check, "run_step", lambda argv, *a, **k: ran.append(argv))
    out = tmp_path / "gpu.md"
    assert gpu_check.main(["--device", "cpu", "--out", str(out), "--budget", "20"]) == 1
    assert ran == []
    text = out.read_text()
    assert len(re.findall(r"\| `-` \| - \| - \| not run: \d s of the --budget 20 s left \|", text)) == 8
    assert "Device: **cpu** (a dry run of the commands, not a GPU check)" in text
    assert os.listdir(tmp_path) == ["gpu.md"]


def test_steps_run_in_order_within_the_budget(gpu_check, monkeypatch, tmp_path, capsys, data_dir):
    calls = []

    def fake(argv, limit, parse, env, command=None):
        calls.append((limit, argv[argv.index("--data-dir") + 1] if "--data-dir" in argv else env["NN_DATA_DIR"]))
        return {"command": command, "rc": 0, "seconds": 0.0, "error": None, "data": None}
    monkeypatch.setattr(gpu_check, "run_step", fake)
    out = tmp_path / "gpu.md"
    data_dir = str(data_dir.resolve())
    monkeypatch.chdir(os.path.dirname(data_dir))  # a relative --data-dir, while the steps run in the clone's root
    gpu_check.main(["--device", "cpu", "--out", str(out), "--budget", "100", "--skip-large", "--data-dir",
                    os.path.basename(data_dir)])
    assert len(calls) == 7 and all(limit <= 90 and path == data_dir for limit, path in calls)
    text = out.read_text()
    assert "not run: --skip-large" in text and "--data-dir $DATA_DIR" in text
    assert data_dir not in text and "$TMP/bench_10000.json" in text


def oom_step_with_memory_for(gpu_check, images, monkeypatch, capsys):
    """The OOM step's report on CPU, an out-of-memory error faked for batches above ``images`` of the
    12,000 (the CPU reference on the 10,000 test images runs as usual)."""
    import nn_torch.evaluate

    to_device = nn_torch.evaluate._batch_to_device

    def copy_to_small_memory(pixels, i, j, device):  # where a GPU held to 1 GiB fails in the real step
        if len(pixels) != 12000 or j - i <= images:
            return to_device(pixels, i, j, device)
        raise torch.cuda.OutOfMemoryError(f"CUDA out of memory: tried to copy {j - i} images")
    monkeypatch.setattr(nn_torch.evaluate, "_batch_to_device", copy_to_small_memory)
    assert gpu_check.main(["--oom-step", "--device", "cpu", "--oom-images", "12000"]) == 0
    report = json.loads(capsys.readouterr().out)
    results = results_all_met()
    results["steps"]["oom_halving"]["data"] = report
    return report, verdict(gpu_check, results, "out-of-memory")


def test_oom_step_finds_the_halving_line_and_compares_labels(gpu_check, monkeypatch, capsys, data_dir):
    report, (met, said) = oom_step_with_memory_for(gpu_check, 3000, monkeypatch, capsys)
    assert report["halving_lines"] == ["cpu out of memory: halving the batch to 6000 images and going on"]
    assert report["mismatched"] == 0 and report["images"] == 12000 and report["memory_limit_bytes"] is None
    assert met is False and "ran on cpu, not cuda" in said


def test_oom_step_that_halving_cannot_save_is_a_goal_missed(gpu_check, monkeypatch, capsys, data_dir):
    report, (met, said) = oom_step_with_memory_for(gpu_check, 0, monkeypatch, capsys)
    assert report["error"] == "cpu is out of memory even for a batch of one image" and report["mismatched"] is None
    assert met is False and "halving the batch to 6000 images" in said and "then cpu is out of memory" in said


def test_write_is_atomic(gpu_check, tmp_path, monkeypatch):
    out = tmp_path / "gpu.md"
    out.write_text("old\n")

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(NNError, match=f"cannot write --out {out}: No space left on device"):
        gpu_check.write_atomically(str(out), "new\n")
    assert out.read_text() == "old\n" and os.listdir(tmp_path) == ["gpu.md"]
    monkeypatch.undo()
    gpu_check.write_atomically(str(out), "new\n")
    assert out.read_text() == "new\n" and os.listdir(tmp_path) == ["gpu.md"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA: the no-CUDA exit cannot occur")
def test_without_cuda_exit_2_with_one_line(run_script, assert_one_line_error, tmp_path):
    out = tmp_path / "gpu.md"
    assert_one_line_error(run_script("gpu_check.py", "--out", out), "cuda is not available")
    assert not out.exists()


@pytest.mark.parametrize("args, message", [
    (["--device", "cpu"], "--device cpu is a dry run: give --out"),
    (["--device", "cpu", "--out", "/nonexistent/gpu.md"], "cannot write --out /nonexistent/gpu.md"),
    (["--budget", "0"], "expected a positive integer, got 0"),
    (["--weights", "w.pkl"], "unrecognized arguments: --weights"),
])
def test_bad_input_exit_2_with_one_line(run_script, assert_one_line_error, args, message):
    assert_one_line_error(run_script("gpu_check.py", *args), message)
