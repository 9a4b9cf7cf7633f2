"""The one comparison helper of the parity suite, in the manner of tinygrad's ``helper_test_op``.

Identical seeded inputs go to NumPy and torch, shapes and dtypes are compared before values,
and a failure names the stage and gives what ``torch.testing.assert_close`` gives (mismatched
count, greatest absolute and relative difference with their index). The tolerances and the
figures they were set from are in :mod:`nn_torch.parity`.
"""

import numpy as np
import torch

from nn_torch.parity import ACTIVATION_TOLERANCE, REFERENCE_BOUND, TOLERANCE, differences, to_numpy  # noqa: F401


def assert_parity(stage, expected, actual, rtol, atol):
    """Assert ``actual`` (torch) matches ``expected`` (NumPy): shape, then dtype, then values."""
    expected, actual = np.asarray(expected), to_numpy(actual)
    assert actual.shape == expected.shape, f"{stage}: shape {actual.shape}, NumPy gives {expected.shape}"
    assert actual.dtype == expected.dtype, f"{stage}: dtype {actual.dtype}, NumPy gives {expected.dtype}"
    d = differences(expected, actual, rtol, atol)
    if d["mismatched"]:
        i, j = tuple(d["max_abs_index"]), tuple(d["max_rel_index"])
        raise AssertionError(
            f"{stage}: not close!\n"
            f"Mismatched elements: {d['mismatched']} / {d['total']} ({100 * d['mismatched'] / d['total']:.1f}%)\n"
            f"Greatest absolute difference: {d['max_abs']:.6g} at index {i} (up to {atol:g} allowed): "
            f"NumPy {expected[i]!r}, torch {actual[i]!r}\n"
            f"Greatest relative difference: {d['max_rel']:.6g} at index {j} (up to {rtol:g} allowed)")


def helper_test_op(name, np_fn, torch_fn, x, device, tol):
    """Run ``np_fn`` and ``torch_fn`` on copies of the same array ``x`` and assert parity."""
    expected = np_fn(x.copy())
    actual = torch_fn(torch.from_numpy(x.copy()).to(device))
    assert_parity(f"{name} on {device}", expected, actual, **tol)
