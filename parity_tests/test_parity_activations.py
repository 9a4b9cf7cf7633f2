"""Every activation and softmax, NumPy vs torch, on random data, exact values and extremes.

One line per op, one line per input; each (op, input, dtype, device) is one case. The identity
function is left out: it returns its input on both sides, so comparing them could not fail.
Tolerances: ``nn_torch.parity.ACTIVATION_TOLERANCE``.
"""

import numpy as np
import pytest
import torch
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

import nn_numpy.activations as np_act
import nn_torch.activations as torch_act
from nn_torch.parity import ACTIVATION_TOLERANCE
from nn_torch.parity import compare as helper_test_op

inf, nan = np.inf, np.nan

OPS = {
    name: (getattr(np_act, name), getattr(torch_act, name))
    for name in ("step_function", "sigmoid", "relu", "softmax")
}

INPUTS = {
    "random": lambda dt: (np.random.default_rng(0).standard_normal((16, 10)) * 8).astype(dt),
    "one_sample": lambda dt: np.random.default_rng(1).standard_normal(10).astype(dt),
    "exact": lambda dt: np.array([[-1, 0, 1]], dt),
    "extremes": lambda dt: np.array([[-88, 88, -1e4, 1e4], [-inf, inf, nan, 0]], dt),
    "subnormal_tails": lambda dt: np.array([[-100, -103, -710, -745]], dt),
    "huge_logits": lambda dt: np.array([[1010, 1000, 990], [3e38, 0, -3e38]], dt),
    "-inf_logits": lambda dt: np.array([[-inf, 0, 1], [-inf, -inf, -inf], [-inf, inf, 0]], dt),
    "nan_logits": lambda dt: np.array([[nan, 0, 1], [nan, nan, nan]], dt),
}


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", INPUTS)
@pytest.mark.parametrize("op", OPS)
def test_activation(op, case, dtype, device):
    helper_test_op(
        f"{op}({case}, {dtype})", *OPS[op], INPUTS[case](dtype), device, ACTIVATION_TOLERANCE[dtype]
    )


@settings(derandomize=True)
@given(
    x=st.sampled_from(["float32", "float64"]).flatmap(
        lambda dt: arrays(
            dt, array_shapes(min_dims=1, max_dims=2, max_side=8), elements={"allow_subnormal": True}
        )
    )
)
@pytest.mark.slow  # about a second: 200 examples
def test_activations_arbitrary_floats(x):
    """Any float array, NaN and ±inf included: every op agrees on both sides, NaN where NaN."""
    event(f"{x.dtype}, non-finite" if not np.isfinite(x).all() else f"{x.dtype}, finite")
    for op, (np_fn, torch_fn) in OPS.items():
        helper_test_op(
            f"{op}({x.dtype}{x.shape})",
            np_fn,
            torch_fn,
            x,
            "cpu",
            ACTIVATION_TOLERANCE[x.dtype.name],
        )


def test_step_function_at_zero_is_zero_on_both_sides():
    x = np.array([-0.0, 0.0, np.nextafter(0, 1)])
    assert (
        np_act.step_function(x).tolist()
        == torch_act.step_function(torch.from_numpy(x)).tolist()
        == [0, 0, 1]
    )


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_each_sides_sigmoid_rounds_no_worse_than_the_proven_bounds_assume(dtype, device):
    """The bounds take each sigmoid within 8u of the exact one (docs/exact.md); 200,000 points across its range."""
    from nn_numpy import exact

    x = np.concatenate(
        [np.linspace(-60, 60, 100_000), np.random.default_rng(0).normal(0, 8, 100_000)]
    ).astype(dtype)
    truth = exact.sigmoid((x.astype(np.float64), np.zeros(len(x))))
    allowed = exact.SIGMOID_ROUNDING * exact.UNIT_ROUNDOFF[dtype] * truth[0] + float(
        np.finfo(dtype).tiny
    )
    sides = {
        "numpy": np_act.sigmoid(x),
        "torch": torch_act.sigmoid(torch.from_numpy(x).to(device)).cpu().numpy(),
    }
    for side, values in sides.items():
        error = np.abs((values.astype(np.float64) - truth[0]) - truth[1])
        assert (error <= allowed).all(), (
            f"{side}: worst {(error / allowed).max():.3g} of the allowance"
        )
