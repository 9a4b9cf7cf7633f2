"""``dlfs-ch3 gpu-check`` without a GPU: its commands parse, real outputs are read, goals are judged on fake
results (a missed or unmeasured goal is never a pass), the report, and the one-line exits without CUDA."""

import copy
import json
import os

import pytest
import torch

from nn_numpy.network import LAYER_OUTPUTS


@pytest.fixture(scope="module")
def gpu_check(load_command):
    return load_command("gpu-check")


def exact_report(
    device="cuda:0",
    dtype="float32",
    ratio=0.01,
    precision="float32",
    beyond=(),
    matmul="highest (TF32 off)",
    mismatched=0,
):
    """A parity-report --exact --json report with every error at ``ratio`` of its bound."""
    figures = {
        "max_abs_error": 1e-6,
        "max_error_over_bound": ratio,
        "max_error_over_probabilistic_bound": ratio * 20,
        "ulp_median": 1,
        "ulp_p99": 50,
        "ulp_max": 1000,
    }
    return {
        "ok": not beyond and not mismatched,
        "images": 10000,
        "device": device,
        "dtype": dtype,
        "matmul_precision": matmul,
        "mismatched_predictions": mismatched,
        "exact": {side: {k: dict(figures) for k in LAYER_OUTPUTS} for side in ("numpy", "torch")},
        "exact_verdict": {
            "ok": not beyond,
            "precision": {"numpy": dtype, "torch": precision},
            "beyond": list(beyond),
        },
    }


def bench(variant, ms_median, images_per_s):
    return {
        "rows": [
            {
                "variant": variant,
                "ms_median": ms_median,
                "ms_min": ms_median * 0.9,
                "images_per_s": images_per_s,
            }
        ]
    }


def step(data, rc=0, error=None):
    return {
        "command": "python -m dlfs_ch3 x",
        "rc": rc,
        "seconds": 1.0,
        "error": error,
        "data": data,
    }


TF32 = [
    "torch a1 is 4.7x its float32 bound, and a1 fits TF32's own bound: its matmuls ran in reduced precision (TF32)"
]


def all_met():
    """What an H200 might give if every goal holds."""
    return {
        "date": "2026-01-01 00:00 UTC",
        "seconds": 200.0,
        "environment": {
            "device": "cuda:0",
            "gpu": "NVIDIA H200",
            "driver": "570.1",
            "torch": "2.13.0+cu128",
            "cuda": "12.8",
            "cpu": "some CPU",
            "cores": 16,
            "python": "3.11.7",
        },
        "steps": {
            "tests": step({"passed": 129, "deselected": 900}),
            "float32": step(exact_report()),
            "float64": step(exact_report(dtype="float64")),
            "tf32": step(
                exact_report(ratio=4.7, precision="tf32", beyond=TF32, matmul="high (TF32 on)"),
                rc=1,
            ),
            "emulate": step(exact_report(ratio=4.7, precision="tf32", beyond=TF32), rc=1),
            "precision": step(precision_report()),
            "bench_10000": step(bench("torch_cuda_with_copy", 0.8, 1.2e7)),
            "bench_10000000": step(bench("torch_cuda", 50.0, 2e8)),
        },
    }


def precision_report(measured="fp32", verdict="bitwise equal"):
    """``dlfs-ch3 precision --json``'s shape: the default setting measured as ``measured``."""
    row = lambda setting, claim, fmt, bits: {  # noqa: E731
        "setting": setting,
        "claim": claim,
        "measured": {"format": fmt, "input_bits": bits, "accumulator_bits": 23, "wide_range": True},
        "disagree": {"fp32": 23, "tf32": 10, "bf16": 7}[fmt] < {"fp32": 23, "tf32": 10}[claim],
    }
    bits = {"fp32": 23, "tf32": 10, "bf16": 7}[measured]
    return {
        "devices": {
            "cuda:0": {
                "settings": [
                    row("default", "fp32", measured, bits),
                    row("allow_tf32", "tf32", "tf32", 10),
                ],
                "batch_invariance": {"torch": {"verdict": verdict, "max_ulps": 0, "ulps": {}}},
            }
        }
    }


def test_every_goal_met_exits_0_and_the_report_says_so(gpu_check):
    results = all_met()
    goals = gpu_check.judge(results)
    assert len(goals) == 7 and all(met is True for _, met, _ in goals), goals
    text = gpu_check.render(results, goals)
    assert text.count("| **met** |") == 7 and "dry run" not in text
    assert "| allow_tf32 | tf32 | tf32 | 10 | 23 |" in text
    for fact in (
        "NVIDIA H200",
        "570.1",
        "| cuda | 12.8 |",
        "median 0.800 ms",
        "200.0 M images/s",
        "TF32",
        "`parity-report --exact` (tf32)",
    ):
        assert fact in text, fact


MISSED = [
    (
        lambda s: s["precision"].update(data=precision_report(measured="tf32")),
        "runs as its flags say",
        "cuda:0 default: the flags allow fp32, it ran as tf32",
    ),
    (
        lambda s: s["precision"].update(
            data=precision_report(verdict="outside the proven bound: a bug")
        ),
        "runs as its flags say",
        "cuda:0 torch: outside the proven bound: a bug",
    ),
    (
        lambda s: s["bench_10000"].update(data=bench("torch_cuda_with_copy", 1.5, 6e6)),
        "at most 1 ms",
        "median 1.500",
    ),
    (
        lambda s: s["bench_10000000"].update(data=bench("torch_cuda", 200.0, 5e7)),
        "M images/s",
        "50.0 M images/s",
    ),
    (lambda s: s["bench_10000"].update(rc=1), "at most 1 ms", "wrong predictions"),
    (
        lambda s: s["float64"].update(
            data=exact_report(dtype="float64", ratio=3, beyond=["torch a2 is 3x"])
        ),
        "within its proven bound",
        "float64: torch a2 is 3x",
    ),
    (
        lambda s: s["float32"].update(data=exact_report(device="cpu")),
        "within its proven bound",
        "float32: ran on cpu",
    ),
    (
        lambda s: s["float32"].update(data=exact_report(matmul="high (TF32 on)")),
        "within its proven bound",
        "ran with high (TF32 on)",
    ),
    (
        lambda s: s["float32"].update(data=exact_report(mismatched=3)),
        "within its proven bound",
        "3 predictions differ",
    ),
    (lambda s: s["tests"].update(data={"passed": 120, "failed": 9}), "cuda cases pass", "9 failed"),
    (
        lambda s: s["tf32"].update(data=exact_report(matmul="high (TF32 on)")),
        "real TF32",
        "TF32 was not used",
    ),
    (
        lambda s: s["emulate"].update(
            data=exact_report(ratio=40, precision="bf16", beyond=["torch a1 is 40x"])
        ),
        "emulated TF32",
        "torch a1 is 40x",
    ),
]
NOT_MEASURED = [
    (lambda s: s.pop("bench_10000"), "at most 1 ms", "not measured: no bench_10000 result"),
    (
        lambda s: s["bench_10000000"].update(rc=None, data=None, error="timed out after 240 s"),
        "M images/s",
        "not measured: timed out after 240 s",
    ),
    (
        lambda s: s["bench_10000000"].update(
            command=None, rc=None, data=None, error="not run: --skip-large"
        ),
        "M images/s",
        "not run: --skip-large",
    ),
    (
        lambda s: s["bench_10000"].update(data=bench("project_torch_cpu", 9.0, 1e6)),
        "at most 1 ms",
        "no torch_cuda_with_copy row",
    ),
    (
        lambda s: s["float32"].update(rc=2, data=None, error="error: cuda is not available"),
        "within its proven bound",
        "not measured: error: cuda is not available (exit 2)",
    ),
    (
        lambda s: s["tests"].update(data={"skipped": 129, "deselected": 900}),
        "cuda cases pass",
        "no cuda case ran",
    ),
    (lambda s: s.pop("precision"), "runs as its flags say", "not measured: no precision result"),
    (
        lambda s: s["tf32"].update(data=None, rc=3, error="Traceback"),
        "real TF32",
        "Traceback (exit 3)",
    ),
]


@pytest.mark.parametrize(
    "expected, change, words, evidence",
    [(False, *case) for case in MISSED] + [(None, *case) for case in NOT_MEASURED],
)
def test_a_goal_missed_or_not_measured_is_never_a_pass(
    gpu_check, expected, change, words, evidence
):
    results = all_met()
    change(results["steps"])
    goals = gpu_check.judge(results)
    ((met, said),) = [(m, e) for g, m, e in goals if words in g]
    assert met is expected and evidence in said, said
    assert sum(m is not True for _, m, _ in goals) == 1
    assert gpu_check.render(results, goals).count(f"| {gpu_check.MET[expected]} |") == 1


def test_every_command_is_accepted_by_its_own_parser(gpu_check, load_command, tmp_path):
    args = gpu_check.parse_args(["--data-dir", "d"])
    built = gpu_check.steps(args, str(tmp_path))
    assert [name for name, *_ in built] == [
        "tests",
        "float32",
        "float64",
        "tf32",
        "emulate",
        "precision",
        "bench_10000",
        "bench_10000000",
    ]
    for name, argv, limit, read in built:
        if name == "tests":
            assert argv[1:6] == ["-m", "pytest", "-m", "cuda", "-q"]
            continue
        assert argv[1:3] == ["-m", "dlfs_ch3"]
        parsed = load_command(argv[3]).parse_args(argv[4:])
        assert (
            parsed.data_dir == os.path.abspath("d") and getattr(parsed, "device", "cuda") == "cuda"
        )
    flags = {name: argv for name, argv, *_ in built}
    assert (
        "--tf32" in flags["tf32"]
        and ["--emulate", "tf32"] == flags["emulate"][-2:]
        and "--exact" in flags["float64"]
    )


@pytest.mark.slow
def test_real_outputs_of_the_steps_are_read(
    gpu_check, run_in_process, tmp_path, data_dir, no_waits
):
    """parity-report's and benchmark's real output, on cpu, through the goals: TF32 does nothing on a CPU."""
    code, out, _ = run_in_process("parity-report", "--device", "cpu", "--exact", "--json", "--tf32")
    results = copy.deepcopy(all_met())
    results["steps"]["tf32"] = step(json.loads(out), rc=code)
    out = tmp_path / "bench.json"
    run_in_process(
        "benchmark", "--size", 100, "--repeats", 1, "--variants", "project_torch_cpu", "--json", out
    )
    results["steps"]["bench_10000"] = step(json.load(open(out)))
    goals = {g: (m, e) for g, m, e in gpu_check.judge(results)}
    tf32 = next(v for g, v in goals.items() if "real TF32" in g)
    assert tf32 == (False, "no layer beyond its float32 bound: TF32 was not used")
    assert (
        next(v for g, v in goals.items() if "at most 1 ms" in g)[0] is None
    )  # no torch_cuda_with_copy row


def test_a_dry_run_on_cpu_writes_the_report_whole(gpu_check, monkeypatch, tmp_path, capsys):
    """main's wiring with a budget too small for any step: every step not run, and the report says so."""
    out = tmp_path / "gpu.md"
    assert gpu_check.main(["--device", "cpu", "--out", str(out), "--budget", "5"]) == 1
    text = out.read_text()
    assert (
        text.count("| - | - | not run: ") == 8
        and "Device: **cpu** (a dry run of the commands, not a GPU check)" in text
    )
    assert os.listdir(tmp_path) == ["gpu.md"]


@pytest.mark.parametrize(
    "pytest_line, counts",
    [
        ("129 passed, 160 deselected in 12.3s", {"passed": 129, "deselected": 160}),
        ("2 failed, 127 passed in 9.1s", {"failed": 2, "passed": 127}),
        ("1 error in 0.5s", {"error": 1}),
    ],
)
def test_pytest_summary_is_read(gpu_check, pytest_line, counts):
    assert (
        gpu_check.pytest_counts(f"....\nshort test summary info\n{pytest_line}\n", None) == counts
    )


@pytest.mark.skipif(
    torch.cuda.is_available(), reason="this machine has CUDA: the no-CUDA exit cannot occur"
)
def test_without_cuda_exit_2_with_one_line_naming_only_options_it_has(
    run_in_process, assert_one_line_error, tmp_path
):
    out = tmp_path / "gpu.md"
    result = run_in_process("gpu-check", "--out", out)
    assert_one_line_error(result, "cuda is not available: torch")
    assert "; use --device" not in result[2]
    assert (
        result[2].endswith(
            "run it on a CUDA machine, or add --device cpu --out FILE for a dry run of its "
            "commands\n"
        )
        and not out.exists()
    )
    assert "--device" in run_in_process("gpu-check", "--help")[1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--device", "cpu"], "--device cpu is a dry run: give --out FILE"),
        (["--device", "cpu", "--out", ""], "argument --out: expected a file path, got ''"),
        (
            ["--device", "cpu", "--out", "/nonexistent/gpu.md"],
            "cannot write --out /nonexistent/gpu.md",
        ),
        (["--budget", "0"], "expected a positive integer, got 0"),
        (["--weights", "w.pkl"], "unrecognized arguments: --weights"),
    ],
)
def test_bad_input_exit_2_with_one_line(run_in_process, args, message):
    code, out, err = run_in_process("gpu-check", *args)
    assert (code, out) == (2, "") and err.count("\n") == 1 and message in err, err
