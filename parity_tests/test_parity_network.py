"""The network's contracts on both sides: the same intermediates by name and shape, the same inputs refused."""

import numpy as np
import pytest
import torch

import nn_numpy
from nn_numpy.data.errors import InputShapeError
from nn_torch import MnistNet


def test_forward_layers_has_numpys_names_and_shapes(weights):
    ours = MnistNet.from_numpy(weights).forward_layers(torch.rand(3, 784))
    theirs = nn_numpy.forward_layers(weights, np.random.rand(3, 784).astype(np.float32))
    assert list(ours) == list(theirs)
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_uint8_is_refused_on_both_sides(weights):
    pixels = np.zeros((1, 784), np.uint8)
    with pytest.raises(InputShapeError, match="uint8"):
        nn_numpy.predict(weights, pixels)
    with pytest.raises(InputShapeError, match="uint8"):
        MnistNet.from_numpy(weights)(torch.from_numpy(pixels))
