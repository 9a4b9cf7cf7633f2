"""The fast evaluation paths against the reference, all 10,000 test images, every batching.

torch's ``predict_labels``/``predict_proba`` stream chunks through reused buffers, fuse steps
and take labels from the logits; here they must give the NumPy reference's predictions
(``nn_numpy.forward_layers``) exactly, and probabilities within the parity tolerance, for
batches of one image, odd sizes, the book's 100, and the default chunking. NumPy's own fast
path against the same reference is in tests/test_evaluate.py.
Both sides follow the same dtype rule, and refuse the same arguments with the same words.
"""

import numpy as np
import pytest
import torch

import nn_numpy
import nn_torch
from nn_numpy import exact
from nn_numpy.errors import InputShapeError
from nn_numpy.network import MNIST_SHAPES
from nn_torch.parity import TOLERANCE, assert_parity

DTYPES = ["float32", "float64"]
BATCH_SIZES = [pytest.param(1, marks=pytest.mark.slow), 7, 100, 4096, None]


def assert_same_labels(stage, ours, reference):
    assert ours.shape == reference.shape and ours.dtype == np.int64, (
        f"{stage}: {ours.dtype} {ours.shape}"
    )
    differ = np.flatnonzero(ours != reference)
    assert differ.size == 0, (
        f"{stage}: {differ.size} predictions differ, first at images {differ[:10].tolist()}"
    )


@pytest.fixture(scope="module")
def y_bound(weights, test_set, exact_layers):
    """``y_bound(dtype) -> (10000, 10)``: the proven bound on any side's probabilities (docs/exact.md)."""
    return lambda dtype: exact.bounds(weights, test_set[0], exact_layers, dtype)["y"]


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_torch_fast_labels_and_probabilities_are_the_references(
    dtype, batch_size, device, weights, test_set, numpy_layers, exact_layers, y_bound
):
    model = nn_torch.MnistNet.from_numpy(weights)
    kwargs = {"batch_size": batch_size, "device": device, "dtype": dtype}
    reference = numpy_layers(dtype)["y"]
    assert_same_labels(
        f"torch labels, batch {batch_size}, {dtype}, {device}",
        nn_torch.predict_labels(model, test_set[0], **kwargs),
        reference.argmax(-1),
    )
    probabilities = nn_torch.predict_proba(model, test_set[0], **kwargs)
    error = np.abs((probabilities - exact_layers["y"][0]) - exact_layers["y"][1])
    assert (error <= y_bound(dtype)).all(), (
        f"{(error > y_bound(dtype)).sum()} probabilities beyond their proven bound"
    )
    assert_parity(
        f"torch probabilities, batch {batch_size}, {dtype}, {device}",
        reference,
        probabilities,
        **TOLERANCE[dtype],
    )


def test_a_subclass_runs_its_own_forward(weights, test_set):
    """The fused path is MnistNet's forward; a model that changes it must not be silently fused."""

    class Negated(nn_torch.MnistNet):
        def forward(self, x):
            return -super().forward(x)

    model = Negated.from_numpy(weights)
    ours = nn_torch.predict_labels(model, test_set[0][:500], device="cpu")
    expected = nn_numpy.predict(weights, nn_numpy.normalize(test_set[0][:500])).argmin(-1)
    assert_same_labels("subclass with its own forward", ours, expected)


def dtype_probe():
    """MNIST-shaped weights and one image whose label says the dtype computed in: 1 for float64, 0 for float32.

    One path carries the pixel ``x[0] = 2**-30`` (exact in both dtypes): ``z1[0] = sigmoid(2**-30)`` is
    ``0.5 + 2**-32`` in float64 but rounds to 0.5 in float32, so ``a3[0] = 0.5 - sigmoid(z1[0] - 0.5)``
    is ``-2**-34`` in float64, below the other logits (0: label 1), and ties them in float32 (label 0).
    """
    weights = {k: np.zeros(shape, np.float32) for k, shape in MNIST_SHAPES.items()}
    weights["W1"][0, 0] = 1
    weights["W2"][0, 0], weights["b2"][0] = 1, -0.5
    weights["W3"][0, 0], weights["b3"][0] = -1, 0.5
    image = np.zeros((1, 784))
    image[0, 0] = 2**-30
    return weights, image


@pytest.mark.parametrize("model_dtype", DTYPES)
@pytest.mark.parametrize(
    "images_dtype, dtype, expected",
    [
        ("float64", None, "float64"),
        ("float64", "float32", "float32"),
        ("float32", None, "float32"),
        ("float32", "float64", "float64"),
    ],
)
def test_both_sides_compute_in_the_dtype_the_rule_names(
    images_dtype, dtype, expected, model_dtype, device
):
    """``dtype=None``: the images' own dtype; a dtype given: that one, whatever the torch model's dtype."""
    weights, image = dtype_probe()
    image = image.astype(images_dtype)
    model = nn_torch.MnistNet.from_numpy(weights, getattr(torch, model_dtype))
    torch_dtype = None if dtype is None else getattr(torch, dtype)
    label = {"float64": 1, "float32": 0}[expected]
    labels = {
        "nn_numpy.predict_labels": nn_numpy.predict_labels(weights, image, dtype=dtype),
        "nn_numpy.predict_labels_loop": nn_numpy.predict_labels_loop(weights, image, dtype=dtype),
        "nn_torch.predict_labels": nn_torch.predict_labels(
            model, image, device=device, dtype=torch_dtype
        ),
        "nn_torch.predict_proba": nn_torch.predict_proba(
            model, image, device=device, dtype=torch_dtype
        ).argmax(-1),
    }
    assert labels == {name: [label] for name in labels}, (
        f"{images_dtype} images, dtype={dtype}: expected {expected}"
    )
    assert nn_torch.predict_proba(model, image, device=device, dtype=torch_dtype).dtype == expected


@pytest.mark.parametrize("dtype", [np.float64, "float64", float, torch.float64])
def test_both_sides_take_the_dtype_spelt_by_either_library(dtype):
    weights, image = dtype_probe()
    model = nn_torch.MnistNet.from_numpy(weights)
    labels = [
        nn_numpy.predict_labels(weights, image.astype(np.float32), dtype=dtype),
        nn_torch.predict_labels(model, image.astype(np.float32), device="cpu", dtype=dtype),
    ]
    assert [list(x) for x in labels] == [[1], [1]], (
        f"dtype={dtype!r}: both sides must compute in float64"
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"images": np.zeros((2, 784), np.float16)},
        {"images": np.zeros((2, 784), np.int64)},
        {"images": np.zeros((2, 784), bool)},
        {"images": np.zeros((2, 785), np.uint8)},
        {"images": np.zeros(784, np.float32)},
        {"batch_size": True},
        {"batch_size": 0},
        {"batch_size": 2.0},
        {"dtype": "float16"},
        {"dtype": "int64"},
    ],
)
def test_both_sides_refuse_the_same_arguments_with_the_same_words(weights, kwargs):
    kwargs = {"images": np.zeros((2, 784), np.uint8), **kwargs}
    model = nn_torch.MnistNet.from_numpy(weights)
    torch_kwargs = {**kwargs, "device": "cpu"}
    if "dtype" in kwargs:
        torch_kwargs["dtype"] = getattr(torch, kwargs["dtype"])
    errors = []
    for function, first in [
        (nn_numpy.predict_labels, weights),
        (nn_torch.predict_labels, model),
        (nn_torch.predict_proba, model),
    ]:
        with pytest.raises((InputShapeError, ValueError)) as err:
            function(first, **(kwargs if first is weights else torch_kwargs))
        errors.append((type(err.value), str(err.value)))
    assert errors[0] == errors[1] == errors[2] and "\n" not in errors[0][1], errors
