"""Device choice and the TF32-off context, on the machine at hand and with CUDA/MPS simulated."""

import pytest
import torch

import nn_torch.device as dev
from nn_torch import full_precision, matmul_precision, resolve_device
from nn_torch.device import DeviceError

HOLDERS = [h for h in dev._PRECISION_HOLDERS if hasattr(h, "fp32_precision")]


@pytest.fixture
def no_accelerator(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


def test_cpu_is_always_there():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


def test_auto_falls_back_to_cpu(no_accelerator):
    assert resolve_device("auto") == torch.device("cpu")


def test_auto_prefers_cuda_then_mps(monkeypatch, two_gpus):
    assert resolve_device("auto") == torch.device("cuda", 0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(dev, "_mps_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")


def test_cuda_index_in_and_out_of_range(two_gpus):
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(
        DeviceError, match=r"cuda:2 is out of range: 2 CUDA device\(s\), cuda:0 to cuda:1"
    ):
        resolve_device("cuda:2")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("cuda", "cuda is not available"),
        ("cuda:3", "cuda:3 is not available"),
        ("mps", "mps is not available"),
        ("tpu", "unknown device 'tpu': expected auto, cpu, cuda, cuda:N or mps"),
        ("cuda:x", "unknown device 'cuda:x'"),
        ("meta", "unsupported device 'meta'"),
    ],
)
def test_absent_or_unknown_device_is_one_line(no_accelerator, spec, message):
    with pytest.raises(DeviceError, match=message) as err:
        resolve_device(spec)
    assert "\n" not in str(err.value)


def test_mps_float64_is_refused_in_one_line():
    with pytest.raises(DeviceError, match="mps has no float64"):
        dev.check_dtype(torch.device("mps"), torch.float64)
    dev.check_dtype(torch.device("mps"), torch.float32)
    dev.check_dtype(torch.device("cpu"), torch.float64)


def precision_state():
    """Every float32 precision switch torch has, legacy and new, as readable values."""
    return (
        [h.fp32_precision for h in HOLDERS],
        dev._try(torch.get_float32_matmul_precision),
        dev._try(lambda: torch.backends.cuda.matmul.allow_tf32),
        dev._try(lambda: torch.backends.cudnn.allow_tf32),
    )


USER_SETTINGS = {
    "default": lambda: None,
    "legacy allow_tf32": lambda: setattr(torch.backends.cuda.matmul, "allow_tf32", True),
    "precision high": lambda: torch.set_float32_matmul_precision("high"),
    "precision medium": lambda: torch.set_float32_matmul_precision("medium"),
    "cudnn tf32 off": lambda: setattr(torch.backends.cudnn, "allow_tf32", False),
}
if HOLDERS:  # torch >= 2.9
    USER_SETTINGS["new API tf32"] = lambda: setattr(
        torch.backends.cuda.matmul, "fp32_precision", "tf32"
    )
    USER_SETTINGS["new API all tf32"] = lambda: setattr(torch.backends, "fp32_precision", "tf32")


@pytest.mark.parametrize("setting", USER_SETTINGS)
def test_full_precision_turns_tf32_off_and_restores_the_users_setting(setting):
    with full_precision():  # the outer block puts the test process back as it was
        USER_SETTINGS[setting]()
        before = precision_state()
        with full_precision():
            assert matmul_precision() == "highest (TF32 off)"
            assert torch.get_float32_matmul_precision() == "highest"
            assert torch.backends.cuda.matmul.allow_tf32 is False
            if HOLDERS:
                assert torch.backends.cuda.matmul.fp32_precision == "ieee"
        assert precision_state() == before


def test_full_precision_restores_after_an_error():
    with full_precision():
        torch.set_float32_matmul_precision("high")
        with pytest.raises(KeyError):
            with full_precision():
                raise KeyError("boom")
        assert torch.get_float32_matmul_precision() == "high"
        assert matmul_precision() == "high (TF32 on)"


@pytest.mark.skipif(
    not HOLDERS, reason="torch < 2.9 has no per-backend fp32_precision API to mix with"
)
def test_matmul_precision_says_when_settings_are_mixed():
    with full_precision():
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        assert matmul_precision() == "mixed legacy and new TF32 settings"
