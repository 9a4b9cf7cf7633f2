"""The chapter's 3-layer network: affine, sigmoid, affine, sigmoid, affine, output.

Weights are a dict in the book's layout, ``x @ W + b`` with ``W`` of shape (in, out):
for MNIST ``W1 (784, 50), b1 (50,), W2 (50, 100), b2 (100,), W3 (100, 10), b3 (10,)``.
"""

import numpy as np

from .activations import sigmoid, softmax
from .errors import InputShapeError, WeightsError

LAYER_NAMES = ("W1", "b1", "W2", "b2", "W3", "b3")
MNIST_SHAPES = {
    "W1": (784, 50),
    "b1": (50,),
    "W2": (50, 100),
    "b2": (100,),
    "W3": (100, 10),
    "b3": (10,),
}
LAYER_OUTPUTS = ("a1", "z1", "a2", "z2", "a3", "y")
BOOK_ACCURACY = 0.9352


def check_keys(keys, source="weights"):
    """Refuse a key set other than LAYER_NAMES in one line (at most 5 unexpected keys quoted)."""
    missing = [k for k in LAYER_NAMES if k not in keys]
    extra = [k for k in keys if k not in LAYER_NAMES]
    if missing or extra:
        shown = ", ".join(repr(k)[:40] for k in extra[:5]) + (
            f" and {len(extra) - 5} more" if len(extra) > 5 else ""
        )
        raise WeightsError(
            f"{source}: expected keys {', '.join(LAYER_NAMES)}; missing: {', '.join(missing) or 'none'}; "
            f"unexpected: {shown or 'none'}"
        )


def check_network(network, source="weights"):
    """Refuse weights that are not six real float arrays chained ``(n, h1) (h1,) (h1, h2) (h2,) (h2, k) (k,)``."""
    if not isinstance(network, dict):
        raise WeightsError(f"{source}: expected a dict of arrays, found {type(network).__name__}")
    check_keys(network, source)
    width = None  # the previous layer's output size
    for k in LAYER_NAMES:
        a = np.asarray(network[k])
        if a.dtype.kind != "f":
            raise WeightsError(f"{source}: {k}: expected a float dtype, found {a.dtype}")
        if k[0] == "W":
            ok, expected = (
                a.ndim == 2 and a.shape[0] == (width or a.shape[0]),
                f"({width or 'N'}, N)",
            )
        else:
            ok, expected = a.shape == (width,), f"({width},)"
        if not ok:
            raise WeightsError(f"{source}: {k}: expected shape {expected}, found {a.shape}")
        width = a.shape[-1]


def check_input(x, n_features):
    """``x`` as an array if it is ``(n_features,)`` or ``(N, n_features)`` float32/float64; else InputShapeError.

    uint8 pixels are refused, not normalised: on a network trained on [0, 1] they give confident nonsense.
    """
    x = np.asarray(x)
    if x.dtype not in (np.float32, np.float64):
        hint = (
            " (uint8 pixels: divide by 255 with nn_numpy.normalize first)"
            if x.dtype == np.uint8
            else ""
        )
        raise InputShapeError(f"expected float32 or float64 input, got {x.dtype}{hint}")
    if x.ndim not in (1, 2) or x.shape[-1] != n_features:
        raise InputShapeError(
            f"expected input of shape ({n_features},) or (N, {n_features}), got {x.shape}"
        )
    return x


def checked(network, x):
    """``x`` as an array, once ``network`` and ``x`` pass :func:`check_network` and :func:`check_input`."""
    check_network(network)
    return check_input(x, np.shape(network["W1"])[0])


def predict(network, x, layers=None):
    """MNIST probabilities: ``(784,) or (N, 784) float -> (10,) or (N, 10)`` in the input's dtype.

    ``layers``, a dict, also receives every intermediate: a1 z1 a2 z2 a3 y.
    """
    x = checked(network, x)
    W1, W2, W3 = (np.asarray(network[k], x.dtype) for k in ("W1", "W2", "W3"))
    b1, b2, b3 = (np.asarray(network[k], x.dtype) for k in ("b1", "b2", "b3"))

    a1 = np.dot(x, W1) + b1
    z1 = sigmoid(a1)
    a2 = np.dot(z1, W2) + b2
    z2 = sigmoid(a2)
    a3 = np.dot(z2, W3) + b3  # b3, not the notes' b2
    y = softmax(a3)

    if layers is not None:
        layers.update(a1=a1, z1=z1, a2=a2, z2=z2, a3=a3, y=y)
    return y


def forward_layers(network, x):
    """``{a1, z1, a2, z2, a3, y}`` of :func:`predict`'s forward pass, computed in ``x``'s dtype."""
    layers = {}
    predict(network, x, layers)
    return layers
