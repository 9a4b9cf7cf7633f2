"""Batched evaluation on any device: uint8 images go over as uint8 and are normalised there."""

import copy
import sys

import numpy as np
import torch

from nn_numpy.errors import DeviceError, InputShapeError

from .device import check_dtype, full_precision, resolve_device


def normalize(pixels, dtype=torch.float32):
    """uint8 pixels ``(..., 784)`` -> ``dtype`` in [0, 1] on their device, bit for bit :func:`nn_numpy.normalize`.

    The divisor is a tensor on the same device, not the Python number 255: CUDA turns
    division by a CPU scalar into multiplication by its reciprocal, which misses the
    correctly rounded quotient in the last bit for some pixel values.
    """
    return pixels.to(dtype) / torch.full((), 255, dtype=dtype, device=pixels.device)


def _check_images(images, n_features):
    images = np.asarray(images)
    if images.dtype not in (np.uint8, np.float32, np.float64):
        raise InputShapeError(f"expected uint8 pixels or float32/float64 images, got {images.dtype}")
    if images.ndim != 2 or images.shape[1] != n_features:
        raise InputShapeError(f"expected images of shape (N, {n_features}), got {images.shape}")
    return images


def _to_device(batch, device, dtype):
    # from_numpy shares memory; it wants a writable array, and datasets read from buffers are not
    batch = torch.from_numpy(np.require(batch, requirements=("C", "W"))).to(device)
    return normalize(batch, dtype) if batch.dtype == torch.uint8 else batch.to(dtype)


def _evaluate(model, images, batch_size, device, dtype, out, take):
    images = _check_images(images, model.fc1.in_features)
    n = len(images)
    batch_size = max(n, 1) if batch_size is None else batch_size
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    device = resolve_device(device)
    check_dtype(device, dtype)
    weight = model.fc1.weight
    if (weight.device, weight.dtype) != (device, dtype):
        model = copy.deepcopy(model).to(device=device, dtype=dtype)  # leave the caller's model as it was
    said_oom, i = False, 0
    with torch.inference_mode(), full_precision():
        while i < n:
            try:
                out[i:i + batch_size] = take(model(_to_device(images[i:i + batch_size], device, dtype))).cpu().numpy()
            except torch.cuda.OutOfMemoryError:
                # the retry runs after this block, once the traceback no longer holds the failed batch
                if batch_size == 1:
                    raise DeviceError(f"{device} is out of memory even for a batch of one image") from None
                batch_size //= 2
                if not said_oom:
                    print(f"{device} out of memory: halving the batch to {batch_size} images and going on",
                          file=sys.stderr)
                    said_oom = True
                continue
            i += batch_size
    return out


def predict_proba(model, images, batch_size=None, device="auto", dtype=torch.float32):
    """Probabilities ``(N, 784) uint8 or float -> (N, 10)`` NumPy array of ``dtype``.

    ``model`` is a :class:`~nn_torch.network.MnistNet`; it is copied, not changed, when it
    sits on another device or dtype. ``batch_size=None`` runs all N at once.
    """
    out = np.empty((len(images), model.fc3.out_features), dtype=np.float64 if dtype == torch.float64 else np.float32)
    return _evaluate(model, images, batch_size, device, dtype, out, lambda y: y)


def predict_labels(model, images, batch_size=None, device="auto", dtype=torch.float32):
    """Batched argmax predictions ``(N, 784) uint8 or float -> (N,) int64``, as :func:`nn_numpy.predict_labels`.

    uint8 batches are sent to ``device`` as uint8 and normalised there, so host memory
    stays at the uint8 dataset. Runs under ``torch.inference_mode()`` and
    :func:`~nn_torch.device.full_precision`. A CUDA out-of-memory error halves the
    batch and goes on, saying so once on stderr.
    """
    out = np.empty(len(images), dtype=np.int64)
    return _evaluate(model, images, batch_size, device, dtype, out, lambda y: y.argmax(dim=-1))
