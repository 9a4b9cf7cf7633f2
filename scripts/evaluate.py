#!/usr/bin/env python
"""The main job: evaluate the chapter's network on the MNIST test set.

    python scripts/evaluate.py                     # --backend auto: both side by side if torch is installed
    python scripts/evaluate.py --backend numpy --loop
    python scripts/evaluate.py --batch-size 100 --device cuda --json

Exit codes: 0 success, 1 the backends disagree, 2 bad input or environment.
"""

import importlib.util
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]  # the packages from a clone, installed or not; `cli` beside us

from cli import EXIT_FAILED, EXIT_OK, ArgumentParser, add_data_args, load_inputs, positive_int, run_main  # noqa: E402
from nn_numpy.data.errors import NNError  # noqa: E402


def parse_args(argv):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["auto", "numpy", "torch", "both"], default="auto",
                   help="auto (default): numpy and torch side by side if torch is installed, else numpy alone")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--loop", action="store_true", help="one image at a time, as the book's first script")
    mode.add_argument("--batch-size", type=positive_int, help="images per batch (default: each backend's own cache-sized chunks)")
    p.add_argument("--device", default="auto", help="torch device: auto|cpu|cuda|cuda:N|mps (default auto); "
                   "--backend numpy runs on the CPU and takes only auto or cpu")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    return add_data_args(p).parse_args(argv)


def run_numpy(weights, images, args, device):
    import numpy as np

    from nn_numpy import predict_labels, predict_labels_loop

    dtype = np.dtype(args.dtype).type
    if args.loop:
        run = lambda x: predict_labels_loop(weights, x, dtype=dtype)  # noqa: E731
    else:
        run = lambda x: predict_labels(weights, x, batch_size=args.batch_size, dtype=dtype)  # noqa: E731
    run(images[:args.batch_size or 1])  # warm-up, as on the torch side: BLAS threads start on first use
    start = time.perf_counter()
    pred = run(images)
    return pred, time.perf_counter() - start, device


def torch_device(args):
    """The torch device asked for, checked before any work is done."""
    import torch

    from nn_torch.device import check_dtype, resolve_device

    device = resolve_device(args.device)
    check_dtype(device, getattr(torch, args.dtype))
    return device


def run_torch(weights, images, args, device):
    import torch

    from nn_torch.evaluate import predict_labels
    from nn_torch.network import MnistNet

    dtype = getattr(torch, args.dtype)
    model = MnistNet.from_numpy(weights, dtype=dtype).to(device)
    batch_size = 1 if args.loop else args.batch_size
    predict_labels(model, images[:batch_size or 1], batch_size=batch_size, device=device, dtype=dtype)  # warm-up
    start = time.perf_counter()
    pred = predict_labels(model, images, batch_size=batch_size, device=device, dtype=dtype)
    return pred, time.perf_counter() - start, str(device)


def main(argv=None):
    args = parse_args(argv)
    backends = {"numpy": ["numpy"], "torch": ["torch"], "both": ["numpy", "torch"]}.get(args.backend)
    note = None
    if backends is None:
        has_torch = importlib.util.find_spec("torch") is not None
        backends = ["numpy", "torch"] if has_torch else ["numpy"]
        if not has_torch:
            note = "torch is not installed: numpy only (pip install 'dlfs-ch3[torch]' for both)"
    elif "torch" in backends and importlib.util.find_spec("torch") is None:
        raise NNError("--backend torch needs PyTorch: pip install 'dlfs-ch3[torch]'")

    if "torch" in backends:
        device = torch_device(args)
    elif args.device not in ("auto", "cpu"):  # numpy on the CPU is true; anything else would be ignored
        raise NNError(f"--device {args.device} applies to the torch backend; --backend numpy runs on the CPU")

    from nn_numpy import accuracy

    weights, images, labels, source = load_inputs(args)
    mode = "loop" if args.loop else "batch"
    batch = 1 if args.loop else args.batch_size  # None: the backend's own cache-sized chunks
    runners = {"numpy": run_numpy, "torch": run_torch}
    results, preds = [], {}
    for name in backends:
        pred, seconds, ran_on = runners[name](weights, images, args, "cpu" if name == "numpy" else device)
        preds[name] = pred
        results.append({"backend": name, "device": ran_on, "dtype": args.dtype, "mode": mode, "batch_size": batch,
                        "accuracy": accuracy(pred, labels), "seconds": seconds})

    parity = None
    if len(preds) == 2:
        differ = int((preds["numpy"] != preds["torch"]).sum())
        parity = {"ok": differ == 0, "mismatched_predictions": differ}

    if args.json:
        print(json.dumps({"source": source, "images": len(images), "results": results, "parity": parity}))
    else:
        if note:
            print(note)
        print(f"{len(images)} images from {source}")
        print(f"{'backend':8} {'device':8} {'dtype':8} {'mode':6} {'batch':>6} {'accuracy':>9} {'time':>10}")
        for r in results:
            print(f"{r['backend']:8} {r['device']:8} {r['dtype']:8} {r['mode']:6} {r['batch_size'] or 'auto':>6} "
                  f"{r['accuracy']:>9.4f} {r['seconds'] * 1e3:>8.1f} ms")
        if parity:
            print("parity: OK, all predictions identical" if parity["ok"] else
                  f"parity: FAILED, {parity['mismatched_predictions']} of {len(images)} predictions differ")
    return EXIT_OK if parity is None or parity["ok"] else EXIT_FAILED


if __name__ == "__main__":
    run_main(main)
