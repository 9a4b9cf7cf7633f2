"""The fast evaluation paths against the reference, all 10,000 test images, every batching.

NumPy's ``predict_labels`` and torch's ``predict_labels``/``predict_proba`` stream chunks
through reused buffers, fold or fuse steps and take labels from the logits; here they must
give the reference's predictions (``nn_numpy.forward_layers``) exactly, and probabilities
within the parity tolerance, for batches of one image, odd sizes, the book's 100, and the
default chunking.
"""

import numpy as np
import pytest
import torch

import nn_numpy
import nn_torch
from nn_numpy.evaluate import _sigmoid_
from nn_torch.parity import ACTIVATION_TOLERANCE, TOLERANCE, assert_parity

DTYPES = ["float32", "float64"]
BATCH_SIZES = [1, 7, 100, 4096, None]


def assert_same_labels(stage, ours, reference):
    assert ours.shape == reference.shape and ours.dtype == np.int64, f"{stage}: {ours.dtype} {ours.shape}"
    differ = np.flatnonzero(ours != reference)
    assert differ.size == 0, f"{stage}: {differ.size} predictions differ, first at images {differ[:10].tolist()}"


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_fast_labels_are_the_references(dtype, batch_size, weights, test_set, numpy_layers):
    reference = numpy_layers(dtype)["y"].argmax(-1)
    ours = nn_numpy.predict_labels(weights, test_set[0], batch_size=batch_size, dtype=np.dtype(dtype).type)
    assert_same_labels(f"numpy uint8, batch {batch_size}, {dtype}", ours, reference)
    floats = nn_numpy.normalize(test_set[0], np.dtype(dtype).type)
    assert_same_labels(f"numpy {dtype} images, batch {batch_size}",
                       nn_numpy.predict_labels(weights, floats, batch_size=batch_size), reference)


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_fast_labels_and_probabilities_are_the_references(dtype, batch_size, device, weights, test_set,
                                                                 numpy_layers):
    model = nn_torch.MnistNet.from_numpy(weights)
    kwargs = {"batch_size": batch_size, "device": device, "dtype": getattr(torch, dtype)}
    reference = numpy_layers(dtype)["y"]
    assert_same_labels(f"torch labels, batch {batch_size}, {dtype}, {device}",
                       nn_torch.predict_labels(model, test_set[0], **kwargs), reference.argmax(-1))
    assert_parity(f"torch probabilities, batch {batch_size}, {dtype}, {device}", reference,
                  nn_torch.predict_proba(model, test_set[0], **kwargs), **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_fast_path_is_bitwise_the_modules_forward(dtype, device, weights, test_set):
    """Same batches through ``model(normalize(x))``: the fused path, uint8 or float input, changes no bit."""
    dt = getattr(torch, dtype)
    model = nn_torch.MnistNet.from_numpy(weights, dt).to(device)
    pixels = torch.from_numpy(test_set[0].copy()).to(device)
    with torch.inference_mode(), nn_torch.full_precision():
        expected = torch.cat([model(nn_torch.normalize(pixels[i:i + 4096], dt)) for i in range(0, len(pixels), 4096)])
    expected = expected.cpu().numpy()
    from_pixels = nn_torch.predict_proba(model, test_set[0], batch_size=4096, device=device, dtype=dt)
    from_floats = nn_torch.predict_proba(model, nn_numpy.normalize(test_set[0], np.dtype(dtype).type),
                                         batch_size=4096, device=device, dtype=dt)
    from_device = nn_torch.predict_proba(model, pixels, batch_size=4096, device=device, dtype=dt)
    for name, ours in [("uint8", from_pixels), ("float", from_floats), ("tensor on the device", from_device)]:
        assert np.array_equal(ours, expected), f"{name} images ({dtype}, {device}): not bitwise model(x)"


def test_a_subclass_runs_its_own_forward(weights, test_set):
    """The fused path is MnistNet's forward; a model that changes it must not be silently fused."""
    class Negated(nn_torch.MnistNet):
        def forward(self, x):
            return -super().forward(x)

    model = Negated.from_numpy(weights)
    ours = nn_torch.predict_labels(model, test_set[0][:500], device="cpu")
    expected = nn_numpy.predict(weights, nn_numpy.normalize(test_set[0][:500])).argmin(-1)
    assert_same_labels("subclass with its own forward", ours, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_sigmoid_matches_the_stable_one(dtype):
    """The fast path's ``1 / (1 + exp(-x))`` on exact values, extremes and random data, without warnings."""
    x = np.concatenate([[-np.inf, -1e4, -100, -89, -88, -1, 0, 1, 88, 100, 1e4, np.inf, np.nan],
                        np.random.default_rng(0).normal(0, 8, 10000)]).astype(dtype)
    ours = x.copy()[None]
    with np.errstate(over="ignore", divide="raise", invalid="raise"):
        _sigmoid_(ours)
    assert ours.dtype == x.dtype
    np.testing.assert_array_equal(ours[0, [0, 6, 11, 12]], [0, 0.5, 1, np.nan])
    assert_parity(f"in-place sigmoid ({dtype})", nn_numpy.sigmoid(x), ours[0],
                  rtol=ACTIVATION_TOLERANCE[dtype]["rtol"], atol=np.finfo(dtype).eps)
