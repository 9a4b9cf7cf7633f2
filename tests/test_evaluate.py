"""NumPy against itself on all 10,000 test images: the fast batched path gives the reference's labels for
every batching, and one image at a time lies within the proven bound of the exact result, as batches do.
"""

import numpy as np
import pytest

import nn_numpy
from nn_numpy import exact
from nn_numpy.evaluate import _sigmoid_

DTYPES = ["float32", "float64"]
BATCH_SIZES = [pytest.param(1, marks=pytest.mark.slow), 7, 100, 4096, None]  # 1: a loop, a second


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_labels_are_the_references(dtype, batch_size, weights, test_set, numpy_layers):
    reference = numpy_layers(dtype)["y"].argmax(-1)
    from_pixels = nn_numpy.predict_labels(
        weights, test_set[0], batch_size=batch_size, dtype=np.dtype(dtype).type
    )
    floats = nn_numpy.normalize(test_set[0], np.dtype(dtype).type)
    for name, ours in [
        ("uint8", from_pixels),
        (dtype, nn_numpy.predict_labels(weights, floats, batch_size=batch_size)),
    ]:
        assert ours.dtype == np.int64 and ours.shape == reference.shape, name
        differ = np.flatnonzero(ours != reference)
        assert differ.size == 0, (
            f"{name} images, batch {batch_size}: {differ.size} labels differ, first {differ[:10]}"
        )


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_image_at_a_time_lies_within_the_proven_bound_as_batches_do(
    dtype, weights, test_set, exact_layers
):
    """All 10,000 images, one ``predict`` call each: a one-row BLAS call rounds differently from a batched
    one, and both must lie within the bound of the exact result (never bitwise equal to each other)."""
    single = np.stack(
        [nn_numpy.predict(weights, nn_numpy.normalize(img, dtype)) for img in test_set[0]]
    )
    bound = exact.bounds(weights, test_set[0], exact_layers, dtype)["y"]
    error = np.abs((single - exact_layers["y"][0]) - exact_layers["y"][1])
    assert (error <= bound).all(), (
        f"{(error > bound).sum()} probabilities beyond their proven bound"
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_in_place_sigmoid_matches_the_stable_one(dtype):
    """The fast path's ``1 / (1 + exp(-x))`` on exact values, extremes and random data, without warnings."""
    x = np.concatenate(
        [
            [-np.inf, -1e4, -100, -89, -88, -1, 0, 1, 88, 100, 1e4, np.inf, np.nan],
            np.random.default_rng(0).normal(0, 8, 10000),
        ]
    ).astype(dtype)
    ours = x.copy()[None]
    with np.errstate(over="ignore", divide="raise", invalid="raise"):
        _sigmoid_(ours)
    assert ours.dtype == x.dtype
    np.testing.assert_array_equal(ours[0, [0, 6, 11, 12]], [0, 0.5, 1, np.nan])
    # a few ulp, as the activations' parity (rtol 1e-6 / 1e-14), and one eps absolute where exp overflows
    np.testing.assert_allclose(
        ours[0],
        nn_numpy.sigmoid(x),
        rtol={"float32": 1e-6, "float64": 1e-14}[dtype],
        atol=np.finfo(dtype).eps,
    )
