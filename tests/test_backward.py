"""The hand-written backward against central differences, the loss against an independent formula.

Gradient check tolerance, float64, h = 1e-4: for each weight, every |backprop - numerical|
is at most ``1e-7 * max|numerical|`` of that weight. Measured: on 3 MNIST test images with the
book's weights the worst ratio is 1.4e-9 (W3: 2.3e-11 against 1.7e-2); on the tiny random net
4.7e-9 (W1: 5.2e-10 against 0.11). Central differences err by O(h^2), far above rounding here;
a backward off by 0.1% anywhere gives ratios near 1e-3.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nn_numpy import LAYER_NAMES, MNIST_SHAPES, InputShapeError, normalize, predict
from nn_numpy.backward import (
    loss_and_gradients,
    numerical_gradients,
    one_hot,
    sgd_step,
    softmax_with_loss,
)

GRAD_RTOL_OF_MAX = 1e-7


def tiny_network(rng, sizes=(6, 5, 4, 3)):
    """A random net of the same layout as MNIST's, small enough to check in milliseconds."""
    keys = iter(LAYER_NAMES)
    return {
        k: rng.normal(0, 1.5, shape)
        for a, b in zip(sizes, sizes[1:])
        for k, shape in ((next(keys), (a, b)), (next(keys), (b,)))
    }


def assert_gradients_match(analytic, numerical):
    for k in LAYER_NAMES:
        assert analytic[k].shape == numerical[k].shape, k
        taken = ~np.isnan(numerical[k])  # numerical_gradients(at=...) leaves the rest NaN
        atol = GRAD_RTOL_OF_MAX * np.abs(numerical[k][taken]).max()
        np.testing.assert_allclose(
            analytic[k][taken], numerical[k][taken], rtol=0, atol=atol, err_msg=k
        )


@pytest.mark.slow
def test_gradients_match_central_differences_on_mnist(weights, test_images, test_labels):
    """Every weight but W1's, and W1's rows of 40 pixels inked in some image and 10 blank ones."""
    x, t = normalize(test_images[:3], np.float64), test_labels[:3]
    inked = np.flatnonzero(x.any(axis=0))
    rng = np.random.default_rng(0)
    rows = [*rng.choice(inked, 40, replace=False), *rng.choice(np.setdiff1d(range(784), inked), 10)]
    loss, grads = loss_and_gradients(weights, x, t)
    numerical = numerical_gradients(
        weights, x, t, at={"W1": [(r, j) for r in rows for j in range(50)]}
    )
    assert_gradients_match(grads, numerical)
    assert (
        max(np.abs(g).max() for g in grads.values()) > 1e-3
    )  # a check on all-zero gradients proves nothing


def test_gradients_match_central_differences_on_a_tiny_random_net():
    rng = np.random.default_rng(0)
    net = tiny_network(rng)
    x = np.concatenate(
        [rng.normal(0, 2, (4, 6)), [[-1, 0, 1, -1, 0, 1]]]
    )  # random rows and exact values
    t = np.array([0, 1, 2, 2, 1])
    loss, grads = loss_and_gradients(net, x, t)
    assert_gradients_match(grads, numerical_gradients(net, x, t))
    loss_onehot, grads_onehot = loss_and_gradients(net, x, one_hot(t, 3, np.float64))
    assert loss_onehot == loss
    for k in LAYER_NAMES:
        np.testing.assert_array_equal(grads_onehot[k], grads[k])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gradients_have_the_weights_shapes_and_the_input_dtype(
    weights, test_images, test_labels, dtype
):
    loss, grads = loss_and_gradients(weights, normalize(test_images[:7], dtype), test_labels[:7])
    assert isinstance(loss, float)
    assert sorted(grads) == sorted(LAYER_NAMES)
    for k in LAYER_NAMES:
        assert grads[k].shape == MNIST_SHAPES[k], k
        assert grads[k].dtype == dtype, k
        assert np.isfinite(grads[k]).all(), k


def test_loss_is_the_mean_negative_log_probability_of_the_label(weights, test_images, test_labels):
    x, t = normalize(test_images[:100], np.float64), test_labels[:100]
    independent = -np.log(predict(weights, x)[np.arange(100), t]).mean()
    loss, _ = loss_and_gradients(weights, x, t)
    assert loss == pytest.approx(independent, rel=1e-12)
    assert 0.05 < loss < 1  # 93.5% accuracy: most images are confidently right, a few are wrong


def test_batch_gradient_is_the_mean_of_per_image_gradients(weights, test_images, test_labels):
    x, t = normalize(test_images[:4], np.float64), test_labels[:4]
    _, batch = loss_and_gradients(weights, x, t)
    singles = [loss_and_gradients(weights, x[i : i + 1], t[i : i + 1])[1] for i in range(4)]
    for k in LAYER_NAMES:
        np.testing.assert_allclose(
            batch[k], np.mean([g[k] for g in singles], axis=0), rtol=1e-12, atol=1e-18
        )


def test_loss_stays_finite_and_exact_for_extreme_logits():
    # The book's -log(y + 1e-7) would report 16.1 here, and a gradient bent towards 0.
    loss, y, da3 = softmax_with_loss(
        np.array([[1e4, -1e4], [0.0, 0.0]]), one_hot(np.array([1, 0]), 2, np.float64)
    )
    assert loss == (2e4 + np.log(2)) / 2
    np.testing.assert_array_equal(da3, [[0.5, -0.5], [-0.25, 0.25]])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(-1e4, 1e4), min_size=3, max_size=3), st.integers(0, 2))
def test_softmax_with_loss_gradient_rows_sum_to_zero(logits, label):
    loss, y, da3 = softmax_with_loss(np.array([logits]), one_hot(np.array([label]), 3, np.float64))
    assert np.isfinite(loss) and loss >= 0
    np.testing.assert_allclose(y.sum(), 1, rtol=1e-15)
    assert abs(da3.sum()) <= 4e-16


def test_sgd_step_moves_against_the_gradient_and_lowers_the_loss(weights, test_images, test_labels):
    x, t = normalize(test_images[:100]), test_labels[:100]
    loss, grads = loss_and_gradients(weights, x, t)
    before = {k: v.copy() for k, v in weights.items()}
    stepped = sgd_step(weights, grads, lr=0.1)
    for k in LAYER_NAMES:
        np.testing.assert_array_equal(weights[k], before[k], err_msg=f"{k} changed in place")
        np.testing.assert_array_equal(stepped[k], weights[k] - np.float32(0.1) * grads[k])
        assert stepped[k].dtype == np.float32
    assert loss_and_gradients(stepped, x, t)[0] < loss


@pytest.mark.parametrize(
    "x, t, message",
    [
        (
            np.zeros((2, 784), np.float32),
            np.array([0, 10]),
            r"labels must lie in \[0, 10\), got values 0..10",
        ),
        (np.zeros((2, 784), np.float32), np.array([0, 1, 2]), "2 images for 3 labels"),
        (
            np.zeros((2, 784), np.float32),
            np.array([0.0, 1.0]),
            r"labels \(N,\) int or one-hot \(N, 10\)",
        ),
        (np.zeros(784, np.float32), np.array([0]), r"a batch \(N, 784\) with N >= 1, got \(784,\)"),
        (np.zeros((0, 784), np.float32), np.zeros(0, np.int64), r"N >= 1, got \(0, 784\)"),
        (np.zeros((2, 784), np.uint8), np.array([0, 1]), "uint8 pixels"),
    ],
)
def test_bad_inputs_are_one_line_errors(weights, x, t, message):
    with pytest.raises(InputShapeError, match=message):
        loss_and_gradients(weights, x, t)
