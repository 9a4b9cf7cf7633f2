"""The parity policy and its one helper: is a torch result the same as NumPy's, and if not, where?

:func:`assert_parity` compares a NumPy result with a torch one: shape, then dtype, then the
values within a tolerance; a failure reads like ``torch.testing.assert_close`` (the stage, the
mismatched count, the greatest absolute and relative difference with their index and both
values). :func:`compare` runs a NumPy function and its torch port on the same array and asserts
parity: the way to check your own port, e.g. of ``tanh``::

    from nn_torch.parity import compare
    compare("tanh", np.tanh, torch.tanh, np.linspace(-5, 5, 101, dtype=np.float32))

A position counts as equal when the numbers are equal (equal infinities included) or both
are NaN; NaN on one side only is infinitely far. The parity suite, ``scripts/parity_report.py``,
``scripts/figures.py`` and the notebook all use these.

Tolerance policy: an element passes when ``|torch - numpy| <= atol + rtol * |numpy|``.
Absolute error governs: pre-activations cross zero, so relative differences there are
meaningless (0.26 at an a1 entry near 0). Figures measured on all 10,000 MNIST test images,
the book's weights, CPU, torch 2.13.0, NumPy 2.4, TF32 off (greatest absolute difference):

    layer                     a1       z1       a2       z2       a3       y
    float32 numpy vs torch    5.2e-6   9.5e-7   1.2e-6   3.0e-7   7.6e-6   1.07e-6
    float64 numpy vs torch    1.8e-14  1.8e-15  2.7e-15  5.6e-16  1.4e-14  2.1e-15
    numpy float32 vs float64  5.6e-6   1.0e-6   1.7e-6   2.3e-7   5.7e-6   1.0e-6
    torch float32 vs float64  5.0e-6   8.5e-7   1.6e-6   2.4e-7   2.5e-6   5.9e-7

Batched vs one at a time (y, all 10,000): float32 1.2e-6 NumPy, 7.8e-7 torch; float64
2.2e-15, 1.8e-15. The smallest top-2 probability margin is 1.2e-3 (image 2224), a
thousand times the float32 differences, so predictions cannot flip: all 10,000 agree.
"""

import numpy as np
import torch

# Network intermediates a1 z1 a2 z2 a3 y, NumPy vs torch, |torch - numpy| <= atol + rtol * |numpy|.
# float32 is torch.testing.assert_close's default; float64 is ~500 ulp of the largest |a1| (13.8).
TOLERANCE = {"float32": {"rtol": 1.3e-6, "atol": 1e-5}, "float64": {"rtol": 1e-12, "atol": 1e-12}}

# Activations run one op on identical inputs: a few ulp (measured on 10,000 random values:
# 4.4e-7 float32, 7.8e-16 float64, softmax), and atol = the smallest normal number,
# because torch flushes results below it (sigmoid(-100) in float32) to 0.
ACTIVATION_TOLERANCE = {"float32": {"rtol": 1e-6, "atol": float(np.finfo(np.float32).tiny)},
                        "float64": {"rtol": 1e-14, "atol": float(np.finfo(np.float64).tiny)}}

# Each float32 side against the float64 NumPy reference, every intermediate.
REFERENCE_BOUND = {"rtol": 1.3e-6, "atol": 1e-5}


def to_numpy(x):
    """A torch tensor (any device) or array-like -> NumPy array."""
    return x.detach().cpu().numpy() if torch.is_tensor(x) else np.asarray(x)


def differences(expected, actual, rtol, atol):
    """``{mismatched, total, max_abs, max_abs_index, max_rel, max_rel_index}`` of two same-shape arrays.

    Positions equal as numbers (equal infinities included) or NaN on both sides count as
    equal; a NaN on one side only is infinitely far.
    """
    e, a = np.asarray(expected, dtype=np.float64), np.asarray(actual, dtype=np.float64)
    same = (a == e) | (np.isnan(a) & np.isnan(e))
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.nan_to_num(np.where(same, 0.0, np.abs(a - e)), nan=np.inf)
        rel = np.nan_to_num(np.where(same, 0.0, diff / np.abs(e)), nan=np.inf)
        mismatched = ~same & ~(diff <= atol + rtol * np.abs(e))
    i_abs = np.unravel_index(np.argmax(diff), diff.shape) if diff.size else ()
    i_rel = np.unravel_index(np.argmax(rel), rel.shape) if rel.size else ()
    return {"mismatched": int(mismatched.sum()), "total": int(mismatched.size),
            "max_abs": float(diff[i_abs]) if diff.size else 0.0, "max_abs_index": [int(i) for i in i_abs],
            "max_rel": float(rel[i_rel]) if rel.size else 0.0, "max_rel_index": [int(i) for i in i_rel]}


def assert_parity(stage, expected, actual, rtol=None, atol=None):
    """Assert that ``actual`` (a tensor on any device, or an array) matches ``expected`` (NumPy); return the differences.

    Checked in order, each failure an ``AssertionError`` that starts with ``stage``:

    1. the shapes are equal (no broadcasting: ``(3,)`` against ``(1, 3)`` fails);
    2. the dtypes are equal (float32 against float64 fails before any value is looked at);
    3. every element satisfies ``|actual - expected| <= atol + rtol * |expected|``, NaN
       matching NaN. The message gives the mismatched count, and the greatest absolute and
       relative difference with their index and both values.

    ``rtol`` and ``atol`` go together, as in ``torch.testing.assert_close``: give both or
    neither. Neither means the policy for the dtype, :data:`TOLERANCE` (float32: rtol 1.3e-6,
    atol 1e-5; float64: 1e-12, 1e-12); integer and bool arrays must be equal exactly.
    Returns :func:`differences`' dict, so a passing check can print its greatest difference.
    """
    if (rtol is None) != (atol is None):
        raise ValueError("give both rtol and atol, or neither for the dtype's default tolerance")
    expected, actual = np.asarray(expected), to_numpy(actual)
    # raise, not assert: python -O must not turn the check off
    if actual.shape != expected.shape:
        raise AssertionError(f"{stage}: shape {actual.shape}, NumPy gives {expected.shape}")
    if actual.dtype != expected.dtype:
        raise AssertionError(f"{stage}: dtype {actual.dtype}, NumPy gives {expected.dtype}")
    if rtol is None:
        tol = TOLERANCE.get(expected.dtype.name, {"rtol": 0.0, "atol": 0.0})
        rtol, atol = tol["rtol"], tol["atol"]
    d = differences(expected, actual, rtol, atol)
    if d["mismatched"]:
        i, j = tuple(d["max_abs_index"]), tuple(d["max_rel_index"])
        # str, not repr, of the values: NumPy 2 would write np.float32(...) around them
        raise AssertionError(
            f"{stage}: not close!\n"
            f"Mismatched elements: {d['mismatched']} / {d['total']} ({100 * d['mismatched'] / d['total']:.1f}%)\n"
            f"Greatest absolute difference: {d['max_abs']:.6g} at index {i} (up to {atol:g} allowed): "
            f"NumPy {expected[i]!s}, torch {actual[i]!s}\n"
            f"Greatest relative difference: {d['max_rel']:.6g} at index {j} (up to {rtol:g} allowed)")
    return d


def compare(name, np_fn, torch_fn, x, device="cpu", tol=None):
    """Run ``np_fn`` and ``torch_fn`` on copies of the same NumPy array ``x``; :func:`assert_parity` the results.

    ``torch_fn`` gets ``torch.from_numpy(x)`` moved to ``device``; neither side can change the
    other's input. ``tol`` is ``{"rtol": .., "atol": ..}`` (e.g. ``ACTIVATION_TOLERANCE["float32"]``),
    or None for the default of the result's dtype. Returns the differences, as :func:`assert_parity`.
    """
    expected = np_fn(x.copy())
    actual = torch_fn(torch.from_numpy(x.copy()).to(device))
    return assert_parity(f"{name} on {device}", expected, actual, **(tol or {}))
