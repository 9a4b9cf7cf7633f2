"""The comparison helper fails when it must, passes when it may, and says where.

Every tolerance is tried with one port just inside it and one just outside, so loosening any of them fails
a test; infinities, complex values, integers beyond float64's 2**53 and bfloat16 are compared as themselves.
"""

import numpy as np
import pytest
import torch

from nn_torch.parity import (
    ACTIVATION_TOLERANCE,
    TOLERANCE,
    affine_tolerance,
    assert_parity,
    compare,
    differences,
    emulate,
    round_mantissa,
)

inf, nan = np.inf, np.nan


def test_passes_on_equal_values_nan_and_inf():
    x = np.array([1.0, nan, inf, -inf])
    assert_parity("same", x, torch.from_numpy(x.copy()), rtol=0, atol=0)


@pytest.mark.parametrize(
    "expected, actual", [(inf, 1.0), (1.0, inf), (inf, -inf), (inf, nan), (nan, inf), (nan, 1.0)]
)
def test_an_infinity_or_nan_matches_only_itself_whatever_the_tolerance(expected, actual):
    """``atol + rtol * |inf|`` is inf: +inf against 1.0, -inf or NaN passed before."""
    with pytest.raises(AssertionError, match="Mismatched elements: 1 / 1"):
        assert_parity(
            "stage",
            np.array([expected]),
            torch.tensor([actual], dtype=torch.float64),
            rtol=1,
            atol=1,
        )


@pytest.mark.parametrize(
    "actual, message",
    [
        (np.zeros((2, 3), np.float32), "shape (2, 3), NumPy gives (3, 2)"),
        (np.zeros((3, 2), np.float64), "dtype float64, NumPy gives float32"),
    ],
)
def test_shape_and_dtype_are_checked_before_values(actual, message):
    with pytest.raises(AssertionError, match=message.replace("(", r"\(").replace(")", r"\)")):
        assert_parity(
            "stage", np.zeros((3, 2), np.float32), torch.from_numpy(actual), rtol=1, atol=1
        )


def test_failure_names_the_stage_count_and_greatest_differences():
    expected = np.array([[1.0, 2.0], [3.0, 4.0]])
    actual = expected.copy()
    actual[1, 0] += 1e-3
    actual[0, 1] = nan
    with pytest.raises(AssertionError) as err:
        assert_parity(
            "a3 (float64, cpu)", expected, torch.from_numpy(actual), rtol=1e-12, atol=1e-12
        )
    text = str(err.value)
    assert text.startswith("a3 (float64, cpu): not close!")
    assert "Mismatched elements: 2 / 4 (50.0%)" in text
    assert "Greatest absolute difference: inf at index (0, 1)" in text  # NaN on one side only


def test_differences_reports_index_of_greatest_abs_and_rel():
    d = differences(np.array([100.0, 1e-3]), np.array([100.5, 2e-3]), rtol=0, atol=0)
    assert d["mismatched"] == 2
    assert (d["max_abs"], d["max_abs_index"]) == (0.5, [0])
    assert d["max_rel_index"] == [1] and d["max_rel"] == pytest.approx(1.0)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("where", ["atol", "rtol"])
def test_each_default_tolerance_holds_a_port_just_inside_and_fails_one_just_outside(dtype, where):
    tol = TOLERANCE[dtype]
    expected = np.array([0.0 if where == "atol" else 1e6], dtype)  # atol governs at 0, rtol at 1e6
    allowed = tol["atol"] + tol["rtol"] * abs(float(expected[0]))
    for scale, passes in ((0.9, True), (1.1, False)):
        actual = torch.tensor(
            expected.astype(np.float64) + scale * allowed, dtype=getattr(torch, dtype)
        )
        if passes:
            assert_parity("inside", expected, actual)
        else:
            with pytest.raises(AssertionError, match="Mismatched elements: 1 / 1"):
                assert_parity("outside", expected, actual)


@pytest.mark.parametrize("dtype, ulps_off", [("float32", 16), ("float64", 64)])
def test_the_activation_tolerance_holds_a_port_one_ulp_off_and_fails_one_a_few_ulp_off(
    dtype, ulps_off
):
    x = np.array([0.5], dtype)
    for ulps, passes in ((1, True), (ulps_off, False)):
        off = lambda t: t + ulps * float(np.spacing(x[0]))  # noqa: E731
        if passes:
            compare("sigmoid", lambda a: a, off, x, tol=ACTIVATION_TOLERANCE[dtype])
        else:
            with pytest.raises(AssertionError, match="Mismatched elements: 1 / 1"):
                compare("sigmoid", lambda a: a, off, x, tol=ACTIVATION_TOLERANCE[dtype])


def test_the_relative_tolerance_is_taken_from_the_reference_not_the_port():
    """rtol 0.99 of |expected| = 1 allows 0.99; of |actual| = 2 it would allow 1.98."""
    with pytest.raises(AssertionError):
        assert_parity(
            "rel", np.array([1.0]), torch.tensor([2.0], dtype=torch.float64), rtol=0.99, atol=0
        )


@pytest.mark.parametrize("kwargs", [{"atol": 1e-3}, {"rtol": 1e-3}])
def test_rtol_and_atol_go_together(kwargs):
    with pytest.raises(ValueError, match="give both rtol and atol"):
        assert_parity("stage", np.zeros(3), torch.zeros(3, dtype=torch.float64), **kwargs)


def test_integers_are_compared_exactly_as_themselves():
    assert_parity("step", np.array([0, 1, 1]), torch.tensor([0, 1, 1]))
    for expected, actual in ([0, 1, 1], [0, 0, 1]), ([10**6], [10**6 + 1]), ([2**53], [2**53 + 1]):
        with pytest.raises(
            AssertionError, match="Mismatched elements: 1 / "
        ):  # 10**6 + 1 fits float32's rtol
            assert_parity(
                "labels", np.array(expected, np.int64), torch.tensor(actual, dtype=torch.int64)
            )
    with pytest.raises(AssertionError, match=r"difference: 1 at index \(0,\) \(up to 0 allowed\)"):
        assert_parity(
            "big", np.array([2**63 - 1], np.int64), torch.tensor([2**63 - 2], dtype=torch.int64)
        )


def test_complex_values_are_compared_by_both_parts():
    expected = np.array([1 + 1j, 2 + 0j], np.complex128)
    assert_parity("same", expected, torch.from_numpy(expected.copy()))
    with pytest.raises(
        AssertionError, match=r"Greatest absolute difference: 0.5 at index \(0, 1\)"
    ):
        assert_parity("imaginary", expected, torch.from_numpy(expected + np.array([0.5j, 0])))


def test_bfloat16_is_compared_with_its_own_tolerance():
    x = torch.tensor([1.0, 2.5, -3.0], dtype=torch.bfloat16)
    assert_parity("bf16", x, x.clone())
    assert_parity("bf16, one step of its 8 bits", x, torch.nextafter(x, torch.full_like(x, 10)))
    with pytest.raises(AssertionError, match="dtype bfloat16, NumPy gives float32"):
        assert_parity("bf16 vs float32", x.float(), x)
    with pytest.raises(AssertionError):
        assert_parity("bf16, 10% off", x, x * 1.1)


def test_a_derived_tolerance_for_your_own_affine_layer():
    """Two correct float32 ports of ``x @ W + b`` pass; one that forgets the bias, the notes' slip, fails."""
    rng = np.random.default_rng(0)
    x, W, b = (
        rng.standard_normal(shape).astype(np.float32) for shape in ((64, 300), (300, 20), (20,))
    )
    tol = affine_tolerance(x, W, b, "float32")
    numpy_port = x @ W + b
    torch_port = torch.addmm(torch.from_numpy(b), torch.from_numpy(x), torch.from_numpy(W))
    assert_parity("my affine", numpy_port, torch_port, **tol)
    with pytest.raises(AssertionError, match="my affine, no bias: not close"):
        assert_parity("my affine, no bias", numpy_port, x @ W, **tol)


def test_the_affine_tolerance_holds_the_two_orders_of_one_sum():
    """1 and 782 halves of its ulp: summed 1 first, each half rounds away (ties to even); summed last, none
    does. Both are correct float32 ports, 782 u apart: half the tolerance, which is twice each one's bound."""
    x = np.array([[1.0] + [2.0**-24] * 782 + [0.0]], np.float32)
    W, b = np.ones((784, 1), np.float32), np.zeros(1, np.float32)

    def summed(terms):
        total = np.float32(0)
        for term in terms:
            total = np.float32(total + term)
        return np.array([[total]])

    first, last = summed(x[0]), summed(x[0][::-1])
    assert last[0, 0] - first[0, 0] == np.float32(782 * 2.0**-24)
    assert_parity("sum orders", first, torch.from_numpy(last), **affine_tolerance(x, W, b))


def leaky_relu(x):
    return np.where(x > 0, x, np.float32(0.01) * x)


def test_compare_gives_each_side_its_own_copy_of_the_input():
    """Ports written as ``x -= x.max()`` change neither the other side's input nor the caller's array."""

    def shifted_in_place(a):
        a -= a.max()
        return a

    x = np.linspace(-3, 3, 7, dtype=np.float32)
    compare("x - max, in place", shifted_in_place, lambda t: t.sub_(t.max()), x)
    assert x[-1] == 3


def test_compare_passes_a_faithful_port_and_returns_the_differences():
    x = np.linspace(-3, 3, 61, dtype=np.float32)
    d = compare("leaky_relu", leaky_relu, torch.nn.functional.leaky_relu, x)
    assert d == {
        "mismatched": 0,
        "total": 61,
        "max_abs": 0.0,
        "max_abs_index": [0],
        "max_rel": 0.0,
        "max_rel_index": [0],
    }
    assert compare("tanh", np.tanh, torch.tanh, x)["max_abs"] < 1e-6


def test_compare_names_the_port_and_shows_both_values_without_numpy_reprs():
    x = np.linspace(-3, 3, 7, dtype=np.float32)
    wrong_slope = lambda t: torch.nn.functional.leaky_relu(t, negative_slope=0.1)  # noqa: E731
    with pytest.raises(AssertionError) as err:
        compare("leaky_relu", leaky_relu, wrong_slope, x)
    assert str(err.value).splitlines() == [
        "leaky_relu on cpu: not close!",
        "Mismatched elements: 3 / 7 (42.9%)",
        "Greatest absolute difference: 0.27 at index (0,) (up to 1e-05 allowed): NumPy -0.03, torch -0.3",
        "Greatest relative difference: 9 at index (0,) (up to 1.3e-06 allowed)",
    ]


def test_rounding_the_mantissa_is_to_nearest_ties_to_even():
    x = torch.tensor(
        [1 + 2**-11, 1 + 3 * 2**-11, 1 + 2**-12, -(1 + 3 * 2**-11), 3.0e38], dtype=torch.float32
    )
    assert round_mantissa(x, 10).tolist() == [
        1.0,
        1 + 2**-9,
        1.0,
        -(1 + 2**-9),
        float(round_mantissa(x[4:], 10)),
    ]
    assert round_mantissa(x, 7)[0] == 1.0 and round_mantissa(x, 22)[1] == x[1]


def test_emulation_rounds_the_matmul_inputs_and_leaves_the_model_as_it_was(weights):
    from nn_torch import MnistNet

    model = MnistNet.from_numpy(weights)
    rounded = emulate(model, "bf16")
    assert torch.equal(model.fc1.weight, torch.from_numpy(weights["W1"]).T)
    assert torch.equal(rounded.fc1.weight, round_mantissa(model.fc1.weight, 7))
    x = torch.rand(2, 784)
    assert torch.equal(
        rounded.fc1(x),
        torch.nn.functional.linear(round_mantissa(x, 7), rounded.fc1.weight, rounded.fc1.bias),
    )


def test_the_helpers_are_public():
    import nn_torch

    assert nn_torch.assert_parity is assert_parity and nn_torch.compare is compare
    assert nn_torch.affine_tolerance is affine_tolerance


def test_an_element_exactly_at_the_parity_tolerance_passes():
    """As torch.testing: |actual - expected| <= atol + rtol |expected|, equality included."""
    expected = np.array([0.0, 2.0])
    assert_parity(
        "edge", expected, torch.tensor([0.5, 2.0], dtype=torch.float64), rtol=0.0, atol=0.5
    )
    with pytest.raises(AssertionError):
        assert_parity(
            "edge",
            expected,
            torch.tensor([0.5000001, 2.0], dtype=torch.float64),
            rtol=0.0,
            atol=0.5,
        )


def test_the_affine_tolerance_is_twice_gamma_times_x_w_plus_b():
    x = np.array([[0.5, -2.0]])
    W = np.array([[1.0, 3.0], [-0.5, 0.25]])
    b = np.array([100.0, -7.0])
    g = 3 * 2.0**-24 / (1 - 3 * 2.0**-24)
    want = [
        2 * g * (abs(x[0, 0] * W[0, j]) + abs(x[0, 1] * W[1, j]) + abs(b[j])) * (1 + 1e-9)
        for j in range(2)
    ]
    tol = affine_tolerance(x, W, b, "float32")
    assert tol["rtol"] == 0 and np.allclose(tol["atol"][0], want, rtol=1e-12, atol=0)
