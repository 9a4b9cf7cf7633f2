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


@pytest.mark.slow  # a second or more: the whole test set, or a fresh process
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


@pytest.mark.slow  # the exact reference of all 10,000 images: 2 s
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_the_probabilistic_bound_is_the_tighter(weights, test_set, exact_layers, dtype):
    det = exact.bounds(weights, test_set[0], exact_layers, dtype)
    prob = exact.bounds(weights, test_set[0], exact_layers, dtype, probabilistic=True)
    assert all((prob[k] < det[k]).all() for k in ("a1", "a2", "a3"))


def _cache_path(weights, pixels, folder):
    """The one file ``reference`` caches ``pixels`` in, made by a first call."""
    exact.reference(weights, pixels, cache_dir=folder)
    (path,) = folder.iterdir()
    return path


def _table(layers):
    return np.concatenate([layers[k][j] for j in (0, 1) for k in LAYER_OUTPUTS], 1)


@pytest.mark.parametrize("forgery", ["nan", "other weights", "float64 forward"])
def test_a_cache_under_the_right_name_is_used_only_if_it_is_this_reference(
    weights, test_set, tmp_path, forgery
):
    pixels = test_set[0][:20]
    path = _cache_path(weights, pixels, tmp_path)
    truth = _table(exact.reference(weights, pixels))
    if forgery == "nan":  # in one element: the rows drawn at random would miss it
        forged = truth.copy()
        forged[3, 7] = np.nan
    elif forgery == "other weights":  # what a cache of b3 + 1 holds: a3 moved by 1
        forged = _table(exact.reference({**weights, "b3": weights["b3"] + 1}, pixels))
    else:  # within float64's bound everywhere, but not the exact bits: the rows drawn catch it
        forged = truth.copy()
        forged[:, truth.shape[1] // 2 :] = 0
    np.save(path, forged)
    got = _table(exact.reference(weights, pixels, cache_dir=tmp_path))
    assert np.array_equal(got, truth) and np.array_equal(np.load(path), truth)


def test_a_cache_that_cannot_be_written_costs_one_warning(weights, test_set, tmp_path):
    pixels = test_set[0][:5]
    path = _cache_path(weights, pixels, tmp_path)
    path.unlink()
    path.mkdir()  # a folder where the cache goes
    with pytest.warns(UserWarning, match="not cached") as caught:
        got = exact.reference(weights, pixels, cache_dir=tmp_path)
    assert len(caught) == 1 and np.array_equal(
        _table(got), _table(exact.reference(weights, pixels))
    )


def test_exp_of_huge_arguments_is_zero_or_inf_not_nan(weights, test_set):
    a = np.array([-1e19, -1e300, -1401.0, 1e19])
    with np.errstate(over="ignore"):
        hi, lo = exact.exp((a, 0 * a))
        assert hi.tolist() == [0.0, 0.0, 0.0, np.inf]
        huge = exact.forward({**weights, "W1": weights["W1"] * np.float32(1e18)}, test_set[0][:3])
    assert all(np.isfinite(hi).all() for hi, lo in huge.values())


def test_compare_counts_nan_and_inf_as_infinitely_far():
    hi = np.array([[0.5, 0.25]])
    side = np.array([[np.nan, 0.25]], np.float32)
    f = exact.compare(side, (hi, 0 * hi), np.full((1, 2), 1e-7), np.full((1, 2), 1e-8))
    assert f["max_abs_error"] == f["max_error_over_bound"] == np.inf
    assert f["max_error_over_probabilistic_bound"] == np.inf


def test_at_most_two_exact_caches_are_kept_the_least_recently_used_evicted(
    weights, test_set, tmp_path
):
    first, second, third = (test_set[0][i : i + 2] for i in (0, 2, 4))
    paths = []
    for pixels in (first, second):
        exact.reference(weights, pixels, cache_dir=tmp_path)
        paths.append(max(tmp_path.glob("exact-*.npy"), key=os.path.getmtime))
        os.utime(
            paths[-1], (1e9 + len(paths), 1e9 + len(paths))
        )  # an order mtimes' resolution keeps
    exact.reference(weights, first, cache_dir=tmp_path)  # used again: now the most recent
    exact.reference(weights, third, cache_dir=tmp_path)
    kept = set(tmp_path.glob("exact-*.npy"))
    assert len(kept) == 2 and paths[0] in kept and paths[1] not in kept
