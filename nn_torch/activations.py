"""The chapter's activation functions and softmax in PyTorch, one line each.

Mirrors :mod:`nn_numpy.activations`: elementwise or over the last dimension, so a
single sample ``(D,)`` and a batch ``(N, D)`` go through alike, in the input's dtype.
"""

import torch


def step_function(x):
    """Heaviside step: ``1 where x > 0, else 0`` as int64. At x = 0 (and NaN) it is 0, as in NumPy."""
    return (x > 0).to(torch.int64)


def sigmoid(x):
    """``1 / (1 + exp(-x))``; torch's kernel neither overflows nor warns, ``±inf -> 1, 0``, NaN stays NaN."""
    return torch.sigmoid(x)


def relu(x):
    """``max(0, x)`` elementwise; NaN stays NaN, as with ``np.maximum``."""
    return torch.relu(x)


def identity_function(x):
    """The regression output layer: returns ``x`` unchanged."""
    return x


def softmax(x):
    """Softmax over the last dimension: ``(..., K) -> (..., K)``.

    ``torch.softmax`` subtracts the row max itself, as the NumPy version does by hand,
    so huge logits cannot overflow and ``-inf`` gives exactly 0.
    """
    return torch.softmax(x, dim=-1)
