"""The twins' contracts: the same intermediates by name and shape, the same dtype spellings accepted, and the
same inputs refused with the same error class and words, one line per case, as tinygrad's helper_test_exception."""

import numpy as np
import pytest
import torch

import nn_numpy
import nn_torch
from nn_numpy.backward import loss_and_gradients as numpy_gradients
from nn_numpy.errors import InputShapeError, WeightsError
from nn_torch import MnistNet
from nn_torch.backward import loss_and_gradients as torch_gradients


def helper_test_exception(numpy_call, torch_call, error, same_words=True):
    """Both calls raise ``error``, of the same class, with the same one-line message (the hints that name each
    side's own function aside)."""
    raised = []
    for call in (numpy_call, torch_call):
        with pytest.raises(error) as caught:
            call()
        raised.append(caught.value)
    assert type(raised[0]) is type(raised[1]) and "\n" not in str(raised[0])
    if same_words:
        assert str(raised[0]) == str(raised[1])


def changed(weights, key, value):
    return {**weights, key: value(weights[key])}


@pytest.fixture(scope="module")
def model(weights):
    return MnistNet.from_numpy(weights)


def test_forward_layers_has_numpys_names_and_shapes(weights, model):
    ours = model.forward_layers(torch.rand(3, 784))
    theirs = nn_numpy.forward_layers(weights, np.random.rand(3, 784).astype(np.float32))
    assert list(ours) == list(theirs)
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


@pytest.mark.parametrize("dtype", ["float64", np.float64, torch.float64, float])
def test_every_spelling_of_a_dtype_is_taken_on_both_sides(weights, test_set, dtype):
    pixels = test_set[0][:5]
    assert nn_numpy.normalize(pixels, dtype).dtype == np.float64
    assert nn_torch.normalize(torch.from_numpy(pixels), dtype).dtype == torch.float64
    assert (
        nn_torch.normalize(pixels, dtype).dtype == torch.float64
    )  # an array is taken as its tensor
    assert MnistNet.from_numpy(weights, dtype).fc1.weight.dtype == torch.float64
    labels = [
        nn_numpy.predict_labels(weights, pixels, dtype=dtype),
        nn_torch.predict_labels(MnistNet.from_numpy(weights), pixels, device="cpu", dtype=dtype),
    ]
    assert np.array_equal(*labels)


def test_normalize_refuses_alike(test_set):
    pixels = test_set[0][:2]
    helper_test_exception(
        lambda: nn_numpy.normalize(pixels.astype(np.float32)),
        lambda: nn_torch.normalize(torch.from_numpy(pixels.astype(np.float32))),
        InputShapeError,
    )
    helper_test_exception(
        lambda: nn_numpy.normalize(pixels.astype(np.int64)),
        lambda: nn_torch.normalize(torch.from_numpy(pixels.astype(np.int64))),
        InputShapeError,
    )
    for dtype in ("float16", np.int32, torch.bfloat16):
        helper_test_exception(
            lambda: nn_numpy.normalize(pixels, dtype),
            lambda: nn_torch.normalize(torch.from_numpy(pixels), dtype),
            ValueError,
        )


@pytest.mark.parametrize(
    "key, value",
    [
        ("b1", lambda b: b[:1]),  # broadcast over 50 units, it gave an answer
        ("W1", lambda w: w.astype(np.complex64)),  # complex weights gave complex probabilities
        ("W2", lambda w: w.astype(np.int64)),
        ("b3", lambda b: np.zeros((10, 1), np.float32)),
    ],
    ids=["b1 (1,)", "complex W1", "integer W2", "b3 (10, 1)"],
)
def test_the_same_bad_weights_are_refused_alike(weights, key, value):
    bad = changed(weights, key, value)
    x = np.zeros((2, 784), np.float32)
    helper_test_exception(
        lambda: nn_numpy.predict(bad, x), lambda: MnistNet.from_numpy(bad), WeightsError
    )
    helper_test_exception(
        lambda: nn_numpy.forward_layers(bad, x), lambda: MnistNet.from_numpy(bad), WeightsError
    )


def test_missing_and_unexpected_keys_are_refused_alike(weights):
    notes_slip = {("B3" if k == "b3" else k): v for k, v in weights.items()}
    x = np.zeros(784, np.float32)
    helper_test_exception(
        lambda: nn_numpy.predict(notes_slip, x),
        lambda: MnistNet.from_numpy(notes_slip),
        WeightsError,
    )


@pytest.mark.parametrize(
    "x, same_words",
    [
        (np.zeros((1, 784), np.uint8), False),  # each hint names its own side's normalize
        (np.zeros((1, 784), np.int64), True),
        (np.zeros((2, 785), np.float32), True),
        (np.zeros((2, 3, 784), np.float32), True),
        (np.zeros((784, 1), np.float32), True),
    ],
    ids=["uint8", "int64", "785 features", "3-D", "a column"],
)
def test_the_same_bad_inputs_are_refused_alike(weights, model, x, same_words):
    helper_test_exception(
        lambda: nn_numpy.predict(weights, x),
        lambda: model(torch.from_numpy(x)),
        InputShapeError,
        same_words,
    )
    helper_test_exception(
        lambda: nn_numpy.forward_layers(weights, x),
        lambda: model.forward_layers(torch.from_numpy(x)),
        InputShapeError,
        same_words,
    )


@pytest.mark.parametrize(
    "x, t",
    [
        (np.zeros((2, 784), np.float32), np.array([3, 10])),  # a label of 10 was torch's IndexError
        (np.zeros((2, 784), np.float32), np.array([3, -1])),
        (np.zeros((2, 784), np.float32), np.array([3])),  # 2 images, 1 label
        (np.zeros((2, 784), np.float32), np.array([3.0, 1.0])),  # float labels that are not one-hot
        (np.zeros((0, 784), np.float32), np.array([], np.int64)),
        (np.zeros((2, 784), np.int64), np.array([3, 1])),
    ],
    ids=["label 10", "label -1", "too few labels", "float labels", "no images", "integer images"],
)
def test_the_same_bad_batches_are_refused_alike_by_loss_and_gradients(weights, model, x, t):
    helper_test_exception(
        lambda: numpy_gradients(weights, x, t),
        lambda: torch_gradients(model, torch.from_numpy(x), torch.from_numpy(t)),
        InputShapeError,
    )
