"""NumPy against itself on all 10,000 test images: the fast batched path gives the reference's labels for
every batching, one image at a time equals batched, float32 stays within a bound of float64.

The reference is ``nn_numpy.forward_layers``; tolerances are the parity suite's (:mod:`nn_torch.parity`),
``|ours - reference| <= atol + rtol * |reference|``, written out here so these tests need no torch.
"""

import numpy as np
import pytest

import nn_numpy
from nn_numpy.evaluate import _sigmoid_
from nn_numpy.network import LAYER_OUTPUTS

DTYPES = ["float32", "float64"]
BATCH_SIZES = [1, 7, 100, 4096, None]
TOLERANCE = {"float32": {"rtol": 1.3e-6, "atol": 1e-5}, "float64": {"rtol": 1e-12, "atol": 1e-12}}


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_labels_are_the_references(dtype, batch_size, weights, test_set, numpy_layers):
    reference = numpy_layers(dtype)["y"].argmax(-1)
    from_pixels = nn_numpy.predict_labels(weights, test_set[0], batch_size=batch_size, dtype=np.dtype(dtype).type)
    floats = nn_numpy.normalize(test_set[0], np.dtype(dtype).type)
    for name, ours in [("uint8", from_pixels), (dtype, nn_numpy.predict_labels(weights, floats, batch_size=batch_size))]:
        assert ours.dtype == np.int64 and ours.shape == reference.shape, name
        differ = np.flatnonzero(ours != reference)
        assert differ.size == 0, f"{name} images, batch {batch_size}: {differ.size} labels differ, first {differ[:10]}"


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_image_at_a_time_equals_batched(dtype, weights, test_set, numpy_layers):
    """All 10,000 images, one ``predict`` call each."""
    single = np.stack([nn_numpy.predict(weights, nn_numpy.normalize(img, np.dtype(dtype).type)) for img in test_set[0]])
    np.testing.assert_allclose(single, numpy_layers(dtype)["y"], **TOLERANCE[dtype])


@pytest.mark.parametrize("layer", LAYER_OUTPUTS)
def test_float32_within_the_bound_of_the_float64_reference(layer, numpy_layers):
    np.testing.assert_allclose(numpy_layers("float32")[layer].astype(np.float64), numpy_layers("float64")[layer],
                               **TOLERANCE["float32"])


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
    # a few ulp, as the activations' parity (rtol 1e-6 / 1e-14), and one eps absolute where exp overflows
    np.testing.assert_allclose(ours[0], nn_numpy.sigmoid(x), rtol={"float32": 1e-6, "float64": 1e-14}[dtype],
                               atol=np.finfo(dtype).eps)
