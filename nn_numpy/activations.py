"""The chapter's activation functions and softmax, numerically sound.

Each works elementwise or over the last axis, so ``(D,)`` and ``(N, D)`` go through alike.
"""

import numpy as np


def step_function(x):
    """``1 where x > 0, else 0`` as int64: 0 at x = 0, as the book's code and formula give."""
    return (np.asarray(x) > 0).astype(np.int64)  # np.int is gone from NumPy


def sigmoid(x):
    """``1 / (1 + exp(-x))``; ``exp(-|x|)`` never overflows, so no warning for any input."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1, e) / (1 + e)


def relu(x):
    return np.maximum(0, x)


def identity_function(x):
    return x


def softmax(x):
    """Softmax over the last axis, each row summing to 1; the row max is subtracted first."""
    x = np.asarray(x)
    with np.errstate(
        invalid="ignore", over="ignore"
    ):  # rows with ±inf or NaN give NaN, as in torch
        e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def softmax_naive(x):
    """The chapter's first softmax, without the max shift: ``[1010, 1000, 990]`` gives NaN. Do not use."""
    e = np.exp(np.asarray(x))
    return e / np.sum(e, axis=-1, keepdims=True)
