"""The chapter's 3-layer network: affine, sigmoid, affine, sigmoid, affine, output.

Weights are a dict in the book's layout, ``x @ W + b`` with ``W`` of shape (in, out):
for MNIST ``W1 (784, 50), b1 (50,), W2 (50, 100), b2 (100,), W3 (100, 10), b3 (10,)``.
"""

import numpy as np

from .activations import sigmoid, softmax
from .data.errors import InputShapeError

LAYER_NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")
MNIST_SHAPES = {"W1": (784, 50), "b1": (50,), "W2": (50, 100), "b2": (100,), "W3": (100, 10), "b3": (10,)}
FLOAT_DTYPES = (np.float32, np.float64)
LAYER_OUTPUTS = ("a1", "z1", "a2", "z2", "a3", "y")  # forward_layers' intermediates, input to output
BOOK_ACCURACY = 0.9352  # the book's sample_weight.pkl on MNIST's 10,000 test images


def forward_layers(network, x, output=softmax):
    """Every intermediate of one forward pass: ``{a1, z1, a2, z2, a3, y}``.

    ``x`` is ``(D,)`` or ``(N, D)``; ``a``/``z`` are ``(.., 50)``, ``(.., 100)``,
    ``a3`` the logits and ``y = output(a3)``. Computed in ``x.dtype``: the weights
    are cast to it, so float64 input gives a float64 reference.
    """
    W1, b1, W2, b2, W3, b3 = (np.asarray(network[k], dtype=x.dtype) for k in LAYER_NAMES)
    a1 = np.dot(x, W1) + b1
    z1 = sigmoid(a1)
    a2 = np.dot(z1, W2) + b2
    z2 = sigmoid(a2)
    a3 = np.dot(z2, W3) + b3  # b3, not the notes' b2
    return {"a1": a1, "z1": z1, "a2": a2, "z2": z2, "a3": a3, "y": output(a3)}


def check_input(x, n_features):
    """Return ``x`` as an array if it is ``(n_features,)`` or ``(N, n_features)`` float32/64.

    Integer images are refused rather than silently normalised: uint8 pixels fed to
    a network trained on [0, 1] give confident nonsense, and an int array of 0s and
    1s would be ambiguous. ``nn_numpy.normalize`` does the conversion.
    """
    x = np.asarray(x)
    if x.dtype not in FLOAT_DTYPES:
        hint = " (uint8 pixels: divide by 255 with nn_numpy.normalize first)" if x.dtype == np.uint8 else ""
        raise InputShapeError(f"expected float32 or float64 input, got {x.dtype}{hint}")
    if x.ndim not in (1, 2) or x.shape[-1] != n_features:
        raise InputShapeError(f"expected input of shape ({n_features},) or (N, {n_features}), got {x.shape}")
    return x


def predict(network, x):
    """MNIST probabilities: ``(784,) or (N, 784) float -> (10,) or (N, 10)`` in the input's dtype."""
    x = check_input(x, np.shape(network["W1"])[0])
    return forward_layers(network, x)["y"]
