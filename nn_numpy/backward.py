"""Backpropagation through the MNIST network by hand, as the book's chapter 5 does it.

The loss is cross-entropy from the logits, ``logsumexp(a3) - a3[t]``, as ``F.cross_entropy`` computes it:
the book's ``-log(y + 1e-7)`` would bend the gradient away from ``(y - t) / N``. Dtypes follow ``x``.
"""

import numpy as np

from .errors import InputShapeError
from .network import LAYER_NAMES, check_input, check_network, forward_layers


def affine_backward(dout, x, W):
    """Backward of ``out = x @ W + b``: ``dout (N, out), x (N, in), W (in, out) -> dx, dW, db``."""
    return dout @ W.T, x.T @ dout, dout.sum(axis=0)


def sigmoid_backward(dout, z):
    """Backward of ``z = sigmoid(a)`` from its output, as the book's ``Sigmoid`` keeps ``self.out``."""
    return dout * z * (1 - z)


def check_targets(t, n_classes, n=None):
    """``t`` as an array if it is ``(n,)`` integer labels in ``[0, n_classes)`` or ``(n, n_classes)`` floats."""
    t = np.asarray(t)
    if not (t.ndim == 2 and t.shape[1] == n_classes and t.dtype.kind == "f"):
        if t.ndim != 1 or t.dtype.kind not in "iu":
            raise InputShapeError(
                f"expected labels (N,) int or one-hot (N, {n_classes}) float, got {t.shape} {t.dtype}"
            )
        if t.size and (t.min() < 0 or t.max() >= n_classes):
            raise InputShapeError(
                f"labels must lie in [0, {n_classes}), got values {t.min()}..{t.max()}"
            )
    if n is not None and len(t) != n:
        raise InputShapeError(f"{n} images for {len(t)} labels")
    return t


def one_hot(t, n_classes, dtype):
    """Labels ``(N,)`` -> ``(N, n_classes)`` of 0 and 1; a ``(N, n_classes)`` target is returned as is."""
    t = check_targets(t, n_classes)
    return t.astype(dtype) if t.ndim == 2 else np.eye(n_classes, dtype=dtype)[t]


def softmax_with_loss(a3, t):
    """``a3 (N, K) logits, t (N, K) one-hot -> (loss, y, da3)``: the mean cross-entropy, the probabilities,
    and ``da3 = (y - t) / N``, the book's ``SoftmaxWithLoss.backward`` with ``dout = 1``."""
    n = a3.dtype.type(a3.shape[0])
    shifted = a3 - a3.max(axis=1, keepdims=True)  # exp of at most 0: no overflow
    log_y = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    y = np.exp(log_y)
    return -(t * log_y).sum() / n, y, (y - t) / n


def loss_and_gradients(network, x, t):
    """``x (N, 784) float, t (N,) int or (N, 10) -> (loss, grads)``: a float, and each weight's gradient."""
    check_network(network)
    x = check_input(x, np.shape(network["W1"])[0])
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputShapeError(f"expected a batch (N, {x.shape[-1]}) with N >= 1, got {x.shape}")
    W1, W2, W3 = (np.asarray(network[k], dtype=x.dtype) for k in ("W1", "W2", "W3"))
    t = one_hot(check_targets(t, W3.shape[1], len(x)), W3.shape[1], x.dtype)
    f = forward_layers(network, x)
    loss, _, da3 = softmax_with_loss(f["a3"], t)
    dz2, dW3, db3 = affine_backward(da3, f["z2"], W3)
    da2 = sigmoid_backward(dz2, f["z2"])
    dz1, dW2, db2 = affine_backward(da2, f["z1"], W2)
    da1 = sigmoid_backward(dz1, f["z1"])
    _, dW1, db1 = affine_backward(da1, x, W1)  # no dx: the input is not learned
    return float(loss), {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}


def numerical_gradients(network, x, t, h=1e-4, at=None):
    """The book's chapter 4: ``(loss(w + h) - loss(w - h)) / 2h`` for every weight, in ``x``'s dtype.

    Two forward passes per weight (90,720 for the MNIST net): use a small float64 batch. ``at``,
    ``{name: [index, ...]}``, takes only those entries of a weight (the others are NaN).
    """
    x = np.asarray(x)
    net = {k: np.array(network[k], dtype=x.dtype) for k in LAYER_NAMES}
    t = one_hot(t, net["W3"].shape[1], x.dtype)
    loss = lambda: float(softmax_with_loss(forward_layers(net, x)["a3"], t)[0])  # noqa: E731
    at = at or {}
    grads = {k: np.full_like(w, np.nan if k in at else 0) for k, w in net.items()}
    for k, w in net.items():
        for i in at.get(k, np.ndindex(w.shape)):
            saved = w[i]
            w[i] = saved + h
            up = loss()
            w[i] = saved - h
            grads[k][i] = (up - loss()) / (2 * h)
            w[i] = saved
    return grads


def sgd_step(network, grads, lr):
    """One plain SGD step, ``W <- W - lr * dW``, as a new dict; ``network`` is left unchanged."""
    return {k: network[k] - lr * grads[k] for k in LAYER_NAMES}
