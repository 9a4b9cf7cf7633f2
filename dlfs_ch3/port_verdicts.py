"""Verdicts on a reader's chapter-3 code: each output the child (:mod:`dlfs_ch3.port_runner`) saved,
set against the exact result and its proven bound (:mod:`nn_numpy.exact`), and where it is beyond,
the slip that explains it, named.

A verdict is ``OK`` (every element within its proven bound, the largest error given as a share of
it), ``WRONG`` (with the diagnosis) or ``note`` (something to know that is not a slip). The first
layer out of its bound is where a network first diverges: every earlier layer is within its bound,
so the error cannot have come from there. From there on each layer is recomputed from the reader's
own layer before it; one beyond that local bound holds a slip of its own, named by the variant of its
formula it matches (a bias dropped, an activation swapped, softmax over the batch). docs/check-port.md.
"""

import re

import numpy as np

from nn_numpy import exact
from nn_numpy.network import LAYER_NAMES, LAYER_OUTPUTS

from .port_runner import SOFTMAX_CASES, TOY, TOY_X, activation_cases, softmax_cases, toy_network

BOOK_ACCURACY = 0.9352
FORMULAS = {
    "a1": "a1 = np.dot(x, W1) + b1",
    "z1": "z1 = sigmoid(a1)",
    "a2": "a2 = np.dot(z1, W2) + b2",
    "z2": "z2 = sigmoid(a2)",
    "a3": "a3 = np.dot(z2, W3) + b3",
    "y": "y = softmax(a3)",
}
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


# --- the networks: variants of the reference with one slip put in --------------------------------------


def _act(name, a):
    with np.errstate(all="ignore"):
        return {
            "sigmoid": lambda: 1 / (1 + np.exp(-a)),
            "relu": lambda: np.maximum(0, a),
            "no activation": lambda: a,
            "step_function": lambda: (a > 0) * 1.0,
            "tanh": lambda: np.tanh(a),
            "softmax": lambda: _softmax64(a),
            "softmax over the whole batch": lambda: np.exp(a - a.max()) / np.exp(a - a.max()).sum(),
        }[name]()


def _softmax64(a):
    e = np.exp(a - a.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _run(net, x, acts=("sigmoid", "sigmoid"), output="softmax", drop=(), swap=None, turn=()):
    W = [np.asarray(net[f"W{i}"], np.float64) for i in (1, 2, 3)]
    W = [w.T if i in turn else w for i, w in enumerate(W, 1)]
    b = [np.asarray(net[f"b{i}"], np.float64) for i in (1, 2, 3)]
    for i, j in (swap or {}).items():
        b[i - 1] = np.asarray(net[f"b{j}"], np.float64)
    out, z = {}, np.asarray(x, np.float64)
    for i in (1, 2, 3):
        a = z @ W[i - 1] + (0 if i in drop else b[i - 1])
        z = _act(acts[i - 1] if i < 3 else output, a)
        out[f"a{i}"], out["y" if i == 3 else f"z{i}"] = a, z
    return out


def variants(net, x, output):
    """``{slip named in words: its layers}``: the reference with each slip a reader makes put in."""
    out = {f"b{i} is missing": _run(net, x, output=output, drop=(i,)) for i in (1, 2, 3)}
    out["b1, b2 and b3 are all missing"] = _run(net, x, output=output, drop=(1, 2, 3))
    for i in (1, 2, 3):
        for j in (1, 2, 3):
            if i != j and np.shape(net[f"b{i}"]) == np.shape(net[f"b{j}"]):
                out[f"b{j} is used where b{i} belongs"] = _run(net, x, output=output, swap={i: j})
    for i in (1, 2, 3):
        if np.shape(net[f"W{i}"])[0] == np.shape(net[f"W{i}"])[-1]:
            out[f"W{i} is transposed"] = _run(net, x, output=output, turn=(i,))
    for layer in (1, 2):
        for act in _SWAPS:
            acts = tuple(act if i == layer else "sigmoid" for i in (1, 2))
            out[_words(layer, act)] = _run(net, x, acts=acts, output=output)
    for o in (o for o in _OTHERS if o != output):
        out[_OUTPUTS.get(o, f"the output is {o}")] = _run(net, x, output=o)
    return out


def _matches(layers, variant):
    for k, yours in layers.items():
        v = variant[k]
        if yours.shape != v.shape:
            return False
        scale = np.nanmax(np.abs(v), initial=0.0) if np.isfinite(v).any() else 1.0
        with np.errstate(invalid="ignore"):
            close = np.isclose(yours, v, rtol=0, atol=1e-4 * scale + 1e-30, equal_nan=True)
        if not close.all():
            return False
    return True


def network(label, layers, truth, bounds, net, x, output, pixels=None):
    """The verdict on a network's visible ``layers`` ``{layer: (N, k) array}``, y among them.

    The first layer beyond its proven bound is where yours diverges. From there on, each layer is
    recomputed from your own layer before it: a layer beyond that local bound holds a slip of its
    own, named by the variant it matches; one within it only carries an earlier slip's error."""
    ratios, first = {}, None
    for k in [k for k in LAYER_OUTPUTS if k in layers]:
        if layers[k].shape != truth[k].shape:
            return finding("WRONG", label, f"{k} has shape {layers[k].shape}, not {truth[k].shape}")
        bad, ratios[k] = _beyond(layers[k], truth[k], bounds[k])
        if bad.any():
            first = k
            break
    if first is None:
        seen = " ".join(k for k in LAYER_OUTPUTS if k in layers)
        return finding("OK", label, _ok_text(max(ratios.values()), f"layers {seen}"))
    if len(layers) == 1:  # y alone: the whole network with one slip put in
        found = [w for w, v in variants(net, x, output).items() if _matches(layers, v)]
        at = "y is beyond its proven bound (name your layers a1 z1 a2 z2 a3 y to see where)"
        return finding("WRONG", label, f"{at}: " + (found[0] if found else UNKNOWN))
    slips = []
    for k in LAYER_OUTPUTS[LAYER_OUTPUTS.index(first) :]:
        local = _local(k, layers, net, x, output) if k in layers else None
        if local is not None:
            expected, bound, candidates = local
            if _beyond(layers[k], expected, bound)[0].any():
                found = [w for w, v in candidates.items() if _matches({k: layers[k]}, {k: v})]
                if k == "a1" and not found and pixels is not None:
                    fmt = _reduced_precision(layers["a1"], truth["a1"], net, pixels)
                    bits = PRECISIONS.get(fmt, (0,))[0]
                    found = (
                        [
                            f"a1 is consistent with matmul inputs rounded to {bits} mantissa bits ({fmt}{', or float16' * (bits == 10)})"
                        ]
                        if fmt
                        else []
                    )
                slips.append(found[0] if found else f"{k}: {UNKNOWN}")
    at = f"first diverges at {first}" + (f" ({FORMULAS[first]})" if first in FORMULAS else "")
    return finding("WRONG", label, f"{at}: {'; '.join(_merge_biases(slips)) or UNKNOWN}")


UNKNOWN = "no slip the checker knows explains it"


def _merge_biases(slips):
    missing = [s.split()[0] for s in slips if re.fullmatch(r"b[123] is missing", s)]
    if len(missing) < 2:
        return slips
    words = ", ".join(missing[:-1]) + f" and {missing[-1]} are " + ("all " * (len(missing) == 3))
    rest = [s for s in slips if not re.fullmatch(r"b[123] is missing", s)]
    return [words + "missing"] + rest


def _local(k, layers, net, x, output):
    """``(expected, bound, {slip in words: value})`` for layer ``k`` computed from yours before it,
    in float64; the bound is on a correct computation in your layer's dtype. None if not visible."""
    i = 3 if k == "y" else int(k[1])
    dtype = _float(layers[k].dtype)
    u, tiny = exact.UNIT_ROUNDOFF[dtype], _tiny(dtype)
    if k[0] == "a":
        prev = np.asarray(x if i == 1 else layers.get(f"z{i - 1}"), np.float64)
        if prev.ndim == 0:
            return None
        W, b = (np.asarray(net[f"{p}{i}"], np.float64) for p in "Wb")
        n = W.shape[0] + 1
        bound = n * u / (1 - n * u) * (np.abs(prev) @ np.abs(W) + np.abs(b)) + n * tiny
        candidates = {f"b{i} is missing": prev @ W}
        for j in (1, 2, 3):
            if j != i and np.shape(net[f"b{j}"]) == b.shape:
                candidates[f"b{j} is used where b{i} belongs"] = prev @ W + net[f"b{j}"]
        if W.shape[0] == W.shape[1]:
            candidates[f"W{i} is transposed"] = prev @ W.T + b
        return prev @ W + b, bound * exact.SLACK, candidates
    if f"a{i}" not in layers:
        return None
    a = np.asarray(layers[f"a{i}"], np.float64)
    if k == "y":
        expected = _act(output, a)
        bound = exact.softmax_bound(a, expected, 0.0, dtype) if output == "softmax" else tiny
        return (
            expected,
            bound,
            {_OUTPUTS.get(o, f"the output is {o}"): _act(o, a) for o in _OTHERS if o != output},
        )
    expected = _act("sigmoid", a)
    bound = (exact.SIGMOID_ROUNDING * u * expected + tiny) * exact.SLACK
    return expected, bound, {_words(i, act): _act(act, a) for act in _SWAPS}


_SWAPS = ("relu", "no activation", "step_function", "tanh", "softmax")
_OTHERS = ("no activation", "sigmoid", "softmax over the whole batch", "softmax")
_OUTPUTS = {
    "no activation": "no softmax at the output: y is a3",
    "softmax over the whole batch": "softmax sums over the whole batch, not each row "
    "(each row's argmax, so the accuracy, is unchanged)",
}


def _words(layer, act):
    words = "no activation" if act == "no activation" else f"{act} in place of sigmoid"
    return f"layer {layer} has {words} (z{layer})"


# --- the reader's MNIST network, data, weights and accuracy ----------------------------------------------


def predict(calls, arrays, where, weights, pixels, truth, dtype_bounds):
    label = f"predict ({where})" if where else "predict"
    for key in ("predict/batch", "predict/one"):
        if "crash" in calls.get(key, {}):
            return [crash(label, calls[key]["crash"])]
    out = []
    x = pixels.astype(np.float64) / 255
    for key, rows in (("predict/batch", slice(None)), ("predict/one", 0)):
        y = arrays.get(key)
        if y is None:
            return [finding("WRONG", label, "returns nothing an array can be made of")]
        layers = {k: arrays[f"{key}/{k}"] for k in LAYER_OUTPUTS if f"{key}/{k}" in arrays}
        layers["y"] = y
        layers = {k: np.atleast_2d(v) if key == "predict/one" else v for k, v in layers.items()}
        dtype = y.dtype.name if y.dtype.name in ("float32", "float64") else "float64"
        bounds = dtype_bounds(dtype)
        t = {
            k: np.atleast_2d(v[0][rows]) for k, v in truth.items()
        }  # hi: lo is far below any bound
        b = {k: np.atleast_2d(v[rows]) for k, v in bounds.items()}
        verdict = network(
            label, layers, t, b, weights, np.atleast_2d(x[rows]), "softmax", pixels[rows]
        )
        if key == "predict/one" and verdict["verdict"] != "OK":
            verdict["text"] = "on one image (784,): " + verdict["text"]
        out.append(verdict)
        if verdict["verdict"] != "OK":
            return [verdict]
    return [finding("OK", label, out[0]["text"] + "; one image alone too")]


def forward(calls, arrays, where):
    """The toy network's ``forward``, on the book's weights with distinct biases (so a b2 used for b3
    shows), against the reference in float64 within 1e-12."""
    label = f"forward ({where})" if where else "forward"
    if "crash" in calls.get("forward/toy", {}):
        return [crash(label, calls["forward/toy"]["crash"])]
    net = toy_network()
    layers = {
        k: np.atleast_2d(arrays[f"forward/toy/{k}"])
        for k in LAYER_OUTPUTS
        if f"forward/toy/{k}" in arrays
    }
    layers["y"] = np.atleast_2d(arrays.get("forward/toy", np.zeros(0)))
    truth = _run(net, np.atleast_2d(TOY_X), output="no activation")
    bounds = {k: 1e-12 * (1 + np.abs(v)) for k, v in truth.items()}
    v = network(label, layers, truth, bounds, net, np.atleast_2d(TOY_X), "no activation")
    if v["verdict"] == "OK":
        v["text"] = f"within 1e-12 of the reference on {TOY_X} with the book's toy weights"
    return [v]


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
    x, t = arrays.get("get_data/0"), arrays.get("get_data/1")
    if x is None or t is None:
        return [finding("WRONG", label, "does not return (x, t) arrays")]
    if x.dtype == np.uint8:
        return [
            finding(
                "WRONG",
                label,
                "x is uint8 pixels 0-255, not normalised: load_mnist(normalize=True)",
            )
        ]
    if x.shape != (len(labels), 784):
        return [
            finding(
                "WRONG", label, f"x has shape {x.shape}, not (10000, 784): load_mnist(flatten=True)"
            )
        ]
    if x.max() > 1:
        return [
            finding(
                "WRONG",
                label,
                f"x is not normalised (values up to {x.max():g}): load_mnist(normalize=True)",
            )
        ]
    t = t.argmax(1) if t.ndim == 2 else t
    if not np.array_equal(t, labels):
        return [finding("WRONG", label, "t is not the test set's labels")]
    return [
        finding("OK", label, f"x {x.shape} {x.dtype} in [0, 1], t the {len(labels)} test labels")
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


def module(name, calls, arrays, weights, pixels, truth, dtype_bounds):
    """A torch port: its Linear weights against the pickle, each Linear fed the reference's input
    (so an error in one layer does not hide in the next), then its own layers, as for predict."""
    key = f"module:{name}"
    if "crash" in calls.get(key, {}):
        return [crash(f"nn.Module {name}", calls[key]["crash"])]
    label = f"nn.Module {name} ({calls[key]['cls']})"
    out = []
    if calls[key].get("made"):
        out.append(
            finding(
                "note",
                label,
                f"no instance at the top level: {name}() was made, "
                "and given the book's weights, by the checker",
            )
        )
    wrong = {}
    for i, (w, b) in enumerate((("W1", "b1"), ("W2", "b2"), ("W3", "b3")), 1):
        W, bias = arrays[f"{key}/fc{i}.weight"], arrays.get(f"{key}/fc{i}.bias")
        text = _linear_weights(i, W, bias, weights[w], weights[b], calls[key]["dtypes"][i - 1])
        if text.startswith("note: "):
            out.append(finding("note", label, text[6:]))
        elif text:
            wrong[i] = text
    out += [finding("WRONG", label, text) for text in wrong.values()]
    if "crash" in calls.get(f"{key}/y", {}):
        return out + [crash(label, calls[f"{key}/y"]["crash"])]
    fed_ratio, beyond, fmt = 0.0, [], None
    for i, a in ((i, a) for i, a in enumerate(("a1", "a2", "a3"), 1) if i not in wrong):
        fed = arrays[f"{key}/fed {a}"]
        bad, ratio = _beyond(fed, truth[a][0], dtype_bounds(_float(fed.dtype))[a])
        fed_ratio = max(fed_ratio, ratio)
        if bad.any():
            beyond.append(f"fc{i}")
            fmt = _reduced_precision(fed, truth[a][0], weights, pixels) if i == 1 else fmt
    if beyond:  # fc1's error fitting a format's own bound names it; the later layers' follow
        text = f"{', '.join(beyond)}, fed the reference's input, beyond the proven bound"
        if fmt:
            bits, fix = PRECISIONS[fmt]
            text += f"; fc1's error is consistent with {fmt}: matmul inputs rounded to {bits} bits ({fix})"
        out.append(finding("WRONG", label, text))
    explained = bool(wrong) or fmt is not None
    layers = {
        k: arrays.get(f"{key}/{v}")
        for k, v in zip(LAYER_OUTPUTS, ("a1", "in2", "a2", "in3", "a3", "y"))
    }
    layers = {k: v for k, v in layers.items() if v is not None}
    if "y" not in layers:
        return out + [finding("WRONG", label, "its forward returns no array")]
    hi = {k: v[0] for k, v in truth.items()}
    verdict = network(
        label,
        layers,
        hi,
        dtype_bounds(_float(layers["y"].dtype)),
        weights,
        pixels / 255.0,
        "softmax",
        pixels,
    )
    if verdict["verdict"] == "OK":
        verdict["text"] += (
            f"; each Linear fed the reference's input too (largest {fed_ratio:.2g} of its bound)"
        )
    if verdict["verdict"] == "OK" or "no slip" not in verdict["text"] or not explained:
        out.append(verdict)
    return out


PRECISIONS = {  # mantissa bits kept, and where such rounding comes from
    "TF32": (10, "TF32 on a GPU: torch.backends.cuda.matmul.allow_tf32 = False"),
    "bfloat16": (7, "bfloat16: an autocast, or a .bfloat16() on the way"),
}


def _reduced_precision(a1, truth, weights, pixels):
    """The reduced precision that explains a float32 ``a1`` beyond its bound, or None."""
    if a1.dtype != np.float32:
        return None
    pixels = np.atleast_2d(pixels)
    err = np.abs(a1.astype(np.float64) - truth)
    for fmt, words in (("tf32", "TF32"), ("bf16", "bfloat16")):
        if (err <= exact.rounded_inputs_bound(weights, pixels, fmt)).all():
            return words
    return None


def _float(dtype):
    return dtype.name if dtype.name in ("float32", "float64") else "float32"


def _linear_weights(i, W, bias, Wb, bb, dtype):
    """What is wrong with ``fc{i}``'s weight and bias, in words; a note as ``"note: ..."``; or ''."""
    w, b = f"W{i}", f"b{i}"
    if W.shape == Wb.shape and np.array_equal(W, Wb):
        return f"fc{i}.weight is {w} as the book stores it, (in, out); nn.Linear wants {w}.T"
    if W.shape != Wb.T.shape and W.size == Wb.size and np.array_equal(W.ravel(), Wb.ravel()):
        return f"fc{i}.weight is {w} reshaped to {W.shape}, not transposed: use {w}.T"
    if W.shape == Wb.T.shape and np.array_equal(W.ravel(), Wb.ravel()):
        return f"fc{i}.weight is {w} reshaped to {W.shape}, not transposed: use {w}.T"
    if W.shape != Wb.T.shape or not np.allclose(W, Wb.T, rtol=2**-7, atol=0):
        return f"fc{i}.weight is not {w}.T: the book's weights were not loaded into it"
    if dtype in ("float16", "bfloat16"):
        bits = {"float16": 10, "bfloat16": 7}[dtype]
        return f"fc{i} holds {w} in {dtype}: {bits} of float32's 23 mantissa bits"
    if bias is None:
        return f"fc{i} has no bias: {b} is missing (nn.Linear(..., bias=False)?)"
    if not np.any(bias):
        return f"fc{i}.bias is all zeros: {b} is missing"
    if not np.array_equal(bias.astype(np.float64), bb.astype(np.float64)):
        return f"fc{i}.bias is not {b}: the book's biases were not loaded into it"
    return f"note: fc{i} holds {w} in {dtype}, not the book's float32" if dtype != "float32" else ""
