#!/usr/bin/env python
"""Time every way of evaluating the network on MNIST's test set, against the machine's own compute bound.

    python scripts/benchmark.py                            # all variants, 10,000 images, ~20 s
    python scripts/benchmark.py --size 1000000 --variants project_numpy,project_torch_cpu
    python scripts/benchmark.py --repeats 50 --json bench.json

Each variant runs once to warm up, then ``--repeats`` times (the book's loop at most 3);
the table gives the median and the interquartile range. Every variant's predictions must
equal the reference's (nn_numpy.forward_layers), and the reference must score the book's
0.9352 on the test set, or the script exits 1. Exit codes: 0 ok, 1 wrong predictions,
2 bad input or environment (checked before the run where it can be: the --json folder,
memory for --size, at least one variant able to run).
"""

import argparse
import importlib.util
import json
import os
import platform
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]  # the packages from a clone, installed or not; `cli` beside us

import numpy as np  # noqa: E402

from neuralnet_mnist import predict as book_predict  # noqa: E402  (the book's ch03 scripts, beside us)
from cli import EXIT_FAILED, EXIT_OK, ArgumentParser, add_data_args, load_inputs, positive_int, run_main  # noqa: E402
from nn_numpy.data.download import is_writable  # noqa: E402
from nn_numpy.data.errors import NNError  # noqa: E402
from nn_numpy.data.files import atomic_write, is_pipe_or_device  # noqa: E402
from nn_numpy.network import BOOK_ACCURACY  # noqa: E402

VARIANTS = ("book_loop", "book_batch100", "numpy_plain", "project_numpy", "project_torch_cpu", "torch_cuda",
            "torch_cuda_with_copy", "onnxruntime")
# The book's scripts (neuralnet_mnist.py, neuralnet_mnist_batch.py) and its predict on all images in one
# batch: they start from pre-normalised float32, as the book's get_data gives it.
NEEDS_FLOAT_COPY = ("book_loop", "book_batch100", "numpy_plain")
FLOP_PER_IMAGE = 2 * (784 * 50 + 50 * 100 + 100 * 10)  # multiply-adds of the three matmuls
TEST_SET_SIZE = 10000


def parse_args(argv):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=positive_int, default=TEST_SET_SIZE,
                   help="images to evaluate: the test set replicated (uint8, no float32 copy) to N")
    p.add_argument("--repeats", type=positive_int, default=20, help="timed runs per variant after one warm-up")
    p.add_argument("--variants", type=variant_list,
                   help=f"comma-separated subset of {','.join(VARIANTS)} (default: all present; above "
                        f"{TEST_SET_SIZE} images, all but {','.join(NEEDS_FLOAT_COPY)}, which need a float32 copy)")
    p.add_argument("--json", metavar="PATH", help="also write the results to PATH as JSON "
                   "(-: JSON on stdout, the table on stderr)")
    return add_data_args(p).parse_args(argv)


def variant_list(text):
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"unknown variant(s) {unknown or [text]}: choose from "
                                         f"{', '.join(VARIANTS)}")
    return names


def onnx_model(weights):
    """The same network as an ONNX graph: ``x (N, 784) uint8 -> labels (N,) int64``, normalising inside."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    nodes = [helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT),
             helper.make_node("Div", ["xf", "c255"], ["x01"]),
             helper.make_node("Gemm", ["x01", "W1", "b1"], ["a1"]), helper.make_node("Sigmoid", ["a1"], ["z1"]),
             helper.make_node("Gemm", ["z1", "W2", "b2"], ["a2"]), helper.make_node("Sigmoid", ["a2"], ["z2"]),
             helper.make_node("Gemm", ["z2", "W3", "b3"], ["a3"]),
             helper.make_node("ArgMax", ["a3"], ["labels"], axis=1, keepdims=0)]
    constants = [numpy_helper.from_array(np.array(255, np.float32), "c255")]
    constants += [numpy_helper.from_array(np.asarray(weights[k], np.float32), k)
                  for k in ("W1", "b1", "W2", "b2", "W3", "b3")]
    graph = helper.make_graph(nodes, "dlfs_ch3_mnist", [helper.make_tensor_value_info("x", TensorProto.UINT8, ["N", 784])],
                              [helper.make_tensor_value_info("labels", TensorProto.INT64, ["N"])], constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def build_variants(names, weights, images):
    """``({name: (run () -> (N,) int64 labels, sync () -> None)}, [why each left-out name is])``.

    A name is left out when its engine is absent. Setup (float copies, models, sessions,
    data on the GPU) happens here, outside the timings.
    """
    import nn_numpy

    runs, left_out, floats = {}, [], None
    if any(n in NEEDS_FLOAT_COPY for n in names):
        floats = nn_numpy.normalize(images)
    if "book_loop" in names:
        runs["book_loop"] = lambda: np.array([np.argmax(book_predict(weights, x)) for x in floats], np.int64)
    if "book_batch100" in names:
        runs["book_batch100"] = lambda: np.concatenate(
            [np.argmax(book_predict(weights, floats[i:i + 100]), axis=1) for i in range(0, len(floats), 100)])
    if "numpy_plain" in names:
        runs["numpy_plain"] = lambda: np.argmax(book_predict(weights, floats), axis=1)
    if "project_numpy" in names:
        runs["project_numpy"] = lambda: nn_numpy.predict_labels(weights, images)
    torch_names = [n for n in names if n.startswith(("project_torch", "torch_"))]
    if torch_names and importlib.util.find_spec("torch") is None:
        left_out.append(f"{', '.join(torch_names)}: torch is not installed")
    elif torch_names:
        import torch

        import nn_torch

        model = nn_torch.MnistNet.from_numpy(weights)
        if "project_torch_cpu" in names:
            runs["project_torch_cpu"] = lambda: nn_torch.predict_labels(model, images, device="cpu")
        cuda = [n for n in torch_names if n.startswith("torch_cuda")]
        if cuda and not torch.cuda.is_available():
            left_out.append(f"{', '.join(cuda)}: CUDA is not available (torch {torch.__version__})")
        elif cuda:
            gpu_model = nn_torch.MnistNet.from_numpy(weights).to("cuda")
            on_gpu = torch.from_numpy(images).to("cuda")
            if "torch_cuda" in names:  # the uint8 pixels already on the GPU
                runs["torch_cuda"] = lambda: nn_torch.predict_labels(gpu_model, on_gpu, device="cuda")
            if "torch_cuda_with_copy" in names:  # from host uint8, the copy to the GPU included
                runs["torch_cuda_with_copy"] = lambda: nn_torch.predict_labels(gpu_model, images, device="cuda")
            for n in cuda:
                runs[n] = (runs[n], torch.cuda.synchronize)
    if "onnxruntime" in names:
        missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
        if missing:
            left_out.append(f"onnxruntime: {' and '.join(missing)} not installed (pip install 'dlfs-ch3[bench]')")
        else:
            import onnxruntime

            session = onnxruntime.InferenceSession(onnx_model(weights), providers=["CPUExecutionProvider"])
            runs["onnxruntime"] = lambda: session.run(None, {"x": images})[0]
    return {n: r if isinstance(r, tuple) else (r, lambda: None) for n, r in runs.items()}, left_out


def replicate(a, n):
    """``(M, ...) -> (n, ...)``: ``a`` repeated cyclically, as np.resize does, but an empty ``a`` is
    refused: np.resize would fill it with zeros, i.e. invent blank images."""
    if len(a) == 0:
        raise NNError("the dataset holds no images: nothing to replicate to --size")
    return np.resize(a, (n,) + a.shape[1:])


def available_memory():
    """Bytes of memory the OS can still give (Linux MemAvailable, else free pages); None if it cannot say."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # no such sysconf name on this OS
        return None


def check_before_run(args):
    """Refuse, in one line, what would otherwise fail only after minutes of work."""
    need, available = args.size * 784, available_memory()  # the uint8 images alone; float copies come on top
    if available is not None and need > available:
        raise NNError(f"--size {args.size}: its uint8 images alone need {need / 2**30:.1f} GiB, but only "
                      f"{available / 2**30:.1f} GiB of memory is available")
    if args.json and args.json != "-" and not is_pipe_or_device(args.json):  # those are written through
        folder = os.path.dirname(os.path.abspath(args.json))
        if os.path.isdir(args.json):
            raise NNError(f"--json {args.json} is a folder: give a file path")
        if not os.path.isdir(folder):
            raise NNError(f"cannot write --json {args.json}: folder {folder} does not exist")
        if not is_writable(folder):
            raise NNError(f"cannot write --json {args.json}: folder {folder} is not writable")


def write_json(path, result):
    """``result`` as JSON to ``path`` (``-``: stdout), atomically: ``path`` is whole or untouched."""
    if path == "-":
        json.dump(result, sys.stdout, indent=1)
        print()
        return
    with atomic_write(path, "w", what=f"write --json {path}") as f:
        json.dump(result, f, indent=1)


def peak_rss_reset():
    """Start a fresh peak-RSS window; False where the OS cannot (then peaks are the process's so far)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # Linux: resets VmHWM to the current RSS
        return True
    except OSError:
        return False


def peak_rss_mb():
    """Peak resident memory in MB: VmHWM since the last reset on Linux, else the process's ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmHWM")) / 1024
    except (OSError, StopIteration):
        scale = 1 if platform.system() == "Darwin" else 1024  # bytes on macOS, KiB elsewhere
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def measure(run, sync, repeats):
    """``(labels of the last run, [seconds per run])``; one untimed warm-up first."""
    run()
    seconds = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        labels = run()
        sync()
        seconds.append(time.perf_counter() - start)
    return labels, seconds


def sgemm_peak(use_torch):
    """``(GFLOP/s, library)``: the best of a few 2048^3 float32 matmuls in NumPy (and torch if loaded)."""
    n = 2048
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    matmuls = {"numpy": lambda: a @ a}
    if use_torch:
        import torch
        ta = torch.from_numpy(a)
        matmuls["torch"] = lambda: ta @ ta
    best = {}
    for name, matmul in matmuls.items():
        best[name] = 2 * n ** 3 / min(measure(matmul, lambda: None, 5)[1]) / 1e9
    name = max(best, key=best.get)
    return best[name], name


def machine():
    """What the figures were measured on."""
    info = {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(), "numpy": np.__version__}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    blas = np.show_config(mode="dicts").get("Build Dependencies", {}).get("blas", {})
    info["numpy_blas"] = f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    for module in ("torch", "onnxruntime"):
        if module in sys.modules:
            info[module] = sys.modules[module].__version__
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch_threads"] = torch.get_num_threads()
        info["torch_blas"] = "MKL" if torch.backends.mkl.is_available() else "other"
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
    return info


def main(argv=None):
    args = parse_args(argv)
    check_before_run(args)
    from nn_numpy import accuracy, forward_layers, normalize

    report = sys.stderr if args.json == "-" else sys.stdout  # `--json -`: stdout holds the JSON alone
    weights, test_images, test_labels, source = load_inputs(args)
    reference = np.argmax(forward_layers(weights, normalize(test_images))["y"], axis=1)
    if args.weights is None and args.images is None and accuracy(reference, test_labels) != BOOK_ACCURACY:
        print(f"FAILED: the reference scores {accuracy(reference, test_labels)}, not the book's {BOOK_ACCURACY}",
              file=report)
        return EXIT_FAILED
    n = args.size
    # np.resize repeats the set cyclically: uint8 only, the float32 copy is what is being avoided
    images, labels, expected = (replicate(a, n) for a in (test_images, test_labels, reference))
    names = args.variants or [v for v in VARIANTS if n <= TEST_SET_SIZE or v not in NEEDS_FLOAT_COPY]
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
        exact_peak = peak_rss_reset()
        pred, seconds = measure(run, sync, min(args.repeats, 3) if name == "book_loop" else args.repeats)
        ms = np.asarray(seconds) * 1e3
        median = float(np.median(ms))
        rows.append({"variant": name, "ms_median": median, "ms_p25": float(np.percentile(ms, 25)),
                     "ms_p75": float(np.percentile(ms, 75)), "ms_min": float(ms.min()), "repeats": len(ms),
                     "images_per_s": n / median * 1e3, "ratio_to_numpy_plain": None,
                     "ratio_to_bound": median / bound_ms, "accuracy": accuracy(pred, labels),
                     "peak_rss_mb": peak_rss_mb(), "peak_rss_is_per_variant": exact_peak})
        differ = int(np.count_nonzero(np.asarray(pred) != expected))
        if differ:
            wrong.append(f"{name}: {differ} of {n} predictions differ from the reference")
    plain = next((r["ms_median"] for r in rows if r["variant"] == "numpy_plain"), None)
    for r in rows:
        r["ratio_to_numpy_plain"] = r["ms_median"] / plain if plain else None

    info = machine()
    print(f"{n} images ({images.nbytes / 2**20:.0f} MB uint8) from {source}", file=report)
    print(f"{info['cpu']}, {info['cores']} cores; sgemm peak {peak:.0f} GFLOP/s ({library}); compute bound for "
          f"{n} images: {FLOP_PER_IMAGE * n / 1e9:.2f} GFLOP / peak = {bound_ms:.2f} ms", file=report)
    print(f"{'variant':22} {'ms median':>10} {'IQR':>15} {'images/s':>12} {'x plain':>8} {'x bound':>8} "
          f"{'accuracy':>9} {'peak RSS':>9}", file=report)
    for r in rows:
        ratio = f"{r['ratio_to_numpy_plain']:.2f}" if r["ratio_to_numpy_plain"] else "-"
        print(f"{r['variant']:22} {r['ms_median']:>10.2f} {r['ms_p25']:>7.2f}-{r['ms_p75']:<7.2f} "
              f"{r['images_per_s']:>12.3g} {ratio:>8} {r['ratio_to_bound']:>8.2f} {r['accuracy']:>9.4f} "
              f"{r['peak_rss_mb']:>6.0f} MB", file=report)
    if args.json:
        write_json(args.json, {"size": n, "bound_ms": bound_ms, "sgemm_gflops": peak, "sgemm_library": library,
                               "dataset_mb": images.nbytes / 2**20, "machine": info, "rows": rows})
    for line in wrong:
        print(f"FAILED: {line}", file=report)
    return EXIT_FAILED if wrong else EXIT_OK


if __name__ == "__main__":
    run_main(main)
