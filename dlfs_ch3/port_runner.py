"""The child process of ``dlfs-ch3 check-port``: runs a reader's chapter-3 file as the reader runs
it, then calls the chapter's functions it defines on the project's probe inputs, and saves what they
return for the parent to judge (:mod:`dlfs_ch3.port_verdicts`).

    python -m dlfs_ch3.port_runner TARGET DATA_DIR DEVICE OUT

TARGET is a ``.py`` file (run as ``__main__`` in its own folder, as ``python file.py`` would) or a
module name (as ``python -m`` would). ``dataset.mnist`` and any ``*.dataset.mnist`` are served by the
project's verified loader, and ``sample_weight.pkl`` opened where it does not exist is the project's
copy. OUT gets ``OUT.json`` (found names, notes, stdout, crashes) and ``OUT.npz`` (every output).
"""

import builtins
import contextlib
import importlib.abc
import importlib.machinery
import io
import json
import os
import sys
import traceback
import warnings

import numpy as np

BOOK_NAMES = (
    "step_function",
    "sigmoid",
    "relu",
    "identity_function",
    "softmax",
    "init_network",
    "get_data",
    "predict",
    "forward",
)
ACTIVATIONS = ("step_function", "sigmoid", "relu", "identity_function")
LAYERS = ("a1", "z1", "a2", "z2", "a3", "y")
SPECIALS = [0.0, -0.0, 1.0, -1.0, 1000.0, -1000.0, np.nan, np.inf, -np.inf, 0.5]
SPECIALS += [-2.5, 30.0, -30.0, 88.0, -88.0, 100.0, -100.0, 710.0, -710.0, 1e-3]
SOFTMAX_CASES = {  # the book's example, its overflow example, a batch, rows far apart
    "[0.3, 2.9, 4.0]": [0.3, 2.9, 4.0],
    "[1010, 1000, 990]": [1010.0, 1000.0, 990.0],
    "a batch": [[0.3, 2.9, 4.0], [1.0, 2.0, 3.0], [-1.0, 0.0, 1.0], [2.0, 2.0, 2.0]],
    "rows far apart": [[1010.0, 1000.0, 990.0], [-1000.0, -1000.0, -999.0], [0.0, 1.0, 2.0]],
}
PROBE_IMAGES = (
    100  # test images fed to predict: enough for every layer's verdict, cheap to make exact
)
# The toy network with distinct biases, so that b2 used where b3 belongs shows; both key spellings.
TOY = {
    "W1": [[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]],
    "b1": [0.1, 0.2, 0.3],
    "W2": [[0.1, 0.4], [0.2, 0.5], [0.3, 0.6]],
    "b2": [0.7, -0.2],
    "W3": [[0.1, 0.3], [0.2, 0.4]],
    "b3": [-0.4, 0.9],
}
TOY_X = [1.0, 0.5]


def activation_cases():
    """``{case name: float array}`` every activation is called on: 1-D and 2-D, float32 and float64."""
    cases = {}
    for dtype in ("float64", "float32"):
        x = np.array(SPECIALS, dtype)
        cases[f"{dtype} 1-D"], cases[f"{dtype} 2-D"] = x, x.reshape(4, 5)
    return cases


def softmax_cases():
    return {
        f"{dtype} {name}": np.array(v, dtype)
        for dtype in ("float64", "float32")
        for name, v in SOFTMAX_CASES.items()
    }


def toy_network():
    net = {k: np.array(v) for k, v in TOY.items()}
    return {**net, **{k.upper(): v for k, v in net.items() if k[0] == "b"}}


class _Dataset(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves ``dataset.mnist`` (and ``anything.dataset.mnist``) from the project's loader, and an
    empty ``dataset`` package where the reader has none: the book's imports, without network."""

    def __init__(self, data_dir, notes):
        self.data_dir, self.notes = data_dir, notes

    def find_spec(self, name, path=None, target=None):
        if name == "dataset" or name.endswith(".dataset"):
            if importlib.machinery.PathFinder.find_spec(name, path) is None:
                return importlib.machinery.ModuleSpec(name, self, is_package=True)
        elif name == "dataset.mnist" or name.endswith(".dataset.mnist"):
            return importlib.machinery.ModuleSpec(name, self)
        return None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        if module.__name__.endswith("mnist"):
            module.load_mnist = self.load_mnist
        else:
            module.__path__ = []

    def load_mnist(self, normalize=True, flatten=True, one_hot_label=False):
        """The book's ``load_mnist``; the training split is empty where its files are not here."""
        from nn_numpy.data.fetch import TRAIN_SET
        from nn_numpy.data.mnist import _format, load_split

        test = load_split("test", self.data_dir)[:2]
        if all(os.path.isfile(os.path.join(self.data_dir, name)) for name in TRAIN_SET):
            train = load_split("train", self.data_dir)[:2]
        else:
            self.notes.append(
                "the training split is not in the data dir and nothing is downloaded: "
                "load_mnist gave an empty x_train (chapter 3 needs only the test split)"
            )
            train = (np.zeros((0, 28, 28), np.uint8), np.zeros(0, np.uint8))
        return tuple(_format(*split, normalize, flatten, one_hot_label) for split in (train, test))


def _redirect_weights(weights_path, notes):
    """``open("sample_weight.pkl")`` where no such file exists opens the project's copy, with a note."""
    real_open = builtins.open

    def open_(file, *args, **kwargs):
        if (
            isinstance(file, (str, os.PathLike))
            and os.path.basename(os.fspath(file)) == "sample_weight.pkl"
            and not os.path.exists(file)
        ):
            notes.append(
                f"{os.fspath(file)} does not exist here: the project's verified copy was opened"
            )
            file = weights_path
        return real_open(file, *args, **kwargs)

    builtins.open = io.open = open_


def crash_text(err, root):
    """``"file:line: Type: message"``, at the deepest frame in the reader's own files."""
    frames = traceback.extract_tb(err.__traceback__)
    own = [
        f
        for f in frames
        if os.path.abspath(f.filename).startswith(root) and "dlfs_ch3" not in f.filename
    ]
    where = f"{os.path.relpath(own[-1].filename, root)}:{own[-1].lineno}: " if own else ""
    text = " ".join(str(err).split())
    text = text[: text.index(". ") + 1] if len(text) > 120 and ". " in text else text
    return f"{where}{type(err).__name__}: {text}"


def run_target(target, root):
    """Run the reader's file or module as ``__main__``; ``(namespace, stdout, crash text or None)``."""
    captured, errors = io.StringIO(), io.StringIO()
    if target.endswith(".py"):
        namespace = {"__name__": "__main__", "__file__": target, "__builtins__": builtins}
        sys.argv, sys.path[0] = [target], os.path.dirname(target)
        sys.path.append(root)  # the book's sys.path.append(os.pardir), and a repository's root
        source = open(target, encoding="utf-8", errors="replace").read()
    else:
        namespace, source = None, None
    try:
        with contextlib.redirect_stdout(captured), contextlib.redirect_stderr(errors):
            if source is None:
                import runpy

                sys.path.insert(0, os.getcwd())
                namespace = runpy.run_module(target, run_name="__main__", alter_sys=True)
            else:
                exec(compile(source, target, "exec"), namespace)
        return namespace, captured.getvalue(), None
    except SystemExit as err:
        said = (errors.getvalue().strip().splitlines() or [""])[-1]
        crash = (
            None
            if err.code in (None, 0)
            else f"exited with {err.code!r}" + (f": {said}" if said else "")
        )
        return namespace or {}, captured.getvalue(), crash
    except BaseException as err:  # the reader's code, whatever it raises, is a finding
        return namespace or {}, captured.getvalue(), crash_text(err, root)


class _Probe:
    """Calls the reader's functions, saving each result's arrays, warnings and crash by a key."""

    def __init__(self, root, device):
        self.root, self.device, self.arrays, self.info = root, device, {}, {}

    def call(self, key, fn, *args, trace=False):
        """``fn(*args)`` with NumPy inputs or, where a torch port refuses them, tensors; its result
        (an array, a dict or a tuple of them) saved under ``key``, or None if it crashed."""
        seen = {} if trace else None
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                result = self._call(fn, args, seen)
            except Exception as err:
                self.info[key] = {"crash": crash_text(err, self.root)}
                return None
        self.info[key] = {"warnings": sorted({str(w.message) for w in caught})}
        parts = result.items() if isinstance(result, dict) else None
        parts = enumerate(result) if isinstance(result, (tuple, list)) else parts
        for name, value in [("", result)] if parts is None else parts:
            if _to_numpy(value) is not None:
                self.arrays[f"{key}/{name}".rstrip("/")] = _to_numpy(value)
        for name, value in (seen or {}).items():
            self.arrays[f"{key}/{name}"] = value
        return result

    def _call(self, fn, args, seen):
        try:
            return _traced(fn, args, seen)
        except (TypeError, AttributeError):
            if "torch" not in sys.modules:
                raise
            import torch  # perhaps a torch port: the same inputs as tensors

            def tensor(v):
                return torch.from_numpy(np.ascontiguousarray(v)).to(self.device)

            args = [
                {k: tensor(v) for k, v in a.items()} if isinstance(a, dict) else tensor(a)
                for a in args
            ]
            return _traced(fn, args, seen)


def _traced(fn, args, seen):
    """``fn(*args)``; with ``seen``, the book's layer names among its locals as it returns."""
    if seen is None or not hasattr(fn, "__code__"):
        return fn(*args)

    def tracer(frame, event, arg):
        if event == "return" and frame.f_code is fn.__code__:
            for name, value in frame.f_locals.items():
                if name.lower() in LAYERS and _to_numpy(value) is not None:
                    seen[name.lower()] = _to_numpy(value)

    previous = sys.getprofile()
    sys.setprofile(tracer)
    try:
        return fn(*args)
    finally:
        sys.setprofile(previous)


def _to_numpy(value):
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        value = value.detach().cpu()
        value = value.float() if str(value.dtype) in ("torch.bfloat16",) else value
        return value.numpy()
    if isinstance(value, (np.ndarray, np.generic, float, int, bool)):
        return np.asarray(value)
    return None


def probe_functions(found, probe, weights, x, t):
    """Every book function found, on the probe inputs; ``predict`` also over the reader's own data."""
    for name in ACTIVATIONS:
        for case, value in activation_cases().items() if name in found else ():
            probe.call(f"{name}/{case}", found[name], value.copy())
    for case, value in softmax_cases().items() if "softmax" in found else ():
        probe.call(f"softmax/{case}", found["softmax"], value.copy())
    network = probe.call("init_network", found["init_network"]) if "init_network" in found else None
    if not (isinstance(network, dict) and np.shape(network.get("W1")) == (784, 50)):
        network = {k: v.copy() for k, v in weights.items()}
    own_x, own_t = x, t  # the reader's own get_data() where it runs: what their script scores
    if "get_data" in found and probe.call("get_data", found["get_data"]) is not None:
        own_x, own_t = probe.arrays.get("get_data/0", x), probe.arrays.get("get_data/1", t)
    if "predict" in found:
        book = {k: v.copy() for k, v in weights.items()}
        probe.call("predict/batch", found["predict"], book, x[:PROBE_IMAGES].copy(), trace=True)
        probe.call("predict/one", found["predict"], book, x[0].copy(), trace=True)
        probe.call("predict/labels", _labels, found["predict"], network, own_x)
        probe.arrays["predict/t"] = own_t.argmax(1) if np.ndim(own_t) == 2 else np.asarray(own_t)
    if "forward" in found:
        probe.call("forward/toy", found["forward"], toy_network(), np.array(TOY_X), trace=True)


def _labels(predict, network, x, batch=100):
    """The reader's predict over all of ``x``: the book's batches of 100, else one image at a time."""
    try:
        labels = [
            np.asarray(_to_numpy(predict(network, x[i : i + batch])))
            for i in range(0, len(x), batch)
        ]
        if all(
            v.shape == (min(batch, len(x) - i), 10) for v, i in zip(labels, range(0, len(x), batch))
        ):
            return np.concatenate([v.argmax(1) for v in labels])
    except Exception:
        pass
    return np.array([np.argmax(_to_numpy(predict(network, img))) for img in x])


def probe_modules(namespace, probe, weights, device):
    """Each ``nn.Module`` with three ``Linear`` layers (an instance, else its class made with no
    arguments): its weights, its layers on its own, and each Linear fed the layer before's input."""
    torch = sys.modules.get("torch")  # no port is a torch port unless it imported torch
    if torch is None:
        return []
    found = []
    for name, value in list(namespace.items()):
        made = isinstance(value, type) and issubclass(value, torch.nn.Module)
        if made:  # a class of the reader's with no instance at the top level: made here
            if value.__module__ != "__main__" or any(
                isinstance(v, value) for v in namespace.values()
            ):
                continue
            try:
                value = value()
            except Exception as err:
                probe.info[f"module:{name}"] = {"crash": crash_text(err, probe.root)}
                continue
        linears = (
            [m for m in value.modules() if isinstance(m, torch.nn.Linear)]
            if isinstance(value, torch.nn.Module)
            else []
        )
        if len(linears) == 3:
            found.append(name)
            if made:
                _load_book(linears, weights)
            _probe_module(name, value, linears, probe, device)
            cls = type(value)
            code = getattr(cls.forward, "__code__", None)
            at = (
                f", {os.path.relpath(code.co_filename, probe.root)}:{code.co_firstlineno}"
                if code
                else ""
            )
            probe.info[f"module:{name}"].update(made=made, cls=f"{cls.__name__}{at}")
    return found


def _load_book(linears, weights):
    """The book's weights into a module the checker made: ``weight = W.T, bias = b``, by shape."""
    import torch

    with torch.no_grad():
        for fc in linears:
            for i in (1, 2, 3):
                if tuple(fc.weight.shape) == weights[f"W{i}"].T.shape:
                    fc.weight.copy_(torch.from_numpy(weights[f"W{i}"].T.copy()))
                    if fc.bias is not None:
                        fc.bias.copy_(torch.from_numpy(weights[f"b{i}"]))


def _probe_module(name, model, linears, probe, device):
    import torch

    for i, fc in enumerate(linears, 1):
        probe.arrays[f"module:{name}/fc{i}.weight"] = _to_numpy(fc.weight)
        if fc.bias is not None:
            probe.arrays[f"module:{name}/fc{i}.bias"] = _to_numpy(fc.bias)
    probe.info[f"module:{name}"] = {
        "dtypes": [str(fc.weight.dtype).removeprefix("torch.") for fc in linears]
    }
    model = model.to(device).eval()
    # x in the model's dtype (pixels / 255 rounded once), then each Linear fed the exact z before it
    with np.load(os.environ["DLFS_PORT_FEED"]) as data:
        feed = {k: data[k] for k in data.files}
    dtype = str(linears[0].weight.dtype).removeprefix("torch.")
    feed["in1"] = feed.get(f"in1_{dtype}", feed["in1_float32"])
    inputs = torch.from_numpy(feed["in1"]).to(device, linears[0].weight.dtype)
    seen = {}
    hooks = [
        fc.register_forward_hook(lambda m, a, out, i=i: seen.__setitem__(f"a{i}", out))
        for i, fc in enumerate(linears, 1)
    ]
    hooks += [
        fc.register_forward_pre_hook(lambda m, a, i=i: seen.__setitem__(f"in{i}", a[0]))
        for i, fc in enumerate(linears, 1)
    ]
    try:
        with torch.no_grad():
            probe.call(f"module:{name}/y", lambda: model(inputs))
        for k in ("a1", "a2", "a3", "in2", "in3"):
            if k in seen:
                probe.arrays[f"module:{name}/{k}"] = _to_numpy(seen[k])
        for h in hooks:
            h.remove()
        for i, fc in enumerate(linears, 1):
            given = torch.from_numpy(feed[f"in{i}"]).to(device=device, dtype=fc.weight.dtype)
            with torch.no_grad():
                probe.call(f"module:{name}/fed a{i}", lambda fc=fc, given=given: fc(given))
    finally:
        for h in hooks:
            h.remove()


def main(argv=None):
    target, data_dir, device, out = (sys.argv[1:] if argv is None else argv)[:4]
    root = os.path.abspath(os.environ.get("DLFS_PORT_ROOT", os.path.dirname(target) or "."))
    notes = []
    sys.meta_path.insert(0, _Dataset(data_dir, notes))
    _redirect_weights(os.path.join(data_dir, "sample_weight.pkl"), notes)
    from nn_numpy.data.mnist import load_mnist_test
    from nn_numpy.data.weights import load_weights

    weights = load_weights(data_dir=data_dir)
    x, t = load_mnist_test(data_dir=data_dir)
    namespace, stdout, crash = run_target(target, root)
    found = {
        n: f for n in BOOK_NAMES if callable(f := namespace.get(n)) and not isinstance(f, type)
    }
    probe = _Probe(root, device)
    with contextlib.redirect_stdout(io.StringIO()):
        probe_functions(found, probe, weights, x, t)
        modules = probe_modules(namespace, probe, weights, device)
    x = probe.arrays.pop("get_data/0", None)  # 31 MB: what is judged fits in a line of JSON
    if x is not None:
        numeric = x.size and x.dtype.kind in "biuf"
        probe.info["get_data"]["x"] = {
            "dtype": str(x.dtype),
            "shape": list(x.shape),
            "max": float(x.max()) if numeric else None,
        }
    where = {}
    for n, f in found.items():
        code = getattr(f, "__code__", None)
        if code is not None:
            where[n] = f"{os.path.relpath(code.co_filename, root)}:{code.co_firstlineno}"
    record = {
        "stdout": stdout,
        "crash": crash,
        "notes": sorted(set(notes)),
        "found": sorted(found),
        "where": where,
        "modules": modules,
        "calls": probe.info,
    }
    np.savez(out + ".npz", **probe.arrays)
    with open(out + ".json", "w") as file:
        json.dump(record, file)


if __name__ == "__main__":
    main()
