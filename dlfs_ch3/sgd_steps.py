"""A few steps of plain SGD from the book's weights: NumPy's hand-written backward against torch autograd.

    dlfs-ch3 sgd-steps                      # 5 steps, batch 100, lr 0.1, float32
    dlfs-ch3 sgd-steps --steps 20 --dtype float64

Both sides start from the same weights and take the same seeded mini-batches. Each step
prints the mini-batch loss before the step and the accuracy on the whole set after it; the
end prints the greatest |NumPy - torch| over all weights. The mini-batches come from the
test set, the only split at hand: the steps show the gradients agree, they do not train.

Exit codes: 0 the weights still match, 1 they diverged beyond the tolerance, 2 bad input.
"""

from nn_numpy.errors import NNError

from .cli import (
    EXIT_FAILED,
    EXIT_OK,
    FLOAT32_MAX,
    ArgumentParser,
    add_data_args,
    load_inputs,
    non_negative_int,
    positive_float,
    positive_int,
)

# Greatest |W_numpy - W_torch| allowed after the steps. Measured after 5 steps (lr 0.1,
# batch 100, seed 0): 6.0e-8 in float32 (one ulp of the larger weights), 2.2e-16 in float64;
# after 20 steps 1.2e-7 and 2.2e-16.
WEIGHT_TOLERANCE = {"float32": 1e-6, "float64": 1e-14}


def parse_args(argv):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=positive_int, default=5, help="SGD steps (default 5)")
    p.add_argument(
        "--batch-size", type=positive_int, default=100, help="images per mini-batch (default 100)"
    )
    p.add_argument(
        "--lr", type=positive_float, default=0.1, help="learning rate (default 0.1, the book's)"
    )
    p.add_argument(
        "--seed", type=non_negative_int, default=0, help="seed of the mini-batch draw (default 0)"
    )
    p.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    p.add_argument(
        "--device", default="auto", help="torch device: auto|cpu|cuda|cuda:N|mps (default auto)"
    )
    args = add_data_args(p).parse_args(argv)
    if args.dtype == "float32" and args.lr > FLOAT32_MAX:  # torch cannot even take the step
        p.error(
            f"argument --lr: expected at most {FLOAT32_MAX:.4g} (float32's largest) with --dtype float32, "
            f"got {args.lr:g}"
        )
    return args


def main(argv=None):
    args = parse_args(argv)
    import numpy as np
    import torch

    from nn_numpy import LAYER_NAMES, accuracy, normalize, predict_labels
    from nn_numpy.backward import loss_and_gradients, sgd_step
    from nn_torch.backward import train_step
    from nn_torch.device import check_dtype, resolve_device
    from nn_torch.evaluate import predict_labels as torch_predict_labels
    from nn_torch.network import MnistNet

    dtype, torch_dtype = np.dtype(args.dtype).type, getattr(torch, args.dtype)
    device = resolve_device(args.device)  # before loading anything: a wrong device fails fast
    check_dtype(device, torch_dtype)
    weights, images, labels, source = load_inputs(args)
    if args.batch_size > len(images):
        raise NNError(f"--batch-size {args.batch_size} is larger than the {len(images)} images")
    labels = labels.astype(np.int64)

    net = {k: weights[k].astype(dtype) for k in LAYER_NAMES}
    model = MnistNet.from_numpy(weights, dtype=torch_dtype).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    rng = np.random.default_rng(args.seed)

    print(
        f"{args.steps} SGD steps, batch {args.batch_size}, lr {args.lr}, {args.dtype}, torch on {device}; "
        f"{len(images)} images from {source}"
    )
    print(f"{'step':>4} {'loss numpy':>12} {'loss torch':>12} {'acc numpy':>10} {'acc torch':>10}")
    for step in range(1, args.steps + 1):
        idx = rng.choice(len(images), args.batch_size, replace=False)
        x, t = normalize(images[idx], dtype), labels[idx]

        loss, grads = loss_and_gradients(net, x, t)
        net = sgd_step(net, grads, args.lr)
        torch_loss = train_step(
            model, optimizer, torch.from_numpy(x).to(device), torch.from_numpy(t).to(device)
        )

        acc = accuracy(predict_labels(net, images, dtype=dtype), labels)
        torch_acc = accuracy(
            torch_predict_labels(model, images, device=device, dtype=torch_dtype), labels
        )
        print(f"{step:>4} {loss:>12.8f} {torch_loss:>12.8f} {acc:>10.4f} {torch_acc:>10.4f}")

    after = model.to_numpy()
    diffs = {k: float(np.abs(net[k] - after[k]).max()) for k in LAYER_NAMES}
    worst = max(diffs, key=diffs.get)
    tolerance = WEIGHT_TOLERANCE[args.dtype]
    ok = diffs[worst] <= tolerance
    print(
        f"max |W_numpy - W_torch| = {diffs[worst]:.2e} (in {worst}), tolerance {tolerance:.0e}: "
        + ("OK, the weights still match" if ok else "FAILED, the frameworks diverged")
    )
    return EXIT_OK if ok else EXIT_FAILED
