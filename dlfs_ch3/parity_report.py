"""NumPy against torch, layer by layer, and with --exact each side against the exact result.

    dlfs-ch3 parity-report                          # MNIST test set, float32, auto device
    dlfs-ch3 parity-report --exact                  # each side's error against its proven bound
    dlfs-ch3 parity-report --exact --emulate tf32   # what reduced precision looks like: exit 1, named
    dlfs-ch3 parity-report --device cuda --exact --tf32 --json

Per layer (a1 z1 a2 z2 a3 y): the greatest NumPy-torch difference and the elements beyond the parity
tolerance, mismatched predictions and the smallest top-2 margin. ``--exact`` adds, per side and layer,
the greatest error against the exact result, that error over the proven deterministic bound and over
the probabilistic one, and the ulp distance from the correctly rounded exact value (docs/exact.md).
``--tf32`` lets CUDA run float32 matmuls in TF32; ``--emulate tf32|bf16`` rounds the torch side's
matmul inputs to 10 or 7 mantissa bits on any device. Exit codes: 0 parity holds and every element
lies within its bound, 1 it does not (the layer and the ratio named), 2 bad input or environment.
"""

import json

import numpy as np

from nn_numpy.errors import NNError
from nn_numpy.network import LAYER_OUTPUTS

from .cli import EXIT_FAILED, EXIT_OK, ArgumentParser, add_data_args, load_inputs, positive_int

FORMATS = {"tf32": "TF32's own bound", "bf16": "bfloat16's own bound"}
NAMES = {"tf32": "TF32", "bf16": "bfloat16"}


def parse_args(argv):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--device", default="auto", help="torch device: auto|cpu|cuda|cuda:N|mps (default auto)"
    )
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument(
        "--batch-size",
        type=positive_int,
        help="images per batch on both sides (default: all at once)",
    )
    p.add_argument(
        "--exact",
        action="store_true",
        help="each side against the exact result and its proven bounds",
    )
    p.add_argument(
        "--tf32",
        action="store_true",
        help="let CUDA run float32 matmuls in TF32 (NVIDIA GPUs from "
        "Ampere on; on CPU nothing changes)",
    )
    p.add_argument(
        "--emulate",
        choices=["tf32", "bf16"],
        help="round the torch side's matmul inputs to TF32's 10 or "
        "bfloat16's 7 mantissa bits, on any device, to see what the report says of reduced precision",
    )
    p.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the tables"
    )
    args = add_data_args(p).parse_args(argv)
    if args.emulate and args.dtype != "float32":
        p.error(
            f"argument --emulate: {args.emulate} rounds float32 matmul inputs; it needs --dtype float32"
        )
    return args


def top2_margin(y):
    """``(N, 10)`` probabilities -> (smallest top-1 minus top-2 gap, the image it belongs to)."""
    top2 = np.sort(y, axis=-1)[:, -2:]
    gaps = top2[:, 1] - top2[:, 0]
    i = int(np.argmin(gaps))
    return float(gaps[i]), i


def run_both(weights, images, device, dtype, batch_size, tf32=False, emulate=None, keep=False):
    """Both sides batch by batch: ``(differences {layer: ...}, predictions {side: (N,)}, smallest
    top-2 margins {side: (gap, image)}, the matmul precision in force, and with ``keep`` every
    intermediate {side: {layer: (N, k)}}``, else None. Only ``keep`` (for ``--exact``) holds all N:
    otherwise memory follows the batch size. NumPy normalises on the host; torch gets uint8 on the
    device and normalises there."""
    import torch

    from nn_numpy import forward_layers, normalize
    from nn_torch import MnistNet, full_precision, matmul_precision
    from nn_torch import normalize as normalize_there
    from nn_torch.device import tf32_allowed
    from nn_torch.parity import TOLERANCE, differences
    from nn_torch.parity import emulate as rounded

    model = MnistNet.from_numpy(weights, dtype).to(device)
    model = rounded(model, emulate) if emulate else model
    diffs, preds, margins = {}, {"numpy": [], "torch": []}, {}
    kept = {"numpy": {k: [] for k in LAYER_OUTPUTS}, "torch": {k: [] for k in LAYER_OUTPUTS}}
    with torch.inference_mode(), tf32_allowed() if tf32 else full_precision():
        for i in range(0, len(images), batch_size):
            batch = images[i : i + batch_size]
            ours = model.forward_layers(
                normalize_there(torch.from_numpy(batch.copy()).to(device), dtype)
            )
            sides = {
                "numpy": forward_layers(weights, normalize(batch, dtype)),
                "torch": {k: v.cpu().numpy() for k, v in ours.items()},
            }
            for k in LAYER_OUTPUTS:
                d = differences(sides["numpy"][k], sides["torch"][k], **TOLERANCE[dtype])
                diffs[k] = merged(diffs.get(k), d, i)
            for side, layers in sides.items():
                preds[side].append(layers["y"].argmax(-1))
                gap, at = top2_margin(layers["y"])
                margins[side] = min(margins.get(side, (np.inf, -1)), (gap, at + i))
                for k in LAYER_OUTPUTS if keep else ():
                    kept[side][k].append(layers[k])
        precision = matmul_precision()
    if keep:
        kept = {s: {k: np.concatenate(v) for k, v in ls.items()} for s, ls in kept.items()}
    preds = {s: np.concatenate(p) for s, p in preds.items()}
    return diffs, preds, margins, precision, kept if keep else None


def merged(total, d, offset):
    """Two batches' :func:`~nn_torch.parity.differences` as one; ``d``'s rows start at ``offset``."""
    d = {
        **d,
        "max_abs_index": [d["max_abs_index"][0] + offset, *d["max_abs_index"][1:]],
        "max_rel_index": [d["max_rel_index"][0] + offset, *d["max_rel_index"][1:]],
    }
    if total is None:
        return d
    out = {
        "mismatched": total["mismatched"] + d["mismatched"],
        "total": total["total"] + d["total"],
    }
    for key in ("max_abs", "max_rel"):
        winner = d if d[key] > total[key] else total
        out[key], out[f"{key}_index"] = winner[key], winner[f"{key}_index"]
    return out


def against_exact(weights, images, sides, dtype, cache_dir):
    """``(figures {side: {layer: six figures}}, closer {layer: side}, verdict)`` against the exact result."""
    from nn_numpy import exact

    with np.errstate(all="ignore"):  # overflow is judged below, in one line
        truth = exact.reference(weights, images, cache_dir=cache_dir)
        det, prob = (exact.bounds(weights, images, truth, dtype, p) for p in (False, True))
    for k in LAYER_OUTPUTS:  # no verdict rests on a bound that says nothing
        if not (np.isfinite(truth[k][0]).all() and np.isfinite(det[k]).all()):
            raise NNError(
                f"the weights overflow: {k}'s exact value or its proven bound is not finite in "
                "float64, so no computation of these weights can be judged against it"
            )
    figures = {
        side: {k: exact.compare(layers[k], truth[k], det[k], prob[k]) for k in LAYER_OUTPUTS}
        for side, layers in sides.items()
    }
    closer = {
        k: min(figures, key=lambda s: figures[s][k]["max_abs_error"])
        if len({figures[s][k]["max_abs_error"] for s in figures}) > 1
        else "tie"
        for k in LAYER_OUTPUTS
    }
    beyond, precision = [], {}
    for side, layers in sides.items():
        worst = max(LAYER_OUTPUTS, key=lambda k: figures[side][k]["max_error_over_bound"])
        ratio = figures[side][worst]["max_error_over_bound"]  # compare() gives no NaN: NaN is inf
        precision[side] = dtype if ratio <= 1 else None
        if (
            not ratio <= 1
        ):  # which precision explains a1, the first matmul: its error fits its bound
            a1_error = np.abs((layers["a1"] - truth["a1"][0]) - truth["a1"][1])
            fits = [
                f
                for f in ("tf32", "bf16")
                if dtype == "float32"
                and figures[side]["a1"]["max_error_over_bound"] > 1
                and (a1_error <= exact.rounded_inputs_bound(weights, images, f)).all()
            ]
            precision[side] = fits[0] if fits else "unexplained"
            why = (
                f"and a1 fits {FORMATS[fits[0]]}: its matmuls ran in reduced precision ({NAMES[fits[0]]})"
                if fits
                else "and no lower precision explains a1's error: a bug"
            )
            far = f"{ratio:.3g}x its {dtype} bound" if np.isfinite(ratio) else "NaN or inf"
            beyond.append(f"{side} {worst} is {far}, {why}")
    return figures, closer, {"ok": not beyond, "precision": precision, "beyond": beyond}


def main(argv=None):
    args = parse_args(argv)
    from nn_numpy import accuracy
    from nn_numpy.data.fetch import resolve_data_dir
    from nn_torch.device import check_dtype, resolve_device
    from nn_torch.parity import TOLERANCE

    device = resolve_device(args.device)  # before loading anything: a wrong device fails fast
    check_dtype(device, args.dtype)
    weights, images, labels, source = load_inputs(args)
    layers, preds, margins, precision, kept = run_both(
        weights,
        images,
        device,
        args.dtype,
        args.batch_size or len(images),
        args.tf32,
        args.emulate,
        keep=args.exact,
    )
    tol = TOLERANCE[args.dtype]
    pred_np, pred_torch = preds["numpy"], preds["torch"]
    mismatched = int((pred_np != pred_torch).sum())
    ok = parity = mismatched == 0 and all(d["mismatched"] == 0 for d in layers.values())
    report = {
        "ok": ok,
        "source": source,
        "images": len(images),
        "device": str(device),
        "dtype": args.dtype,
        "matmul_precision": precision,
        "tf32": args.tf32,
        "emulate": args.emulate,
        "tolerance": tol,
        "layers": layers,
        "mismatched_predictions": mismatched,
        "accuracy": {"numpy": accuracy(pred_np, labels), "torch": accuracy(pred_torch, labels)},
        "min_top2_margin": {
            "numpy": margins["numpy"][0],
            "numpy_image": margins["numpy"][1],
            "torch": margins["torch"][0],
            "torch_image": margins["torch"][1],
        },
    }
    if args.exact:
        cache = None if args.images else resolve_data_dir(args.data_dir)
        report["exact"], report["closer"], verdict = against_exact(
            weights, images, kept, args.dtype, cache
        )
        report["exact_verdict"] = verdict
        report["ok"] = ok = ok and verdict["ok"]
    if args.json:
        print(json.dumps(report))
        return EXIT_OK if ok else EXIT_FAILED
    print(f"{len(images)} images from {source}")
    print(
        f"device {device}, dtype {args.dtype}, float32 matmul precision {precision}"
        + (f", torch's matmul inputs rounded to {args.emulate}" if args.emulate else "")
    )
    if args.tf32 and (device.type != "cuda" or args.dtype != "float32"):
        print("note: TF32 applies to float32 matmuls on CUDA GPUs only: here it changes nothing")
    print(f"NumPy vs torch: |torch - numpy| <= {tol['atol']:g} + {tol['rtol']:g} * |numpy|")
    print(f"{'layer':6} {'max abs diff':>13} {'max rel diff':>13} {'beyond tol':>11}")
    for k, d in layers.items():
        print(f"{k:6} {d['max_abs']:>13.3g} {d['max_rel']:>13.3g} {d['mismatched']:>11}")
    print(
        f"accuracy: numpy {report['accuracy']['numpy']:.4f}, torch {report['accuracy']['torch']:.4f}"
    )
    print(
        f"smallest top-2 margin: numpy {margins['numpy'][0]:.3g} (image {margins['numpy'][1]}), "
        f"torch {margins['torch'][0]:.3g} (image {margins['torch'][1]})"
    )
    print(
        f"parity: OK, all {len(images)} predictions identical"
        if parity
        else f"parity: FAILED, {mismatched} of {len(images)} predictions differ, "
        f"{sum(d['mismatched'] > 0 for d in layers.values())} layer(s) beyond tolerance"
    )
    if args.exact:
        print(
            "\nagainst the exact result: the greatest error, over its proven bound and over the sqrt(n) u bound,"
            "\nand the distance in ulps from the correctly rounded exact value (docs/exact.md)"
        )
        print(
            f"{'layer':6} {'side':6} {'max error':>10} {'/ bound':>8} {'/ prob.':>8} {'ulp med':>8} "
            f"{'p99':>6} {'max':>9}  closer"
        )
        for k in LAYER_OUTPUTS:
            for side in ("numpy", "torch"):
                f = report["exact"][side][k]
                print(
                    f"{k:6} {side:6} {f['max_abs_error']:>10.3g} {f['max_error_over_bound']:>8.2g} "
                    f"{f['max_error_over_probabilistic_bound']:>8.2g} {f['ulp_median']:>8g} {f['ulp_p99']:>6g} "
                    f"{f['ulp_max']:>9}  {report['closer'][k] if side == 'numpy' else ''}"
                )
        print(
            "exact: OK, every element of both sides lies within its proven bound"
            if verdict["ok"]
            else "exact: FAILED: " + "; ".join(verdict["beyond"])
        )
    return EXIT_OK if ok else EXIT_FAILED
