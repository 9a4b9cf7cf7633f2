"""Verdicts on a reader's networks: ``predict``, the toy ``forward`` and an ``nn.Module`` with three
``Linear`` layers, layer by layer against the exact result and its proven bound.

The first layer out of its bound is where a network first diverges: every earlier layer is within
its bound, so the error cannot have come from there. From there on each layer is recomputed from the
reader's own layer before it; one beyond that local bound holds a slip of its own, named by the
variant of its formula it matches (a bias dropped, an activation swapped, softmax over the batch).
docs/check-port.md.
"""

import re

import numpy as np

from nn_numpy import exact
from nn_numpy.network import LAYER_OUTPUTS

from .port_runner import TOY_X, toy_network
from .port_verdicts import _beyond, _ok_text, _tiny, crash, finding

FORMULAS = {
    "a1": "a1 = np.dot(x, W1) + b1",
    "z1": "z1 = sigmoid(a1)",
    "a2": "a2 = np.dot(z1, W2) + b2",
    "z2": "z2 = sigmoid(a2)",
    "a3": "a3 = np.dot(z2, W3) + b3",
    "y": "y = softmax(a3)",
}

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
