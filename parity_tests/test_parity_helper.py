"""The comparison helper fails when it must, and says where."""

import numpy as np
import pytest
import torch

from parity_check import assert_parity, differences


def test_passes_on_equal_values_nan_and_inf():
    x = np.array([1.0, np.nan, np.inf, -np.inf])
    assert_parity("same", x, torch.from_numpy(x.copy()), rtol=0, atol=0)


@pytest.mark.parametrize("actual, message", [
    (np.zeros((2, 3), np.float32), "shape (2, 3), NumPy gives (3, 2)"),
    (np.zeros((3, 2), np.float64), "dtype float64, NumPy gives float32"),
])
def test_shape_and_dtype_are_checked_before_values(actual, message):
    with pytest.raises(AssertionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        assert_parity("stage", np.zeros((3, 2), np.float32), torch.from_numpy(actual), rtol=1, atol=1)


def test_failure_names_the_stage_count_and_greatest_differences():
    expected = np.array([[1.0, 2.0], [3.0, 4.0]])
    actual = expected.copy()
    actual[1, 0] += 1e-3
    actual[0, 1] = np.nan
    with pytest.raises(AssertionError) as err:
        assert_parity("a3 (float64, cpu)", expected, torch.from_numpy(actual), rtol=1e-12, atol=1e-12)
    text = str(err.value)
    assert text.startswith("a3 (float64, cpu): not close!")
    assert "Mismatched elements: 2 / 4 (50.0%)" in text
    assert "Greatest absolute difference: inf at index (0, 1)" in text  # NaN on one side only


def test_differences_reports_index_of_greatest_abs_and_rel():
    d = differences(np.array([100.0, 1e-3]), np.array([100.5, 2e-3]), rtol=0, atol=0)
    assert d["mismatched"] == 2
    assert (d["max_abs"], d["max_abs_index"]) == (0.5, [0])
    assert d["max_rel_index"] == [1] and d["max_rel"] == pytest.approx(1.0)
