"""The parity helper: is a torch result the same as NumPy's, and if not, where?

:func:`assert_parity` checks shape, then dtype, then values, and fails like ``torch.testing.assert_close``
(the stage, the mismatched count, the greatest absolute and relative difference with their index and
both values). :func:`compare` runs a NumPy function and its torch port on copies of one array::

    compare("tanh", np.tanh, torch.tanh, np.linspace(-5, 5, 101, dtype=np.float32))

Equal numbers (equal infinities included) and NaN against NaN match; anything against a NaN or an
infinity it does not equal is infinitely far. Integers and booleans must be equal, compared as
themselves; complex values by their real and imaginary parts (the last index: 0 real, 1 imaginary).
An element passes when ``|actual - expected| <= atol + rtol * |expected|``. The default tolerances are
torch.testing's; :func:`affine_tolerance` derives a proven one for an affine layer of your own, and the
parity suite holds each side to its proven bound of the exact result (docs/exact.md).
"""

import copy

import numpy as np
import torch

# torch.testing.assert_close's defaults, but float64's 1e-7 tightened to 1e-12: a second check beside the
# proven bounds, whose float64 differences on MNIST stay near 1e-14
TOLERANCE = {
    "float64": {"rtol": 1e-12, "atol": 1e-12},
    "float32": {"rtol": 1.3e-6, "atol": 1e-5},
    "float16": {"rtol": 1e-3, "atol": 1e-5},
    "bfloat16": {"rtol": 1.6e-2, "atol": 1e-5},
}
TOLERANCE["complex128"], TOLERANCE["complex64"] = TOLERANCE["float64"], TOLERANCE["float32"]

# One op on identical inputs: a few ulp, and atol = the smallest normal number, below which torch flushes.
ACTIVATION_TOLERANCE = {
    "float32": {"rtol": 1e-6, "atol": float(np.finfo(np.float32).tiny)},
    "float64": {"rtol": 1e-14, "atol": float(np.finfo(np.float64).tiny)},
}


def to_numpy(x):
    """``(array, dtype name)`` of a tensor on any device (bfloat16 as the float32 values it holds) or an array."""
    if not torch.is_tensor(x):
        x = np.asarray(x)
        return x, x.dtype.name
    x = x.detach().cpu()
    return (x.float() if x.dtype == torch.bfloat16 else x).numpy(), str(x.dtype).removeprefix(
        "torch."
    )


def differences(expected, actual, rtol, atol):
    """``{mismatched, total, max_abs, max_abs_index, max_rel, max_rel_index}`` of two same-shape arrays."""
    e, a = np.asarray(expected), np.asarray(actual)
    if np.iscomplexobj(e) or np.iscomplexobj(a):
        e, a = (np.stack([v.real, v.imag], axis=-1) for v in (e, a))
        atol = np.asarray(atol)[..., None] if np.ndim(atol) else atol
    if (
        e.dtype.kind in "biu" and a.dtype.kind in "biu"
    ):  # exactly, as themselves: no float64 rounding
        bad = e != a
        diff = np.zeros(e.shape, dtype=np.float64)
        diff[bad] = [abs(int(p) - int(q)) for p, q in zip(a[bad], e[bad])]
        rel = np.where(
            bad, diff / np.maximum(np.abs(e.astype(np.float64)), np.finfo(np.float64).tiny), 0.0
        )
    else:
        e, a = e.astype(np.float64), a.astype(np.float64)
        same = (a == e) | (np.isnan(a) & np.isnan(e))
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            diff = np.nan_to_num(np.where(same, 0.0, np.abs(a - e)), nan=np.inf)
            rel = np.nan_to_num(np.where(same, 0.0, diff / np.abs(e)), nan=np.inf)
            bad = ~same & ~(np.isfinite(a) & np.isfinite(e) & (diff <= atol + rtol * np.abs(e)))
    i_abs = np.unravel_index(np.argmax(diff), diff.shape) if diff.size else ()
    i_rel = np.unravel_index(np.argmax(rel), rel.shape) if rel.size else ()
    return {
        "mismatched": int(bad.sum()),
        "total": int(bad.size),
        "max_abs": float(diff[i_abs]) if diff.size else 0.0,
        "max_abs_index": [int(i) for i in i_abs],
        "max_rel": float(rel[i_rel]) if rel.size else 0.0,
        "max_rel_index": [int(i) for i in i_rel],
    }


def assert_parity(stage, expected, actual, rtol=None, atol=None):
    """Assert that ``actual`` matches ``expected`` (tensors on any device, or arrays); return the differences.

    In order, each failure an ``AssertionError`` starting with ``stage``: the shapes are equal (no
    broadcasting), the dtypes are equal, then every element is within ``atol + rtol * |expected|``.
    ``rtol`` and ``atol`` go together; ``atol`` may be an array of the result's shape. Neither means
    :data:`TOLERANCE` for the dtype; integers and booleans must be equal exactly.
    """
    if (rtol is None) != (atol is None):
        raise ValueError("give both rtol and atol, or neither for the dtype's default tolerance")
    (e, e_dtype), (a, a_dtype) = to_numpy(expected), to_numpy(actual)
    if a.shape != e.shape:  # raise, not assert: python -O must not turn the check off
        raise AssertionError(f"{stage}: shape {a.shape}, NumPy gives {e.shape}")
    if a_dtype != e_dtype:
        raise AssertionError(f"{stage}: dtype {a_dtype}, NumPy gives {e_dtype}")
    if rtol is None:
        rtol, atol = TOLERANCE.get(e_dtype, {"rtol": 0.0, "atol": 0.0}).values()
    d = differences(e, a, rtol, atol)
    if d["mismatched"]:
        i, j = tuple(d["max_abs_index"]), tuple(d["max_rel_index"])
        shown = [np.stack([v.real, v.imag], -1)[i] if np.iscomplexobj(v) else v[i] for v in (e, a)]
        allowed = atol if np.ndim(atol) == 0 else np.broadcast_to(atol, e.shape)[i[: e.ndim]]
        raise AssertionError(  # str, not repr: NumPy 2 would write np.float32(...) around the values
            f"{stage}: not close!\n"
            f"Mismatched elements: {d['mismatched']} / {d['total']} ({100 * d['mismatched'] / d['total']:.1f}%)\n"
            f"Greatest absolute difference: {d['max_abs']:.6g} at index {i} (up to {float(allowed):g} allowed): "
            f"NumPy {shown[0]!s}, torch {shown[1]!s}\n"
            f"Greatest relative difference: {d['max_rel']:.6g} at index {j} (up to {rtol:g} allowed)"
        )
    return d


def compare(name, np_fn, torch_fn, x, device="cpu", tol=None):
    """Run ``np_fn`` and ``torch_fn`` each on its own copy of the NumPy array ``x``; :func:`assert_parity` them.

    ``torch_fn`` gets ``torch.from_numpy(x)`` on ``device``; ``tol`` is ``{"rtol", "atol"}`` or None.
    """
    expected = np_fn(x.copy())
    actual = torch_fn(torch.from_numpy(x.copy()).to(device))
    return assert_parity(f"{name} on {device}", expected, actual, **(tol or {}))


def affine_tolerance(x, W, b, dtype="float32"):
    """``{"rtol": 0, "atol": (N, out) array}``: how far two correct ``dtype`` ports of ``x @ W + b`` may differ.

    Each lies within Higham's gamma(n+1) (|x| |W| + |b|) of the exact result (docs/exact.md), so
    two lie within twice that, whatever BLAS, CPU or GPU computed them.
    """
    from nn_numpy.exact import SLACK, UNIT_ROUNDOFF

    absolute = [np.abs(np.asarray(v, np.float64)) for v in (x, W, b)]
    n, u = absolute[1].shape[0] + 1, UNIT_ROUNDOFF[str(dtype).removeprefix("torch.")]
    g = n * u / (1 - n * u)
    return {"rtol": 0.0, "atol": 2 * g * (absolute[0] @ absolute[1] + absolute[2]) * SLACK}


def round_mantissa(t, bits):
    """float32 ``t`` rounded to nearest, ties to even, keeping ``bits`` of its 23 mantissa bits."""
    i = t.contiguous().view(torch.int32)
    drop = 23 - bits
    i = i + ((1 << (drop - 1)) - 1) + ((i >> drop) & 1)
    return (i & ~((1 << drop) - 1)).view(torch.float32)


def emulate(model, fmt):
    """A copy of ``model`` whose matmuls see inputs and weights rounded as TF32 (``"tf32"``: 10 mantissa
    bits) or bfloat16 (``"bf16"``: 7) would round them, on any device; the sums stay float32."""
    bits = {"tf32": 10, "bf16": 7}[fmt]
    model = copy.deepcopy(model)
    with torch.no_grad():
        for fc in (model.fc1, model.fc2, model.fc3):
            fc.weight.copy_(round_mantissa(fc.weight, bits))
            fc.register_forward_pre_hook(lambda module, args: (round_mantissa(args[0], bits),))
    return model
