"""NaN and ±inf pixels through the whole network: both sides give NaN in the same places, and the same labels.

A NaN pixel meets every column of W1, so its image's every intermediate is NaN on both sides;
an infinite pixel saturates the sigmoids instead and the image stays finite after z1. Labels of
an all-NaN row are 0 on both sides (NumPy's and torch's argmax both return the first NaN): the
decision is documented in docs/robustness.md, not changed, since inputs from IDX files are uint8
and cannot be NaN.
"""

import numpy as np
import pytest
import torch

import nn_numpy
import nn_torch
from nn_torch.parity import TOLERANCE, assert_parity

NAN_ROWS, INF_ROWS = [1, 2, 5], [3, 4]


def images_with_nonfinite_pixels(test_set, dtype):
    """``(8, 784)``: real images, one NaN pixel (row 1), all NaN (2), +inf (3), -inf (4), NaN and inf (5)."""
    x = nn_numpy.normalize(test_set[0][:8], np.dtype(dtype).type)
    x[1, 300] = np.nan
    x[2] = np.nan
    x[3, 5], x[4, 5] = np.inf, -np.inf
    x[5, 0], x[5, 1] = np.nan, np.inf
    return x


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_nonfinite_pixels_propagate_identically_through_every_layer(
    weights, test_set, dtype, device
):
    x = images_with_nonfinite_pixels(test_set, dtype)
    model = nn_torch.MnistNet.from_numpy(weights, getattr(torch, dtype)).to(device)
    with torch.inference_mode(), nn_torch.full_precision(), np.errstate(invalid="ignore"):
        ours = model.forward_layers(torch.from_numpy(x).to(device))
        ref = nn_numpy.forward_layers(weights, x)
        probabilities = model(torch.from_numpy(x).to(device))
        predicted = nn_numpy.predict(weights, x)
    for layer in ref:  # assert_parity counts NaN on one side only as infinitely far
        assert_parity(f"{layer} ({dtype}) on {device}", ref[layer], ours[layer], **TOLERANCE[dtype])
        assert np.isnan(ref[layer][NAN_ROWS]).all(), layer
        assert not np.isnan(ref[layer][[0, 6, 7] + INF_ROWS]).any(), layer
    assert_parity(
        f"predict vs forward ({dtype}) on {device}", predicted, probabilities, **TOLERANCE[dtype]
    )


def test_nonfinite_rows_get_the_same_labels_on_both_sides(weights, test_set, device):
    x = images_with_nonfinite_pixels(test_set, "float32")
    model = nn_torch.MnistNet.from_numpy(weights)
    with np.errstate(invalid="ignore"):
        labels = nn_numpy.predict_labels(weights, x)
        loop = nn_numpy.predict_labels_loop(weights, x)
    ours = nn_torch.predict_labels(model, x, device=device)
    np.testing.assert_array_equal(ours, labels)
    np.testing.assert_array_equal(loop, labels)
    assert labels[NAN_ROWS].tolist() == [0, 0, 0]
    np.testing.assert_array_equal(
        labels[[0, 6, 7]], nn_numpy.predict_labels(weights, test_set[0][[0, 6, 7]])
    )
