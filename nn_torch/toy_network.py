"""The chapter's toy network in PyTorch: 2 inputs -> 3 -> 2 -> 2 outputs, identity output.

The same weights and arithmetic as :mod:`nn_numpy.toy_network`, written out layer by layer as the
chapter writes it (``np.dot(x, W1) + b1`` becomes ``x @ W1 + b1``); the NumPy side reuses
``nn_numpy.forward_layers`` with an identity output instead.
"""

import torch

from .activations import identity_function, sigmoid


def init_network():
    """The chapter's hand-set weights as float64 tensors, keys ``W1 b1 W2 b2 W3 b3``, ``W`` of shape (in, out)."""
    return {
        "W1": torch.tensor([[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]], dtype=torch.float64),
        "b1": torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64),
        "W2": torch.tensor([[0.1, 0.4], [0.2, 0.5], [0.3, 0.6]], dtype=torch.float64),
        "b2": torch.tensor([0.1, 0.2], dtype=torch.float64),
        "W3": torch.tensor([[0.1, 0.3], [0.2, 0.4]], dtype=torch.float64),
        "b3": torch.tensor([0.1, 0.2], dtype=torch.float64),
    }


def forward(network, x):
    """``(2,) or (N, 2) -> (2,) or (N, 2)`` float64; for x = [1.0, 0.5], [0.31682708, 0.69627909]."""
    W1, W2, W3 = network["W1"], network["W2"], network["W3"]
    b1, b2, b3 = network["b1"], network["b2"], network["b3"]
    x = torch.as_tensor(x, dtype=torch.float64)
    a1 = x @ W1 + b1
    z1 = sigmoid(a1)
    a2 = z1 @ W2 + b2
    z2 = sigmoid(a2)
    a3 = z2 @ W3 + b3
    return identity_function(a3)
