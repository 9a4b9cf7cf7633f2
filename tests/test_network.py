"""The toy network, predict on the real weights, input checks, and the book's two accuracy loops."""

import numpy as np
import pytest

from nn_numpy import (InputShapeError, accuracy, forward, forward_layers, init_network, normalize, predict,
                      predict_labels, predict_labels_loop)
from nn_numpy.network import BOOK_ACCURACY, LAYER_OUTPUTS


def test_toy_network_gives_the_chapters_output():
    np.testing.assert_allclose(forward(init_network(), np.array([1.0, 0.5])), [0.31682708, 0.69627909], rtol=1e-7)


def test_toy_network_batched_equals_single():
    x = np.array([[1.0, 0.5], [0.0, 0.0], [-3.0, 2.0]])
    np.testing.assert_array_equal(forward(init_network(), x), np.stack([forward(init_network(), r) for r in x]))


def test_predict_keeps_the_input_dtype(weights, test_images):
    x32 = normalize(test_images[:5])
    assert predict(weights, x32).dtype == np.float32
    assert predict(weights, x32.astype(np.float64)).dtype == np.float64
    assert predict(weights, x32[0]).shape == (10,)
    assert predict(weights, x32).shape == (5, 10)


def test_predict_uses_the_biases(weights, test_images):
    x = normalize(test_images[:100])
    layers = forward_layers(weights, x)
    np.testing.assert_allclose(layers["a1"], x @ weights["W1"] + weights["b1"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(layers["a3"], layers["z2"] @ weights["W3"] + weights["b3"], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(predict(weights, x).sum(axis=1), 1, rtol=1e-6)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((3, 783), np.float32), r"\(784,\) or \(N, 784\), got \(3, 783\)"),
    (np.zeros((2, 3, 784), np.float32), r"got \(2, 3, 784\)"),
    (np.zeros(784, np.uint8), "uint8 pixels"),
    (np.zeros(784, np.int64), "float32 or float64 input, got int64"),
])
def test_predict_refuses_bad_input(weights, bad, message):
    with pytest.raises(InputShapeError, match=message):
        predict(weights, bad)


def test_normalize_matches_the_books_division(test_images):
    x = normalize(test_images)
    assert x.dtype == np.float32 and x.min() == 0 and x.max() == 1
    np.testing.assert_array_equal(x, test_images.astype(np.float32) / 255.0)


def test_forward_layers_gives_layer_outputs_in_order(weights, test_images):
    layers = forward_layers(weights, normalize(test_images[:3]))
    assert tuple(layers) == LAYER_OUTPUTS
    assert [layers[k].shape for k in LAYER_OUTPUTS] == [(3, 50), (3, 50), (3, 100), (3, 100), (3, 10), (3, 10)]


def test_accuracy_is_the_books_figure_both_ways(weights, test_images, test_labels):
    batched = predict_labels(weights, test_images, batch_size=100)
    assert accuracy(batched, test_labels) == BOOK_ACCURACY
    np.testing.assert_array_equal(predict_labels_loop(weights, test_images), batched)
    np.testing.assert_array_equal(predict_labels(weights, test_images), batched)
    np.testing.assert_array_equal(predict_labels(weights, normalize(test_images), batch_size=333), batched)


def test_accuracy_without_biases_is_the_notes_slip(weights, test_images, test_labels):
    no_bias = {k: (np.zeros_like(v) if k.startswith("b") else v) for k, v in weights.items()}
    assert accuracy(predict_labels(no_bias, test_images), test_labels) == 0.9311


def test_float64_predictions_agree_with_float32(weights, test_images):
    np.testing.assert_array_equal(predict_labels(weights, test_images, dtype=np.float64),
                                  predict_labels(weights, test_images))


@pytest.mark.parametrize("batch_size", [0, -1, 2.5])
def test_bad_batch_size(weights, test_images, batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        predict_labels(weights, test_images[:10], batch_size=batch_size)


def test_accuracy_needs_matching_lengths():
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        accuracy([1, 2, 3], [1, 2])
