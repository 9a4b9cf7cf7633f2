"""Backward parity: NumPy's hand-written gradients against ``torch.autograd`` on the same network.

``nn_torch.parity.compare`` compares one forward op; :func:`helper_test_backward` below
builds on its :func:`assert_parity` to run the forward and the backward in one call: the
probabilities, the loss, then every gradient, each stage named on failure. The torch side is
``nn_torch.backward``, whose gradients come in the book's layout (``dW1 = fc1.weight.grad.T``).

Tolerances, measured on CPU over the four input cases below (real, random, exact, extreme):

- loss, relative: float32 1e-6 (measured 2.6e-7), float64 1e-14 (measured 1.2e-15).
- each gradient, ``|torch - numpy| <= tol * max|numpy|`` of that weight: float32 1e-4
  (measured 1.3e-6 on the MNIST images, 1.7e-6 on exact pixels, 1.2e-5 on dW1 for pixels
  of ±1e4, which multiply the error of the layer above), float64 1e-13 (measured 1.2e-15).
  The bound scales with the largest entry, not each entry: every gradient entry is a sum
  over the batch, and its rounding error follows the size of the terms, not of the sum
  (entries that nearly cancel keep the terms' absolute error). A gradient off by 0.1%
  gives 1e-3.
- weights after 5 SGD steps, absolute: float32 1e-6 (measured 6.0e-8, one ulp of the
  larger weights), float64 1e-14 (measured 2.2e-16).
- probabilities: the suite's forward ``TOLERANCE``.

The SGD steps: lr 0.1, batch 100, mini-batches drawn with seed 0 from the test set,
``torch.optim.SGD`` through ``nn_torch.backward.train_step`` against ``nn_numpy.backward.sgd_step``.
"""

import numpy as np
import pytest
import torch

import nn_torch.backward
from nn_numpy import LAYER_NAMES, forward_layers, normalize
from nn_numpy.backward import loss_and_gradients, sgd_step
from nn_torch import MnistNet
from nn_torch.device import full_precision
from nn_torch.parity import TOLERANCE, assert_parity

DTYPES = ["float32", "float64"]
LOSS_RTOL = {"float32": 1e-6, "float64": 1e-14}
GRADIENT_TOL_OF_MAX = {"float32": 1e-4, "float64": 1e-13}
SGD_WEIGHT_ATOL = {"float32": 1e-6, "float64": 1e-14}


def helper_test_backward(name, weights, x, t, device, dtype):
    """Forward and backward of the MNIST net with cross-entropy on both sides; assert every stage.

    ``x (N, 784)`` and ``t (N,)`` are NumPy arrays; each side gets its own copy.
    """
    net = {k: weights[k].astype(dtype) for k in LAYER_NAMES}
    probs = forward_layers(net, x.copy())["y"]
    loss, grads = loss_and_gradients(net, x.copy(), t.copy())

    model = MnistNet.from_numpy(weights, getattr(torch, dtype)).to(device)
    x, t = torch.from_numpy(x.copy()).to(device), torch.from_numpy(t.copy()).to(device)
    with torch.no_grad(), full_precision():
        torch_probs = model(x)
    torch_loss, torch_grads = nn_torch.backward.loss_and_gradients(model, x, t)

    where = f"{name} ({dtype} on {device})"
    assert_parity(f"{where} forward: probabilities y", probs, torch_probs, **TOLERANCE[dtype])
    assert_parity(
        f"{where} forward: loss",
        np.array(loss, dtype=dtype),
        np.array(torch_loss, dtype=dtype),
        rtol=LOSS_RTOL[dtype],
        atol=0,
    )
    for k in LAYER_NAMES:
        atol = GRADIENT_TOL_OF_MAX[dtype] * float(np.abs(grads[k]).max())
        assert_parity(f"{where} backward: d{k}", grads[k], torch_grads[k], rtol=0, atol=atol)


def cases(test_set, dtype):
    """``{name: (x (N, 784), t (N,))}``: real images, seeded random ones, exact values and extremes."""
    images, labels = test_set
    dtype = np.dtype(dtype).type
    rng = np.random.default_rng(0)
    rows = lambda *values: np.repeat(np.array(values, dtype=dtype)[:, None], 784, axis=1)  # noqa: E731
    return {
        "100 MNIST test images": (normalize(images[:100], dtype), labels[:100].astype(np.int64)),
        "16 random images": (rng.random((16, 784)).astype(dtype), rng.integers(0, 10, 16)),
        "exact pixels -1, 0, 1": (rows(-1, 0, 1), np.array([0, 1, 2])),
        "extreme pixels ±88, ±1e4": (rows(88, -88, 1e4, -1e4), np.array([3, 4, 5, 6])),
    }


@pytest.mark.parametrize("dtype", DTYPES)
def test_gradients_match_autograd(weights, test_set, device, dtype):
    for name, (x, t) in cases(test_set, dtype).items():
        helper_test_backward(name, weights, x, t, device, dtype)


@pytest.mark.slow  # about a second: torch.optim's first use
@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_steps_end_with_matching_weights(weights, test_set, device, dtype):
    images, labels = test_set
    np_dtype, lr = np.dtype(dtype).type, 0.1
    net = {k: weights[k].astype(np_dtype) for k in LAYER_NAMES}
    model = MnistNet.from_numpy(weights, getattr(torch, dtype)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    rng = np.random.default_rng(0)
    for step in range(1, 6):
        idx = rng.choice(len(images), 100, replace=False)
        x, t = normalize(images[idx], np_dtype), labels[idx].astype(np.int64)
        loss, grads = loss_and_gradients(net, x, t)
        net = sgd_step(net, grads, lr)
        torch_loss = nn_torch.backward.train_step(
            model, optimizer, torch.from_numpy(x).to(device), torch.from_numpy(t).to(device)
        )
        assert_parity(
            f"step {step} loss ({dtype} on {device})",
            np.array(loss, dtype=dtype),
            np.array(torch_loss, dtype=dtype),
            rtol=LOSS_RTOL[dtype],
            atol=0,
        )
    stepped = model.to_numpy()
    for k in LAYER_NAMES:
        assert_parity(
            f"{k} after 5 SGD steps ({dtype} on {device})",
            net[k],
            stepped[k],
            rtol=0,
            atol=SGD_WEIGHT_ATOL[dtype],
        )
        assert not np.array_equal(net[k], weights[k]), (
            f"{k} did not move: the test would prove nothing"
        )
