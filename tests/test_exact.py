"""nn_numpy.exact: the exact forward pass against Python's decimal, its independence from the BLAS, its
cache, and the rounding and ulp helpers (each side against its bounds: parity_tests/test_parity_mnist.py)."""

import os
from decimal import Decimal, getcontext

import numpy as np
import pytest

from nn_numpy import exact
from nn_numpy.network import LAYER_OUTPUTS

IMAGES = [0, 2224, 9999]  # 2224 has the test set's smallest top-2 margin


def decimal_forward(weights, pixels):
    """The chapter's forward pass in 60-digit decimal arithmetic, independent of the project's."""
    getcontext().prec = 60
    W = {
        k: [[Decimal(float(v)) for v in row] for row in w]
        if w.ndim == 2
        else [Decimal(float(v)) for v in w]
        for k, w in weights.items()
    }
    sigmoid = lambda a: 1 / (1 + (-a).exp())  # noqa: E731
    x = [Decimal(int(p)) / 255 for p in pixels]
    layers = {}
    for i, (a, z) in enumerate((("a1", "z1"), ("a2", "z2"), ("a3", "y")), 1):
        w, b = W[f"W{i}"], W[f"b{i}"]
        layers[a] = [sum(x[k] * w[k][j] for k in range(len(x))) + b[j] for j in range(len(b))]
        if z == "y":
            e = [v.exp() for v in layers[a]]
            layers[z] = [v / sum(e) for v in e]
        else:
            x = layers[z] = [sigmoid(v) for v in layers[a]]
    return layers


def test_the_reference_agrees_with_decimal_arithmetic_to_a_tiny_part_of_an_ulp(weights, test_set):
    pixels = test_set[0][IMAGES]
    ours = exact.forward(weights, pixels)
    worst = 0
    for row, image in enumerate(pixels):
        theirs = decimal_forward(weights, image)
        for k in LAYER_OUTPUTS:
            hi, lo = ours[k][0][row], ours[k][1][row]
            for j, value in enumerate(theirs[k]):
                error = abs(Decimal(float(hi[j])) + Decimal(float(lo[j])) - value)
                worst = max(worst, error / Decimal(float(np.spacing(abs(hi[j])))))
    assert worst < Decimal("1e-12"), f"{worst} of a float64 ulp"  # measured: 8.5e-15


def test_the_reference_is_the_same_bits_however_the_matmuls_are_shaped(weights, test_set):
    """Every slice product is exact, so the BLAS's order and blocking cannot change a bit: one image at a
    time and 37 at a time give the same reference."""
    pixels = test_set[0][:37]
    together = exact.forward(weights, pixels)
    alone = [exact.forward(weights, pixels[i : i + 1]) for i in range(len(pixels))]
    for k in LAYER_OUTPUTS:
        for part in (0, 1):
            assert np.array_equal(together[k][part], np.concatenate([a[k][part] for a in alone])), k


def test_exp_in_double_double_against_decimal():
    getcontext().prec = 50
    a = np.array([-745.0, -700.0, -650.0, -20.5, -1e-8, 0.0, 1e-8, 0.34657359, 1.0, 30.25, 700.0])
    hi, lo = exact.exp((a, 0 * a))
    for value, h, low in zip(a, hi, lo):
        expected = Decimal(float(value)).exp()
        allowed = (
            expected * Decimal(2) ** -96 if value >= -650 else Decimal(2) ** -1070
        )  # lo is subnormal there
        assert abs(Decimal(float(h)) + Decimal(float(low)) - expected) <= allowed, value


def test_the_cache_is_written_once_used_when_its_content_is_right_and_ignored_otherwise(
    weights, test_set, tmp_path
):
    pixels = test_set[0][:20]
    first = exact.reference(weights, pixels, cache_dir=tmp_path)
    (cache,) = tmp_path.iterdir()
    assert cache.name.startswith("exact-") and cache.suffix == ".npy"
    again = exact.reference(weights, pixels, cache_dir=tmp_path)
    assert all(np.array_equal(first[k][0], again[k][0]) for k in LAYER_OUTPUTS)
    good, table = cache.read_bytes(), np.load(cache)
    table[3, 7] += (
        1  # content no longer matches the digest in its name: not used, computed and written again
    )
    np.save(cache, table)
    recomputed = exact.reference(weights, pixels, cache_dir=tmp_path)
    assert np.array_equal(recomputed["a1"][0], first["a1"][0]) and cache.read_bytes() == good
    other = exact.reference(
        weights, test_set[0][20:30], cache_dir=tmp_path
    )  # other inputs: their own file
    assert len(os.listdir(tmp_path)) == 2 and other["y"][0].shape == (10, 10)


def test_a_read_only_or_special_cache_place_costs_nothing_but_time(weights, test_set, tmp_path):
    pixels = test_set[0][:5]
    exact.reference(weights, pixels, cache_dir=tmp_path)
    (cache,) = tmp_path.iterdir()
    cache.unlink()
    os.mkfifo(cache)  # a FIFO where the cache goes: never read, never written through
    tmp_path.chmod(0o555)
    try:
        exact.reference(weights, pixels, cache_dir=tmp_path)
    finally:
        tmp_path.chmod(0o755)
    assert [p.name for p in tmp_path.iterdir()] == [cache.name]


def test_correct_rounding_to_float32_and_ulp_distances():
    hi = np.array([1.0, 1.0 + 2.0**-24, 1.0 + 2.0**-24, -(1.0 + 2.0**-24), 1.0 + 2.0**-23])
    lo = np.array([2.0**-60, 2.0**-80, -(2.0**-80), -(2.0**-80), 0.0])
    rounded = exact.correctly_rounded((hi, lo), "float32")
    assert rounded.dtype == np.float32
    assert rounded.tolist() == [
        1.0,
        1.0 + 2.0**-23,
        1.0,
        -(1.0 + 2.0**-23),
        1.0 + 2.0**-23,
    ]  # halfway: lo decides
    assert exact.ulp_distance(
        np.float32([1.0, -1.0, 0.0]), np.float32([1.0 + 2**-23 * 3, 1.0, -0.0])
    ).tolist() == [3, 2 * 0x3F800000, 0]
    assert exact.correctly_rounded((hi, lo), "float64").tolist() == hi.tolist()


def test_every_bound_is_positive_and_finite(weights, test_set, exact_layers):
    for dtype in ("float32", "float64"):
        for probabilistic in (False, True):
            for k, bound in exact.bounds(
                weights, test_set[0], exact_layers, dtype, probabilistic
            ).items():
                assert (
                    bound.shape == exact_layers[k][0].shape
                    and (bound > 0).all()
                    and np.isfinite(bound).all()
                ), k


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_probabilistic_bound_is_the_tighter(weights, test_set, exact_layers, dtype):
    det = exact.bounds(weights, test_set[0], exact_layers, dtype)
    prob = exact.bounds(weights, test_set[0], exact_layers, dtype, probabilistic=True)
    assert all((prob[k] < det[k]).all() for k in ("a1", "a2", "a3"))
