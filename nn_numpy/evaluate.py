"""Accuracy over a dataset: the book's one-image loop, and a fast batched path that streams chunks."""

import numpy as np

from .data.errors import InputShapeError
from .data.mnist import normalize
from .network import FLOAT_DTYPES, LAYER_NAMES, check_input, predict

# Images per chunk when no batch size is given: a chunk's float32 pixels (6 MB) and activations
# stay in cache from the cast to argmax, and memory stays at one chunk whatever N. Measured on a
# quiet 2-core EPYC: 1,024-2,048 took 0.8x the time of one 10,000 chunk. With another job on the
# second core each BLAS call waits a scheduler tick for its thread, and small chunks lose
# (docs/benchmarks.md): pass batch_size=len(images) there.
CHUNK = 2048


def _as_float(batch, dtype):
    return normalize(batch, dtype) if batch.dtype == np.uint8 else batch


def predict_labels_loop(network, images, dtype=np.float32):
    """The book's first script: ``predict`` on one image at a time. ``(N, 784) -> (N,) int64``."""
    return np.array([np.argmax(predict(network, _as_float(img, dtype))) for img in images], dtype=np.int64)


def _sigmoid_(a):
    """``1 / (1 + exp(-a))`` in place on ``a (M, K)``: four passes over one buffer, no temporaries.

    Not the public :func:`nn_numpy.sigmoid`, which never overflows: here ``exp(-a)`` may
    overflow to inf for a < -88 (float32) and give 0 where the true value is below 1e-38,
    correct in absolute terms and the formula torch's kernel uses. Call under
    ``np.errstate(over="ignore")``.
    """
    np.negative(a, out=a)
    np.exp(a, out=a)
    a += 1
    np.divide(1, a, out=a)


def _logits_into(params, x, a1, a2, a3):
    """``x (M, 784) -> a3 (M, 10)``, the logits, written through the buffers ``a1 (M, 50), a2 (M, 100), a3``."""
    W1, b1, W2, b2, W3, b3 = params
    np.dot(x, W1, out=a1)
    a1 += b1
    _sigmoid_(a1)
    np.dot(a1, W2, out=a2)
    a2 += b2
    _sigmoid_(a2)
    np.dot(a2, W3, out=a3)
    a3 += b3
    return a3


def predict_labels(network, images, batch_size=None, dtype=np.float32):
    """Batched argmax predictions: ``(N, 784) uint8 or float -> (N,) int64``.

    uint8 images are cast chunk by chunk into one reused buffer, with the 1/255 of
    :func:`normalize` folded into ``W1``, so memory stays at the uint8 dataset plus one
    chunk; float images run in their own dtype. ``batch_size`` images go through at a time; ``None`` picks
    a cache-sized chunk. Labels are the argmax of the logits: softmax is monotonic, so
    ``argmax(softmax(a3)) == argmax(a3)`` (unless two probabilities round to the same
    float, which needs a top-2 margin below 1e-7; MNIST's smallest is 1.2e-3).
    """
    images = np.asarray(images)
    n_in = np.shape(network["W1"])[0]
    if images.dtype != np.uint8:
        check_input(images, n_in)
    if images.ndim != 2 or images.shape[1] != n_in:
        raise InputShapeError(f"expected images of shape (N, {n_in}), got {images.shape}")
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    work = np.dtype(dtype) if images.dtype == np.uint8 else images.dtype
    if work not in FLOAT_DTYPES:
        raise ValueError(f"dtype must be float32 or float64, got {work}")
    n = len(images)
    chunk = max(min(batch_size or CHUNK, n), 1)
    params = [np.asarray(network[k], dtype=work) for k in LAYER_NAMES]
    if images.dtype == np.uint8:
        # (x / 255) @ W1 == x @ (W1 / 255): 39,200 divides once instead of 784 per image,
        # and the pixels need only a cast (half the time of a cast and divide)
        params[0] = params[0] / work.type(255)
    x = np.empty((chunk, n_in), work) if images.dtype == np.uint8 else None
    a1, a2, a3 = (np.empty((chunk, W.shape[1]), work) for W in params[::2])
    out = np.empty(n, dtype=np.int64)
    with np.errstate(over="ignore"):
        for i in range(0, n, chunk):
            batch = images[i:i + chunk]
            m = len(batch)
            if x is not None:
                np.copyto(x[:m], batch)
                batch = x[:m]
            np.argmax(_logits_into(params, batch, a1[:m], a2[:m], a3[:m]), axis=1, out=out[i:i + m])
    return out


def accuracy(predictions, labels):
    """Fraction of ``predictions`` equal to ``labels``, both ``(N,)`` integer."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape:
        raise ValueError(f"{predictions.shape[0]} predictions for {labels.shape[0]} labels")
    return float(np.mean(predictions == labels)) if len(labels) else float("nan")
