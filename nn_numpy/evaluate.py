"""Accuracy over a dataset: the book's one-image loop, and a batched path that streams chunks.

Both take uint8 pixels or float32/float64 images and compute in one dtype, by the rule :mod:`nn_torch`
follows too: the ``dtype`` given, else the images' own float dtype, float32 for uint8 pixels.
"""

import numpy as np

from .errors import InputShapeError
from .network import LAYER_NAMES, check_network, predict

CHUNK = 2048  # images per chunk: their float32 pixels (6 MB) and activations stay in cache


def dtype_name(dtype):
    """A dtype's name however it is spelt: ``np.float64``, ``"float64"``, ``torch.float64``, ``float``."""
    text = str(dtype)
    try:
        return text.removeprefix("torch.") if text.startswith("torch.") else np.dtype(dtype).name
    except TypeError:
        return text


def float_dtype(dtype):
    """``"float32"`` or ``"float64"``, however spelt; ValueError for any other dtype."""
    if dtype_name(dtype) not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64, got {dtype_name(dtype)}")
    return dtype_name(dtype)


def normalize(images, dtype=np.float32):
    """uint8 pixels -> ``dtype`` in [0, 1], divided by 255: each value the correctly rounded quotient."""
    images, dtype = np.asarray(images), float_dtype(dtype)
    if images.dtype != np.uint8:
        raise InputShapeError(f"expected uint8 pixels, got {images.dtype}")
    return images.astype(dtype) / np.dtype(dtype).type(255)


# The checks take names and shapes, not arrays, so that nn_torch refuses with the same words.
def check_images(dtype_name, shape, n_features):
    if dtype_name not in ("uint8", "float32", "float64"):
        raise InputShapeError(f"expected uint8 pixels or float32/float64 images, got {dtype_name}")
    if len(shape) != 2 or shape[1] != n_features:
        raise InputShapeError(f"expected images of shape (N, {n_features}), got {tuple(shape)}")


def check_batch_size(batch_size):
    if batch_size is not None and (
        isinstance(batch_size, (bool, np.bool_))
        or not isinstance(batch_size, (int, np.integer))
        or batch_size < 1
    ):
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def compute_dtype(dtype, image_dtype_name):
    if dtype is None:
        return "float32" if image_dtype_name == "uint8" else image_dtype_name
    return float_dtype(dtype)


def _checked(network, images, batch_size, dtype):
    check_network(network)
    images = np.asarray(images)
    check_images(images.dtype.name, images.shape, np.shape(network["W1"])[0])
    check_batch_size(batch_size)
    return images, np.dtype(compute_dtype(dtype, images.dtype.name))


def predict_labels_loop(network, images, dtype=None):
    """The book's first script: ``predict`` on one image at a time. ``(N, 784) -> (N,) int64``."""
    images, work = _checked(network, images, None, dtype)
    as_float = (
        (lambda x: normalize(x, work))
        if images.dtype == np.uint8
        else (lambda x: x.astype(work, copy=False))
    )
    return np.array([np.argmax(predict(network, as_float(img))) for img in images], dtype=np.int64)


def _sigmoid_(a):
    """``1 / (1 + exp(-a))`` in place; exp may overflow to inf (result 0): call under errstate."""
    np.negative(a, out=a)
    np.exp(a, out=a)
    a += 1
    np.divide(1, a, out=a)


def _logits_into(params, x, a1, a2, a3):
    """``x (M, 784) -> a3 (M, 10)`` through the buffers ``a1 (M, 50), a2 (M, 100), a3``."""
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

    Chunks of ``batch_size`` images (default :data:`CHUNK`) are cast into one reused buffer, so memory stays
    at the dataset plus one chunk. Labels are the argmax of the logits: softmax is monotonic.
    """
    images, work = _checked(network, images, batch_size, dtype)
    n, n_in = images.shape
    chunk = max(min(batch_size or CHUNK, n), 1)
    params = [np.asarray(network[k], dtype=work) for k in LAYER_NAMES]
    if images.dtype == np.uint8:
        # x @ (W1 / 255), so the pixels need only a cast: equal to (x / 255) @ W1 in real arithmetic,
        # not bitwise (23,411 of the test set's 50,000 first products differ); W1's rounding errs
        # as x's would, so a1 keeps its proven bound (docs/exact.md)
        params[0] = params[0] / work.type(255)
    x = np.empty((chunk, n_in), work) if images.dtype != work else None
    a1, a2, a3 = (np.empty((chunk, W.shape[1]), work) for W in params[::2])
    out = np.empty(n, dtype=np.int64)
    with np.errstate(over="ignore"):
        for i in range(0, n, chunk):
            batch = images[i : i + chunk]
            m = len(batch)
            if x is not None:
                np.copyto(x[:m], batch)
                batch = x[:m]
            np.argmax(
                _logits_into(params, batch, a1[:m], a2[:m], a3[:m]), axis=1, out=out[i : i + m]
            )
    return out


def accuracy(predictions, labels):
    """Fraction of ``predictions`` equal to ``labels``, both ``(N,)``; NaN for N = 0."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.ndim != 1 or labels.ndim != 1:
        raise InputShapeError(
            f"expected predictions and labels of shape (N,), "
            f"got {predictions.shape} and {labels.shape}"
        )
    if len(predictions) != len(labels):
        raise InputShapeError(f"{len(predictions)} predictions for {len(labels)} labels")
    return float(np.mean(predictions == labels)) if len(labels) else float("nan")
