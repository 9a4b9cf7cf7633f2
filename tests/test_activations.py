"""The NumPy activations and softmax on exact values, extremes and random data."""

import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from nn_numpy import identity_function, relu, sigmoid, softmax, softmax_naive, step_function

FLOATS = [np.float32, np.float64]


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_step_is_zero_at_zero_and_integer():
    y = step_function(np.array([-3.0, -1.0, 0.0, -0.0, 1e-45, 1.0, 3.0, np.inf, -np.inf, np.nan]))
    assert y.dtype == np.int64
    assert y.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0, 0]


def test_step_on_the_notes_example():
    assert step_function(np.array([1, -1, 1, 3, -3, -4])).tolist() == [1, 0, 1, 1, 0, 0]


@pytest.mark.parametrize("dtype", FLOATS)
def test_sigmoid_exact_values(dtype):
    x = np.array([-1, 0, 1], dtype=dtype)
    np.testing.assert_allclose(sigmoid(x), [0.2689414213699951, 0.5, 0.7310585786300049], rtol=1e-6)
    assert sigmoid(x).dtype == dtype


@pytest.mark.parametrize("dtype", FLOATS)
def test_sigmoid_extremes_without_warning(dtype):
    x = np.array([-1e4, -400, -300, -88, 88, 300, 400, 1e4, -np.inf, np.inf, np.nan], dtype=dtype)
    y = sigmoid(x)
    assert y.dtype == dtype
    assert np.all((y[:-1] >= 0) & (y[:-1] <= 1))
    assert y[-3] == 0 and y[-2] == 1 and np.isnan(y[-1])
    assert y[3] == pytest.approx(np.exp(-88.0), rel=1e-5)  # keeps relative precision, not 0
    assert y[4] == 1 and y[0] == 0


@given(arrays(np.float64, st.integers(1, 50), elements=st.floats(-700, 700)))
def test_sigmoid_matches_the_definition_where_it_is_safe(x):
    np.testing.assert_allclose(sigmoid(x), 1 / (1 + np.exp(-x)), rtol=1e-12, atol=1e-300)


def test_sigmoid_symmetry_random():
    x = np.random.default_rng(0).normal(0, 10, 1000)
    np.testing.assert_allclose(sigmoid(x) + sigmoid(-x), 1, rtol=1e-15)


def test_relu_and_identity():
    x = np.array([-2.0, -0.0, 0.0, 3.0, np.inf, -np.inf])
    assert relu(x).tolist() == [0.0, 0.0, 0.0, 3.0, np.inf, 0.0]
    assert np.isnan(relu(np.array([np.nan])))[0]
    assert identity_function(x) is x


@pytest.mark.parametrize("dtype", FLOATS)
def test_softmax_rows_sum_to_one_and_batch_equals_rows(dtype):
    x = np.random.default_rng(1).normal(0, 5, (64, 10)).astype(dtype)
    y = softmax(x)
    assert y.shape == x.shape and y.dtype == dtype
    np.testing.assert_allclose(y.sum(axis=-1), 1, rtol=1e-6)
    np.testing.assert_array_equal(y, np.stack([softmax(row) for row in x]))


def test_softmax_of_the_chapter_example():
    np.testing.assert_allclose(
        softmax(np.array([0.3, 2.9, 4.0])), [0.01821127, 0.24519181, 0.73659691], rtol=1e-6
    )


def test_softmax_huge_logits_and_minus_inf():
    y = softmax(np.array([[1010.0, 1000.0, 990.0], [0.0, -np.inf, 1.0], [1e308, 0, -1e308]]))
    np.testing.assert_allclose(y[0], [9.99954600e-01, 4.53978686e-05, 2.06106005e-09], rtol=1e-6)
    assert y[1][1] == 0 and y[1].sum() == pytest.approx(1)
    assert y[2].tolist() == [1.0, 0.0, 0.0]


def test_softmax_of_undefined_rows_is_nan_like_torch():
    y = softmax(np.array([[-np.inf, -np.inf], [np.inf, 0.0], [np.nan, 0.0]]))
    assert np.isnan(y).all()


def test_naive_softmax_overflows_as_the_chapter_warns():
    with np.errstate(all="ignore"):
        assert np.isnan(softmax_naive(np.array([1010.0, 1000.0, 990.0]))).all()
    np.testing.assert_allclose(
        softmax_naive(np.array([[0.3, 2.9, 4.0]] * 2)), softmax(np.array([[0.3, 2.9, 4.0]] * 2))
    )
