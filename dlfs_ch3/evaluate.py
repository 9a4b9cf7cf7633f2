"""The main job: the chapter's network on MNIST's test set, NumPy and torch side by side.

    dlfs-ch3 evaluate                      # --backend auto: both if torch is installed, else NumPy
    dlfs-ch3 evaluate --backend numpy --loop
    dlfs-ch3 evaluate --batch-size 100 --device cuda --json

Exit codes: 0 success, 1 the backends disagree, 2 bad input or environment.
"""

import importlib.util
import json
import sys
import time

from nn_numpy.errors import NNError

from .cli import (
    EXIT_FAILED,
    EXIT_OK,
    ArgumentParser,
    add_data_args,
    load_inputs,
    positive_int,
    torch_problem,
)


def parse_args(argv):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--backend",
        choices=["auto", "numpy", "torch", "both"],
        default="auto",
        help="auto (default): numpy and torch side by side if torch is installed, else numpy alone",
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--loop", action="store_true", help="one image at a time, as the book's first script"
    )
    mode.add_argument(
        "--batch-size",
        type=positive_int,
        help="images per batch (default: each backend's own cache-sized chunks)",
    )
    p.add_argument(
        "--device",
        default="auto",
        help="torch device: auto|cpu|cuda|cuda:N|mps (default auto); "
        "--backend numpy runs on the CPU and takes only auto or cpu",
    )
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return add_data_args(p).parse_args(argv)


def run_numpy(weights, images, args, device):
    from nn_numpy import predict_labels, predict_labels_loop

    def run(x):
        if args.loop:
            return predict_labels_loop(weights, x, dtype=args.dtype)
        return predict_labels(weights, x, batch_size=args.batch_size, dtype=args.dtype)

    run(images[: args.batch_size or 1])  # warm-up: BLAS threads start on first use
    start = time.perf_counter()
    return run(images), time.perf_counter() - start, "cpu"


def run_torch(weights, images, args, device):
    from nn_torch import MnistNet, predict_labels

    model = MnistNet.from_numpy(weights, args.dtype).to(device)
    batch_size = 1 if args.loop else args.batch_size
    predict_labels(
        model, images[: batch_size or 1], batch_size=batch_size, device=device, dtype=args.dtype
    )
    start = time.perf_counter()
    labels = predict_labels(model, images, batch_size=batch_size, device=device, dtype=args.dtype)
    return labels, time.perf_counter() - start, str(device)


def choose_backends(args):
    """``(backends, device, problem)``: the backends to run, the torch device, why torch cannot run."""
    problem = None if args.backend == "numpy" else torch_problem()
    backends = {
        "numpy": ["numpy"],
        "torch": ["torch"],
        "both": ["numpy", "torch"],
        "auto": ["numpy"] if problem else ["numpy", "torch"],
    }[args.backend]
    if "torch" in backends and problem:
        raise NNError(f"--backend {args.backend} needs PyTorch: {problem}")
    if args.backend == "auto" and problem and importlib.util.find_spec("torch") is not None:
        print(f"note: evaluating with NumPy alone: {problem}", file=sys.stderr)
    device = "cpu"
    if "torch" in backends:
        from nn_torch.device import check_dtype, resolve_device

        device = resolve_device(args.device)
        check_dtype(device, args.dtype)
    elif args.device not in ("auto", "cpu"):
        raise NNError(
            f"--device {args.device} applies to the torch backend; --backend numpy runs on the CPU"
        )
    return backends, device, problem


def main(argv=None):
    args = parse_args(argv)
    needs_missing_torch = args.backend in ("torch", "both") and torch_problem(try_import=False)
    if args.device not in ("auto", "cpu") or needs_missing_torch:  # said before any data is loaded
        backends, device, problem = choose_backends(args)
        weights, images, labels, source = load_inputs(args)
    else:  # torch takes seconds to import: a bad file is said first
        weights, images, labels, source = load_inputs(args)
        backends, device, problem = choose_backends(args)
    from nn_numpy import accuracy

    results, preds = [], {}
    for name in backends:
        time.sleep(
            0.2 * (name != backends[0])
        )  # OpenBLAS threads spin after NumPy and would slow torch 2-4x
        preds[name], seconds, ran_on = {"numpy": run_numpy, "torch": run_torch}[name](
            weights, images, args, device
        )
        results.append(
            {
                "backend": name,
                "device": ran_on,
                "dtype": args.dtype,
                "mode": "loop" if args.loop else "batch",
                "batch_size": 1 if args.loop else args.batch_size,
                "accuracy": accuracy(preds[name], labels),
                "seconds": seconds,
            }
        )
    parity = None
    if len(preds) == 2:
        differ = int((preds["numpy"] != preds["torch"]).sum())
        parity = {"ok": differ == 0, "mismatched_predictions": differ}

    if args.json:
        print(
            json.dumps(
                {"source": source, "images": len(images), "results": results, "parity": parity}
            )
        )
    else:
        if args.backend == "auto" and problem and importlib.util.find_spec("torch") is None:
            print("torch is not installed: numpy only (pip install 'dlfs-ch3[torch]' for both)")
        print(f"{len(images)} images from {source}")
        print(
            f"{'backend':8} {'device':8} {'dtype':8} {'mode':6} {'batch':>6} {'accuracy':>9} {'time':>10}"
        )
        for r in results:
            print(
                f"{r['backend']:8} {r['device']:8} {r['dtype']:8} {r['mode']:6} {r['batch_size'] or 'auto':>6} "
                f"{r['accuracy']:>9.4f} {r['seconds'] * 1e3:>8.1f} ms"
            )
        if parity:
            print(
                "parity: OK, all predictions identical"
                if parity["ok"]
                else f"parity: FAILED, {parity['mismatched_predictions']} of {len(images)} predictions differ"
            )
    return EXIT_OK if parity is None or parity["ok"] else EXIT_FAILED
