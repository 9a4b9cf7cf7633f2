"""The toy network, predict on the real weights, input checks, and the book's two accuracy loops."""

import numpy as np
import pytest

import nn_numpy.evaluate
from nn_numpy import (
    InputShapeError,
    accuracy,
    forward,
    forward_layers,
    init_network,
    normalize,
    predict,
    predict_labels,
    predict_labels_loop,
)
from nn_numpy.network import BOOK_ACCURACY, LAYER_OUTPUTS


def test_toy_network_gives_the_chapters_output():
    np.testing.assert_allclose(
        forward(init_network(), np.array([1.0, 0.5])), [0.31682708, 0.69627909], rtol=1e-7
    )


def test_toy_network_batched_agrees_with_single_within_rounding():
    """Not bitwise: a batched and a one-row BLAS call may round differently (1.1e-16 on an AMD EPYC). Each
    float64 layer of two or three terms is within gamma(4) = 4.4e-16 of its exact value, so 1e-15 all told."""
    x = np.array([[1.0, 0.5], [0.0, 0.0], [-3.0, 2.0]])
    np.testing.assert_allclose(
        forward(init_network(), x),
        np.stack([forward(init_network(), r) for r in x]),
        rtol=0,
        atol=1e-15,
    )


def test_the_output_layer_adds_b3_not_b2():
    """The toy's b2 equals its b3, which hides the notes' slip: make them differ and the output must follow b3."""
    network, x = init_network(), np.array([1.0, 0.5])
    moved = {**network, "b3": network["b3"] + [1.0, -2.0]}
    np.testing.assert_allclose(
        forward(moved, x) - forward(network, x), [1.0, -2.0], rtol=0, atol=1e-15
    )
    moved = {**network, "b2": network["b2"] + [1.0, -2.0]}
    assert not np.allclose(forward(moved, x) - forward(network, x), [1.0, -2.0])


def test_predict_keeps_the_input_dtype(weights, test_images):
    x32 = normalize(test_images[:5])
    assert predict(weights, x32).dtype == np.float32
    assert predict(weights, x32.astype(np.float64)).dtype == np.float64
    assert predict(weights, x32[0]).shape == (10,)
    assert predict(weights, x32).shape == (5, 10)


def test_predict_uses_the_biases(weights, test_images):
    x = normalize(test_images[:100])
    layers = forward_layers(weights, x)
    np.testing.assert_allclose(
        layers["a1"], x @ weights["W1"] + weights["b1"], rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        layers["a3"], layers["z2"] @ weights["W3"] + weights["b3"], rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(predict(weights, x).sum(axis=1), 1, rtol=1e-6)


@pytest.mark.parametrize(
    "bad, message",
    [
        (np.zeros((3, 783), np.float32), r"\(784,\) or \(N, 784\), got \(3, 783\)"),
        (np.zeros((2, 3, 784), np.float32), r"got \(2, 3, 784\)"),
        (np.zeros(784, np.uint8), r"uint8 pixels: divide by 255 with nn_numpy.normalize first\)$"),
        (np.zeros(784, np.int64), "float32 or float64 input, got int64"),
    ],
)
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
    assert [layers[k].shape for k in LAYER_OUTPUTS] == [
        (3, 50),
        (3, 50),
        (3, 100),
        (3, 100),
        (3, 10),
        (3, 10),
    ]


@pytest.mark.slow  # a second or more: the whole test set, or a fresh process
def test_accuracy_is_the_books_figure_both_ways(weights, test_images, test_labels):
    batched = predict_labels(weights, test_images, batch_size=100)
    assert accuracy(batched, test_labels) == BOOK_ACCURACY
    np.testing.assert_array_equal(predict_labels_loop(weights, test_images), batched)
    np.testing.assert_array_equal(predict_labels(weights, test_images), batched)
    np.testing.assert_array_equal(
        predict_labels(weights, normalize(test_images), batch_size=333), batched
    )


def test_accuracy_without_biases_is_the_notes_slip(weights, test_images, test_labels):
    no_bias = {k: (np.zeros_like(v) if k.startswith("b") else v) for k, v in weights.items()}
    assert accuracy(predict_labels(no_bias, test_images), test_labels) == 0.9311


def test_float64_predictions_agree_with_float32(weights, test_images):
    np.testing.assert_array_equal(
        predict_labels(weights, test_images, dtype=np.float64), predict_labels(weights, test_images)
    )


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, True, np.True_])
def test_bad_batch_size(weights, test_images, batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        predict_labels(weights, test_images[:10], batch_size=batch_size)


def spy_on(monkeypatch, name):
    """Record the first argument of every call of ``nn_numpy.evaluate.<name>``, the input it computes on."""
    seen, real = [], getattr(nn_numpy.evaluate, name)

    def spy(*args):
        seen.append(args[1])
        return real(*args)

    monkeypatch.setattr(nn_numpy.evaluate, name, spy)
    return seen


# (images, dtype argument) -> the dtype computed in: the images' own float dtype, float32 for
# uint8, unless a dtype is given
DTYPE_RULE = [
    (np.uint8, None, np.float32),
    (np.uint8, np.float64, np.float64),
    (np.float64, None, np.float64),
    (np.float64, np.float32, np.float32),
    (np.float32, None, np.float32),
    (np.float32, "float64", np.float64),
]


@pytest.mark.parametrize("images_dtype, dtype, expected", DTYPE_RULE)
def test_predict_labels_computes_in_the_dtype_the_rule_names_casting_chunk_by_chunk(
    weights, test_images, monkeypatch, images_dtype, dtype, expected
):
    images = (
        test_images[:1000]
        if images_dtype == np.uint8
        else normalize(test_images[:1000], images_dtype)
    )
    seen = spy_on(monkeypatch, "_logits_into")
    labels = predict_labels(weights, images, batch_size=300, dtype=dtype)
    assert [(len(x), x.dtype) for x in seen] == [(300, expected)] * 3 + [(100, expected)]
    if images.dtype == expected:  # read where they are
        assert all(np.shares_memory(x, images) for x in seen)
    else:  # cast into one chunk's buffer, reused: never a whole copy
        assert all(np.shares_memory(x, seen[0]) and not np.shares_memory(x, images) for x in seen)
    assert accuracy(labels, predict_labels_loop(weights, images, dtype=dtype)) == 1


@pytest.mark.parametrize("images_dtype, dtype, expected", DTYPE_RULE)
def test_the_loop_computes_in_the_dtype_the_rule_names(
    weights, test_images, monkeypatch, images_dtype, dtype, expected
):
    images = (
        test_images[:3] if images_dtype == np.uint8 else normalize(test_images[:3], images_dtype)
    )
    seen = spy_on(monkeypatch, "predict")
    predict_labels_loop(weights, images, dtype=dtype)
    assert [(x.shape, x.dtype) for x in seen] == [((784,), expected)] * 3


@pytest.mark.parametrize("function", [predict_labels, predict_labels_loop])
@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"images": np.zeros((2, 784), np.float16)},
            InputShapeError,
            "expected uint8 pixels or float32/float64 images, got float16",
        ),
        (
            {"images": np.zeros((2, 784), np.int64)},
            InputShapeError,
            "expected uint8 pixels or float32/float64 images, got int64",
        ),
        (
            {"images": np.zeros(784, np.uint8)},
            InputShapeError,
            r"expected images of shape \(N, 784\), got \(784,\)",
        ),
        ({"dtype": np.float16}, ValueError, "dtype must be float32 or float64, got float16"),
        ({"dtype": "int8"}, ValueError, "dtype must be float32 or float64, got int8"),
    ],
)
def test_bad_images_and_dtypes_are_refused_in_one_line(weights, function, kwargs, error, message):
    kwargs = {"images": np.zeros((2, 784), np.uint8), **kwargs}
    with pytest.raises(error, match=f"^{message}$"):
        function(weights, **kwargs)


def test_accuracy_needs_matching_lengths():
    with pytest.raises(ValueError, match="3 predictions for 2 labels"):
        accuracy([1, 2, 3], [1, 2])


@pytest.mark.parametrize(
    "predictions, labels, shapes",
    [
        (np.int64(3), np.int64(3), r"\(\) and \(\)"),
        ([[1, 2]], [[1, 2]], r"\(1, 2\) and \(1, 2\)"),
    ],
)
def test_accuracy_refuses_other_than_one_dimension_in_one_line(predictions, labels, shapes):
    with pytest.raises(
        InputShapeError, match=f"^expected predictions and labels of shape \\(N,\\), got {shapes}$"
    ):
        accuracy(predictions, labels)


def test_accuracy_of_no_predictions_is_nan_not_zero():
    assert np.isnan(accuracy(np.array([], dtype=np.int64), np.array([], dtype=np.int64)))
