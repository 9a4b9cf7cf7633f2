"""Measure the arithmetic a device's matmul really does, and check the network's batch invariance.

    dlfs-ch3 precision                         # the CPU, float32
    dlfs-ch3 precision --device all --json     # every device torch sees

Per device and per setting a user can switch (the default, allow_tf32, float32_matmul_precision
high and medium, autocast to bfloat16 and float16), torch's matmul is probed with inputs whose exact
results are known (nn_torch.precision): the input and accumulator bits it keeps, its exponent range,
the format they imply, and what the flags in force allow; a line says where they disagree. Then the
chapter's network, NumPy and torch, computes the test images alone and in batches of 10 to 10,000:
bitwise equal, different but every element within its proven bound of the exact result (a change of
summation order), or outside it (a bug). Exit codes: 0 as the flags say and within the bounds,
1 a disagreement or a result outside its bound, 2 bad input or environment.
"""

import json

import numpy as np

from .cli import EXIT_FAILED, EXIT_OK, ArgumentParser, add_data_args, load_inputs

SIZES = (1, 10, 100, 1000, 10000)


def parse_args(argv):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cpu", help="cpu|cuda|cuda:N|mps|all (default cpu)")
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the tables"
    )
    return add_data_args(p).parse_args(argv)


def devices(spec):
    import torch

    from nn_torch.device import resolve_device

    if spec != "all":
        return [resolve_device(spec)]
    found = [torch.device("cpu")]
    found += [torch.device("cuda", i) for i in range(torch.cuda.device_count())]
    return found + ([torch.device("mps")] if torch.backends.mps.is_available() else [])


def invariance(weights, images, device, dtype, truth, bound):
    """``{backend: {"verdict", "max_ulps", "ulps"}}`` for the chapter's network on ``images``."""
    import torch

    from nn_numpy import normalize, predict
    from nn_torch import MnistNet, full_precision
    from nn_torch.precision import batch_invariance

    model = MnistNet.from_numpy(weights, dtype).to(device)
    x = normalize(images, dtype)
    forwards = {"torch": lambda v: model(torch.from_numpy(v).to(device))}
    if device.type == "cpu":
        forwards = {"numpy": lambda v: predict(weights, v), **forwards}
    out = {}
    with torch.inference_mode(), full_precision():
        for backend, forward in forwards.items():
            result = batch_invariance(forward, x, SIZES)
            out[backend] = {
                "verdict": verdict(result, truth, bound),
                "max_ulps": result.max_ulps,
                "ulps": result.ulps,
            }
    return out


def verdict(result, truth, bound):
    """A :class:`~nn_torch.precision.BatchInvariance` in words, against the exact ``truth`` and its
    proven ``bound`` (both ``(N, k)``): bitwise, a change of summation order, or a bug."""
    if result.bitwise:
        return "bitwise equal"
    within = all(
        (np.abs(v.astype(np.float64) - truth) <= bound).all()
        for v in (result.alone, *result.batched.values())
    )
    if within:
        return "different bits, every element within its proven bound: a change of summation order"
    return "outside the proven bound: a bug"


def main(argv=None):
    args = parse_args(argv)
    import torch

    from nn_numpy import exact
    from nn_numpy.data.fetch import resolve_data_dir
    from nn_torch.precision import device_table

    chosen = devices(args.device)
    weights, images, _, source = load_inputs(args)
    images = images[: max(SIZES)]
    cache = None if args.images else resolve_data_dir(args.data_dir)  # as parity-report caches it
    truth = exact.reference(weights, images, cache_dir=cache)
    bound = exact.bounds(weights, images, truth, args.dtype)["y"]
    dtype = getattr(torch, args.dtype)
    report, ok = {"source": source, "images": len(images), "dtype": args.dtype, "devices": {}}, True
    for device in chosen:
        rows = device_table(device, dtype)
        checks = invariance(weights, images, device, args.dtype, truth["y"][0], bound)
        ok = ok and not any(r.get("disagree") for r in rows)
        ok = ok and not any(c["verdict"].startswith("outside") for c in checks.values())
        report["devices"][str(device)] = {
            "settings": [
                {**r, "measured": None if r["measured"] is None else vars(r["measured"])}
                for r in rows
            ],
            "batch_invariance": checks,
        }
        if not args.json:
            print_device(device, rows, checks, args.dtype)
    if args.json:
        print(json.dumps(report))
    return EXIT_OK if ok else EXIT_FAILED


def print_device(device, rows, checks, dtype):
    print(
        f"device {device}, {dtype} matmul inputs (bits: stored fraction bits kept; docs/precision.md)"
    )
    print(
        f"{'setting':24} {'flags: precision, allow_tf32':29} {'flags allow':11} {'measured':13} "
        f"{'input':>5} {'accum':>5}  range"
    )
    for r in rows:
        flags = r.get("flags") or {}
        flag_text = f"{flags.get('float32_matmul_precision')}, {flags.get('allow_tf32')}"
        m = r["measured"]
        if m is None:
            print(f"{r['setting']:24} not on this device: {r['error']}")
            continue
        print(
            f"{r['setting']:24} {flag_text:29} {r['claim']:11} {str(m):13} {m.input_bits:>5} "
            f"{m.accumulator_bits:>5}  {'float32' if m.wide_range else 'float16'}"
        )
        if r["disagree"]:
            print(
                f"  DISAGREE: the flags allow {r['claim']} at the narrowest, the matmul ran as {m}"
            )
    sizes = ", ".join(str(s) for s in SIZES[1:])
    print(f"batch invariance: {max(SIZES)} test images alone and in batches of {sizes}")
    for backend, c in checks.items():
        print(
            f"  {backend:6} {c['verdict']}"
            + (f" (up to {c['max_ulps']} ulps)" if c["max_ulps"] else "")
        )
