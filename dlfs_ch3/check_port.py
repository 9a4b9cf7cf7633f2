"""Check your own chapter-3 code: each function against the exact result, each slip named.

    dlfs-ch3 check-port my_ch03.py              # one file
    dlfs-ch3 check-port deep-learning-from-scratch/   # the book's layout: ch03/ beside dataset/
    dlfs-ch3 check-port mypackage.chapter3 --json     # an importable module

Your code runs as you run it, in a child process with a time limit: ``from dataset.mnist import
load_mnist`` is served by this project's verified loader (no network), and ``sample_weight.pkl`` is
this project's copy wherever yours is missing. Then the chapter's functions it defines (step_function,
sigmoid, relu, identity_function, softmax, init_network, get_data, predict, forward; or an nn.Module
with three Linear layers) are called on this project's inputs, and each output is set against the
exact result: OK with the largest error as a share of its proven bound, or WRONG with the slip named.
Exit codes: 0 all OK, 1 a slip found, 2 no such path or nothing of chapter 3 in it.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from nn_numpy import exact
from nn_numpy.errors import NNError

from . import port_networks as networks
from . import port_verdicts as judge
from .cli import EXIT_FAILED, EXIT_OK, ArgumentParser, add_data_args, positive_float
from .port_runner import ACTIVATIONS, BOOK_NAMES, PROBE_IMAGES

PROJECT_ROOT = str(Path(__file__).resolve().parent.parent)


def parse_args(argv):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "path", help="a .py file, a folder (the book's layout, or ch03/), or a module name"
    )
    p.add_argument("--device", default="cpu", help="torch device for a PyTorch port (default cpu)")
    p.add_argument(
        "--timeout", type=positive_float, default=60.0, help="seconds per file (default 60)"
    )
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    return add_data_args(p, inputs=False).parse_args(argv)


def targets_of(path):
    """``(targets, root)``: the files (or the module) to run, and the folder the reader's files are in."""
    p = Path(path)
    if p.is_file():
        if p.suffix != ".py":
            raise NNError(f"{path}: not a .py file")
        return [str(p.resolve())], str(p.resolve().parent)
    if p.is_dir():
        chapter = p / "ch03" if (p / "ch03").is_dir() else p
        files = sorted(str(f.resolve()) for f in chapter.glob("*.py"))
        if not files:
            raise NNError(f"{path}: no .py files in {chapter}")
        root = (
            chapter.resolve().parent
            if chapter != p or (p.parent / "dataset").is_dir()
            else p.resolve()
        )
        return files, str(root)
    import importlib.util

    if os.getcwd() not in sys.path:  # as python -m finds modules: from the current folder too
        sys.path.insert(0, os.getcwd())
    try:
        spec = (
            importlib.util.find_spec(path)
            if path.replace(".", "").replace("_", "").isalnum()
            else None
        )
    except (ImportError, ValueError):
        spec = None
    if spec is None or spec.origin is None:
        raise NNError(f"{path}: no such file, folder or importable module")
    return [path], str(Path(spec.origin).resolve().parent)


def run_child(target, root, data_dir, device, timeout, feed, out):
    """Run :mod:`dlfs_ch3.port_runner` on ``target``; ``(record, arrays)``, or a record of the failure."""
    env = {
        **os.environ,
        "MPLBACKEND": "Agg",
        # one thread each: children run side by side, and spinning BLAS threads would fight
        **dict.fromkeys(("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"), "1"),
        "DLFS_PORT_FEED": feed,
        "DLFS_PORT_ROOT": root,
        "NN_DATA_DIR": str(data_dir),  # code using this project's loader finds the same data
        "PYTHONPATH": os.pathsep.join([PROJECT_ROOT, os.environ.get("PYTHONPATH", "")]).rstrip(
            os.pathsep
        ),
    }
    cwd = os.path.dirname(target) if target.endswith(".py") else os.getcwd()
    args = [sys.executable, "-m", "dlfs_ch3.port_runner", target, str(data_dir), device, out]
    child = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        _, err = child.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(child.pid, signal.SIGKILL)  # the reader's code and anything it started
        child.communicate()
        return {
            "stopped": f"did not finish within {timeout:g} s and was stopped (an endless loop?)"
        }, {}
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    if child.returncode != 0 or not os.path.exists(out + ".json"):
        last = (err.decode(errors="replace").strip().splitlines() or ["no message"])[-1]
        return {"stopped": f"the check itself failed ({last})"}, {}
    with open(out + ".json") as file:
        record = json.load(file)
    with np.load(out + ".npz", allow_pickle=False) as data:
        return record, {k: data[k] for k in data.files}


def check_port(path, data_dir=None, device="cpu", timeout=60.0):
    """The report on a reader's chapter-3 code at ``path`` (see the module docstring): a dict with
    ``ok``, ``files``, ``found``, ``not_found``, ``notes`` and ``findings``, each finding
    ``{"verdict": "OK" | "WRONG" | "note", "what": ..., "text": ...}``."""
    from nn_numpy.data.fetch import gather, resolve_data_dir
    from nn_numpy.data.mnist import load_split
    from nn_numpy.data.weights import load_weights
    from nn_numpy.evaluate import normalize

    targets, root = targets_of(path)
    folder = resolve_data_dir(data_dir)
    weights, (images, labels, _) = gather(
        lambda: load_weights(data_dir=data_dir),
        lambda: load_split("test", data_dir),
        data_dir=data_dir,
    )
    pixels = images.reshape(len(images), -1)[:PROBE_IMAGES]
    truth = exact.reference(weights, pixels)
    bounds = {}

    def dtype_bounds(dtype):
        if dtype not in bounds:
            bounds[dtype] = exact.bounds(weights, pixels, truth, dtype)
        return bounds[dtype]

    findings, found, notes = [], {}, []
    with tempfile.TemporaryDirectory(prefix="dlfs-check-port-") as tmp:
        feed = os.path.join(tmp, "feed.npz")
        np.savez(
            feed,
            in1_float32=normalize(pixels, "float32"),
            in1_float64=normalize(pixels, "float64"),
            in2=truth["z1"][0],
            in3=truth["z2"][0],
        )
        shown = [os.path.relpath(t, root) if t.endswith(".py") else t for t in targets]
        outs = [os.path.join(tmp, str(n)) for n in range(len(targets))]
        with ThreadPoolExecutor(min(len(targets), os.cpu_count() or 1)) as pool:  # one child each
            runs = pool.map(
                lambda t, o: run_child(t, root, folder, device, timeout, feed, o), targets, outs
            )
            for name, (record, arrays) in zip(shown, list(runs)):
                if "stopped" in record:
                    findings.append(judge.finding("WRONG", name, record["stopped"]))
                    continue
                notes += [f"{name}: {note}" for note in record["notes"]]
                found_here = judge_file(
                    name, record, arrays, weights, pixels, truth, dtype_bounds, labels, found
                )
                if record["crash"] and not any(record["crash"] in f["text"] for f in found_here):
                    findings.append(judge.crash(name, record["crash"]))
                findings += found_here
        files = shown
    findings = _dedupe(findings)
    if not found and not any(f["verdict"] == "WRONG" for f in findings):
        raise NNError(
            f"{path}: nothing of chapter 3 found: none of {', '.join(BOOK_NAMES)}, "
            "nor an nn.Module with three Linear layers"
        )
    return {
        "ok": all(f["verdict"] != "WRONG" for f in findings),
        "path": str(path),
        "files": files,
        "found": {k: sorted(v) for k, v in found.items()},
        "not_found": [n for n in BOOK_NAMES if n not in found and n != "forward"],
        "notes": sorted(set(notes)),
        "findings": findings,
    }


def judge_file(shown, record, arrays, weights, pixels, truth, dtype_bounds, labels, found):
    """The findings on one file's functions and modules; ``found`` gains ``{name: {where}}``."""
    out, calls, where = [], record["calls"], record["where"]
    for name in record["found"]:
        found.setdefault(name, set()).add(where.get(name, "?"))
    for name in [n for n in ACTIVATIONS if n in record["found"]]:
        out += judge.activation(name, calls, arrays, where.get(name))
    if "softmax" in record["found"]:
        out += judge.softmax(calls, arrays, where.get("softmax"))
    if "init_network" in record["found"]:
        out += judge.init_network(calls, arrays, where.get("init_network"), weights)
    if "get_data" in record["found"]:
        out += judge.get_data(calls, arrays, where.get("get_data"), labels)
    if "predict" in record["found"]:
        out += networks.predict(
            calls, arrays, where.get("predict"), weights, pixels, truth, dtype_bounds
        )
    if "forward" in record["found"]:
        out += networks.forward(calls, arrays, where.get("forward"))
    for name in record["modules"]:
        found.setdefault(f"nn.Module {name}", set()).add(calls[f"module:{name}"].get("cls", "?"))
        out += networks.module(name, calls, arrays, weights, pixels, truth, dtype_bounds)
    out += judge.accuracy(record["stdout"], calls, arrays, shown)
    return out


def _dedupe(findings):
    seen, out = set(), []
    for f in findings:
        key = (f["verdict"], f["what"], f["text"])
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


def print_report(report):
    print(
        f"check-port {report['path']}: {len(report['files'])} file(s): {', '.join(report['files'])}"
    )
    print("reference: the exact result, each element with its proven bound; yours: your code")
    found = ", ".join(f"{k} ({', '.join(v)})" for k, v in report["found"].items()) or "nothing"
    print(f"found: {found}")
    if report["not_found"]:
        print(f"not found: {', '.join(report['not_found'])}")
    for note in report["notes"]:
        print(f"note: {note}")
    for f in report["findings"]:
        print(f"{f['verdict']:6} {f['what']}: {f['text']}")
    wrong = sum(f["verdict"] == "WRONG" for f in report["findings"])
    print("all OK" if not wrong else f"{wrong} slip(s) found")


def main(argv=None):
    args = parse_args(argv)
    report = check_port(args.path, args.data_dir, args.device, args.timeout)
    if args.json:
        print(json.dumps(report))
    else:
        print_report(report)
    return EXIT_OK if report["ok"] else EXIT_FAILED
