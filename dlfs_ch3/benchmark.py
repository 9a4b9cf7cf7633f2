"""Time every way of evaluating the network on MNIST's test set, side by side, against the machine's bound.

    dlfs-ch3 benchmark                            # all variants, 10,000 images, ~20 s
    dlfs-ch3 benchmark --size 1000000 --variants project_numpy,project_torch_cpu
    dlfs-ch3 benchmark --repeats 50 --json bench.json

Each variant runs once to warm up, then ``--repeats`` times (the book's loop at most 3); the table
gives the median, the interquartile range and the fastest run. Every variant's predictions must equal
the reference's (``nn_numpy.forward_layers``), which must score the book's 0.9352 on the test set.
Exit codes: 0 ok, 1 wrong predictions, 2 bad input or environment (checked before the run where it
can be: the --json path, memory for --size).
"""

import argparse
import contextlib
import importlib.util
import json
import os
import platform
import stat
import sys
import time

import numpy as np

from nn_numpy.data.files import atomic_write, is_writable
from nn_numpy.errors import NNError
from nn_numpy.network import BOOK_ACCURACY

from .cli import (
    EXIT_FAILED,
    EXIT_OK,
    ArgumentParser,
    add_data_args,
    load_inputs,
    positive_int,
    torch_problem,
)

VARIANTS = (
    "book_loop",
    "book_batch100",
    "numpy_plain",
    "project_numpy",
    "project_torch_cpu",
    "torch_cuda",
    "torch_cuda_with_copy",
    "onnxruntime",
)
NEEDS_FLOAT_COPY = (
    "book_loop",
    "book_batch100",
    "numpy_plain",
)  # the book's get_data gives float32
FLOP_PER_IMAGE = 2 * (784 * 50 + 50 * 100 + 100 * 10)
TEST_SET_SIZE = 10000


def parse_args(argv):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--size",
        type=positive_int,
        default=TEST_SET_SIZE,
        help="images to evaluate: the test set replicated (uint8, no float32 copy) to N",
    )
    p.add_argument(
        "--repeats", type=positive_int, default=20, help="timed runs per variant after one warm-up"
    )
    p.add_argument(
        "--variants",
        type=variant_list,
        help=f"comma-separated subset of {','.join(VARIANTS)} (default: all that can run; above "
        f"{TEST_SET_SIZE} images, all but {','.join(NEEDS_FLOAT_COPY)}, which need a float32 copy)",
    )
    p.add_argument(
        "--json",
        metavar="PATH",
        help="also write the results to PATH as JSON (-: JSON on stdout, the table on stderr)",
    )
    return add_data_args(p).parse_args(argv)


def variant_list(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown variant(s) {unknown or [text]}: choose from {', '.join(VARIANTS)}"
        )
    return names


def onnx_model(weights):
    """The network as an ONNX graph: ``x (N, 784) uint8 -> labels (N,) int64``, normalising inside."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [
        helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["xf", "c255"], ["a0"]),
    ]
    for i in (1, 2, 3):
        nodes.append(
            helper.make_node(
                "Gemm", [f"{'a' if i == 1 else 'z'}{i - 1}", f"W{i}", f"b{i}"], [f"a{i}"]
            )
        )
        nodes.append(
            helper.make_node("Sigmoid", [f"a{i}"], [f"z{i}"])
            if i < 3
            else helper.make_node("ArgMax", ["a3"], ["labels"], axis=1, keepdims=0)
        )
    constants = [numpy_helper.from_array(np.array(255, np.float32), "c255")]
    constants += [numpy_helper.from_array(np.asarray(w, np.float32), k) for k, w in weights.items()]
    graph = helper.make_graph(
        nodes,
        "dlfs_ch3",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, ["N", 784])],
        [helper.make_tensor_value_info("labels", TensorProto.INT64, ["N"])],
        constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def build_variants(names, weights, images):
    """``({name: (run () -> (N,) labels, sync)}, [why each left-out name is])``; setup happens here, untimed."""
    import nn_numpy

    runs, left_out, no_sync = {}, [], (lambda: None)
    floats = nn_numpy.normalize(images) if set(names) & set(NEEDS_FLOAT_COPY) else None
    book = {
        "book_loop": lambda: np.array([np.argmax(nn_numpy.predict(weights, x)) for x in floats]),
        "book_batch100": lambda: np.concatenate(
            [
                np.argmax(nn_numpy.predict(weights, floats[i : i + 100]), axis=1)
                for i in range(0, len(floats), 100)
            ]
        ),
        "numpy_plain": lambda: np.argmax(nn_numpy.predict(weights, floats), axis=1),
        "project_numpy": lambda: nn_numpy.predict_labels(weights, images),
    }
    runs.update({n: (book[n], no_sync) for n in names if n in book})
    torch_names = [n for n in names if "torch" in n]
    problem = torch_problem() if torch_names else None
    if problem:
        left_out.append(f"{', '.join(torch_names)}: {problem}")
    elif torch_names:
        import torch

        import nn_torch

        model = nn_torch.MnistNet.from_numpy(weights)
        if "project_torch_cpu" in names:
            runs["project_torch_cpu"] = (
                lambda: nn_torch.predict_labels(model, images, device="cpu"),
                no_sync,
            )
        cuda = [n for n in torch_names if n.startswith("torch_cuda")]
        if cuda and not torch.cuda.is_available():
            left_out.append(f"{', '.join(cuda)}: CUDA is not available (torch {torch.__version__})")
        elif cuda:
            on_gpu, gpu_model = torch.from_numpy(images).to("cuda"), model.to("cuda")
            inputs = {
                "torch_cuda": on_gpu,
                "torch_cuda_with_copy": images,
            }  # the host-to-device copy timed or not
            runs.update(
                {
                    n: (
                        lambda x=inputs[n]: nn_torch.predict_labels(gpu_model, x, device="cuda"),
                        torch.cuda.synchronize,
                    )
                    for n in cuda
                }
            )
    if "onnxruntime" in names:
        missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
        if missing:
            left_out.append(
                f"onnxruntime: {' and '.join(missing)} not installed (pip install 'dlfs-ch3[bench]')"
            )
        else:
            import onnxruntime

            session = onnxruntime.InferenceSession(
                onnx_model(weights), providers=["CPUExecutionProvider"]
            )
            runs["onnxruntime"] = (lambda: session.run(None, {"x": images})[0], no_sync)
    return {n: runs[n] for n in names if n in runs}, left_out


def check_before_run(args):
    """Refuse, in one line, what would otherwise fail only after minutes of work."""
    try:
        with open("/proc/meminfo") as f:  # Linux: the memory the OS can still give
            available = next(
                int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:")
            )
    except (OSError, StopIteration, ValueError):
        available = None
    if available is not None and args.size * 784 > available:
        raise NNError(
            f"--size {args.size}: its uint8 images alone need {args.size * 784 / 2**30:.1f} GiB, but only "
            f"{available / 2**30:.1f} GiB of memory is available"
        )
    target = os.path.realpath(args.json or "-")
    mode = os.stat(target).st_mode if args.json not in (None, "-") and os.path.exists(target) else 0
    if (
        args.json in (None, "-") or stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)
    ):  # nothing to check, or written through
        return
    if stat.S_ISDIR(mode):
        raise NNError(f"--json {args.json} is a folder: give a file path")
    folder = os.path.dirname(target)
    if not os.path.isdir(folder) or not is_writable(folder):
        raise NNError(
            f"cannot write --json {args.json}: folder {folder} "
            f"{'is not writable' if os.path.isdir(folder) else 'does not exist'}"
        )


def peak_rss_mb(reset=False):
    """Peak resident memory in MB since the last reset (Linux's VmHWM; elsewhere the process's peak)."""
    try:
        if reset:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        import resource

        return (
            resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            * (1 if sys.platform == "darwin" else 1024)
            / 2**20
        )


def measure(run, sync, repeats):
    """``(labels of the last run, [seconds per run])``; one untimed warm-up first."""
    labels, seconds = run(), []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        labels = run()
        sync()
        seconds.append(time.perf_counter() - start)
    return labels, seconds


def sgemm_peak(use_torch):
    """``(GFLOP/s, library)``: the best of a few 2048^3 float32 matmuls in NumPy (and torch if loaded)."""
    a = np.random.default_rng(0).random((2048, 2048), dtype=np.float32)
    matmuls = {"numpy": lambda: a @ a}
    if use_torch:
        ta = sys.modules["torch"].from_numpy(a)
        matmuls["torch"] = lambda: ta @ ta
    best = {
        name: 2 * 2048**3 / min(measure(f, lambda: None, 5)[1]) / 1e9 for name, f in matmuls.items()
    }
    name = max(best, key=best.get)
    return best[name], name


def machine():
    """What the figures were measured on."""
    info = {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "numpy": np.__version__,
    }
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    info["numpy_blas"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
        if torch.cuda.is_available():
            import subprocess

            info["gpu"] = torch.cuda.get_device_name()
            with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                info["driver"] = subprocess.run(
                    ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                    capture_output=True,
                    text=True,
                    timeout=30,
                ).stdout.split("\n")[0]
    return info


def main(argv=None):
    args = parse_args(argv)
    check_before_run(args)
    from nn_numpy import accuracy, forward_layers, normalize

    report = (
        sys.stderr if args.json == "-" else sys.stdout
    )  # `--json -`: stdout holds the JSON alone
    weights, test_images, test_labels, source = load_inputs(args)
    reference = np.argmax(forward_layers(weights, normalize(test_images))["y"], axis=1)
    if (
        args.weights is None
        and args.images is None
        and accuracy(reference, test_labels) != BOOK_ACCURACY
    ):
        print(
            f"FAILED: the reference scores {accuracy(reference, test_labels)}, not the book's {BOOK_ACCURACY}",
            file=report,
        )
        return EXIT_FAILED
    if len(test_images) == 0:
        raise NNError("the dataset holds no images: nothing to replicate to --size")
    n = args.size
    images, labels, expected = (
        np.resize(a, (n,) + a.shape[1:]) for a in (test_images, test_labels, reference)
    )
    names = args.variants or [
        v for v in VARIANTS if n <= TEST_SET_SIZE or v not in NEEDS_FLOAT_COPY
    ]
    runs, left_out = build_variants(names, weights, images)
    if not runs:
        raise NNError(f"none of the selected variants can run here: {'; '.join(left_out)}")
    for line in left_out:
        print(f"left out {line}", file=sys.stderr)
    peak, library = sgemm_peak("torch" in sys.modules)
    bound_ms = FLOP_PER_IMAGE * n / (peak * 1e9) * 1e3

    rows, wrong = [], []
    for name, (run, sync) in runs.items():
        time.sleep(0.2)  # let the previous engine's spinning threads go idle
        peak_rss_mb(reset=True)
        pred, seconds = measure(
            run, sync, min(args.repeats, 3) if name == "book_loop" else args.repeats
        )
        ms = np.asarray(seconds) * 1e3
        median = float(np.median(ms))
        rows.append(
            {
                "variant": name,
                "ms_median": median,
                "ms_p25": float(np.percentile(ms, 25)),
                "ms_p75": float(np.percentile(ms, 75)),
                "ms_min": float(ms.min()),
                "repeats": len(ms),
                "images_per_s": n / median * 1e3,
                "ratio_to_numpy_plain": None,
                "ratio_to_bound": median / bound_ms,
                "accuracy": accuracy(pred, labels),
                "peak_rss_mb": peak_rss_mb(),
            }
        )
        differ = int(np.count_nonzero(np.asarray(pred) != expected))
        if differ:
            wrong.append(f"{name}: {differ} of {n} predictions differ from the reference")
    plain = next((r["ms_median"] for r in rows if r["variant"] == "numpy_plain"), None)
    for r in rows:
        r["ratio_to_numpy_plain"] = r["ms_median"] / plain if plain else None

    info = machine()
    print(f"{n} images ({images.nbytes / 2**20:.0f} MB uint8) from {source}", file=report)
    print(
        f"{info['cpu']}, {info['cores']} cores; sgemm peak {peak:.0f} GFLOP/s ({library}); compute bound for "
        f"{n} images: {FLOP_PER_IMAGE * n / 1e9:.2f} GFLOP / peak = {bound_ms:.2f} ms",
        file=report,
    )
    print(
        f"{'variant':22} {'ms median':>10} {'IQR':>15} {'ms min':>8} {'x plain':>8} {'x bound':>8} "
        f"{'accuracy':>9} {'peak RSS':>9}",
        file=report,
    )
    for r in rows:
        ratio = f"{r['ratio_to_numpy_plain']:.2f}" if r["ratio_to_numpy_plain"] else "-"
        print(
            f"{r['variant']:22} {r['ms_median']:>10.2f} {r['ms_p25']:>7.2f}-{r['ms_p75']:<7.2f} {r['ms_min']:>8.2f} "
            f"{ratio:>8} {r['ratio_to_bound']:>8.2f} {r['accuracy']:>9.4f} {r['peak_rss_mb']:>6.0f} MB",
            file=report,
        )
    if args.json:
        result = {
            "size": n,
            "bound_ms": bound_ms,
            "sgemm_gflops": peak,
            "sgemm_library": library,
            "dataset_mb": images.nbytes / 2**20,
            "machine": info,
            "rows": rows,
        }
        if args.json == "-":
            print(json.dumps(result, indent=1))
        else:
            with atomic_write(args.json, "w", what=f"write --json {args.json}") as f:
                json.dump(result, f, indent=1)
    for line in wrong:
        print(f"FAILED: {line}", file=report)
    return EXIT_FAILED if wrong else EXIT_OK
