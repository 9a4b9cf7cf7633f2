"""The chapter's toy network: 2 inputs -> 3 -> 2 -> 2 outputs, identity output."""

import numpy as np

from .activations import identity_function
from .network import forward_layers


def init_network():
    return {
        "W1": np.array([[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]]),
        "b1": np.array([0.1, 0.2, 0.3]),
        "W2": np.array([[0.1, 0.4], [0.2, 0.5], [0.3, 0.6]]),
        "b2": np.array([0.1, 0.2]),
        "W3": np.array([[0.1, 0.3], [0.2, 0.4]]),
        "b3": np.array([0.1, 0.2]),
    }


def forward(network, x):
    """``(2,) or (N, 2) -> (2,) or (N, 2)``; for x = [1.0, 0.5], [0.31682708, 0.69627909]."""
    return forward_layers(network, np.asarray(x, dtype=np.float64), output=identity_function)["y"]
