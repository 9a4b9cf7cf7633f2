"""Accuracy over a dataset, the book's two ways: one image at a time, and in batches."""

import numpy as np

from .network import check_input, predict


def normalize(images, dtype=np.float32):
    """uint8 pixels ``(..., 784)`` -> ``dtype`` in [0, 1], as the book's ``load_mnist(normalize=True)``.

    Divides by 255 (not multiplies by 1/255) so that every value is the correctly
    rounded quotient, which torch's ``x.to(float32) / 255`` gives bit for bit.
    """
    return np.asarray(images).astype(dtype) / dtype(255)


def _as_float(batch, dtype):
    return normalize(batch, dtype) if batch.dtype == np.uint8 else batch


def predict_labels_loop(network, images, dtype=np.float32):
    """The book's first script: ``predict`` on one image at a time. ``(N, 784) -> (N,) int64``."""
    return np.array([np.argmax(predict(network, _as_float(img, dtype))) for img in images], dtype=np.int64)


def predict_labels(network, images, batch_size=None, dtype=np.float32):
    """Batched argmax predictions: ``(N, 784) uint8 or float -> (N,) int64``.

    uint8 images are normalised batch by batch, so memory stays at the uint8
    dataset plus one batch. ``batch_size=None`` runs all N at once.
    """
    images = np.asarray(images)
    n = len(images)
    if batch_size is None:
        batch_size = max(n, 1)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    out = np.empty(n, dtype=np.int64)
    for i in range(0, n, batch_size):
        batch = check_input(_as_float(images[i:i + batch_size], dtype), np.shape(network["W1"])[0])
        out[i:i + batch_size] = np.argmax(predict(network, batch), axis=-1)
    return out


def accuracy(predictions, labels):
    """Fraction of ``predictions`` equal to ``labels``, both ``(N,)`` integer."""
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape:
        raise ValueError(f"{predictions.shape[0]} predictions for {labels.shape[0]} labels")
    return float(np.mean(predictions == labels)) if len(labels) else float("nan")
