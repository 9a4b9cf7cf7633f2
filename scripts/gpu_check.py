#!/usr/bin/env python
"""Every GPU check in one command: parity, TF32, speed goals, OOM halving, SGD; writes docs/gpu.md.

    python scripts/gpu_check.py                   # on a CUDA machine, under 8 minutes
    python scripts/gpu_check.py --skip-large --out /tmp/gpu.md

Each step runs in a subprocess with its own time limit, all within ``--budget`` seconds, so
one hang cannot eat the rest: the parity suite's cuda cases, ``parity_report.py --device cuda``
in float32 and float64 and again with ``--tf32``, ``benchmark.py``'s GPU variants at 10,000 and
10,000,000 images, ``predict_labels`` under a GPU memory limit that forces the batch halving,
and ``sgd_steps.py --device cuda``. The report (``--out``, written whole or not at all) gives the
GPU, driver, torch and CUDA versions, every figure, and each goal: met, missed or not measured.

Exit codes: 0 every goal met, 1 a goal missed or not measured, 2 bad input or environment (no CUDA).
"""

import argparse
import contextlib
import datetime
import io
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path[:0] = [REPO, HERE]  # the packages from a clone, installed or not; `cli` beside us

from cli import EXIT_FAILED, EXIT_OK, ArgumentParser, load_inputs, positive_int, run_main  # noqa: E402
from nn_numpy.data.errors import NNError  # noqa: E402
from nn_numpy.data.files import atomic_write  # noqa: E402
from nn_numpy.network import LAYER_OUTPUTS  # noqa: E402

SMALL, LARGE = 10_000, 10_000_000
GOAL_MS, GOAL_IMAGES_PER_S = 1.0, 100e6
# OOM step: all of OOM_IMAGES at once needs ~3.8 GB of float32 buffers on the device; the limit lets
# through a batch of about 125,000 (0.6 GB), so the batch halves three times.
OOM_IMAGES, OOM_LIMIT_BYTES = 1_000_000, 2**30
MIN_STEP_S = 15  # a step given less than this is not started
RESERVE_S = 10  # kept back from the budget for writing the report


def parse_args(argv):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", help="the report to write (default docs/gpu.md in this clone)")
    p.add_argument("--budget", type=positive_int, default=450,
                   help="seconds for all steps together (default 450); a step that cannot start in time "
                        "is reported as not run")
    p.add_argument("--skip-large", action="store_true",
                   help=f"leave out the {LARGE:,}-image benchmark (7.8 GB of host memory)")
    # For a dry run of every command on a machine without CUDA: the report names the device.
    p.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    p.add_argument("--oom-step", action="store_true", help=argparse.SUPPRESS)  # run as a step, in a subprocess
    p.add_argument("--oom-images", type=positive_int, default=OOM_IMAGES, help=argparse.SUPPRESS)
    p.add_argument("--data-dir", help="folder holding mnist/*.gz and sample_weight.pkl "
                   "(default: $NN_DATA_DIR, else the per-user cache; the GPU machine may be offline)")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    # every step runs the book's weights on MNIST's test set, as the goals and the parity suite assume
    return p.parse_args(argv, argparse.Namespace(weights=None, images=None, labels=None))


# --- the steps: (name, command, time limit in s, parse(stdout) -> data) ---

def read_json(path):
    with open(path) as f:
        return json.load(f)


def parse_pytest(stdout):
    """pytest -q's summary line -> ``{"passed": 3, "skipped": 1, ...}``."""
    last = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|deselected|errors?|x\w+)", last)}
    if not counts:
        raise ValueError(f"no pytest summary in {last!r}")
    counts["errors"] = counts.pop("error", 0) + counts.get("errors", 0)
    return counts


def parse_sgd(stdout):
    """sgd_steps.py's text -> ``{"device": "cuda:0", "max_weight_diff": float, "layer": "W1", "tolerance": float}``."""
    m = re.search(r"max \|W_numpy - W_torch\| = (\S+) \(in (\w+)\), tolerance (\S+):", stdout)
    device = re.search(r"torch on (\S+?);", stdout)
    if m is None or device is None:
        raise ValueError("no 'torch on DEVICE;' and 'max |W_numpy - W_torch|' lines in sgd_steps.py's output")
    return {"device": device[1], "max_weight_diff": float(m[1]), "layer": m[2], "tolerance": float(m[3])}


def steps(args, tmp):
    """The steps in the order they run: ``[(name, argv, limit_s, parse)]``.

    ``parse(stdout)`` reads the step's results (benchmark.py's from its ``--json`` file in ``tmp``).
    """
    python, device = sys.executable, args.device
    data = ["--data-dir", args.data_dir] if args.data_dir else []

    def script(name, *rest):
        return [python, os.path.join(HERE, name), *rest, *data]

    variants = "torch_cuda,torch_cuda_with_copy" if device.startswith("cuda") else "project_torch_cpu"
    bench = {n: os.path.join(tmp, f"bench_{n}.json") for n in (SMALL, LARGE)}
    parity = script("parity_report.py", "--device", device, "--json")
    out = [
        ("parity_suite", [python, "-m", "pytest", "-m", "cuda", "-q", "-rs", "-p", "no:cacheprovider",
                          os.path.join(REPO, "parity_tests")], 120, parse_pytest),
        ("parity_float32", parity, 60, json.loads),
        ("parity_float64", parity + ["--dtype", "float64"], 60, json.loads),
        ("bench_small", script("benchmark.py", "--size", SMALL, "--repeats", 50, "--variants", variants,
                               "--json", bench[SMALL]), 90, lambda _: read_json(bench[SMALL])),
        ("oom_halving", script("gpu_check.py", "--oom-step", "--device", device, "--oom-images", args.oom_images),
         90, json.loads),
        ("parity_tf32", parity + ["--tf32"], 60, json.loads),
        ("sgd_steps", script("sgd_steps.py", "--device", device), 60, parse_sgd),
        # last, the longest: if it hangs, it costs no other step
        ("bench_large", script("benchmark.py", "--size", LARGE, "--repeats", 10, "--variants", variants,
                               "--json", bench[LARGE]), 240, lambda _: read_json(bench[LARGE])),
    ]
    return [(name, [str(a) for a in argv], limit, parse) for name, argv, limit, parse in out]


def shown(argv, tmp, data_dir):
    """A step's command as the report shows it: no path of this machine (``python``, ``$TMP``, ``$DATA_DIR``)."""
    words = ["python" if argv[0] == sys.executable else argv[0]]
    for a in argv[1:]:
        if data_dir and a == data_dir:
            a = "$DATA_DIR"
        elif a.startswith(tmp):
            a = "$TMP" + a[len(tmp):]
        elif a.startswith(REPO + os.sep):
            a = os.path.relpath(a, REPO)
        words.append(a)
    return " ".join(words)


def run_step(argv, limit, parse, env, command=None):
    """One step in a subprocess -> ``{"command", "rc", "seconds", "error", "data"}``.

    ``data`` is what ``parse`` read from the output (None if the step gave none); ``error`` the
    step's last stderr line when it failed, or why it was cut short.
    """
    result = {"command": command or " ".join(argv), "rc": None, "seconds": None, "error": None, "data": None}
    start = time.perf_counter()
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=limit, env=env, cwd=REPO)
    except subprocess.TimeoutExpired:
        result.update(seconds=round(time.perf_counter() - start, 1), error=f"timed out after {limit} s")
        return result
    result.update(rc=proc.returncode, seconds=round(time.perf_counter() - start, 1))
    if proc.returncode != 0:  # the reason: its error line, or benchmark's FAILED line (not a JSON report)
        lines = (proc.stderr.strip().splitlines()
                 or [line for line in proc.stdout.splitlines() if line.strip() and not line.startswith("{")]
                 or ["a parity or accuracy failure" if proc.returncode == EXIT_FAILED else "no output"])
        result["error"] = lines[-1][:300]
    try:
        result["data"] = parse(proc.stdout)
    except (OSError, ValueError, IndexError, KeyError) as err:
        if proc.returncode == 0:
            result["error"] = f"unreadable output: {err}"
    return result


def run_steps(args, deadline, env):
    """Every step before ``deadline`` (``time.monotonic()``) -> ``{name: run_step's dict}``; a step that
    cannot get ``MIN_STEP_S`` seconds is not run, with the reason."""
    done = {}
    with tempfile.TemporaryDirectory(prefix="gpu_check.") as tmp:
        for name, argv, limit, parse in steps(args, tmp):
            left = int(deadline - time.monotonic())
            why = name == "bench_large" and ("--skip-large" if args.skip_large else large_does_not_fit())
            if why:
                done[name] = {"command": None, "rc": None, "seconds": None, "error": f"not run: {why}", "data": None}
                continue
            if left < MIN_STEP_S:
                done[name] = {"command": None, "rc": None, "seconds": None, "data": None,
                              "error": f"not run: {max(left, 0)} s of the --budget {args.budget} s left"}
                continue
            print(f"{name}: up to {min(limit, left)} s ...", flush=True)
            done[name] = run_step(argv, min(limit, left), parse, env, shown(argv, tmp, args.data_dir))
    return done


def large_does_not_fit():
    """Why the host cannot hold the large benchmark's uint8 images twice over, or None if it can."""
    from benchmark import available_memory

    need, available = 2 * LARGE * 784, available_memory()
    if available is not None and available < need:
        return f"{LARGE:,} images need ~{need / 2**30:.1f} GiB of host memory, {available / 2**30:.1f} GiB is available"
    return None


def oom_step(args):
    """The OOM step, in its own process: ``predict_labels`` with all images in one batch under a
    GPU memory limit; prints one JSON object with the halving line(s) and the labels' agreement."""
    import numpy as np
    import torch

    import nn_torch
    from benchmark import replicate
    from nn_torch.device import resolve_device

    device = resolve_device(args.device)
    weights, images, _, _ = load_inputs(args)
    model = nn_torch.MnistNet.from_numpy(weights)
    cpu_labels = nn_torch.predict_labels(model, images, device="cpu")
    big = replicate(images, args.oom_images)
    limit = None
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(OOM_LIMIT_BYTES / total, device)
        limit = OOM_LIMIT_BYTES
    stderr, error, mismatched = io.StringIO(), None, None
    with contextlib.redirect_stderr(stderr):
        try:
            labels = nn_torch.predict_labels(model, big, batch_size=len(big), device=device)
            mismatched = int(np.count_nonzero(labels != replicate(cpu_labels, len(big))))
        except (NNError, torch.cuda.OutOfMemoryError) as err:  # the halving did not save it: a result, not a crash
            error = " ".join(str(err).split())
    print(json.dumps({"device": str(device), "images": len(big), "batch_size": len(big), "memory_limit_bytes": limit,
                      "halving_lines": [line for line in stderr.getvalue().splitlines() if "halving" in line],
                      "mismatched": mismatched, "error": error}))
    return EXIT_OK


def environment(device):
    """What the figures were measured on: GPU, driver, torch, CUDA, CPU."""
    import torch

    from benchmark import machine

    info = {"device": str(device), "torch": torch.__version__, "cuda": torch.version.cuda,
            "python": platform.python_version(), **{k: v for k, v in machine().items() if k in ("cpu", "cores")}}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    compute_capability=f"{props.major}.{props.minor}", cudnn=torch.backends.cudnn.version())
        try:
            info["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader", f"--id={device.index}"],
                capture_output=True, text=True, timeout=30).stdout.strip() or None
        except (OSError, subprocess.TimeoutExpired):
            info["driver"] = None
    return info


# --- pure functions: results -> goals -> markdown ---

def _data(results, step):
    return (results["steps"].get(step) or {}).get("data")


def _why_missing(results, step):
    s = results["steps"].get(step)
    if s is None:
        return f"not measured: no {step} result"
    if (s["error"] or "").startswith("not run"):
        return s["error"]
    return f"not measured: {s['error'] or 'no figures in its output'}" + (f" (exit {s['rc']})" if s["rc"] else "")


def _speed(results, step, variant, goal_met, figures):
    """A speed goal's ``(met, evidence)`` from one benchmark row; wrong predictions miss it."""
    row = next((r for r in (_data(results, step) or {}).get("rows", []) if r["variant"] == variant), None)
    if row is None:
        rows = (_data(results, step) or {}).get("rows")
        return None, (f"not measured: {step} gave no {variant} row, only "
                      f"{', '.join(r['variant'] for r in rows)}" if rows else _why_missing(results, step))
    failed = results["steps"][step]["rc"] == EXIT_FAILED and results["steps"][step]["error"]
    return goal_met(row) and not failed, figures(row) + (f"; wrong predictions: {failed}" if failed else "")


def _off_cuda(report):
    return [] if report["device"].startswith("cuda") else [f"ran on {report['device']}, not cuda"]


def tf32_ratios(results):
    """``{layer: TF32-on max abs diff / TF32-off max abs diff}`` on float32, or None if either is missing."""
    on, off = _data(results, "parity_tf32"), _data(results, "parity_float32")
    if not (on and off):
        return None
    return {k: on["layers"][k]["max_abs"] / off["layers"][k]["max_abs"] if off["layers"][k]["max_abs"] else None
            for k in LAYER_OUTPUTS}


def judge(results):
    """``results -> [(goal, met: True | False | None, evidence)]``; None means not measured."""
    goals = [(f"{SMALL:,} images end to end from host uint8 in at most {GOAL_MS:g} ms (torch_cuda_with_copy)",
              *_speed(results, "bench_small", "torch_cuda_with_copy", lambda r: r["ms_median"] <= GOAL_MS,
                      lambda r: f"median {r['ms_median']:.3f} ms, min {r['ms_min']:.3f} ms over {r['repeats']} runs")),
             (f"at least {GOAL_IMAGES_PER_S / 1e6:g} M images/s at {LARGE:,} images (torch_cuda)",
              *_speed(results, "bench_large", "torch_cuda", lambda r: r["images_per_s"] >= GOAL_IMAGES_PER_S,
                      lambda r: f"{r['images_per_s'] / 1e6:.1f} M images/s (median {r['ms_median']:.2f} ms)"))]

    goal = "parity on cuda, float32 and float64 with TF32 off: every layer within tolerance, all predictions equal"
    reports = {k: _data(results, f"parity_{k}") for k in ("float32", "float64")}
    if None in reports.values():
        goals.append((goal, None, "; ".join(f"{k}: {_why_missing(results, f'parity_{k}')}"
                                            for k, r in reports.items() if r is None)))
    else:
        bad = [f"{k}: {problem}" for k, r in reports.items() for problem in _off_cuda(r)
               + ([f"ran with {r['matmul_precision']}"] if "TF32 off" not in r["matmul_precision"] else [])
               + ([f"{r['mismatched_predictions']} predictions differ, layers beyond tolerance: "
                   f"{', '.join(n for n, d in r['layers'].items() if d['mismatched']) or 'none'}"]
                  if not r["ok"] else [])]
        goals.append((goal, not bad, "; ".join(bad) or f"both dtypes: every layer within tolerance, "
                      f"all {reports['float32']['images']:,} predictions equal"))

    goal = "the parity suite's cuda cases pass"
    counts = _data(results, "parity_suite")
    text = counts and ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    if counts is None:
        goals.append((goal, None, _why_missing(results, "parity_suite")))
    elif counts.get("failed") or counts.get("errors"):
        goals.append((goal, False, text))
    elif not counts.get("passed"):
        goals.append((goal, None, f"not measured: no cuda case ran ({text})"))
    else:
        goals.append((goal, True, text))

    goal = "a CUDA out-of-memory error halves the batch, and the labels equal the CPU's"
    oom = _data(results, "oom_halving")
    if oom is None:
        goals.append((goal, None, _why_missing(results, "oom_halving")))
    elif oom.get("error"):
        goals.append((goal, False, f"{oom['halving_lines'] or 'no halving line'}; then {oom['error']}"))
    elif not oom["halving_lines"]:
        goals.append((goal, None, f"not measured: on {oom['device']}, {oom['images']:,} images in one batch "
                      "ran without an out-of-memory error"))
    else:
        goals.append((goal, oom["mismatched"] == 0 and not _off_cuda(oom),
                      f"{oom['halving_lines'][0]!r}; {oom['mismatched']} of {oom['images']:,} labels differ "
                      "from the CPU's" + "".join(f"; {p}" for p in _off_cuda(oom))))

    goal = "TF32 on makes float32 errors roughly 1000x larger (100x to 10,000x; the README's claim)"
    ratios = tf32_ratios(results)
    worst = max((r for r in (ratios or {}).values() if r is not None), default=None)
    if ratios is None:
        goals.append((goal, None, _why_missing(results, "parity_float32" if _data(results, "parity_tf32")
                                               else "parity_tf32")))
    else:
        goals.append((goal, None if worst is None else 100 <= worst <= 10_000,
                      "greatest TF32-on / TF32-off ratio of max abs differences over the layers: "
                      + ("-" if worst is None else f"{worst:.3g}x") + "".join(
                          f"; {p}" for p in _off_cuda(_data(results, "parity_tf32")))))

    goal = "SGD steps on cuda: the NumPy and torch weights still match"
    sgd = _data(results, "sgd_steps")
    if sgd is None:
        goals.append((goal, None, _why_missing(results, "sgd_steps")))
    else:
        goals.append((goal, sgd["max_weight_diff"] <= sgd["tolerance"] and not _off_cuda(sgd),
                      f"max |W_numpy - W_torch| {sgd['max_weight_diff']:.2e} (in {sgd['layer']}), tolerance "
                      f"{sgd['tolerance']:.0e}" + "".join(f"; {p}" for p in _off_cuda(sgd))))
    return goals


MET = {True: "**met**", False: "**missed**", None: "not measured"}


def _cell(text):
    """Text for a markdown table cell: its pipes escaped."""
    return text.replace("|", r"\|")


def render(results, goals):
    """``results`` and :func:`judge`'s goals -> the markdown of docs/gpu.md."""
    env, steps = results["environment"], results["steps"]
    cuda = env["device"].startswith("cuda")
    out = ["# GPU check", "",
           f"Written by `python scripts/gpu_check.py` on {results['date']} in {results['seconds']:.0f} s"
           f" (budget {results['budget_s']} s). Device: **{env['device']}**"
           + ("." if cuda else " (a dry run of the commands, not a GPU check)."), ""]
    out += ["| | |", "|---|---|"]
    for key, label in (("gpu", "GPU"), ("gpu_memory_gib", "GPU memory (GiB)"),
                       ("compute_capability", "compute capability"), ("driver", "driver"),
                       ("torch", "torch"), ("cuda", "CUDA (torch built with)"), ("cudnn", "cuDNN"),
                       ("cpu", "CPU"), ("cores", "CPU cores"), ("python", "Python")):
        if key in env or cuda:
            out.append(f"| {label} | {env.get(key) if env.get(key) is not None else 'unknown'} |")

    out += ["", "## Goals", "", "| goal | | evidence |", "|---|---|---|"]
    out += [f"| {goal} | {MET[met]} | {_cell(evidence)} |" for goal, met, evidence in goals]
    out += ["", "Speed goals run float32 with TF32 off (`nn_torch.full_precision`), as every evaluation does."]

    out += ["", "## Speed (`benchmark.py`)", "",
            "| images | variant | ms min | ms median | IQR (ms) | images/s | accuracy |", "|---|---|---|---|---|---|---|"]
    for step in ("bench_small", "bench_large"):
        data = _data(results, step)
        for r in (data or {}).get("rows", []):
            out.append(f"| {data['size']:,} | {r['variant']} | {r['ms_min']:.3f} | {r['ms_median']:.3f} | "
                       f"{r['ms_p25']:.3f}-{r['ms_p75']:.3f} | {r['images_per_s']:.3g} | {r['accuracy']:.4f} |")

    out += ["", "## Parity (`parity_report.py`), greatest absolute difference per layer", ""]
    shown = {k: _data(results, f"parity_{k}") for k in ("float32", "float64", "tf32") if _data(results, f"parity_{k}")}
    if shown:
        ratios = tf32_ratios(results) or {}
        out += ["| | " + " | ".join(LAYER_OUTPUTS) + " | predictions differ | matmul precision |",
                "|---" * (len(LAYER_OUTPUTS) + 3) + "|"]
        for k, r in shown.items():
            out.append(f"| {r['dtype']}{', TF32 on' if k == 'tf32' else ''} on {r['device']} | "
                       + " | ".join(f"{r['layers'][n]['max_abs']:.2g}" for n in LAYER_OUTPUTS)
                       + f" | {r['mismatched_predictions']} | {r['matmul_precision']} |")
        if ratios:
            out.append("| TF32 on / off | " + " | ".join("-" if ratios[n] is None else f"{ratios[n]:.3g}x"
                                                      for n in LAYER_OUTPUTS) + " | | |")
        margins = ", ".join(f"{k} {r['min_top2_margin']['torch']:.3g}" for k, r in shown.items())
        out += ["", f"Smallest top-2 probability margin on the torch side: {margins}."]

    oom = _data(results, "oom_halving")
    if oom:
        limit = oom["memory_limit_bytes"]
        out += ["", "## Out-of-memory halving", "",
                f"`predict_labels(model, images, batch_size={oom['batch_size']:,})` on {oom['images']:,} images "
                + (f"with the process limited to {limit / 2**30:g} GiB of GPU memory" if limit else "with no memory limit")
                + f": {'; '.join(oom['halving_lines']) or 'no halving'}; "
                + (f"then {oom['error']}." if oom.get("error") else f"{oom['mismatched']} labels differ from the CPU's.")]

    out += ["", "## Commands", "", "| step | command | exit | s | note |", "|---|---|---|---|---|"]
    for name, s in steps.items():
        out.append(f"| {name} | `{s['command'] or '-'}` | {'-' if s['rc'] is None else s['rc']} | "
                   f"{'-' if s['seconds'] is None else s['seconds']} | {_cell(s['error'] or '')} |")
    return "\n".join(out) + "\n"


def exit_code(goals):
    return EXIT_OK if goals and all(met is True for _, met, _ in goals) else EXIT_FAILED


def write_atomically(path, text):
    """``path`` whole or untouched (see nn_numpy.data.files.atomic_write)."""
    with atomic_write(path, "w", what=f"write --out {path}") as f:
        f.write(text)


def main(argv=None):
    args = parse_args(argv)
    from nn_torch.device import resolve_device

    device = resolve_device(args.device)  # no CUDA: one line, exit 2, before anything runs
    if args.oom_step:
        return oom_step(args)
    if args.out is None and device.type != "cuda":
        raise NNError(f"--device {args.device} is a dry run: give --out, docs/gpu.md is for GPU figures")
    out = args.out or os.path.join(REPO, "docs", "gpu.md")
    if not os.path.isdir(os.path.dirname(os.path.abspath(out))):
        raise NNError(f"cannot write --out {out}: its folder does not exist")
    load_inputs(args)  # missing data fails here, once, not in every step
    if args.data_dir:  # the steps run in the clone's root
        args.data_dir = os.path.abspath(args.data_dir)
    env = {**os.environ, **({"NN_DATA_DIR": args.data_dir} if args.data_dir else {})}
    start = time.monotonic()
    results = {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
               "budget_s": args.budget, "environment": environment(device),
               "steps": run_steps(args, start + args.budget - RESERVE_S, env)}
    results["seconds"] = time.monotonic() - start
    goals = judge(results)
    write_atomically(out, render(results, goals))
    for goal, met, evidence in goals:
        print(f"{MET[met].strip('*'):>12}  {goal}: {evidence}")
    print(f"wrote {out}")
    return exit_code(goals)


if __name__ == "__main__":
    run_main(main)
