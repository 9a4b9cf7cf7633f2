"""Shared, session-scoped data for the parity suite (the weights, the test set and the devices come from
the root conftest.py): every intermediate of both sides computed once per dtype and device."""

import numpy as np
import pytest
import torch

import nn_numpy
import nn_torch


@pytest.fixture(scope="session")
def numpy_layers(weights, test_set):
    """``layers(dtype_name) -> {a1 .. y}`` of NumPy on all test images, computed once per dtype."""
    cache = {}

    def layers(dtype):
        if dtype not in cache:
            cache[dtype] = nn_numpy.forward_layers(weights, nn_numpy.normalize(test_set[0], np.dtype(dtype).type))
        return cache[dtype]
    return layers


@pytest.fixture(scope="session")
def torch_layers(weights, test_set):
    """``layers(dtype_name, device) -> {a1 .. y}`` of torch on all test images, as NumPy arrays.

    The images travel as uint8 and are normalised on the device, as in ``nn_torch.evaluate``.
    """
    cache = {}

    def layers(dtype, device):
        if (dtype, device) not in cache:
            model = nn_torch.MnistNet.from_numpy(weights, getattr(torch, dtype)).to(device)
            pixels = torch.from_numpy(test_set[0].copy()).to(device)
            with torch.inference_mode(), nn_torch.full_precision():
                out = model.forward_layers(nn_torch.normalize(pixels, getattr(torch, dtype)))
            cache[dtype, device] = {k: v.cpu().numpy() for k, v in out.items()}
        return cache[dtype, device]
    return layers
