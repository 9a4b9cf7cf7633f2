"""Batched evaluation on any device: uint8 images go over as uint8 and are normalised there.

The fast path runs :class:`~nn_torch.network.MnistNet`'s forward by hand, chunk by chunk,
through buffers it reuses: ``addmm`` (the bias added inside the matmul, as ``nn.Linear``
does), ``sigmoid_`` in place, and labels from the argmax of the logits. Softmax is monotonic,
so ``argmax(softmax(a3)) == argmax(a3)`` (unless two probabilities round to the same float,
which needs a top-2 margin below 1e-7; MNIST's smallest is 1.2e-3); only
:func:`predict_proba` computes it. Every result is bitwise what ``model(x)`` gives, with the
model in the dtype computed in (see :func:`predict_labels` for the dtype rule).
"""

import contextlib
import copy
import os
import sys

import numpy as np
import torch

from nn_numpy.errors import InputShapeError
from nn_numpy.evaluate import check_batch_size, check_images, compute_dtype, dtype_name, float_dtype

from .device import DeviceError, check_dtype, full_precision, resolve_device
from .network import MnistNet


def normalize(pixels, dtype=torch.float32):
    """uint8 pixels (a tensor, or an array) -> ``dtype`` in [0, 1] on their device, bit for bit
    :func:`nn_numpy.normalize`, with its refusals.

    The divisor is a tensor on the same device: CUDA turns division by the Python number 255 into
    multiplication by its reciprocal, which misses the correctly rounded quotient for some pixels.
    """
    dtype = getattr(torch, float_dtype(dtype))
    pixels = (
        pixels
        if torch.is_tensor(pixels)
        else torch.from_numpy(np.require(pixels, requirements="W"))
    )
    if pixels.dtype != torch.uint8:
        raise InputShapeError(f"expected uint8 pixels, got {dtype_name(pixels.dtype)}")
    return pixels.to(dtype) / torch.full((), 255, dtype=dtype, device=pixels.device)


def _checked(model, images, batch_size, dtype):
    """``(images, the torch dtype to compute in)`` after :mod:`nn_numpy.evaluate`'s checks, with its words.

    ``images`` is a NumPy array, or a tensor already on some device.
    """
    images = images if torch.is_tensor(images) else np.asarray(images)
    name = dtype_name(images.dtype)
    check_images(name, images.shape, model.fc1.in_features)
    check_batch_size(batch_size)
    return images, getattr(torch, compute_dtype(dtype, name))


# Images per chunk on CPU when no batch size is given: the chunk's float32 pixels (6 MB) and
# activations stay in cache from normalising to argmax, and memory stays at one chunk whatever N
# (0.7x the time of one 10,000 chunk on a quiet 2-core EPYC; on shared cores see
# docs/benchmarks.md). On a GPU, or for a model with its own forward, None means all N at
# once, halved on out-of-memory.
CPU_CHUNK = 2048
# Batches up to this size run on one CPU thread: their matmuls gain nothing from threads, and spinning
# OpenMP threads collapse beside other work (a per-image loop took 24.5 s beside a torch process, not
# 1.55 s). Larger ones use at most the cores this process may run on.
ONE_THREAD_UP_TO = 256


@contextlib.contextmanager
def cpu_threads(batch_size):
    """torch's CPU threads for batches of ``batch_size`` inside the block; the count is put back."""
    before = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    torch.set_num_threads(1 if batch_size <= ONE_THREAD_UP_TO else max(1, min(before, cores or 1)))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _fused(model):
    # The fused path reproduces MnistNet.forward; a subclass or a patched forward runs its own.
    return type(model) is MnistNet and "forward" not in vars(model)


def _logits_into(params, x, a1, a2, a3):
    """``x (M, 784) -> a3 (M, 10)`` through the buffers ``a1 (M, 50), a2 (M, 100), a3``, bitwise ``model.logits(x)``.

    ``addmm(b, x, W.T)`` is what ``nn.Linear`` runs; ``sigmoid_`` is ``torch.sigmoid`` in place.
    """
    w1, b1, w2, b2, w3, b3 = params
    torch.addmm(b1, x, w1.T, out=a1).sigmoid_()
    torch.addmm(b2, a1, w2.T, out=a2).sigmoid_()
    return torch.addmm(b3, a2, w3.T, out=a3)


def _batch_to_device(images, i, j, device):
    """Rows ``i:j`` as a tensor on ``device``, uint8 staying uint8."""
    if torch.is_tensor(images):
        return images[i:j].to(device)
    # from_numpy shares memory; it wants a writable array, and datasets read from buffers are not
    return torch.from_numpy(np.require(images[i:j], requirements=("C", "W"))).to(device)


def _evaluate(model, images, batch_size, device, dtype, probabilities):
    """``(N,)`` labels or ``(N, 10)`` probabilities as a NumPy array, batch by batch, halving on OOM."""
    images, dtype = _checked(model, images, batch_size, dtype)
    n = len(images)
    device = resolve_device(device)
    check_dtype(device, dtype)
    out = (
        np.empty((n, model.fc3.out_features), dtype=dtype_name(dtype))
        if probabilities
        else np.empty(n, dtype=np.int64)
    )
    fused = _fused(model)
    batch_size = max(min(batch_size or (CPU_CHUNK if fused and device.type == "cpu" else n), n), 1)
    if fused:
        params = [
            p.detach().to(device, dtype)
            for fc in (model.fc1, model.fc2, model.fc3)
            for p in (fc.weight, fc.bias)
        ]
    elif (model.fc1.weight.device, model.fc1.weight.dtype) != (device, dtype):
        model = copy.deepcopy(model).to(
            device=device, dtype=dtype
        )  # leave the caller's model as it was
    # results gather on the device and come back in one copy, so batches queue without a sync each
    result = torch.from_numpy(out)
    result = result if device.type == "cpu" else torch.empty_like(result, device=device)
    divisor = torch.full((), 255, dtype=dtype, device=device)
    said_oom, i, buffers = False, 0, None
    threads = cpu_threads(batch_size) if device.type == "cpu" else contextlib.nullcontext()
    with torch.inference_mode(), full_precision(), threads:
        while i < n:
            j = min(i + batch_size, n)
            try:
                if buffers is None or len(buffers[0]) < j - i:
                    buffers = [
                        torch.empty((batch_size, fc.in_features), dtype=dtype, device=device)
                        for fc in (model.fc1, model.fc2, model.fc3)
                    ]
                    buffers.append(
                        torch.empty(
                            (batch_size, model.fc3.out_features), dtype=dtype, device=device
                        )
                    )
                x = _batch_to_device(images, i, j, device)
                if (
                    x.dtype == torch.uint8
                ):  # as normalize(x, dtype), bit for bit, into a reused buffer
                    x = torch.div(x, divisor, out=buffers[0][: j - i])
                else:
                    x = x.to(dtype)
                if fused:
                    y = _logits_into(params, x, *(b[: j - i] for b in buffers[1:]))
                    y = torch.softmax(y, dim=-1) if probabilities else y
                else:
                    y = model(x)
                result[i:j] = y if probabilities else y.argmax(dim=-1)
            except torch.cuda.OutOfMemoryError:
                # the retry runs after this block, once the traceback no longer holds the failed batch
                if batch_size == 1:
                    raise DeviceError(
                        f"{device} is out of memory even for a batch of one image"
                    ) from None
                batch_size, buffers = batch_size // 2, None
                if not said_oom:
                    print(
                        f"{device} out of memory: halving the batch to {batch_size} images and going on",
                        file=sys.stderr,
                    )
                    said_oom = True
                continue
            i = j
    if device.type != "cpu":
        out[...] = result.cpu().numpy()
    return out


def predict_proba(model, images, batch_size=None, device="auto", dtype=None):
    """Probabilities ``(N, 784) uint8 or float -> (N, 10)`` NumPy array of the dtype computed in.

    ``model`` is a :class:`~nn_torch.network.MnistNet`; it is copied, not changed, when it
    sits on another device or dtype. ``images``, ``batch_size`` and ``dtype`` as in :func:`predict_labels`.
    """
    return _evaluate(model, images, batch_size, device, dtype, probabilities=True)


def predict_labels(model, images, batch_size=None, device="auto", dtype=None):
    """Batched argmax predictions ``(N, 784) uint8 or float -> (N,) int64``, as :func:`nn_numpy.predict_labels`.

    ``images`` are uint8 pixels or float32/float64, a NumPy array or a tensor. The dtype rule is
    NumPy's: ``dtype=None`` computes in the images' own float dtype (float32 for uint8 pixels),
    ``torch.float32`` or ``torch.float64`` in that dtype, casting each batch on the device, whatever
    the model's own dtype. uint8 batches are sent to ``device`` as uint8 and normalised there, so host
    memory stays at the uint8 dataset; a tensor already on ``device`` is evaluated where it is.
    ``batch_size=None`` means chunks of :data:`CPU_CHUNK` on CPU and all N at once on a GPU
    (or for a subclass with its own forward, which runs unfused).
    Runs under ``torch.inference_mode()`` and :func:`~nn_torch.device.full_precision`. A CUDA out-of-memory error halves the
    batch and goes on, saying so once on stderr.
    """
    return _evaluate(model, images, batch_size, device, dtype, probabilities=False)
