"""Accuracy over a dataset: the book's one-image loop, and a fast batched path that streams chunks.

Both take uint8 pixels or float32/float64 images. The dtype they compute in follows one rule,
the same in :mod:`nn_torch`: ``dtype=None`` means the images' own float dtype (float32 for
uint8 pixels); a dtype given means that dtype, the images cast to it chunk by chunk.
"""

import numpy as np

from .data.errors import InputShapeError
from .data.mnist import normalize
from .network import LAYER_NAMES, predict

# Images per chunk when no batch size is given: a chunk's float32 pixels (6 MB) and activations
# stay in cache from the cast to argmax, and memory stays at one chunk whatever N. Measured on a
# quiet 2-core EPYC: 1,024-2,048 took 0.8x the time of one 10,000 chunk. With another job on the
# second core each BLAS call waits a scheduler tick for its thread, and small chunks lose
# (docs/benchmarks.md): pass batch_size=len(images) there.
CHUNK = 2048
IMAGE_DTYPES = ("uint8", "float32", "float64")


# The checks below take names and shapes, not arrays, so that nn_torch refuses with the same words.
def check_images(dtype_name, shape, n_features):
    """Refuse images that are not ``(N, n_features)`` of uint8, float32 or float64, in one line."""
    if dtype_name not in IMAGE_DTYPES:
        raise InputShapeError(f"expected uint8 pixels or float32/float64 images, got {dtype_name}")
    if len(shape) != 2 or shape[1] != n_features:
        raise InputShapeError(f"expected images of shape (N, {n_features}), got {tuple(shape)}")


def check_batch_size(batch_size):
    """Refuse a ``batch_size`` that is not ``None`` or a positive integer (``True`` is not one)."""
    if batch_size is not None and (isinstance(batch_size, (bool, np.bool_))
                                   or not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def compute_dtype(dtype_name, image_dtype_name):
    """The dtype rule, by name: the dtype to compute in, given the ``dtype`` argument and the images'.

    ``None`` -> the images' own float dtype, ``"float32"`` for uint8 pixels; ``"float32"`` or
    ``"float64"`` -> that dtype; anything else is refused.
    """
    if dtype_name is None:
        return "float32" if image_dtype_name == "uint8" else image_dtype_name
    if dtype_name not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype_name}")
    return dtype_name


def dtype_name(dtype):
    """A dtype's name however it is spelt, so both sides take the same ones: ``np.float32``,
    ``"float32"``, ``torch.float32`` -> ``"float32"``; ``float`` -> ``"float64"``."""
    text = str(dtype)
    if text.startswith("torch."):
        return text.removeprefix("torch.")
    try:
        return np.dtype(dtype).name
    except TypeError:
        return text


def _as_float(x, dtype):
    """``x`` in ``dtype``: uint8 pixels divided by 255, float images cast (not copied if already in it)."""
    return normalize(x, dtype.type) if x.dtype == np.uint8 else x.astype(dtype, copy=False)


def _checked(network, images, batch_size, dtype):
    """``(images as an array, the dtype to compute in)`` after every check, or a one-line error."""
    images = np.asarray(images)
    check_images(images.dtype.name, images.shape, np.shape(network["W1"])[0])
    check_batch_size(batch_size)
    return images, np.dtype(compute_dtype(None if dtype is None else dtype_name(dtype), images.dtype.name))


def predict_labels_loop(network, images, dtype=None):
    """The book's first script: ``predict`` on one image at a time. ``(N, 784) -> (N,) int64``.

    Computes in ``dtype``, or by default the images' own float dtype (float32 for uint8 pixels).
    """
    images, work = _checked(network, images, None, dtype)
    return np.array([np.argmax(predict(network, _as_float(img, work))) for img in images], dtype=np.int64)


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


def predict_labels(network, images, batch_size=None, dtype=None):
    """Batched argmax predictions: ``(N, 784) uint8 or float -> (N,) int64``.

    Computes in ``dtype``, or by default the images' own float dtype (float32 for uint8
    pixels). Images of another dtype are cast chunk by chunk into one reused buffer, so
    memory stays at the dataset plus one chunk; for uint8 the 1/255 of :func:`normalize` is
    folded into ``W1``. ``batch_size`` images go through at a time; ``None`` picks a cache-sized
    chunk. Labels are the argmax of the logits: softmax is monotonic, so
    ``argmax(softmax(a3)) == argmax(a3)`` (unless two probabilities round to the same
    float, which needs a top-2 margin below 1e-7; MNIST's smallest is 1.2e-3).
    """
    images, work = _checked(network, images, batch_size, dtype)
    n, n_in = images.shape
    chunk = max(min(batch_size or CHUNK, n), 1)
    params = [np.asarray(network[k], dtype=work) for k in LAYER_NAMES]
    if images.dtype == np.uint8:
        # (x / 255) @ W1 == x @ (W1 / 255): 39,200 divides once instead of 784 per image,
        # and the pixels need only a cast (half the time of a cast and divide)
        params[0] = params[0] / work.type(255)
    x = np.empty((chunk, n_in), work) if images.dtype != work else None
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
    """Fraction of ``predictions`` equal to ``labels``, both ``(N,)`` integer; NaN for N = 0."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.ndim != 1 or labels.ndim != 1:
        raise InputShapeError(f"expected predictions and labels of shape (N,), "
                              f"got {predictions.shape} and {labels.shape}")
    if len(predictions) != len(labels):
        raise InputShapeError(f"{len(predictions)} predictions for {len(labels)} labels")
    return float(np.mean(predictions == labels)) if len(labels) else float("nan")
