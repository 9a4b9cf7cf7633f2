"""Every GPU check in one command, each a subprocess; writes docs/gpu.md from their JSON.

    dlfs-ch3 gpu-check                                  # on a CUDA machine, from a clone: under 8 minutes
    dlfs-ch3 gpu-check --device cpu --out /tmp/gpu.md   # a dry run of every command, on a machine without CUDA

Steps, each with a time limit within ``--budget`` seconds: the suite's cuda cases; ``parity-report --exact`` on
cuda in float32 and float64, then with ``--tf32`` and ``--emulate tf32``, which it must name reduced precision;
``precision``'s probe of the matmul under each setting, and batch invariance; ``benchmark``'s GPU variants
at 10,000 and 10,000,000 images. Exit 0 every goal met, 1 one missed or not
measured, 2 bad input or no CUDA."""

import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

from nn_numpy.data.files import atomic_write
from nn_numpy.errors import NNError

from .cli import EXIT_FAILED, EXIT_OK, ArgumentParser, add_data_args, positive_int

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL, LARGE, GOAL_MS, GOAL_RATE = 10_000, 10_000_000, 1.0, 100e6
MET = {True: "**met**", False: "**missed**", None: "not measured"}


def parse_args(argv):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--device",
        default="cuda",
        help="cuda (default) or cuda:N; cpu runs every command as a dry "
        "run, and then needs --out, so that docs/gpu.md keeps a GPU's figures",
    )
    p.add_argument("--out", help="the report to write (default: docs/gpu.md in this clone)")
    p.add_argument(
        "--budget", type=positive_int, default=450, help="seconds for all steps (default 450)"
    )
    p.add_argument(
        "--skip-large",
        action="store_true",
        help=f"leave out the {LARGE:,}-image benchmark (8 GB of memory)",
    )
    args = add_data_args(p, inputs=False).parse_args(argv)
    if args.out == "":
        p.error("argument --out: expected a file path, got ''")
    if args.device == "cpu" and not args.out:
        p.error(
            "--device cpu is a dry run: give --out FILE, so that docs/gpu.md keeps a GPU's figures"
        )
    return args


def pytest_counts(stdout, _):
    """pytest -q's summary line -> ``{"passed": 3, "skipped": 1, ...}``."""
    last = (stdout.strip().splitlines() or [""])[-1]
    counts = {
        word.rstrip("s"): int(n)
        for n, word in re.findall(r"(\d+) (passed|failed|skipped|deselected|errors?)", last)
    }
    if not counts:
        raise ValueError(f"no pytest summary in {last!r}")
    return counts


def steps(args, tmp):
    """``[(name, argv, time limit in s, read(stdout, tmp) -> data)]``, in the order they run."""
    data = ["--data-dir", os.path.abspath(args.data_dir)] if args.data_dir else []
    command = [sys.executable, "-m", "dlfs_ch3"]
    report = command + ["parity-report", "--device", args.device, "--exact", "--json", *data]
    variants = (
        "torch_cuda,torch_cuda_with_copy" if args.device.startswith("cuda") else "project_torch_cpu"
    )
    read_json = lambda stdout, _: json.loads(stdout)  # noqa: E731
    return [
        (
            "tests",
            [
                sys.executable,
                "-m",
                "pytest",
                "-m",
                "cuda",
                "-q",
                "-p",
                "no:cacheprovider",
                os.path.join(ROOT, "tests"),
                os.path.join(ROOT, "parity_tests"),
            ],
            180,
            pytest_counts,
        ),
        ("float32", report, 60, read_json),
        ("float64", report + ["--dtype", "float64"], 60, read_json),
        ("tf32", report + ["--tf32"], 60, read_json),
        ("emulate", report + ["--emulate", "tf32"], 60, read_json),
        (
            "precision",
            command + ["precision", "--device", args.device, "--json", *data],
            90,
            read_json,
        ),
        *(
            (
                f"bench_{n}",
                command
                + [
                    "benchmark",
                    "--size",
                    str(n),
                    "--repeats",
                    str(repeats),
                    "--variants",
                    variants,
                    "--json",
                    os.path.join(tmp, f"bench_{n}.json"),
                    *data,
                ],
                limit,
                lambda _, folder, n=n: json.load(open(os.path.join(folder, f"bench_{n}.json"))),
            )
            for n, repeats, limit in ((SMALL, 50, 90), (LARGE, 10, 240))
        ),
    ]


def run_steps(args):
    """``{name: {"command", "rc", "seconds", "error", "data"}}``; a step without time is not run."""
    done, deadline = {}, time.monotonic() + args.budget
    env = {
        **os.environ,
        **({"NN_DATA_DIR": os.path.abspath(args.data_dir)} if args.data_dir else {}),
    }
    with tempfile.TemporaryDirectory(prefix="gpu-check.") as tmp:
        for name, argv, limit, read in steps(args, tmp):
            shown = " ".join(
                "python"
                if a == sys.executable
                else "$TMP" + a[len(tmp) :]
                if a.startswith(tmp)
                else "$DATA_DIR"
                if args.data_dir and a == os.path.abspath(args.data_dir)
                else os.path.relpath(a, ROOT)
                if a.startswith(ROOT + os.sep)
                else a
                for a in argv
            )
            limit = min(limit, int(deadline - time.monotonic()))
            why = (
                "--skip-large"
                if args.skip_large and name == f"bench_{LARGE}"
                else "the tests are in a clone or the sdist"
                if name == "tests" and not os.path.isdir(argv[-1])
                else f"{max(limit, 0)} s of the --budget {args.budget} s left"
                if limit < 15
                else None
            )
            result = done[name] = {
                "command": None if why else shown,
                "rc": None,
                "seconds": None,
                "error": why and f"not run: {why}",
                "data": None,
            }
            if why:
                continue
            print(f"{name}: up to {limit} s ...", flush=True)
            start = time.perf_counter()
            try:
                proc = subprocess.run(
                    argv, capture_output=True, text=True, timeout=limit, env=env, cwd=ROOT
                )
                result.update(rc=proc.returncode, data=read(proc.stdout, tmp))
            except subprocess.TimeoutExpired:
                result["error"] = f"timed out after {limit} s"
            except (OSError, ValueError) as err:
                result["error"] = (
                    proc.stderr.strip().splitlines() or [f"unreadable output: {err}"]
                )[-1][:300]
            result["seconds"] = round(time.perf_counter() - start, 1)
    return done


def judge(results):
    """``results -> [(goal, met: True | False | None, evidence)]``; None means not measured."""
    steps, goals = results["steps"], []

    data = lambda name: (steps.get(name) or {}).get("data")  # noqa: E731

    def missing(name):
        s = steps.get(name) or {"error": f"no {name} result", "rc": None}
        return (
            s["error"]
            if (s["error"] or "").startswith("not run")
            else f"not measured: {s['error'] or 'no figures'}"
            + (f" (exit {s['rc']})" if s["rc"] else "")
        )

    counts = data("tests")
    text = counts and ", ".join(f"{n} {k}" for k, n in counts.items())
    goals.append(
        (
            "the test suite's cuda cases pass",
            *(
                (None, missing("tests"))
                if counts is None
                else (False, text)
                if counts.get("failed") or counts.get("error")
                else (None, f"not measured: no cuda case ran ({text})")
                if not counts.get("passed")
                else (True, text)
            ),
        )
    )
    reports = {k: data(k) for k in ("float32", "float64")}
    bad = [
        f"{k}: {why}"
        for k, r in reports.items()
        if r
        for why in ([f"ran on {r['device']}"] if not r["device"].startswith("cuda") else [])
        + ([f"ran with {r['matmul_precision']}"] if "TF32 off" not in r["matmul_precision"] else [])
        + (r.get("exact_verdict", {}).get("beyond") or [])
        + (
            [f"{r['mismatched_predictions']} predictions differ"]
            if r["mismatched_predictions"]
            else []
        )
    ]
    worst = {
        k: max(f["max_error_over_bound"] for side in r["exact"].values() for f in side.values())
        for k, r in reports.items()
        if r
    }
    goals.append(
        (
            "on cuda with TF32 off, every element of both sides within its proven bound, all predictions equal",
            *(
                (None, "; ".join(missing(k) for k, r in reports.items() if r is None))
                if None in reports.values()
                else (
                    not bad,
                    "; ".join(bad)
                    or ", ".join(
                        f"{k}: the greatest error is {v:.2g} of its bound" for k, v in worst.items()
                    ),
                )
            ),
        )
    )
    for name, what in (
        ("tf32", "real TF32 (--tf32)"),
        ("emulate", "emulated TF32 (--emulate tf32)"),
    ):
        r = data(name)
        said = r and r.get("exact_verdict", {})
        goals.append(
            (
                f"{what} on cuda is named as reduced precision",
                *(
                    (None, missing(name))
                    if r is None
                    else (
                        said["precision"]["torch"] == "tf32",
                        "; ".join(said["beyond"])
                        or "no layer beyond its float32 bound: TF32 was not used",
                    )
                ),
            )
        )
    probe = data("precision")
    rows = [
        (device, r, c)
        for device, d in (probe or {}).get("devices", {}).items()
        for r, c in [(d["settings"], d["batch_invariance"])]
    ]
    slips = [
        f"{device} {r['setting']}: the flags allow {r['claim']}, it ran as {r['measured']['format']}"
        for device, settings, _ in rows
        for r in settings
        if r.get("disagree")
    ] + [
        f"{device} {backend}: {c['verdict']}"
        for device, _, checks in rows
        for backend, c in checks.items()
        if c["verdict"].startswith("outside")
    ]
    goals.append(
        (
            "the matmul runs as its flags say, and a row alone and in a batch stays within its bound",
            *(
                (None, missing("precision"))
                if probe is None
                else (not slips, "; ".join(slips) or "yes")
            ),
        )
    )
    for n, variant, goal, met, figures in [
        (
            SMALL,
            "torch_cuda_with_copy",
            f"{SMALL:,} images end to end from host uint8 in at most {GOAL_MS:g} ms",
            lambda r: r["ms_median"] <= GOAL_MS,
            lambda r: f"median {r['ms_median']:.3f} ms, min {r['ms_min']:.3f} ms",
        ),
        (
            LARGE,
            "torch_cuda",
            f"at least {GOAL_RATE / 1e6:g} M images/s at {LARGE:,} images",
            lambda r: r["images_per_s"] >= GOAL_RATE,
            lambda r: f"{r['images_per_s'] / 1e6:.1f} M images/s",
        ),
    ]:
        row = next(
            (r for r in (data(f"bench_{n}") or {}).get("rows", []) if r["variant"] == variant), None
        )
        wrong = (steps.get(f"bench_{n}") or {}).get("rc") == EXIT_FAILED
        goals.append(
            (
                f"{goal} ({variant})",
                *(
                    (
                        None,
                        missing(f"bench_{n}")
                        if not data(f"bench_{n}")
                        else f"not measured: no {variant} row",
                    )
                    if row is None
                    else (met(row) and not wrong, figures(row) + "; wrong predictions" * wrong)
                ),
            )
        )
    return goals


def render(results, goals):
    """The report as Markdown: the machine, each goal met or not, every step's command and figures."""
    env = results["environment"]
    cell = lambda v: str(v).replace("|", r"\|")  # noqa: E731
    lines = [
        f"# GPU check, {results['date']}",
        "",
        f"Written by `dlfs-ch3 gpu-check` in {results['seconds']:.0f} s. Device: **{env['device']}**"
        + (" (a dry run of the commands, not a GPU check)" if env["device"] == "cpu" else ""),
        "",
        "| | |",
        "|---|---|",
        *(f"| {k} | {cell(v)} |" for k, v in env.items()),
        "",
        "| goal | | evidence |",
        "|---|---|---|",
        *(f"| {g} | {MET[m]} | {cell(e)} |" for g, m, e in goals),
        "",
        "| step | command | exit | s | note |",
        "|---|---|---|---|---|",
        *(
            f"| {n} | `{cell(s['command'] or '-')}` | {s['rc'] if s['rc'] is not None else '-'} | "
            f"{s['seconds'] if s['seconds'] is not None else '-'} | {cell(s['error'] or '')} |"
            for n, s in results["steps"].items()
        ),
    ]
    for name in ("float32", "float64", "tf32", "emulate"):
        r = (results["steps"].get(name) or {}).get("data")
        if r and "exact" in r:
            lines += [
                "",
                f"`parity-report --exact` ({name}): greatest error over its proven bound",
                "",
                "| side | " + " | ".join(r["exact"]["numpy"]) + " |",
                "|---" * (len(r["exact"]["numpy"]) + 1) + "|",
                *(
                    f"| {side} | "
                    + " | ".join(f"{f['max_error_over_bound']:.2g}" for f in layers.values())
                    + " |"
                    for side, layers in r["exact"].items()
                ),
            ]
    probe = (results["steps"].get("precision") or {}).get("data") or {}
    for device, d in probe.get("devices", {}).items():
        lines += [
            "",
            f"`dlfs-ch3 precision` on {device}: float32 matmuls measured (stored fraction bits kept)",
            "",
            "| setting | flags allow | measured | input bits | accumulator bits |",
            "|---|---|---|---|---|",
            *(
                f"| {r['setting']} | {r.get('claim', '-')} | "
                + (
                    f"{r['measured']['format']} | {r['measured']['input_bits']} | "
                    f"{r['measured']['accumulator_bits']} |"
                    if r["measured"]
                    else "not on this device | | |"
                )
                for r in d["settings"]
            ),
            "",
            *(f"batch invariance, {b}: {c['verdict']}" for b, c in d["batch_invariance"].items()),
        ]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    import torch

    from nn_torch.device import DeviceError, resolve_device

    from .benchmark import machine

    try:
        device = resolve_device(args.device)
    except DeviceError as err:
        raise NNError(
            f"{str(err).split('; use --device')[0]}: run it on a CUDA machine, or add --device cpu "
            "--out FILE for a dry run of its commands"
        ) from None
    out = args.out or os.path.join(ROOT, "docs", "gpu.md")
    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise NNError(
            f"cannot write --out {out}: folder {os.path.dirname(os.path.abspath(out))} does not exist"
        )
    start = time.monotonic()
    results = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "environment": {
            "device": str(device),
            **machine(),
            "cuda": torch.version.cuda,
            "python": platform.python_version(),
        },
        "steps": run_steps(args),
    }
    results["seconds"] = time.monotonic() - start
    goals = judge(results)
    with atomic_write(
        out, "w", what=f"write --out {out}"
    ) as f:  # the report whole, or the old one kept
        f.write(render(results, goals))
    for goal, met, evidence in goals:
        print(f"{MET[met].strip('*'):12} {goal}: {evidence}")
    print(f"wrote {out}")
    return EXIT_OK if all(met is True for _, met, _ in goals) else EXIT_FAILED
