"""Choosing a torch device, and running float32 matmuls at full IEEE precision."""

import contextlib

import torch

from nn_numpy.errors import NNError
from nn_numpy.evaluate import float_dtype


class DeviceError(NNError, RuntimeError):
    """A requested torch device is absent or out of range, or cannot hold the dtype asked for."""


DEVICE_CHOICES = "auto, cpu, cuda, cuda:N or mps"

# torch >= 2.9 keeps TF32 switches per backend (``fp32_precision``) beside the legacy flags.
_PRECISION_HOLDERS = (
    torch.backends,
    torch.backends.cuda.matmul,
    torch.backends.cudnn,
    torch.backends.cudnn.conv,
    torch.backends.cudnn.rnn,
    torch.backends.mkldnn,
    torch.backends.mkldnn.matmul,
    torch.backends.mkldnn.conv,
    torch.backends.mkldnn.rnn,
)


def _mps_available():
    return torch.backends.mps.is_available()


def resolve_device(spec="auto"):
    """``"auto" | "cpu" | "cuda" | "cuda:N" | "mps"`` (or a ``torch.device``) -> ``torch.device``.

    ``auto`` picks cuda, then mps, then cpu. ``cuda`` means the current CUDA device,
    returned with its index so reports say which card ran. An absent device or an
    index out of range raises :class:`DeviceError` with one line saying what is there.
    """
    if str(spec) == "auto":
        spec = "cuda" if torch.cuda.is_available() else "mps" if _mps_available() else "cpu"
    try:
        device = torch.device(spec)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {str(spec)!r}: expected {DEVICE_CHOICES}") from None
    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = (
                "without CUDA"
                if torch.version.cuda is None
                else f"with CUDA {torch.version.cuda} but no GPU is visible"
            )
            raise DeviceError(
                f"{spec} is not available: torch {torch.__version__} is built {build}; use --device cpu"
            )
        count = torch.cuda.device_count()
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= count:
            raise DeviceError(
                f"cuda:{index} is out of range: {count} CUDA device(s), cuda:0 to cuda:{count - 1}"
            )
        return torch.device("cuda", index)
    if device.type == "mps":
        if not _mps_available():
            raise DeviceError(
                "mps is not available (it needs Apple silicon and a torch built with MPS); "
                "use --device cpu"
            )
        return torch.device("mps")
    raise DeviceError(f"unsupported device {str(spec)!r}: expected {DEVICE_CHOICES}")


def check_dtype(device, dtype):
    """Refuse, in one line, a dtype the device cannot hold: MPS has no float64."""
    if device.type == "mps" and float_dtype(dtype) == "float64":
        raise DeviceError("mps has no float64: use --dtype float32, or --device cpu for float64")


def _try(getter):
    # torch >= 2.9 raises when asked for a legacy flag after the user set the new API
    try:
        return getter()
    except RuntimeError:
        return None


@contextlib.contextmanager
def full_precision():
    """Run float32 matmuls at IEEE precision inside the block, TF32 off, whatever the user set.

    Every setting is put back afterwards, even on error. On torch >= 2.9 the legacy
    flags and the per-backend ``fp32_precision`` must agree or cuBLAS refuses to run,
    so the block sets both through the legacy calls and restores both exactly.
    """
    holders = [h for h in _PRECISION_HOLDERS if hasattr(h, "fp32_precision")]
    saved_new = [h.fp32_precision for h in holders]
    saved_matmul = _try(torch.get_float32_matmul_precision)
    saved_cudnn = _try(lambda: torch.backends.cudnn.allow_tf32)
    torch.set_float32_matmul_precision("highest")
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        if saved_matmul is not None:
            torch.set_float32_matmul_precision(saved_matmul)
        if saved_cudnn is not None:
            torch.backends.cudnn.allow_tf32 = saved_cudnn
        for holder, value in zip(holders, saved_new):
            holder.fp32_precision = value


@contextlib.contextmanager
def tf32_allowed():
    """float32 matmuls may run in TF32 inside the block (on CUDA); every setting is put back afterwards."""
    with full_precision():  # for its restore
        torch.set_float32_matmul_precision("high")
        torch.backends.cuda.matmul.allow_tf32 = True
        yield


def matmul_precision():
    """The float32 matmul setting in force, for reports, e.g. ``"highest (TF32 off)"``."""
    precision = _try(torch.get_float32_matmul_precision)
    tf32 = _try(lambda: torch.backends.cuda.matmul.allow_tf32)
    if precision is None or tf32 is None:
        return "mixed legacy and new TF32 settings"
    return f"{precision} (TF32 {'on' if tf32 else 'off'})"
