"""Torch's side of the parity suite's shared data: every intermediate computed once per dtype and device
(the weights, the test set, NumPy's intermediates and the devices come from the root conftest.py)."""

import pytest


@pytest.fixture(scope="session")
def torch_layers(weights, test_set):
    """``layers(dtype_name, device) -> {a1 .. y}`` of torch on all test images, as NumPy arrays; the images
    travel as uint8 and are normalised on the device, as in ``nn_torch.evaluate``."""
    import torch

    import nn_torch

    cache = {}

    def layers(dtype, device):
        if (dtype, device) not in cache:
            model = nn_torch.MnistNet.from_numpy(weights, dtype).to(device)
            pixels = torch.from_numpy(test_set[0].copy()).to(device)
            with torch.inference_mode(), nn_torch.full_precision():
                out = model.forward_layers(nn_torch.normalize(pixels, dtype))
            cache[dtype, device] = {k: v.cpu().numpy() for k, v in out.items()}
        return cache[dtype, device]

    return layers
