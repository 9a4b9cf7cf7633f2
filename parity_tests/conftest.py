"""Torch's side of the parity suite's shared data: every intermediate computed once per dtype and device
(the weights, the test set, NumPy's intermediates and the devices come from the root conftest.py)."""

import pytest
import torch

import nn_torch


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
