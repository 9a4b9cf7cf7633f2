"""The comparison helper fails when it must, and says where."""

import numpy as np
import pytest
import torch

from nn_torch.parity import TOLERANCE, assert_parity, compare, differences


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


def test_default_tolerance_is_the_dtypes_policy():
    x = np.linspace(-1, 1, 11)
    for dtype, within, beyond in (("float32", 5e-6, 5e-5), ("float64", 5e-13, 5e-12)):
        expected = x.astype(dtype)
        d = assert_parity("within", expected, torch.from_numpy(expected + expected.dtype.type(within)))
        assert d["mismatched"] == 0 and d["max_abs"] == pytest.approx(within, rel=0.1)
        with pytest.raises(AssertionError, match=f"up to {TOLERANCE[dtype]['atol']:g} allowed"):
            assert_parity("beyond", expected, torch.from_numpy(expected + expected.dtype.type(beyond)))


def test_integers_must_be_equal_by_default():
    assert_parity("step", np.array([0, 1, 1]), torch.tensor([0, 1, 1]))
    with pytest.raises(AssertionError, match="Mismatched elements: 1 / 3"):
        assert_parity("step", np.array([0, 1, 1]), torch.tensor([0, 0, 1]))


def test_rtol_and_atol_go_together():
    with pytest.raises(ValueError, match="give both rtol and atol"):
        assert_parity("stage", np.zeros(3), torch.zeros(3, dtype=torch.float64), atol=1e-3)


def leaky_relu(x):
    return np.where(x > 0, x, np.float32(0.01) * x)


def test_compare_passes_a_faithful_port_and_returns_the_differences():
    x = np.linspace(-3, 3, 61, dtype=np.float32)
    d = compare("leaky_relu", leaky_relu, torch.nn.functional.leaky_relu, x)
    assert d == {"mismatched": 0, "total": 61, "max_abs": 0.0, "max_abs_index": [0], "max_rel": 0.0,
                 "max_rel_index": [0]}
    assert compare("tanh", np.tanh, torch.tanh, x)["max_abs"] < 1e-6


def test_compare_names_the_port_and_shows_both_values_without_numpy_reprs():
    x = np.linspace(-3, 3, 7, dtype=np.float32)  # -3 -2 -1 0 1 2 3
    wrong_slope = lambda t: torch.nn.functional.leaky_relu(t, negative_slope=0.1)  # noqa: E731
    with pytest.raises(AssertionError) as err:
        compare("leaky_relu", leaky_relu, wrong_slope, x)
    assert str(err.value).splitlines() == [
        "leaky_relu on cpu: not close!",
        "Mismatched elements: 3 / 7 (42.9%)",
        "Greatest absolute difference: 0.27 at index (0,) (up to 1e-05 allowed): NumPy -0.03, torch -0.3",
        "Greatest relative difference: 9 at index (0,) (up to 1.3e-06 allowed)",
    ]


def test_the_helpers_are_public():
    import nn_torch
    assert nn_torch.assert_parity is assert_parity and nn_torch.compare is compare
