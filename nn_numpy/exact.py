"""The chapter's forward pass computed exactly, and proven bounds on any float32/float64 side's error.

:func:`reference` gives every layer (a1 z1 a2 z2 a3 y) of MNIST-shaped weights on uint8 pixels as a
double-double ``(hi, lo)``: float64 pairs whose sum carries about 106 bits. It uses no BLAS rounding
and no ``long double``: each matmul is split into slices whose products and sums are exact in float64
in any order (so any BLAS gives the same bits), and exp, sigmoid and softmax run in double-double.
Its own error is below 1e-12 of a float64 ulp of each value (docs/exact.md derives it, and a test
checks it against Python's ``decimal``). :func:`bounds` gives, per element, Higham's deterministic
bound on a side's error, or the probabilistic one of Higham and Mary (2019); docs/exact.md derives both.
"""

import contextlib
import hashlib

import numpy as np

from .network import LAYER_NAMES, LAYER_OUTPUTS

UNIT_ROUNDOFF = {"float32": 2.0**-24, "float64": 2.0**-53, "tf32": 2.0**-11, "bf16": 2.0**-8}
EXP_ULPS = 4  # exp is within 4 ulp in NumPy (SIMD or libm), torch (Sleef) and CUDA (1-2 ulp): docs/exact.md
SIGMOID_ROUNDING = 1.5 * EXP_ULPS + 2  # |fl(sigmoid(a)) - sigmoid(a)| <= this * u * sigmoid(a)
SLACK = 1 + 1e-9  # covers the float64 rounding of the bounds' own arithmetic (below 1e-12 relative)


# --- double-double arithmetic on arrays: a value is (hi, lo) with hi = fl(hi + lo) ---------------------


def _two_sum(a, b):
    s = a + b
    t = s - a
    return s, (a - (s - t)) + (b - t)


def _fast_two_sum(a, b):  # needs |a| >= |b|
    s = a + b
    return s, b - (s - a)


def _two_prod(a, b):
    p = a * b
    ah, bh = (
        134217729.0 * v - (134217729.0 * v - v) for v in (a, b)
    )  # Dekker's split: 26 + 27 bits
    al, bl = a - ah, b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def add(a, b):
    s, e = _two_sum(a[0], b[0])
    t, f = _two_sum(a[1], b[1])
    s, e = _fast_two_sum(s, e + t)
    return _fast_two_sum(s, e + f)


def mul(a, b):
    p, e = _two_prod(a[0], b[0])
    return _fast_two_sum(p, e + (a[0] * b[1] + a[1] * b[0]))


def div(a, b):
    q1 = a[0] / b[0]
    r = add(a, mul(b, (-q1, 0 * q1)))
    q2 = r[0] / b[0]
    r = add(r, mul(b, (-q2, 0 * q2)))
    q3 = r[0] / b[0]
    return add(_fast_two_sum(q1, q2), (q3, 0 * q3))


def exp(a):
    """``exp`` of a double-double: ``a = m ln2 + 1024 r``, Taylor to r**10, then squared ten times. Its
    relative error is below 2**-96 down to exp(-650), its absolute error below 2**-1070 beyond."""
    far = np.abs(a[0]) > 1400  # exp is 0 or inf there in float64; clipped, m stays a small integer
    a = (np.clip(a[0], -1400, 1400), np.where(far, 0.0, a[1]))
    m = np.rint(a[0] / 0.6931471805599453)
    r = add(
        add(a, _two_prod(-m, 0.6931471805599453)), (-m * 2.3190468138462996e-17, 0 * m)
    )  # ln2, double-double
    r = (r[0] / 1024, r[1] / 1024)
    s = term = r
    for k in range(2, 11):
        term = div(mul(term, r), (np.full_like(r[0], k), 0 * r[0]))
        s = add(s, term)  # e**r - 1
    for _ in range(10):
        s = add((2 * s[0], 2 * s[1]), mul(s, s))  # e**2r - 1 = 2 (e**r - 1) + (e**r - 1)**2
    s = add(s, (np.ones_like(s[0]), 0 * s[0]))
    k = m.astype(np.int64)
    return np.ldexp(s[0], k), np.ldexp(s[1], k)


def sigmoid(a):
    positive = a[0] >= 0
    t = exp((np.where(positive, -a[0], a[0]), np.where(positive, -a[1], a[1])))  # exp(-|a|) <= 1
    return div(
        (np.where(positive, 1.0, t[0]), np.where(positive, 0.0, t[1])),
        add((1 + 0 * t[0], 0 * t[0]), t),
    )


def softmax(a):
    top = a[0].max(axis=-1, keepdims=True)
    e = exp(add(a, (-top + 0 * a[0], 0 * a[0])))
    total = (e[0][:, :1], e[1][:, :1])
    for j in range(1, e[0].shape[1]):
        total = add(total, (e[0][:, j : j + 1], e[1][:, j : j + 1]))
    return div(e, (np.broadcast_to(total[0], e[0].shape), np.broadcast_to(total[1], e[0].shape)))


# --- exact matmuls --------------------------------------------------------------------------------------


def _slices(a, bits, stop=-1100):
    """``a`` (float64) as a list of arrays on a fixed grid, each with at most ``bits`` significant bits
    (plus one at the very top), down to the quantum ``2**stop``; their sum is ``a`` to within 2**stop."""
    out, top = [], np.max(np.abs(a), initial=0.0)
    if top == 0:
        return out
    high = int(np.floor(np.log2(top))) + 1
    while high - bits >= stop and a.any():
        big = 1.5 * 2.0 ** (
            high - bits + 52
        )  # (a + big) - big rounds a to a multiple of 2**(high - bits)
        part = (a + big) - big
        out.append(part)
        a, high = a - part, high - bits
    return out


def _affine(parts, bits, W, b, stop):
    """``sum(parts) @ W + b`` as a double-double. Every slice product is exact: its terms carry at most
    ``bits`` + the weight slice's bits, and n of them sum below 2**53 quanta, in any order."""
    wbits = 53 - bits - 1 - int(np.ceil(np.log2(W.shape[0])))
    acc = (
        np.broadcast_to(b, (len(parts[0]), len(b))).astype(np.float64),
        np.zeros((len(parts[0]), len(b))),
    )
    for x in parts:
        for xs in _slices(x, bits, stop) if stop is not None else [x]:
            for ws in _slices(W.astype(np.float64), wbits):
                p = xs @ ws
                acc = add(acc, (p, 0 * p))
    return acc


def forward(weights, pixels):
    """``{layer: (hi, lo)}`` for every layer of the chapter's network on uint8 ``pixels (N, 784)``."""
    W1, b1, W2, b2, W3, b3 = (np.asarray(weights[k], np.float64) for k in LAYER_NAMES)
    s = _affine(
        [pixels.astype(np.float64)], 8, W1, 0 * b1, None
    )  # pixels are 8-bit integers: one slice
    a1 = add(
        div(s, (255 + 0 * s[0], 0 * s[0])), (b1 + 0 * s[0], 0 * s[0])
    )  # x = pixel / 255, exactly
    z1 = sigmoid(a1)
    a2 = _affine(z1, 22, W2, b2, -130)  # below 2**-130, z's bits move no result by a float64 ulp
    z2 = sigmoid(a2)
    a3 = _affine(z2, 22, W3, b3, -130)
    return dict(zip(LAYER_OUTPUTS, (a1, z1, a2, z2, a3, softmax(a3))))


def reference(weights, pixels, cache_dir=None, chunk=1000):
    """:func:`forward` in chunks, as ``{layer: (hi (N, k), lo (N, k))}``; cached in ``cache_dir`` as
    ``exact-<digest of the weights and pixels>.npy``, and a cached table is used only if it is this
    reference: finite, within float64's proven bound of a float64 forward pass in every element, and
    two rows drawn at random recomputed to the same bits. Anything else is computed again."""
    import os
    import warnings

    from .data.files import atomic_write, is_writable, open_regular, read_npy
    from .errors import NNError

    pixels = np.ascontiguousarray(pixels, np.uint8)
    widths = [np.shape(weights[k])[-1] for k in ("W1", "W1", "W2", "W2", "W3", "W3")]
    inputs = hashlib.sha256(b"exact-v2" + pixels.tobytes() + str(pixels.shape).encode())
    for k in LAYER_NAMES:
        inputs.update(np.ascontiguousarray(weights[k], np.float32).tobytes())
    path = os.path.join(cache_dir, f"exact-{inputs.hexdigest()[:32]}.npy") if cache_dir else None
    edges, half = np.cumsum([0] + widths), sum(widths)

    def split(table):
        return {
            k: (table[:, edges[i] : edges[i + 1]], table[:, half + edges[i] : half + edges[i + 1]])
            for i, k in enumerate(LAYER_OUTPUTS)
        }

    def expected(shape, fortran_order, dtype):
        if (shape, fortran_order, dtype) != ((len(pixels), 2 * half), False, np.dtype(np.float64)):
            raise ValueError("not this cache's shape")

    try:
        with open_regular(path) as file:
            layers = split(read_npy(file, expected))
        if is_reference(weights, pixels, layers):
            with contextlib.suppress(OSError):
                os.utime(path)  # the least recently used cache is the one evicted
            return layers
    except Exception:  # absent, damaged, not a .npy, a FIFO, or another table: computed again
        pass
    parts = [forward(weights, pixels[i : i + chunk]) for i in range(0, len(pixels), chunk)]
    table = np.concatenate(
        [np.concatenate([p[k][j] for j in (0, 1) for k in LAYER_OUTPUTS], 1) for p in parts]
        or [np.zeros((0, 2 * half))]
    )
    if path and is_writable(cache_dir) and np.isfinite(table).all():
        try:
            with atomic_write(path, follow=False) as file:
                np.save(file, table, allow_pickle=False)
        except (OSError, NNError) as err:  # the cache saves time, nothing more
            warnings.warn(f"the exact reference was not cached: {err}", stacklevel=2)
        evict(cache_dir)
    return split(table)


CACHES_KEPT = 2  # 51 MB each for the test set: the two most recently used stay


def evict(cache_dir, keep=CACHES_KEPT):
    """Remove all but the ``keep`` most recently used exact caches (regular files) in ``cache_dir``."""
    import os
    import re
    import stat

    found = []
    for entry in os.scandir(cache_dir):
        if re.fullmatch(r"exact-[0-9a-f-]+\.npy", entry.name):
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                found.append((st.st_mtime, entry.path))
    for _, path in sorted(found, reverse=True)[keep:]:
        with contextlib.suppress(OSError):
            os.unlink(path)


def is_reference(weights, pixels, layers, rows=2):
    """Whether ``layers`` ``{layer: (hi, lo)}`` can be :func:`forward` of ``weights`` and ``pixels``:
    every value within twice float64's proven bound of a float64 forward pass (a table
    computed for other weights or images is not), and ``rows`` rows at random the same bits again."""
    from .network import forward_layers

    with np.errstate(all="ignore"):
        f64 = forward_layers(weights, pixels / 255.0)
        bound = bounds(weights, pixels, {k: (v, 0 * v) for k, v in f64.items()}, "float64")
        near = all(
            (np.abs((f64[k] - hi) - lo) <= 2 * bound[k]).all() for k, (hi, lo) in layers.items()
        )
    if not near:  # NaN and inf are never near
        return False
    pick = np.random.default_rng().choice(len(pixels), min(rows, len(pixels)), replace=False)
    again = forward(weights, pixels[pick])
    return all(np.array_equal(again[k][j], layers[k][j][pick]) for k in again for j in (0, 1))


# --- proven error bounds ----------------------------------------------------------------------------------


def bounds(weights, pixels, exact, dtype, probabilistic=False):
    """``{layer: (N, k) array}``: per element, a bound on ``|side - exact|`` for any side computing the
    chapter's forward in ``dtype`` from ``pixels / 255``. ``probabilistic`` swaps Higham's gamma(n) for
    sqrt(n) u (Higham and Mary, 2019): a bound that rounding errors exceed only with small probability."""
    u, tiny = UNIT_ROUNDOFF[dtype], float(np.finfo(dtype).tiny)
    size = error = None
    out = {}
    for i, (w, b, a, z) in enumerate(
        [("W1", "b1", "a1", "z1"), ("W2", "b2", "a2", "z2"), ("W3", "b3", "a3", "y")]
    ):
        W, bias = (
            np.abs(np.asarray(weights[w], np.float64)),
            np.abs(np.asarray(weights[b], np.float64)),
        )
        n = W.shape[0] + 1  # n products and the bias
        g = np.sqrt(n) * u if probabilistic else n * u / (1 - n * u)
        if (
            size is None
        ):  # x = pixels / 255: |x^| <= x (1 + u), |x^ - x| <= u x, both x @ |W| scaled
            xw = pixels.astype(np.float64) @ W / 255
            size_w, error_w = xw * (1 + u), xw * u
        else:
            size_w, error_w = size @ W, error @ W
        out[a] = (g * (size_w + bias) + error_w + n * tiny) * SLACK
        value = exact[z][0]
        if z != "y":  # sigmoid: Lipschitz 1/4, and its own rounding
            error = (out[a] / 4 + SIGMOID_ROUNDING * u * (value + out[a] / 4) + tiny) * SLACK
            out[z], size = error, value + error
        else:
            out[z] = softmax_bound(exact[a][0], value, out[a].max(axis=1, keepdims=True), dtype)
    return out


def softmax_bound(a, y, d, dtype):
    """Per element, a bound on ``|side - y|`` for softmax over the last axis of logits within ``d``
    (per row, ``(N, 1)``) of ``a (N, k)``, whose exact softmax is ``y``, computed in ``dtype``: a row
    moved by at most d moves y by y (e**2d - 1); then softmax's own rounding (docs/exact.md)."""
    u, tiny, k = UNIT_ROUNDOFF[dtype], float(np.finfo(dtype).tiny), y.shape[-1]
    spread = a.max(axis=-1, keepdims=True) - a.min(axis=-1, keepdims=True) + 2 * d
    rounding = (1 + EXP_ULPS * u) * np.exp(u * spread) - 1
    eta = (1 + rounding) * (1 + u) ** 2 / ((1 - rounding) * (1 - (k - 1) * u / (1 - (k - 1) * u)))
    moved = y * np.expm1(2 * d)
    return (moved + (eta - 1) * (y + moved) + tiny) * SLACK


def rounded_inputs_bound(weights, pixels, fmt, lam=7.0):
    """Per element of a1, the error of float32 matmuls whose inputs are rounded to nearest in ``fmt``
    (``"tf32"``, ``"bf16"``): beyond this only with probability 2 exp(-lam**2 / 2) = 5e-11 (Hoeffding)."""
    u, n = UNIT_ROUNDOFF["float32"], np.shape(weights["W1"])[0] + 1
    x, W = pixels.astype(np.float64) / 255, np.abs(np.asarray(weights["W1"], np.float64))
    g = n * u / (1 - n * u)
    spread = np.sqrt(
        (x * x) @ (W * W)
    )  # the 2-norm of the products x_k W_k: rounding errors add as their squares
    return (
        lam * 2 * UNIT_ROUNDOFF[fmt] * spread
        + g * (x * (1 + u) @ W + np.abs(weights["b1"]))
        + u * x @ W
        + n * float(np.finfo(np.float32).tiny)
    ) * SLACK


# --- comparing a side with the exact result --------------------------------------------------------------


def correctly_rounded(exact, dtype):
    """The double-double ``exact`` rounded to nearest in ``dtype``."""
    hi, lo = exact
    if dtype == "float64":
        return hi.copy()
    r = hi.astype(np.float32)
    d = hi - r.astype(
        np.float64
    )  # exact: r has 24 bits and lies within an ulp of hi; |lo| is below d's steps
    half = np.spacing(np.abs(r)).astype(np.float64) / 2
    r = np.where((d > half) | ((d == half) & (lo > 0)), np.nextafter(r, np.float32(np.inf)), r)
    return np.where(
        (d < -half) | ((d == -half) & (lo < 0)), np.nextafter(r, np.float32(-np.inf)), r
    )


def ulp_distance(a, b):
    """How many floats of ``a``'s dtype lie from ``a`` to ``b``, elementwise (int64)."""
    bits = {4: np.int32, 8: np.int64}[a.dtype.itemsize]
    order = [v.view(bits).astype(np.int64) for v in (a, b.astype(a.dtype))]
    order = [
        np.where(o < 0, np.iinfo(bits).min - o, o) for o in order
    ]  # negatives below the positives
    return np.abs(order[0] - order[1])


def _nan_is_inf(v):
    return np.where(np.isnan(v), np.inf, v)


def compare(side, exact, bound, probabilistic_bound):
    """One side's layer against the exact result: the six figures ``parity-report --exact`` reports."""
    with np.errstate(invalid="ignore", over="ignore"):  # NaN or inf: infinitely far, never within
        err = _nan_is_inf(np.abs((side.astype(np.float64) - exact[0]) - exact[1]))
        over, over_prob = (_nan_is_inf(err / b) for b in (bound, probabilistic_bound))
    ulps = ulp_distance(side, correctly_rounded(exact, side.dtype.name))
    return {
        "max_abs_error": float(err.max(initial=0)),
        "max_error_over_bound": float(over.max(initial=0)),
        "max_error_over_probabilistic_bound": float(over_prob.max(initial=0)),
        "ulp_median": float(np.median(ulps)) if ulps.size else 0.0,
        "ulp_p99": float(np.percentile(ulps, 99)) if ulps.size else 0.0,
        "ulp_max": int(ulps.max(initial=0)),
    }
