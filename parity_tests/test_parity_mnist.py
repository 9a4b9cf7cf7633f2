"""MNIST, all 10,000 test images, the book's weights: NumPy and torch compute the same thing.

The tolerances, and the figures they were set from, are in :mod:`nn_torch.parity`.
"""

import numpy as np
import pytest
import torch

import nn_numpy
import nn_torch
from nn_numpy.network import BOOK_ACCURACY, LAYER_OUTPUTS
from nn_torch.parity import REFERENCE_BOUND, TOLERANCE, assert_parity

DTYPES = ["float32", "float64"]


@pytest.mark.parametrize("layer", LAYER_OUTPUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_intermediate_matches(dtype, layer, device, numpy_layers, torch_layers):
    assert_parity(f"{layer} ({dtype}, {device})", numpy_layers(dtype)[layer], torch_layers(dtype, device)[layer],
                  **TOLERANCE[dtype])


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_predictions_identical_and_accuracy_is_the_books(dtype, device, numpy_layers, torch_layers, test_set):
    ours, theirs = torch_layers(dtype, device)["y"].argmax(-1), numpy_layers(dtype)["y"].argmax(-1)
    differ = np.flatnonzero(ours != theirs)
    assert differ.size == 0, f"{differ.size} predictions differ, first at images {differ[:10].tolist()}"
    assert nn_numpy.accuracy(theirs, test_set[1]) == nn_numpy.accuracy(ours, test_set[1]) == BOOK_ACCURACY


@pytest.mark.parametrize("batch_size", [None, 999])
@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_labels_matches_numpy(dtype, batch_size, device, weights, test_set):
    """The evaluation path itself: uint8 batches to the device, normalised there, argmax back."""
    model = nn_torch.MnistNet.from_numpy(weights)
    ours = nn_torch.predict_labels(model, test_set[0], batch_size=batch_size, device=device,
                                   dtype=getattr(torch, dtype))
    theirs = nn_numpy.predict_labels(weights, test_set[0], batch_size=batch_size, dtype=np.dtype(dtype).type)
    assert ours.dtype == theirs.dtype == np.int64
    assert np.array_equal(ours, theirs)
    assert nn_numpy.accuracy(ours, test_set[1]) == BOOK_ACCURACY


@pytest.mark.parametrize("layer", LAYER_OUTPUTS)
def test_torch_float32_within_bound_of_float64_reference(layer, device, numpy_layers, torch_layers):
    assert_parity(f"torch float32 {layer} ({device}) vs float64 reference", numpy_layers("float64")[layer],
                  torch_layers("float32", device)[layer].astype(np.float64), **REFERENCE_BOUND)


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalisation_is_bitwise_numpys(dtype, device):
    """Every pixel value 0..255 gives the same bits on the device as ``nn_numpy.normalize``."""
    pixels = np.arange(256, dtype=np.uint8)
    ours = nn_torch.normalize(torch.from_numpy(pixels).to(device), getattr(torch, dtype)).cpu().numpy()
    theirs = nn_numpy.normalize(pixels, np.dtype(dtype).type)
    assert ours.dtype == theirs.dtype
    assert np.array_equal(ours.view(f"u{ours.itemsize}"), theirs.view(f"u{theirs.itemsize}"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_pixel_propagates_alike(dtype, device, weights, test_set):
    """A NaN pixel makes its image's probabilities all NaN on both sides; other images are untouched."""
    x = nn_numpy.normalize(test_set[0][:3], np.dtype(dtype).type)
    x[1, 400] = np.nan
    model = nn_torch.MnistNet.from_numpy(weights, getattr(torch, dtype)).to(device)
    with torch.inference_mode(), nn_torch.full_precision():
        ours = model(torch.from_numpy(x).to(device))
    theirs = nn_numpy.predict(weights, x)
    assert np.isnan(theirs[1]).all() and not np.isnan(theirs[[0, 2]]).any()
    assert_parity(f"NaN input ({dtype}, {device})", theirs, ours, **TOLERANCE[dtype])
