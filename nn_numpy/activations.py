"""The chapter's activation functions and softmax, numerically sound.

Every function is elementwise or works over the last axis, so it takes a single
sample ``(D,)`` and a batch ``(N, D)`` alike and keeps the input's float dtype.
"""

import numpy as np


def step_function(x):
    """Heaviside step: ``1 where x > 0, else 0`` as int64, same shape as ``x``.

    At x = 0 this returns 0. That is what the book's code (``x > 0``) and its
    formula (h(x) = 0 for x <= 0) give, and what ``torch.heaviside(x, 0)`` gives.
    The reader's notes this project started from write the formula with ``x >= 0 -> 1``;
    we follow the book. NaN is not > 0, so it maps to 0. ``np.int`` is gone
    from NumPy, hence the explicit ``np.int64``.
    """
    return (np.asarray(x) > 0).astype(np.int64)


def sigmoid(x):
    """Logistic function ``1 / (1 + exp(-x))`` without overflow.

    ``exp(-|x|)`` lies in (0, 1], so nothing overflows and no warning is raised for
    any finite input; small results keep their relative precision
    (sigmoid(-100) = 3.7e-44, not 0). ``-inf -> 0``, ``+inf -> 1``, ``NaN -> NaN``.
    """
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1, e) / (1 + e)


def relu(x):
    """``max(0, x)`` elementwise; NaN stays NaN."""
    return np.maximum(0, x)


def identity_function(x):
    """The regression output layer: returns ``x`` unchanged."""
    return x


def softmax(x):
    """Softmax over the last axis: ``(..., K) -> (..., K)``, each row summing to 1.

    Subtracting the row max keeps ``exp`` at or below 1, so huge logits cannot
    overflow, and ``-inf`` entries give exactly 0. A row whose max is ±inf or NaN
    has no defined softmax and gives NaN, as ``torch.softmax`` does.
    """
    x = np.asarray(x)
    # x - max can overflow to -inf only where the exact result would underflow to 0 anyway
    with np.errstate(invalid="ignore", over="ignore"):
        e = np.exp(x - np.max(x, axis=-1, keepdims=True))
    return e / np.sum(e, axis=-1, keepdims=True)


def softmax_naive(x):
    """Softmax without the max shift, as first written in the chapter. Do not use.

    It shows the overflow the chapter warns about: ``softmax_naive([1010, 1000, 990])``
    is ``[nan, nan, nan]`` (``exp(1010)`` is inf, and inf / inf is NaN).
    Unlike the reader's notes, it normalises each row, not the whole batch.
    """
    e = np.exp(np.asarray(x))
    return e / np.sum(e, axis=-1, keepdims=True)
