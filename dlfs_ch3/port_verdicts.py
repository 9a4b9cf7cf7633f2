"""Verdicts on a reader's chapter-3 functions: each output the child (:mod:`dlfs_ch3.port_runner`)
saved, set against the exact result and its proven bound (:mod:`nn_numpy.exact`), and where it is
beyond, the slip that explains it, named: the activations, softmax, ``init_network``, ``get_data``
and the accuracy a script prints. The networks' verdicts are in :mod:`dlfs_ch3.port_networks`.

A verdict is ``OK`` (every element within its proven bound, the largest error given as a share of
it), ``WRONG`` (with the diagnosis) or ``note`` (something to know that is not a slip).
"""

import re

import numpy as np

from nn_numpy import exact
from nn_numpy.network import LAYER_NAMES

from .port_runner import SOFTMAX_CASES, TOY, activation_cases, softmax_cases

BOOK_ACCURACY = 0.9352
HINTS = {  # crash messages readers meet, and their fix
    "has no attribute 'int'": "np.int is gone from NumPy (1.24): write int or np.int64",
    "not aligned": "a matrix product's shapes do not chain: is a weight transposed?",
    "KeyError: 'B": "sample_weight.pkl's keys are lower case: b1, b2, b3",
    "could not be broadcast": "a bias of the wrong layer? b1 (50,), b2 (100,), b3 (10,)",
}


def finding(verdict, what, text):
    return {"verdict": verdict, "what": what, "text": text}


def crash(what, text):
    hint = next((h for key, h in HINTS.items() if key in text), None)
    return finding("WRONG", what, f"crashes: {text}" + (f" ({hint})" if hint else ""))


def _u(dtype):
    return exact.UNIT_ROUNDOFF.get(str(dtype), exact.UNIT_ROUNDOFF["float64"])


def _tiny(dtype):
    return float(np.finfo(dtype if str(dtype) in ("float32", "float64") else "float64").tiny)


def _beyond(yours, truth, bound):
    """``(mask of elements beyond, largest error over bound among the rest)``; NaN only matches NaN."""
    yours, truth = np.asarray(yours, np.float64), np.asarray(truth, np.float64)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        err = np.abs(yours - truth)
        same = (yours == truth) | (np.isnan(yours) & np.isnan(truth))
        bad = ~same & ~(err <= bound)
        ratio = np.where(same | bad, 0.0, err / bound)
    return bad, float(ratio.max(initial=0.0))


def _where(case, x, i):
    value = x[np.unravel_index(i, x.shape)] if x.ndim else x
    return f"{case} input, x = {float(value):g}"


# --- activations ---------------------------------------------------------------------------------------


def _expected(name, x):
    """``(exact float64 values, per-element bound as a function of the output dtype)``."""
    x64 = x.astype(np.float64)
    if name == "sigmoid":
        with np.errstate(all="ignore"):
            y = exact.sigmoid((x64, 0 * x64))[0]
        return y, lambda dt: exact.SIGMOID_ROUNDING * _u(dt) * y + _tiny(dt)
    y = {"step_function": (x64 > 0) * 1.0, "relu": np.maximum(0, x64), "identity_function": x64}
    return y[name], lambda dt: 0.0


def activation(name, calls, arrays, where):
    """The verdicts on one activation over every case of :func:`activation_cases`."""
    label, worst, notes, failures = f"{name} ({where})" if where else name, 0.0, set(), []
    for case, x in activation_cases().items():
        key, info = f"{name}/{case}", calls.get(f"{name}/{case}", {})
        if "crash" in info:
            return [crash(label, info["crash"])]
        y = arrays.get(key)
        if y is None or y.shape != x.shape:
            shape = "nothing" if y is None else f"shape {y.shape}"
            return [finding("WRONG", label, f"returns {shape} for input of shape {x.shape}")]
        if name == "step_function" and y.dtype.kind != "i":
            fix = "y.astype(np.int64)" if y.dtype == bool else "integers, as the book's np.int"
            return [
                finding("WRONG", label, f"returns {y.dtype} ({case}): the book's returns {fix}")
            ]
        if name != "step_function" and y.dtype != x.dtype:
            notes.add(f"returns {y.dtype} for {x.dtype} input")
        truth, bound = _expected(name, x)
        bad, ratio = _beyond(y, truth, bound(y.dtype))
        worst = max(worst, ratio)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            failures.append((case, x, i, y.flat[i], truth.flat[i]))
        notes |= set(info.get("warnings", []))
    if failures:
        case, x, i, got, want = failures[0]
        text = f"gives {got:g} where the reference gives {want:g} ({_where(case, x, i)})"
        if name == "step_function" and x.flat[i] == 0:
            text = (
                "gives 1 at x = 0: the book's code (x > 0) gives 0, whatever a formula with >= says"
            )
        more = f"; {len(failures) - 1} more case(s) beyond" if len(failures) > 1 else ""
        return [finding("WRONG", label, text + more)]
    out = [
        finding(
            "OK", label, _ok_text(worst, "float32 and float64, 1-D and 2-D, 0, ±1000, NaN, ±inf")
        )
    ]
    for note in sorted(notes):
        text = f"warns {note!r} on some of 0, ±1000, NaN, ±inf"
        if name == "sigmoid" and "overflow" in note:
            text = (
                f"sigmoid(-1000) warns {note!r}: its value, 0, is right, so this is no slip; "
                "1 / (1 + np.exp(-x)) overflows exp below x = -88 (float32) or -709 (float64), "
                "where exp(-|x|) never does"
            )
        out.append(finding("note", label, text))
    return out


def _ok_text(ratio, over):
    share = "exact" if ratio == 0 else f"largest error {ratio:.2g} of its proven bound"
    return f"{share}, on {over}"


# --- softmax -------------------------------------------------------------------------------------------


def softmax(calls, arrays, where):
    label, worst, warned = f"softmax ({where})" if where else "softmax", 0.0, []
    beyond = {}
    for case, x in softmax_cases().items():
        info = calls.get(f"softmax/{case}", {})
        if "crash" in info:
            return [crash(label, info["crash"])]
        y = arrays.get(f"softmax/{case}")
        if y is None or y.shape != x.shape:
            shape = "nothing" if y is None else f"shape {y.shape}"
            return [finding("WRONG", label, f"returns {shape} for input of shape {x.shape}")]
        rows = np.atleast_2d(x.astype(np.float64))
        truth = exact.softmax((rows, 0 * rows))[0].reshape(x.shape)
        bound = exact.softmax_bound(rows, truth.reshape(rows.shape), 0.0, y.dtype.name)
        bad, ratio = _beyond(y, truth, bound.reshape(x.shape))
        worst = max(worst, ratio)
        warned += info.get("warnings", [])
        if bad.any():
            beyond[case.split(" ", 1)[1]] = (np.asarray(y, np.float64), x)
    if not beyond:
        return [
            finding(
                "OK", label, _ok_text(worst, "float32 and float64, 1-D and 2-D, logits to ±1010")
            )
        ]
    return [finding("WRONG", label, _softmax_slip(beyond, warned))]


def _softmax_slip(beyond, warned):
    batch = beyond.get("a batch")
    if batch is not None and not np.allclose(batch[0].sum(-1), 1) and np.isclose(batch[0].sum(), 1):
        sums = ", ".join(f"{s:.2g}" for s in batch[0].sum(-1))
        return (
            f"sums over the whole batch, not each row: the rows of a {batch[1].shape} batch sum to "
            f"{sums}, the batch to 1; take max and sum over the last axis: "
            "np.max(a, axis=-1, keepdims=True), np.sum(exp_a, axis=-1, keepdims=True)"
        )
    overflow = beyond.get("[1010, 1000, 990]")
    if overflow is not None and not np.isfinite(overflow[0]).all():
        said = (
            " (warns 'overflow encountered in exp')" if any("overflow" in w for w in warned) else ""
        )
        return (
            f"softmax([1010, 1000, 990]) gives {overflow[0].tolist()}{said}: exp overflows without "
            "the max subtracted; compute exp_a = np.exp(a - np.max(a)) first"
        )
    if "rows far apart" in beyond:
        return (
            "subtracts the whole batch's max, not each row's: a row far below it underflows to 0/0; "
            "np.max(a, axis=-1, keepdims=True)"
        )
    case, (y, x) = next(iter(beyond.items()))
    return (
        f"beyond its proven bound on {case} {SOFTMAX_CASES[case]}: gives {np.round(y, 6).tolist()}"
    )


def init_network(calls, arrays, where, weights):
    """The reader's ``init_network()``: the book's pickle unchanged, or the toy network's values."""
    label = f"init_network ({where})" if where else "init_network"
    if "crash" in calls.get("init_network", {}):
        return [crash(label, calls["init_network"]["crash"])]
    got = {k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("init_network/")}
    if np.shape(got.get("W1")) != (784, 50):
        book = {k: np.array(v) for k, v in TOY.items()}
        book["b2"], book["b3"] = np.array([0.1, 0.2]), np.array([0.1, 0.2])  # the book's own toy
        what = "the book's toy network"
        got = {k.lower() if k[0] in "Bb" else k: v for k, v in got.items()}
    else:
        book, what = weights, "sample_weight.pkl"
    missing = [k for k in LAYER_NAMES if k not in got]
    if missing:
        return [
            finding("WRONG", label, f"returns no {', '.join(missing)} (keys: {', '.join(got)})")
        ]
    differ = [k for k in LAYER_NAMES if not np.array_equal(np.asarray(got[k], np.float64), book[k])]
    if differ:
        return [finding("WRONG", label, f"{', '.join(differ)} differ from {what}'s")]
    return [finding("OK", label, f"returns {what}'s six arrays, unchanged")]


def get_data(calls, arrays, where, labels):
    """The reader's ``get_data()``: the normalised, flattened test set and its labels."""
    label = f"get_data ({where})" if where else "get_data"
    if "crash" in calls.get("get_data", {}):
        return [crash(label, calls["get_data"]["crash"])]
    x, t = calls.get("get_data", {}).get("x"), arrays.get("get_data/1")  # x: dtype, shape, max
    if x is None or t is None:
        return [finding("WRONG", label, "does not return (x, t) arrays")]
    shape = tuple(x["shape"])
    if x["dtype"] == "uint8":
        return [
            finding(
                "WRONG",
                label,
                "x is uint8 pixels 0-255, not normalised: load_mnist(normalize=True)",
            )
        ]
    if shape != (len(labels), 784):
        return [
            finding(
                "WRONG", label, f"x has shape {shape}, not (10000, 784): load_mnist(flatten=True)"
            )
        ]
    if x["max"] is None or x["max"] > 1:
        return [
            finding(
                "WRONG",
                label,
                f"x is not normalised (values up to {x['max']:g}): load_mnist(normalize=True)"
                if x["max"] is not None
                else f"x holds {x['dtype']}, not numbers in [0, 1]: load_mnist(normalize=True)",
            )
        ]
    t = t.argmax(1) if t.ndim == 2 else t
    if not np.array_equal(t, labels):
        return [finding("WRONG", label, "t is not the test set's labels")]
    return [
        finding("OK", label, f"x {shape} {x['dtype']} in [0, 1], t the {len(labels)} test labels")
    ]


def accuracy(stdout, calls, arrays, where):
    """The accuracy the script printed, against its own predict's and the reference's."""
    label = f"accuracy ({where})" if where else "accuracy"
    printed = re.findall(r"accur\w*\s*[:=]?\s*([0-9]*\.[0-9]+|[01])\b", stdout, re.IGNORECASE)
    if not printed:
        return []
    printed = float(printed[-1])
    labels, t = arrays.get("predict/labels"), arrays.get("predict/t")
    if labels is None or t is None or labels.shape != t.shape:
        ok = abs(printed - BOOK_ACCURACY) < 5e-5
        return [
            finding(
                "OK" if ok else "WRONG",
                label,
                f"prints {printed:g}; the reference gives {BOOK_ACCURACY}",
            )
        ]
    count, n = int((labels == t).sum()), len(t)
    own = count / n
    if abs(printed - own) < 5e-5:
        if abs(own - BOOK_ACCURACY) < 5e-5:
            return [
                finding(
                    "OK", label, f"prints {printed:g}, as your predict gives and the reference does"
                )
            ]
        return [
            finding(
                "WRONG",
                label,
                f"prints {printed:g}, as your predict gives ({count} of {n}); the "
                f"reference gives {BOOK_ACCURACY}: the slip is before the loop (see above)",
            )
        ]
    why, k = "a slip in the accuracy loop", round(printed * n)
    if printed > 0 and abs(count / printed - round(count / printed)) < 1e-3 * count / printed:
        why = f"it divides by {round(count / printed)}, not by the {n} images"
    if abs(k / n - printed) < 5e-5 and k < count:
        why = f"it counts {k} right where your predict gets {count}: {count - k} not counted, as when a batch is skipped (off by one in the loop)"
    return [
        finding(
            "WRONG",
            label,
            f"prints {printed:g}, but your predict scores {own:g} ({count} of "
            f"{n}) on the same data: {why}",
        )
    ]
