"""The code users trust most, pinned to what it must compute: each bound against its closed form on a
network small enough to write the formula out, the verdicts' comparisons at their edges, the cache
keyed by what it was computed from, the network's refusals, and SIGTERM that no ``except Exception``
swallows. Each test here was watched failing with its line broken."""

import math
import signal
from decimal import Decimal, getcontext

import numpy as np
import pytest

from nn_numpy import exact

TINY32, U32 = float(np.finfo(np.float32).tiny), 2.0**-24
NET = {  # 2 pixels -> 2 -> 2 -> 2, large biases: a term dropped or halved shows
    "W1": np.array([[0.5, -0.25], [0.125, 0.75]], np.float32),
    "b1": np.array([3.0, -2.0], np.float32),
    "W2": np.array([[1.5, -0.5], [0.25, 2.0]], np.float32),
    "b2": np.array([-1.0, 4.0], np.float32),
    "W3": np.array([[0.75, -1.25], [2.5, 0.5]], np.float32),
    "b3": np.array([5.0, -3.0], np.float32),
}
PIXELS = np.array([[51, 204]], np.uint8)  # x = 0.2, 0.8


def closed_form(exact_layers):
    """docs/exact.md section 2, written out with Python floats for the one image of PIXELS."""
    u, slack, k = U32, 1 + 1e-9, 1.5 * 4 + 2
    x = [p / 255 for p in PIXELS[0].tolist()]
    size, error = [v * (1 + u) for v in x], [v * u for v in x]
    out = {}
    for w, b, a, z in (("W1", "b1", "a1", "z1"), ("W2", "b2", "a2", "z2"), ("W3", "b3", "a3", "y")):
        W, bias = NET[w].astype(float).tolist(), NET[b].astype(float).tolist()
        n = 3  # two products and the bias
        g = n * u / (1 - n * u)
        ea = [
            (
                g * (sum(size[i] * abs(W[i][j]) for i in range(2)) + abs(bias[j]))
                + sum(error[i] * abs(W[i][j]) for i in range(2))
                + n * TINY32
            )
            * slack
            for j in range(2)
        ]
        out[a] = ea
        value = exact_layers[z][0][0].tolist()
        if z != "y":
            error = [(e / 4 + k * u * (v + e / 4) + TINY32) * slack for e, v in zip(ea, value)]
            out[z], size = error, [v + e for v, e in zip(value, error)]
        else:
            d = max(ea)
            logits = exact_layers["a3"][0][0].tolist()
            spread = max(logits) - min(logits) + 2 * d
            rounding = (1 + 4 * u) * math.exp(u * spread) - 1
            eta = (1 + rounding) * (1 + u) ** 2 / ((1 - rounding) * (1 - u / (1 - u))) - 1
            moved = [v * math.expm1(2 * d) for v in value]
            out[z] = [(m + eta * (v + m) + TINY32) * slack for m, v in zip(moved, value)]
    return out


def test_every_layers_bound_is_its_closed_form():
    truth = exact.reference(NET, PIXELS)
    got = exact.bounds(NET, PIXELS, truth, "float32")
    want = closed_form(truth)
    for layer in want:
        assert np.allclose(got[layer][0], want[layer], rtol=1e-9, atol=0), layer


def test_the_rounded_inputs_bound_is_its_closed_form():
    x = [p / 255 for p in PIXELS[0].tolist()]
    W, b = NET["W1"].astype(float).tolist(), NET["b1"].astype(float).tolist()
    g = 3 * U32 / (1 - 3 * U32)
    for fmt, uf in (("tf32", 2.0**-11), ("bf16", 2.0**-8)):
        want = [
            (
                7 * 2 * uf * math.sqrt(sum((x[i] * W[i][j]) ** 2 for i in range(2)))
                + g * (sum(x[i] * (1 + U32) * abs(W[i][j]) for i in range(2)) + abs(b[j]))
                + U32 * sum(x[i] * abs(W[i][j]) for i in range(2))
                + 3 * TINY32
            )
            * (1 + 1e-9)
            for j in range(2)
        ]
        assert np.allclose(exact.rounded_inputs_bound(NET, PIXELS, fmt)[0], want, rtol=1e-9, atol=0)


def test_a_tie_rounds_to_even_and_lo_decides_off_the_tie():
    hi = np.array([1 + 2.0**-24, 1 + 3 * 2.0**-24, 1 + 2.0**-24, 1 + 3 * 2.0**-24])
    lo = np.array([0.0, 0.0, 2.0**-70, -(2.0**-70)])
    got = exact.correctly_rounded((hi, lo), "float32").astype(float).tolist()
    assert got == [1.0, 1 + 2.0**-22, 1 + 2.0**-23, 1 + 2.0**-23]


def test_compare_subtracts_lo_and_divides_each_ratio_by_its_own_bound():
    getcontext().prec = 60
    hi = np.array([[1.0, 0.5]])
    lo = np.array([[2.0**-60, -(2.0**-58)]])
    side = np.array([[1.0 + 2.0**-52, 0.5]])
    f = exact.compare(side, (hi, lo), np.array([[1e-15, 1e-15]]), np.array([[1e-16, 1e-16]]))
    errors = [
        abs(Decimal(float(s)) - Decimal(float(h)) - Decimal(float(lw)))
        for s, h, lw in zip(side[0], hi[0], lo[0])
    ]
    assert abs(Decimal(f["max_abs_error"]) - max(errors)) <= Decimal(2) ** -104
    assert f["max_error_over_bound"] == pytest.approx(float(max(errors)) / 1e-15, rel=1e-12)
    assert f["max_error_over_probabilistic_bound"] == pytest.approx(
        float(max(errors)) / 1e-16, rel=1e-12
    )


def test_the_cache_is_keyed_by_the_weights_and_a_hit_computes_only_the_rows_it_checks(
    weights, test_set, tmp_path, monkeypatch
):
    pixels = test_set[0][:12]
    first = exact.reference(weights, pixels, cache_dir=tmp_path)
    other = exact.reference({**weights, "b3": weights["b3"] + 1}, pixels, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("exact-*.npy"))) == 2
    assert np.allclose(other["a3"][0] - first["a3"][0], 1.0)
    rows = []
    real = exact.forward
    monkeypatch.setattr(exact, "forward", lambda w, p: rows.append(len(p)) or real(w, p))
    again = exact.reference(weights, pixels, cache_dir=tmp_path)
    assert rows == [2] and np.array_equal(again["y"][0], first["y"][0])  # the two drawn rows only


@pytest.mark.parametrize(
    "change, words",
    [
        ({"W2": np.zeros((60, 100), np.float32)}, "W2: expected shape (50, N), found (60, 100)"),
        ({"W4": np.zeros((10, 10), np.float32)}, "unexpected: 'W4'"),
        ({"b1": np.zeros(49, np.float32)}, "b1: expected shape (50,), found (49,)"),
    ],
)
def test_weights_that_do_not_chain_are_refused_naming_the_array(weights, change, words):
    from nn_numpy import predict
    from nn_numpy.errors import WeightsError

    with pytest.raises(WeightsError) as err:
        predict({**weights, **change}, np.zeros((1, 784), np.float32))
    assert words in str(err.value)


def test_float16_input_is_refused_and_float64_weights_follow_the_inputs_dtype(weights):
    from nn_numpy import forward_layers, predict
    from nn_numpy.errors import InputShapeError

    with pytest.raises(InputShapeError, match="expected float32 or float64 input, got float16"):
        predict(weights, np.zeros((1, 784), np.float16))
    wide = {k: v.astype(np.float64) for k, v in weights.items()}
    layers = forward_layers(wide, np.full((2, 784), 0.5, np.float32))
    assert {v.dtype for v in layers.values()} == {np.dtype(np.float32)}


def test_sigterm_is_no_exception_and_the_handlers_are_put_back(monkeypatch):
    from dlfs_ch3 import cli

    assert not issubclass(cli.Terminated, Exception)  # an `except Exception` must not swallow it
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as done, cli.signals_as_interrupt():
        try:
            signal.raise_signal(signal.SIGTERM)
        except Exception:  # what a careless caller writes
            pytest.fail("SIGTERM was caught as an Exception")
    assert done.value.code == 128 + signal.SIGTERM and signal.getsignal(signal.SIGTERM) is before
