#!/usr/bin/env python
"""Layer-by-layer parity of the PyTorch mirror against the NumPy reference on a dataset.

    python scripts/parity_report.py                       # MNIST test set, float32, auto device
    python scripts/parity_report.py --device cuda --dtype float64 --json
    python scripts/parity_report.py --device cuda --tf32    # what TF32 changes, layer by layer

Per layer (a1 z1 a2 z2 a3 y): the greatest absolute and relative difference and the
elements beyond the parity suite's tolerance; then mismatched predictions, the smallest
top-2 probability margin (how close any image is to flipping), device, dtype and matmul
precision. ``--tf32`` runs torch's float32 matmuls with TF32 allowed instead of at full
precision, to measure how far it moves each layer. TF32 is a format of NVIDIA GPUs (Ampere and
later): on CPU the option is accepted and reported, and the figures should not move. Exit codes: 0 parity holds, 1 it does not, 2 bad input or environment.
"""

import contextlib
import importlib.util
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]  # the packages from a clone, installed or not; `cli` beside us

from cli import EXIT_FAILED, EXIT_OK, ArgumentParser, add_data_args, load_inputs, positive_int, run_main  # noqa: E402
from nn_numpy.data.errors import NNError  # noqa: E402
from nn_numpy.network import LAYER_OUTPUTS  # noqa: E402


def parse_args(argv):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", help="torch device: auto|cpu|cuda|cuda:N|mps (default auto)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument("--batch-size", type=positive_int, help="images per batch on both sides (default: all at once)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    p.add_argument("--tf32", action="store_true",
                   help="allow TF32 in float32 matmuls (set_float32_matmul_precision('high'), "
                        "cuda.matmul.allow_tf32) instead of full precision, to measure its effect; "
                        "NVIDIA GPUs from Ampere on use it, CPUs do not")
    return add_data_args(p).parse_args(argv)


def top2_margin(y):
    """``(N, 10)`` probabilities -> (smallest top-1 minus top-2 gap, the image it belongs to)."""
    top2 = np.sort(y, axis=-1)[:, -2:]
    gaps = top2[:, 1] - top2[:, 0]
    i = int(np.argmin(gaps))
    return float(gaps[i]), i


@contextlib.contextmanager
def tf32_allowed():
    """float32 matmuls may use TF32 inside the block; every setting is put back afterwards."""
    import torch

    from nn_torch import full_precision

    with full_precision():  # for its restore: it saves every precision setting and puts it back
        torch.set_float32_matmul_precision("high")
        torch.backends.cuda.matmul.allow_tf32 = True
        yield


def run_both(weights, images, device, dtype, batch_size, tf32=False):
    """Every intermediate of both sides, ``{layer: (N, ..) array}`` each, and the matmul precision used.

    NumPy normalises on the host; torch gets uint8 on the device and normalises there.
    torch runs at full float32 precision, or with TF32 allowed when ``tf32``.
    """
    import torch

    from nn_numpy import forward_layers, normalize
    from nn_torch import MnistNet, full_precision, matmul_precision
    from nn_torch.evaluate import normalize as normalize_on_device

    np_dtype, torch_dtype = np.dtype(dtype).type, getattr(torch, dtype)
    model = MnistNet.from_numpy(weights, torch_dtype).to(device)
    ref, ours = {k: [] for k in LAYER_OUTPUTS}, {k: [] for k in LAYER_OUTPUTS}
    with torch.inference_mode(), (tf32_allowed() if tf32 else full_precision()):
        for i in range(0, len(images), batch_size):
            batch = images[i:i + batch_size]
            pixels = torch.from_numpy(np.require(batch, requirements=("C", "W"))).to(device)
            layers = model.forward_layers(normalize_on_device(pixels, torch_dtype))
            for k, v in forward_layers(weights, normalize(batch, np_dtype)).items():
                ref[k].append(v)
                ours[k].append(layers[k].cpu().numpy())
        precision = matmul_precision()
    return {k: np.concatenate(v) for k, v in ref.items()}, {k: np.concatenate(v) for k, v in ours.items()}, precision


def main(argv=None):
    args = parse_args(argv)
    if importlib.util.find_spec("torch") is None:
        raise NNError("parity_report needs PyTorch: pip install 'dlfs-ch3[torch]'")
    import torch

    from nn_numpy import accuracy
    from nn_torch.device import check_dtype, resolve_device
    from nn_torch.parity import TOLERANCE, differences

    device = resolve_device(args.device)  # before loading anything: a wrong device fails fast
    check_dtype(device, getattr(torch, args.dtype))
    weights, images, labels, source = load_inputs(args)
    ref, ours, precision = run_both(weights, images, device, args.dtype, args.batch_size or len(images),
                                     args.tf32)
    tol = TOLERANCE[args.dtype]
    layers = {k: differences(ref[k], ours[k], **tol) for k in LAYER_OUTPUTS}
    pred_np, pred_torch = ref["y"].argmax(-1), ours["y"].argmax(-1)
    mismatched = int((pred_np != pred_torch).sum())
    margin_np, image_np = top2_margin(ref["y"])
    margin_torch, image_torch = top2_margin(ours["y"])
    ok = mismatched == 0 and all(d["mismatched"] == 0 for d in layers.values())
    report = {
        "ok": ok, "source": source, "images": len(images), "device": str(device), "dtype": args.dtype,
        "matmul_precision": precision, "tf32": args.tf32, "tolerance": tol, "layers": layers,
        "mismatched_predictions": mismatched,
        "accuracy": {"numpy": accuracy(pred_np, labels), "torch": accuracy(pred_torch, labels)},
        "min_top2_margin": {"numpy": margin_np, "numpy_image": image_np,
                            "torch": margin_torch, "torch_image": image_torch},
    }
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{len(images)} images from {source}")
        print(f"device {device}, dtype {args.dtype}, float32 matmul precision {precision}")
        if args.tf32 and (device.type != "cuda" or args.dtype != "float32"):
            print("note: TF32 applies to float32 matmuls on CUDA GPUs only: here it changes nothing")
        print(f"tolerance |torch - numpy| <= {tol['atol']:g} + {tol['rtol']:g} * |numpy|")
        print(f"{'layer':6} {'max abs diff':>13} {'max rel diff':>13} {'beyond tol':>11}")
        for k, d in layers.items():
            print(f"{k:6} {d['max_abs']:>13.3g} {d['max_rel']:>13.3g} {d['mismatched']:>11}")
        print(f"accuracy: numpy {report['accuracy']['numpy']:.4f}, torch {report['accuracy']['torch']:.4f}")
        print(f"smallest top-2 margin: numpy {margin_np:.3g} (image {image_np}), "
              f"torch {margin_torch:.3g} (image {image_torch})")
        print(f"parity: OK, all {len(images)} predictions identical" if ok else
              f"parity: FAILED, {mismatched} of {len(images)} predictions differ, "
              f"{sum(d['mismatched'] > 0 for d in layers.values())} layer(s) beyond tolerance")
    return EXIT_OK if ok else EXIT_FAILED


if __name__ == "__main__":
    run_main(main)
