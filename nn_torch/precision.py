"""What arithmetic a matmul really does, measured with inputs whose exact results are known, and
whether a forward pass gives a row the same bits alone and inside a batch.

:func:`probe` takes any ``matmul(a, b) -> a @ b`` and measures, in one call on two crafted matrices
(the test rows inside 128 x 128 zeros, so the kernel is the one real work gets):

- the input bits: ``-1 + (1 + 2**-k)`` is exactly ``2**-k`` whatever the accumulator, when one of
  the two orders is summed, but 0 once the inputs lose bit k; both operands are tried;
- the accumulator bits: ``1 + 2**-k``, both terms powers of two that any format holds exactly, is
  exact only while the accumulation (and the output) keep bit k;
- the exponent range: ``2**20`` (float16's largest is 65504) comes back or does not.

Bits count the stored fraction bits (the implicit leading bit not counted): float64 52, float32 23,
TF32 10, float16 10, bfloat16 7. Docs: docs/precision.md.
"""

import contextlib
from dataclasses import dataclass

import numpy as np
import torch

FORMATS = {"fp64": 52, "fp32": 23, "tf32": 10, "fp16": 10, "bf16": 7}
SIZE = 128  # the test rows sit in matrices of this size, so tiny-shape kernels do not stand in


@dataclass(frozen=True)
class Precision:
    """``format`` one of fp64 fp32 tf32 fp16 bf16 unknown; bits are stored fraction bits kept."""

    format: str
    input_bits: int
    accumulator_bits: int
    wide_range: bool  # float32's exponents (TF32, bfloat16) rather than float16's

    def __str__(self):
        bits = min(self.input_bits, self.accumulator_bits)
        return self.format if self.format != "unknown" else f"unknown ({bits} bits)"


def name(input_bits, accumulator_bits, wide_range):
    """The format a measured ``(input bits, accumulator bits, range)`` implies."""
    bits = min(input_bits, accumulator_bits)
    if bits >= 52:
        return "fp64"
    if bits >= 23:
        return "fp32"
    if bits == 10 and not wide_range:
        return "fp16"
    if bits == 10 and accumulator_bits >= 23:
        return "tf32"
    if bits == 7 and wide_range:
        return "bf16"
    return "unknown"


def _cases(top, dtype, device):
    """``(a, b, expected)``: rows of ``a @ b``'s first column whose exact values are known."""
    ks = np.arange(1, top + 1)
    big = 1.0 + 2.0**-ks
    rows = [
        (-np.ones_like(big), big),  # input test, -1 summed first
        (big, -np.ones_like(big)),  # input test, the other order
        (np.ones_like(big), 2.0**-ks),  # accumulator test
        (2.0**-ks, np.ones_like(big)),
    ]
    first = np.concatenate([r[0] for r in rows] + [[2.0**20]])
    second = np.concatenate([r[1] for r in rows] + [[0.0]])
    a = np.zeros((SIZE * ((len(first) + SIZE - 1) // SIZE), SIZE))
    a[: len(first), 0], a[: len(first), 1] = first, second
    b = np.zeros((SIZE, SIZE))
    b[0, 0] = b[1, 0] = 1.0
    expected = np.concatenate([2.0**-ks, 2.0**-ks, big, big, [2.0**20]])
    as_tensor = lambda m: torch.tensor(m, dtype=dtype, device=device)  # noqa: E731
    return as_tensor(a), as_tensor(b), expected


def _kept(ok):
    """How many leading ``k = 1, 2, ...`` all passed."""
    return int(np.argmin(ok)) if not ok.all() else len(ok)


def probe(matmul, dtype=torch.float32, device="cpu"):
    """:class:`Precision` of ``matmul(a, b)``, given ``dtype`` tensors on ``device`` (float32 by
    default: it may cast them as it likes); e.g. ``probe(lambda a, b: (a.bfloat16() @ b.bfloat16()).float())``."""
    top = 52 if dtype == torch.float64 else 23
    a, b, expected = _cases(top, dtype, device)
    with torch.no_grad():
        out = matmul(a, b)[: len(expected), 0].double().cpu().numpy()
        flipped = matmul(b.T, a.T)[0, : len(expected)].double().cpu().numpy()  # the same, b varies
    n = top
    ok = [(v == expected) for v in (out, flipped)]
    inputs = min(
        _kept(ok[i][:n] | ok[i][n : 2 * n]) for i in (0, 1)
    )  # either order of the input test
    accumulator = min(_kept(ok[i][2 * n : 3 * n] & ok[i][3 * n : 4 * n]) for i in (0, 1))
    wide = bool(ok[0][-1] and ok[1][-1])
    return Precision(name(inputs, accumulator, wide), inputs, accumulator, wide)


# --- torch's own matmul under each setting a user can switch -----------------------------------------


def _flags():
    from .device import _try

    return {
        "float32_matmul_precision": _try(torch.get_float32_matmul_precision),
        "allow_tf32": _try(lambda: torch.backends.cuda.matmul.allow_tf32),
    }


@contextlib.contextmanager
def _setting(name, device):
    from .device import full_precision

    with full_precision():  # for its restore; inside, each setting as a user would make it
        if name == "default":
            with _saved_defaults():
                yield
        elif name == "allow_tf32":
            torch.backends.cuda.matmul.allow_tf32 = True
            yield
        elif name.startswith("matmul_precision "):
            torch.set_float32_matmul_precision(name.split()[1])
            yield
        else:  # "autocast bf16", "autocast fp16"
            dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[name.split()[1]]
            with torch.autocast(device.type, dtype=dtype):
                yield


_DEFAULTS = {}


@contextlib.contextmanager
def _saved_defaults():
    """The settings in force when the process started (saved at import): 'default' is what a user
    who changed nothing gets, whatever this process set since."""
    previous = _flags()
    with contextlib.suppress(RuntimeError):
        torch.set_float32_matmul_precision(_DEFAULTS["float32_matmul_precision"])
        torch.backends.cuda.matmul.allow_tf32 = _DEFAULTS["allow_tf32"]
    try:
        yield
    finally:
        with contextlib.suppress(RuntimeError, TypeError):
            torch.set_float32_matmul_precision(previous["float32_matmul_precision"])
            torch.backends.cuda.matmul.allow_tf32 = previous["allow_tf32"]


_DEFAULTS.update(_flags())
SETTINGS = (
    "default",
    "allow_tf32",
    "matmul_precision high",
    "matmul_precision medium",
    "autocast bf16",
    "autocast fp16",
)


def claim(name, flags, device):
    """The narrowest format the flags in force permit float32 matmuls on ``device``."""
    if name.startswith("autocast"):
        return name.split()[1]
    if device.type == "cuda" and (
        flags["allow_tf32"] or flags["float32_matmul_precision"] != "highest"
    ):
        return "tf32" if flags["float32_matmul_precision"] != "medium" else "bf16"
    if device.type == "cpu" and flags["float32_matmul_precision"] == "medium":
        return "bf16"  # oneDNN may use bfloat16 where the CPU has it
    return "fp32"


def device_table(device, dtype=torch.float32):
    """One row per setting: ``{setting, flags, claim, measured: Precision or None, error, disagree}``."""
    rows = []
    for setting in SETTINGS:
        row = {"setting": setting}
        try:
            with _setting(setting, device):
                row["flags"] = _flags()
                row["claim"] = (
                    claim(setting, row["flags"], device) if dtype == torch.float32 else "fp64"
                )
                row["measured"] = probe(torch.matmul, dtype, device)
        except (RuntimeError, TypeError, ValueError) as err:  # a setting this device lacks
            row.update(measured=None, error=" ".join(str(err).split())[:120])
            rows.append(row)
            continue
        bits = min(row["measured"].input_bits, row["measured"].accumulator_bits)
        row["disagree"] = bits < FORMATS[row["claim"]]  # narrower than anything the flags allow
        rows.append(row)
    return rows


# --- batch invariance ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchInvariance:
    """Rows alone against the same rows inside batches: ``bitwise`` equal for every size, else the
    largest difference in ulps of the output's dtype, ``max_ulps`` (per size: ``ulps``); ``alone``
    and ``batched`` ``{size: array}`` are the outputs themselves."""

    bitwise: bool
    max_ulps: int
    ulps: dict
    alone: np.ndarray
    batched: dict


def ulps_apart(a, b):
    """Elementwise count of floats of ``a``'s dtype between ``a`` and ``b`` (NaN against NaN: 0)."""
    from nn_numpy.exact import ulp_distance

    a, b = np.asarray(a), np.asarray(b, a.dtype)
    return np.where(np.isnan(a) & np.isnan(b), 0, ulp_distance(a, b))


def batch_invariance(forward, x, sizes):
    """Run ``forward`` on each row of ``x`` alone (a batch of 1), and on all of them in batches of
    each size; tensors or arrays in, either out. ``x (N, ...) -> BatchInvariance``."""
    sizes = sorted({min(int(s), len(x)) for s in sizes} - {1})
    alone = np.concatenate([_as_array(forward(x[i : i + 1])) for i in range(len(x))])
    batched = {
        size: np.concatenate([_as_array(forward(x[i : i + size])) for i in range(0, len(x), size)])
        for size in sizes
    }
    ulps = {size: int(ulps_apart(alone, out).max(initial=0)) for size, out in batched.items()}
    return BatchInvariance(
        all(v == 0 for v in ulps.values()), max(ulps.values(), default=0), ulps, alone, batched
    )


def _as_array(v):
    return v.detach().cpu().numpy() if torch.is_tensor(v) else np.asarray(v)
