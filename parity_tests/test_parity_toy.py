"""The chapter's toy network: torch gives the book's numbers, and what NumPy gives."""

import numpy as np
import torch

import nn_numpy
import nn_torch
from nn_torch.parity import TOLERANCE, assert_parity

BOOK_OUTPUT = [0.31682708, 0.69627909]  # the chapter's printout for x = [1.0, 0.5]


def test_toy_network_gives_the_chapters_numbers():
    y = nn_torch.forward(nn_torch.init_network(), [1.0, 0.5])
    assert y.dtype == torch.float64 and y.shape == (2,)
    np.testing.assert_allclose(y.numpy(), BOOK_OUTPUT, rtol=0, atol=5e-9)


def test_toy_network_weights_are_numpys():
    ours, theirs = nn_torch.init_network(), nn_numpy.init_network()
    assert ours.keys() == theirs.keys()
    for k in ours:
        assert_parity(f"toy {k}", theirs[k], ours[k], rtol=0, atol=0)


def test_toy_network_batch_matches_numpy():
    x = np.random.default_rng(0).standard_normal((5, 2))
    assert_parity("toy forward (5, 2)", nn_numpy.forward(nn_numpy.init_network(), x),
                  nn_torch.forward(nn_torch.init_network(), torch.from_numpy(x)), **TOLERANCE["float64"])
