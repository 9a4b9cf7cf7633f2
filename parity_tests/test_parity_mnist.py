"""MNIST, all 10,000 test images, the book's weights: each side within its proven bound of the exact result.

Every element of every layer, float32 and float64, NumPy and torch on each device, must lie within the
bound ``nn_numpy.exact.bounds`` proves for it (docs/exact.md), whatever the BLAS, CPU or GPU; the two sides
must then differ by at most the sum of their bounds. torch.testing's default tolerances stay as a second
check. Nothing here depends on one library's rounding.
"""

import numpy as np
import pytest
import torch

import nn_numpy
import nn_torch
from nn_numpy import exact
from nn_numpy.network import BOOK_ACCURACY, LAYER_OUTPUTS
from nn_torch.parity import TOLERANCE, assert_parity

DTYPES = ["float32", "float64"]


@pytest.fixture(scope="module")
def proven(weights, test_set, exact_layers):
    """``proven(dtype) -> {layer: (N, k) bound}``, computed once per dtype."""
    cache = {}

    def bounds(dtype):
        if dtype not in cache:
            cache[dtype] = exact.bounds(weights, test_set[0], exact_layers, dtype)
        return cache[dtype]

    return bounds


def assert_within(stage, error, bound):
    """Every ``error <= bound``; else the count, and the worst ratio with its index."""
    ratio = error / bound
    worst = np.unravel_index(np.argmax(ratio), ratio.shape)
    beyond = int((ratio > 1).sum())
    assert beyond == 0, (
        f"{stage}: {beyond} of {ratio.size} elements beyond their proven bound; the worst is "
        f"{ratio[worst]:.3g}x it at index {tuple(map(int, worst))} (error {error[worst]:.3g}, "
        f"bound {bound[worst]:.3g})"
    )
    return float(ratio.max())


def error(side, exact_value):
    return np.abs((side.astype(np.float64) - exact_value[0]) - exact_value[1])


@pytest.mark.parametrize("layer", LAYER_OUTPUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_numpy_lies_within_its_proven_bound(dtype, layer, numpy_layers, exact_layers, proven):
    assert_within(
        f"numpy {layer} ({dtype})",
        error(numpy_layers(dtype)[layer], exact_layers[layer]),
        proven(dtype)[layer],
    )


@pytest.mark.parametrize("layer", LAYER_OUTPUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_lies_within_its_proven_bound(
    dtype, layer, device, torch_layers, exact_layers, proven
):
    assert_within(
        f"torch {layer} ({dtype}, {device})",
        error(torch_layers(dtype, device)[layer], exact_layers[layer]),
        proven(dtype)[layer],
    )


@pytest.mark.parametrize("layer", LAYER_OUTPUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_sides_differ_by_at_most_their_two_bounds_and_torch_testings_defaults(
    dtype, layer, device, numpy_layers, torch_layers, proven
):
    ours, theirs = torch_layers(dtype, device)[layer], numpy_layers(dtype)[layer]
    assert_within(
        f"|torch - numpy| {layer} ({dtype}, {device})",
        np.abs(ours.astype(np.float64) - theirs),
        2 * proven(dtype)[layer],
    )
    assert_parity(f"{layer} ({dtype}, {device})", theirs, ours, **TOLERANCE[dtype])


def test_a_wrong_layer_is_caught(weights, numpy_layers, exact_layers, proven):
    """The check can fail: the logits without their bias b3, the notes' slip, lie beyond the bound."""
    no_b3 = numpy_layers("float32")["a3"] - weights["b3"]
    with pytest.raises(AssertionError, match="elements beyond their proven bound"):
        assert_within("a3 without b3", error(no_b3, exact_layers["a3"]), proven("float32")["a3"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_all_predictions_identical_and_accuracy_is_the_books(
    dtype, device, numpy_layers, torch_layers, test_set
):
    ours, theirs = torch_layers(dtype, device)["y"].argmax(-1), numpy_layers(dtype)["y"].argmax(-1)
    differ = np.flatnonzero(ours != theirs)
    assert differ.size == 0, (
        f"{differ.size} predictions differ, first at images {differ[:10].tolist()}"
    )
    assert (
        nn_numpy.accuracy(theirs, test_set[1])
        == nn_numpy.accuracy(ours, test_set[1])
        == BOOK_ACCURACY
    )


@pytest.mark.parametrize("batch_size", [None, 999])
@pytest.mark.parametrize("dtype", DTYPES)
def test_predict_labels_matches_numpy(dtype, batch_size, device, weights, test_set):
    """The evaluation path itself: uint8 batches to the device, normalised there, argmax back."""
    model = nn_torch.MnistNet.from_numpy(weights)
    ours = nn_torch.predict_labels(
        model, test_set[0], batch_size=batch_size, device=device, dtype=dtype
    )
    theirs = nn_numpy.predict_labels(weights, test_set[0], batch_size=batch_size, dtype=dtype)
    assert ours.dtype == theirs.dtype == np.int64 and np.array_equal(ours, theirs)
    assert nn_numpy.accuracy(ours, test_set[1]) == BOOK_ACCURACY


@pytest.mark.parametrize("dtype", DTYPES)
def test_normalisation_is_bitwise_numpys(dtype, device):
    """Every pixel value 0..255 gives the same bits on the device as ``nn_numpy.normalize``: both are
    correctly rounded quotients, so this holds on any hardware."""
    pixels = np.arange(256, dtype=np.uint8)
    ours = nn_torch.normalize(torch.from_numpy(pixels).to(device), dtype).cpu().numpy()
    theirs = nn_numpy.normalize(pixels, dtype)
    assert ours.dtype == theirs.dtype
    assert np.array_equal(ours.view(f"u{ours.itemsize}"), theirs.view(f"u{theirs.itemsize}"))


@pytest.mark.parametrize("dtype", DTYPES)
def test_nan_pixel_propagates_alike(dtype, device, weights, test_set):
    """A NaN pixel makes its image's probabilities all NaN on both sides; other images are untouched."""
    x = nn_numpy.normalize(test_set[0][:3], dtype)
    x[1, 400] = np.nan
    model = nn_torch.MnistNet.from_numpy(weights, dtype).to(device)
    with torch.inference_mode(), nn_torch.full_precision():
        ours = model(torch.from_numpy(x).to(device))
    theirs = nn_numpy.predict(weights, x)
    assert np.isnan(theirs[1]).all() and not np.isnan(theirs[[0, 2]]).any()
    assert_parity(f"NaN input ({dtype}, {device})", theirs, ours, **TOLERANCE[dtype])
