"""The chapter's toy network: torch gives what NumPy gives (the chapter's own numbers are checked on each
side in tests/)."""

import numpy as np
import torch

import nn_numpy
import nn_torch
from nn_torch.parity import TOLERANCE, assert_parity


def test_toy_network_batch_matches_numpy():
    x = np.random.default_rng(0).standard_normal((5, 2))
    assert_parity(
        "toy forward (5, 2)",
        nn_numpy.forward(nn_numpy.init_network(), x),
        nn_torch.forward(nn_torch.init_network(), torch.from_numpy(x)),
        **TOLERANCE["float64"],
    )
