"""nn_numpy.data.weights: the book's pickle, legitimate variants, hostile pickles refused before they run,
validation messages, .npz, and the restricted unpickler on arbitrary bytes."""

import io
import os
import pickle
import pickletools
import re
import subprocess
import sys
import warnings

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from nn_numpy.data.weights import (
    load_npz,
    load_weights,
    safe_load_pickle,
    save_npz,
    validate_weights,
)
from nn_numpy.errors import DataNotFoundError, NNError, UnsafePickleError, WeightsError
from nn_numpy.network import LAYER_NAMES, MNIST_SHAPES

PROTOCOLS = range(pickle.HIGHEST_PROTOCOL + 1)  # 0..5
F32 = np.finfo(np.float32)


@pytest.fixture(scope="module")
def real_path(data_dir):
    return data_dir / "sample_weight.pkl"


def make_weights(dtype=np.float32, fortran=False):
    """Seeded MNIST-shaped weights; W1 starts with exact values and float32 extremes (-0.0: bits, not ==)."""
    rng = np.random.default_rng(0)
    weights = {key: rng.standard_normal(MNIST_SHAPES[key]).astype(dtype) for key in LAYER_NAMES}
    weights["W1"].flat[:8] = [-1, 0, 1, -0.0, F32.max, F32.min, F32.tiny, F32.smallest_subnormal]
    return {
        key: np.asfortranarray(w) if fortran and w.ndim == 2 else w for key, w in weights.items()
    }


def assert_same_weights(got, want):
    """Keys in order, then per key shape, dtype and layout before bits, saying which stage failed."""
    assert list(got) == list(LAYER_NAMES), f"keys: {list(got)}"
    for key in LAYER_NAMES:
        g, w = got[key], np.ascontiguousarray(want[key], dtype=np.float32)
        assert g.shape == w.shape, f"{key}: shape {g.shape} != {w.shape}"
        assert g.dtype == np.float32, f"{key}: dtype {g.dtype}"
        assert g.flags.c_contiguous and g.flags.writeable, f"{key}: layout {g.flags}"
        differ = np.count_nonzero(g.view(np.uint32) != w.view(np.uint32))
        assert differ == 0, f"{key}: {differ} of {g.size} values differ in their bits"


def write(tmp_path, data, name="weights.pkl"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def numpy1_spelling(data):
    """The same pickle as NumPy 1.x writes it ("numpy.core...", not "numpy._core..."); frames are optional, so dropped."""
    ops = list(pickletools.genops(data))
    out = bytearray()
    for (op, arg, pos), (_, _, end) in zip(ops, ops[1:] + [(None, None, len(data))]):
        if op.name == "FRAME":
            continue
        if isinstance(arg, str) and arg.startswith("numpy._core"):
            new = arg.replace("numpy._core", "numpy.core", 1).encode()
            assert op.name in ("GLOBAL", "SHORT_BINUNICODE"), op.name
            out += (
                b"c" + new.replace(b" ", b"\n") + b"\n"
                if op.name == "GLOBAL"
                else b"\x8c" + bytes([len(new)]) + new
            )
        else:
            out += data[pos:end]
    return bytes(out)


# --- the book's file and legitimate variants ---------------------------------------------------------


def test_real_file_loads_bitwise_equal_to_pickle(real_path):
    got = load_weights(real_path)
    with open(real_path, "rb") as file, warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", DeprecationWarning
        )  # NumPy 2 warns on the file's "numpy.core"
        trusted = pickle.load(
            file
        )  # the real, hash-checked file only: the reference the loader must match
    assert (
        trusted["W1"].flags.f_contiguous and not trusted["W1"].flags.c_contiguous
    )  # layout really converted
    assert_same_weights(got, trusted)


def test_default_path_is_the_books_file(real_path):
    assert_same_weights(load_weights(data_dir=real_path.parent), load_weights(real_path))


@pytest.mark.parametrize("spelling", ["numpy2", "numpy1"])
@pytest.mark.parametrize("fortran", [False, True], ids=["C", "F"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_legit_pickles_load(tmp_path, protocol, fortran, spelling):
    weights = make_weights(fortran=fortran)
    data = pickle.dumps(weights, protocol=protocol)
    if spelling == "numpy1":
        data = numpy1_spelling(data)
        assert b"numpy._core" not in data and b"numpy.core" in data
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # float32 loads without any note
        assert_same_weights(load_weights(write(tmp_path, data)), weights)


def test_float64_is_converted_and_said(tmp_path):
    weights = make_weights(np.float64)
    path = write(tmp_path, pickle.dumps(weights, protocol=3))
    with pytest.warns(
        UserWarning,
        match=re.escape(
            f"{path}: converted W1 float64, b1 float64, W2 float64, "
            "b2 float64, W3 float64, b3 float64 to float32"
        ),
    ):
        got = load_weights(path)
    assert_same_weights(got, {key: w.astype(np.float32) for key, w in weights.items()})


def test_big_endian_float32_loads_without_a_note(tmp_path):
    weights = {key: w.astype(">f4") for key, w in make_weights().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_same_weights(
            load_weights(write(tmp_path, pickle.dumps(weights, protocol=2))), weights
        )


# --- .npz ----------------------------------------------------------------------------------------------


def test_npz_round_trip_is_bitwise(tmp_path):
    weights = make_weights(fortran=True)
    path = tmp_path / "w.npz"
    save_npz(weights, path)
    assert_same_weights(load_npz(path), weights)
    renamed = path.rename(
        tmp_path / "w.pkl"
    )  # decided by content: a zip never reaches the unpickler
    assert_same_weights(load_weights(renamed), weights)


def test_save_npz_refuses_bad_weights_and_keeps_the_old_file(tmp_path):
    path = tmp_path / "w.npz"
    save_npz(make_weights(), path)
    before = path.read_bytes()
    bad = make_weights()
    bad["b2"] = bad["b2"][:99]
    with pytest.raises(WeightsError, match=re.escape("b2: expected shape (100,), found (99,)")):
        save_npz(bad, path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["w.npz"]


def test_save_npz_interrupted_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "w.npz"
    save_npz(make_weights(), path)
    before = path.read_bytes()

    def disk_full(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(
        NNError, match=re.escape(f"cannot save weights to {path}: No space left on device")
    ):
        save_npz(make_weights(), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["w.npz"]


def test_save_npz_into_a_missing_folder_is_one_line_naming_it(tmp_path):
    path = tmp_path / "nowhere" / "w.npz"
    with pytest.raises(NNError) as err:
        save_npz(make_weights(), path)
    assert str(err.value) == f"cannot save weights to {path}: folder {path.parent} does not exist"
    assert os.listdir(tmp_path) == []


def test_npz_with_object_array_refused_without_running_it(tmp_path):
    control, guarded = tmp_path / "control", tmp_path / "guarded"
    for marker in control, guarded:
        weights = make_weights()
        weights["W1"] = np.array([Call(os.makedirs, str(marker))], dtype=object)
        np.savez(tmp_path / f"{marker.name}.npz", **weights)
    np.load(tmp_path / "control.npz", allow_pickle=True)["W1"]  # control: the payload is live
    assert control.exists()
    for load in load_npz, load_weights:
        with pytest.raises(
            WeightsError,
            match="guarded.npz: W1: dtype object refused: only plain numeric arrays load",
        ):
            load(tmp_path / "guarded.npz")
    assert not guarded.exists()


def test_damaged_npz_is_a_weights_error(tmp_path):
    save_npz(make_weights(), tmp_path / "w.npz")
    path = write(tmp_path, (tmp_path / "w.npz").read_bytes()[:5000], "cut.npz")
    for load in load_npz, load_weights:
        with pytest.raises(WeightsError, match=re.escape(str(path))):
            load(path)
    with pytest.raises(WeightsError, match="not a .npz file"):
        load_npz(write(tmp_path, pickle.dumps(make_weights()), "pickle.npz"))


# --- missing, unreadable, truncated and garbage files --------------------------------------------------


def test_missing_file_is_data_not_found(tmp_path):
    with pytest.raises(DataNotFoundError, match=re.escape(str(tmp_path / "nope.pkl"))):
        load_weights(tmp_path / "nope.pkl")


def test_directory_is_a_weights_error(tmp_path):
    with pytest.raises(WeightsError, match="a folder, not a regular file"):
        load_weights(tmp_path)


@pytest.mark.parametrize("cut", [0, 1, 2, 50, 100, 600, 1000, 90000, -1])
def test_truncated_real_file_names_the_file(tmp_path, real_path, cut):
    data = real_path.read_bytes()
    path = write(tmp_path, data[:cut])
    with pytest.raises(WeightsError, match=re.escape(str(path))):
        load_weights(path)


@pytest.mark.parametrize(
    "data",
    [
        b"hello, world\n",
        b"<!DOCTYPE html><html><body>404 Not Found</body></html>",
        b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
        b"PK\x03\x04 not really a zip",
        b"\x80\x05\x95",
        bytes(range(256)),
    ],
    ids=["text", "html", "npy", "zip-magic", "pickle-header", "all-bytes"],
)
def test_garbage_names_the_file(tmp_path, data):
    path = write(tmp_path, data)
    with pytest.raises(WeightsError, match=re.escape(str(path))):
        load_weights(path)


# --- validation messages: key, expected, found, file ---------------------------------------------------


def _set(key, value):
    def mutate(weights):
        weights[key] = value(weights[key]) if callable(value) else value

    return mutate


def _nan_at(key, index, value):
    def mutate(weights):
        weights[key] = weights[key].astype(np.float64)
        weights[key][index] = value

    return mutate


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (
            lambda w: w.pop("b3"),
            "expected keys W1, b1, W2, b2, W3, b3; missing: b3; unexpected: none",
        ),
        (lambda w: w.update(W4=w["W3"]), "missing: none; unexpected: 'W4'"),
        (_set("W1", lambda a: a.T), "W1: expected shape (784, 50), found (50, 784)"),
        (_set("b1", lambda a: a[None]), "b1: expected shape (50,), found (1, 50)"),
        (_set("b2", lambda a: a.astype(np.int64)), "b2: expected a float dtype, found int64"),
        (
            _set("W3", lambda a: a.astype(np.complex64)),
            "W3: expected a float dtype, found complex64",
        ),
        (
            _nan_at("W2", (3, 7), np.nan),
            "W2: expected finite float32 values, found 1 non-finite (first nan at index (3, 7))",
        ),
        (
            _nan_at("b3", (9,), -np.inf),
            "b3: expected finite float32 values, found 1 non-finite (first -inf at index (9,))",
        ),
        (
            _nan_at("W3", (0, 1), 1e300),
            "W3: expected finite float32 values, found 1 non-finite (first 1e+300 at index (0, 1))",
        ),
        (_set("W1", {"inner": np.zeros(3, np.float32)}), "W1: expected a NumPy array, found dict"),
        (_set("b1", [0.0] * 50), "b1: expected a NumPy array, found list"),
    ],
    ids=[
        "missing",
        "extra",
        "transposed",
        "rank",
        "int",
        "complex",
        "nan",
        "inf",
        "overflow",
        "nested-dict",
        "list",
    ],
)
def test_validation_names_key_expected_found_and_file(tmp_path, mutate, expected):
    weights = make_weights()
    mutate(weights)
    with pytest.raises(WeightsError, match=re.escape(expected)):
        validate_weights(weights)
    path = write(tmp_path, pickle.dumps(weights, protocol=4))
    with (
        pytest.raises(WeightsError, match=re.escape(f"{path}: ") + ".*" + re.escape(expected)),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", UserWarning)  # the float64 note, before the real error
        load_weights(path)


@pytest.mark.parametrize(
    "obj, found",
    [
        ([np.zeros(3)], "expected a dict of arrays, found list"),
        (np.zeros(3, np.float32), "expected a dict of arrays, found _Array"),
        ({1: np.zeros(3)}, "expected str keys, found 1"),
        ({"W1": [np.zeros(3)]}, "W1: expected a NumPy array, found list"),
        ({"W1": {"W1": np.zeros(3)}}, "W1: expected a NumPy array, found dict"),
        ({"W1": 1.5}, "W1: expected a NumPy array, found float"),
    ],
    ids=["list", "bare-array", "int-key", "list-value", "nested-dict", "float-value"],
)
def test_pickle_must_be_a_flat_dict_of_arrays(obj, found):
    for protocol in PROTOCOLS:
        with pytest.raises(WeightsError, match=re.escape(f"pickle: {found}")):
            safe_load_pickle(pickle.dumps(obj, protocol=protocol))


@pytest.mark.slow  # about a second
def test_deep_nesting_is_a_weights_error():
    deep = b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."  # lists nested 100,000 deep
    with pytest.raises(WeightsError, match="found list"):
        safe_load_pickle(deep)
    with pytest.raises(WeightsError, match="W1: expected a NumPy array, found list"):
        safe_load_pickle(b"\x80\x02}X\x02\x00\x00\x00W1" + deep[2:-1] + b"s.")


# --- hostile pickles -----------------------------------------------------------------------------------


class Call:
    """Pickles as ``fn(*args)``, then BUILD with ``state`` if given: what a hostile pickle runs on load."""

    def __init__(self, fn, *args, state=None):
        self.fn, self.args, self.state = fn, args, state

    def __call__(
        self, *args
    ):  # pickle checks that a reduce function is callable; a nested Call is one
        raise AssertionError("never called: only pickled")

    def __reduce__(self):
        return (self.fn, self.args) if self.state is None else (self.fn, self.args, self.state)


def hostile(marker):
    """``{case: (object whose unpickling creates marker, the refusal's message)}``."""
    m = str(marker)
    touch = f"open({m!r}, 'w').close()"
    import_os = Call(__import__, "os")
    makedirs = Call(getattr, import_os, "makedirs")
    return {
        "posix.system": (Call(os.system, f"touch {m}"), "'posix.system' refused"),
        "os.makedirs": (Call(os.makedirs, m), "'os.makedirs' refused"),
        "subprocess.call": (Call(subprocess.call, ["touch", m]), "'subprocess.call' refused"),
        "builtins.eval": (Call(eval, touch), "'builtins.eval' refused"),
        "builtins.exec": (Call(exec, touch), "'builtins.exec' refused"),
        "builtins.getattr": (Call(makedirs, m), "'builtins.getattr' refused"),
        "builtins.__import__": ((import_os, Call(makedirs, m)), "'builtins.__import__' refused"),
        "numpy.savetxt": (Call(np.savetxt, m, [1.0]), "'numpy.savetxt' refused"),
        "numpy.testing.runstring": (
            Call(np.testing.runstring, touch, {}),
            "'numpy.testing._private.utils.runstring' refused",
        ),
        "object-dtype": (
            {"W1": np.array([Call(os.makedirs, m)], dtype=object)},
            "dtype 'O8' refused",
        ),
        "struct-object-field": (
            {"W1": np.array([(Call(os.makedirs, m),)], dtype=[("f", "O")])},
            "dtype 'V8' refused",
        ),
        "nested-container": ({"W1": {"inner": [Call(os.makedirs, m)]}}, "'os.makedirs' refused"),
    }


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("case", hostile("marker"))
def test_hostile_pickle_refused_before_it_runs(tmp_path, case, protocol):
    control, guarded = tmp_path / "control", tmp_path / "guarded"
    dumps = {
        marker: pickle.dumps(hostile(marker)[case][0], protocol=protocol, fix_imports=False)
        for marker in (control, guarded)
    }
    pickle.loads(
        dumps[control]
    )  # control: the payload is live, so the guarded marker's absence means something
    assert control.exists()
    path = write(tmp_path, dumps[guarded])
    with pytest.raises(
        UnsafePickleError,
        match=re.escape(f"{path}: ") + ".*" + re.escape(hostile(guarded)[case][1]),
    ):
        load_weights(path)
    assert not guarded.exists()


_reconstruct = np.zeros(1).__reduce__()[0]  # numpy.core or numpy._core, whichever this NumPy spells


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    "obj, refusal",
    [
        (
            Call(_reconstruct, np.dtype, (0,), b"b"),
            "first argument must be numpy.ndarray, found numpy.dtype",
        ),
        (Call(_reconstruct, np.matrix, (0,), b"b"), "'numpy.matrix' refused"),
        (Call(_reconstruct, np.memmap, (0,), b"b"), "'numpy.memmap' refused"),
        (Call(np.ndarray, (10**12,)), "calling numpy.ndarray refused"),
        (Call(np.dtype, "O"), "dtype 'O' refused"),
        (Call(np.dtype, "f4,f4"), "dtype 'f4,f4' refused"),
        (Call(np.dtype, [("f", "f4")]), "dtype [('f', 'f4')] refused"),
        (
            Call(np.dtype, "f4", state=(3, "<", (np.dtype("f4"), (2,)), None, None, -1, -1, 0)),
            "dtype state",
        ),
        (
            Call(np.dtype, "f4", state=(3, "<", None, ("a",), {"a": (np.dtype("f4"), 0)}, 4, 1, 0)),
            "dtype state",
        ),
        (
            Call(
                _reconstruct,
                np.ndarray,
                (0,),
                b"b",
                state=(1, (2,), np.dtype("f4"), False, [1.0, 2.0]),
            ),
            "array data must be bytes, found list",
        ),
        (
            Call(_reconstruct, np.ndarray, (0,), b"b", state=(1, (2,), "f4", False, bytes(8))),
            "array dtype must come from numpy.dtype, found str",
        ),
        (
            Call(
                _reconstruct, np.ndarray, (0,), b"b", state=(1, (2,), np.dtype("f4"), 1, bytes(8))
            ),
            "array order flag must be a bool, found int",
        ),
        (
            Call(
                _reconstruct,
                np.ndarray,
                (0,),
                b"b",
                state=(1, (2, -1), np.dtype("f4"), False, bytes(4)),
            ),
            "array shape",
        ),
        (
            Call(
                _reconstruct,
                np.ndarray,
                (0,),
                b"b",
                state=(1, (10**12,), np.dtype("f4"), False, bytes(4)),
            ),
            "needs 4000000000000 bytes, found 4",
        ),
        (Call(__import__("codecs").encode, "x", "rot13"), "only (str, 'latin1')"),
    ],
    ids=[
        "reconstruct-dtype",
        "reconstruct-matrix",
        "reconstruct-memmap",
        "call-ndarray",
        "dtype-object",
        "dtype-struct-string",
        "dtype-struct-list",
        "dtype-state-subarray",
        "dtype-state-fields",
        "array-object-data",
        "array-str-dtype",
        "array-int-flag",
        "array-negative-shape",
        "array-huge-shape",
        "codecs-rot13",
    ],
)
def test_allowed_globals_cannot_be_abused(obj, refusal, protocol):
    with pytest.raises(WeightsError, match=re.escape(refusal)):
        safe_load_pickle(pickle.dumps({"W1": obj}, protocol=protocol))


def global_pickle(module, name, protocol):
    """A pickle that only names ``module.name``: GLOBAL for protocols 0-3, STACK_GLOBAL for 4-5."""
    if protocol < 4:
        return (
            b"\x80" + bytes([protocol]) if protocol >= 2 else b""
        ) + f"c{module}\n{name}\n.".encode()
    text = b"".join(b"\x8c" + bytes([len(s)]) + s.encode() for s in (module, name))
    return b"\x80" + bytes([protocol]) + text + b"\x93."


@pytest.mark.parametrize("protocol", [0, 4])
@pytest.mark.parametrize(
    "module, name",
    [
        ("numpy", "load"),
        ("numpy", "frombuffer"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.ma.core", "_mareconstruct"),
        ("copyreg", "_reconstructor"),
        ("__builtin__", "eval"),
        ("_codecs", "decode"),
        ("numpy", "core.multiarray._reconstruct"),
        ("numpy.core.multiarray", "_reconstruct.__globals__"),
        ("nn_numpy.data.weights", "_reconstruct"),
        ("this", "s"),
    ],
)
def test_unlisted_globals_refused_without_import(module, name, protocol):
    assert "this" not in sys.modules
    with pytest.raises(UnsafePickleError, match=re.escape(f"'{module}.{name}' refused")):
        safe_load_pickle(global_pickle(module, name, protocol))
    assert "this" not in sys.modules  # refused by name: the module was never imported


def test_build_on_an_allowed_global_refused():
    with pytest.raises(UnsafePickleError, match="setting the state of numpy.dtype refused"):
        safe_load_pickle(b"cnumpy\ndtype\n}b.")


@pytest.mark.parametrize(
    "data",
    [b"\x80\x02Nr\x00\x00\x00\x20.", b"Np536870912\n.", b"\x80\x05\x96" + b"\xff" * 8 + b"."],
    ids=["LONG_BINPUT", "PUT", "BYTEARRAY8"],
)
def test_forged_sizes_refused_before_allocating(data):
    # Plain pickle.loads would allocate 8 GB for either memo index, or try terabytes for the bytearray.
    with pytest.raises(
        WeightsError, match="memo index 536870912 at opcode \\d refused|not a pickle"
    ):
        safe_load_pickle(data)


def test_a_bad_string_escape_is_refused_without_a_warning():
    # Found by the fuzzing campaign (docs/robustness.md): pickletools and CPython only warn on it.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(
            WeightsError,
            match=re.escape(
                "pickle: not a pickle of NumPy arrays (DeprecationWarning: "
                "invalid escape sequence '\\E')"
            ),
        ):
            safe_load_pickle(b"S'\\E'\n.")
    assert caught == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_persistent_ids_refused(protocol):
    class Persisting(pickle.Pickler):
        def persistent_id(self, obj):
            return "W1-elsewhere" if isinstance(obj, np.ndarray) else None

    file = io.BytesIO()
    Persisting(file, protocol=protocol).dump(make_weights())
    with pytest.raises(UnsafePickleError, match="persistent id 'W1-elsewhere' refused"):
        safe_load_pickle(file.getvalue())


# --- the unpickler on arbitrary bytes ------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_marker(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "marker"


@pytest.fixture(scope="module")
def fuzz_seeds(fuzz_marker):
    """Small legitimate pickles of every protocol and spelling, and every hostile one, to mutate."""
    legit = {"W1": np.arange(6, dtype=np.float32).reshape(2, 3).T, "b1": np.array([-1.0, 0.0, 1.0])}
    seeds = []
    for protocol in PROTOCOLS:
        seeds += [
            pickle.dumps(legit, protocol=protocol),
            numpy1_spelling(pickle.dumps(legit, protocol=protocol)),
        ]
        seeds += [pickle.dumps(obj, protocol=protocol) for obj, _ in hostile(fuzz_marker).values()]
    return seeds


def mutate(seed, position, chunk, how):
    position %= len(seed) + 1
    if how == "truncate":
        return seed[:position]
    if how == "insert":
        return seed[:position] + chunk + seed[position:]
    return seed[:position] + chunk + seed[position + len(chunk) :]


# Opcodes that reach the allowed globals' argument checks, mixed with ones that name forbidden globals.
FRAGMENTS = [
    b"\x80\x02",
    b"\x80\x05",
    b"(",
    b"t",
    b"\x85",
    b"\x86",
    b"\x87",
    b"R",
    b"b",
    b"}",
    b"]",
    b"a",
    b"s",
    b"N",
    b"\x88",
    b"\x89",
    b"K\x00",
    b"K\x03",
    b"J\xff\xff\xff\xff",
    b"Vf4\n",
    b"VO8\n",
    b"V<\n",
    b"Vlatin1\n",
    b"C\x01b",
    b"C\x08" + bytes(8),
    b"q\x00",
    b"h\x00",
    b"0",
    b"2",
    b"cnumpy\ndtype\n",
    b"cnumpy\nndarray\n",
    b"cnumpy.core.multiarray\n_reconstruct\n",
    b"cnumpy._core.numeric\n_frombuffer\n",
    b"c_codecs\nencode\n",
    b"cos\nsystem\n",
    b"cbuiltins\neval\n",
]


def check_only_documented_errors(data, marker):
    try:
        arrays = safe_load_pickle(data)
    except WeightsError as err:  # UnsafePickleError included
        event(type(err).__name__)
    else:
        event("returned arrays")
        assert all(
            isinstance(k, str) and isinstance(a, np.ndarray) and not a.dtype.hasobject
            for k, a in arrays.items()
        )
        with pytest.raises(WeightsError):
            validate_weights(arrays)
    assert not marker.exists()


@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_give_only_documented_errors(fuzz_marker, data):
    check_only_documented_errors(data, fuzz_marker)


@given(st.data())
def test_mutated_pickles_give_only_documented_errors(fuzz_marker, fuzz_seeds, data):
    seed = data.draw(st.sampled_from(fuzz_seeds))
    how = data.draw(st.sampled_from(["replace", "insert", "truncate"]))
    check_only_documented_errors(
        mutate(
            seed,
            data.draw(st.integers(0, 10**6)),
            data.draw(st.binary(min_size=1, max_size=8)),
            how,
        ),
        fuzz_marker,
    )


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=40).map(b"".join))
def test_opcode_soup_gives_only_documented_errors(fuzz_marker, data):
    check_only_documented_errors(data + b".", fuzz_marker)


@pytest.fixture(scope="module")
def npz_seeds():
    """The weights as np.savez and np.savez_compressed write them."""
    seeds = []
    for save in np.savez, np.savez_compressed:
        buffer = io.BytesIO()
        save(buffer, **make_weights())
        seeds.append(buffer.getvalue())
    return seeds


@pytest.fixture(scope="module")
def npz_fuzz(tmp_path_factory):
    """The one file every example writes: hypothesis runs no function-scoped fixtures."""
    return tmp_path_factory.mktemp("npz-fuzz") / "w.npz"


@given(st.data())
def test_mutated_npz_gives_weights_or_a_weights_error(npz_seeds, npz_fuzz, data):
    """Bytes replaced, inserted or cut anywhere, most often in the zip and .npy headers at either end."""
    seed = data.draw(st.sampled_from(npz_seeds))
    position = data.draw(
        st.one_of(
            st.integers(0, 400), st.integers(len(seed) - 400, len(seed)), st.integers(0, len(seed))
        )
    )
    how = data.draw(st.sampled_from(["replace", "insert", "truncate"]))
    npz_fuzz.write_bytes(mutate(seed, position, data.draw(st.binary(min_size=1, max_size=8)), how))
    try:
        weights = load_npz(npz_fuzz)
    except WeightsError as err:
        assert str(err).startswith(f"{npz_fuzz}: ") and "\n" not in str(err), str(err)
        reason = str(err)[len(str(npz_fuzz)) + 2 :]
        event(
            f"WeightsError: {reason.split(' (')[1].split(':')[0] if reason.startswith('not a loadable') else reason[:30]}"
        )
    else:
        event("weights loaded")
        assert list(weights) == list(LAYER_NAMES)
        assert all(
            weights[k].shape == MNIST_SHAPES[k] and weights[k].dtype == np.float32
            for k in LAYER_NAMES
        )


# --- bombs: refused from names, headers and integer sizes, before anything is decompressed or computed ----


def npz_with_headers(path, members):
    """A zip of ``{name: (shape, data bytes)}`` float32 .npy members whose data need not match the header."""
    import zipfile

    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, (shape, data) in members.items():
            with archive.open(f"{name}.npy", "w") as file:
                np.lib.format.write_array_header_1_0(
                    file, {"descr": "<f4", "fortran_order": False, "shape": shape}
                )
                file.write(data)
    return path


def test_an_extra_npz_member_is_refused_before_it_is_read(tmp_path, monkeypatch):
    members = {key: (w.shape, w.tobytes()) for key, w in make_weights().items()}
    members["junk"] = ((10**12,), bytes(1 << 16))  # declares 4 TB
    path = npz_with_headers(tmp_path / "w.npz", members)
    monkeypatch.setattr(
        np.lib.format, "read_array", lambda *a, **k: pytest.fail("read a member before the keys")
    )
    for load in load_npz, load_weights:
        with pytest.raises(WeightsError) as raised:
            load(path)
        assert (
            str(raised.value)
            == f"{path}: expected keys W1, b1, W2, b2, W3, b3; missing: none; unexpected: 'junk'"
        )


def test_a_npz_member_declaring_a_huge_shape_is_refused_from_its_header(tmp_path):
    members = {key: (w.shape, w.tobytes()) for key, w in make_weights().items()}
    members["W1"] = ((784 * 10**6, 50), bytes(1 << 20))  # 157 GB declared, 1 MB of zeros present
    path = npz_with_headers(tmp_path / "w.npz", members)
    with pytest.raises(WeightsError) as raised:
        load_npz(path)
    assert str(raised.value) == f"{path}: W1: expected shape (784, 50), found (784000000, 50)"


class ShapedArray:
    """Pickles as NumPy's own array reconstruction, with any ``shape`` in its state and 4 bytes of data."""

    def __init__(self, shape):
        self.shape = shape

    def __reduce__(self):
        reconstruct, args, _ = np.zeros(0, np.float32).__reduce__()
        return reconstruct, args, (1, self.shape, np.dtype(np.float32), False, bytes(4))


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize(
    "shape, refusal",
    [
        (
            tuple((1 << 14000) + i for i in range(800)),
            "<14001-bit integer> at opcode",
        ),  # took 19 s of math.prod
        ((2**63, 1), "<64-bit integer> at opcode"),
        (
            (2,) * 65,
            "array shape (2, 2, 2, 2, 2, 2, ...) refused: at most 64 dimensions, each an integer from 0 to 2**63-1",
        ),
    ],
)
def test_out_of_range_shape_integers_are_refused_before_any_arithmetic(shape, refusal, protocol):
    data = pickle.dumps({"W1": ShapedArray(shape)}, protocol=protocol)
    with pytest.raises(UnsafePickleError) as raised:
        safe_load_pickle(data, source="big.pkl")
    assert str(raised.value).startswith("big.pkl: ") and refusal in str(raised.value), str(
        raised.value
    )
    assert "\n" not in str(raised.value) and len(str(raised.value)) < 300


def test_a_weights_path_linking_to_dev_zero_is_refused_not_read(tmp_path):
    """In a child process with a 4 GB address-space limit: a regression reads /dev/zero until memory runs out."""
    import resource

    link = tmp_path / "sample_weight.pkl"
    link.symlink_to("/dev/zero")
    code = f"from nn_numpy.data.weights import load_weights; load_weights({str(link)!r})"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30)),
    )
    assert proc.stderr.splitlines()[-1] == (
        f"nn_numpy.errors.WeightsError: {link}: cannot read it "
        "(a character device, not a regular file)"
    ), proc.stderr


# --- issue 17: what a file can be, and keys stored twice ----------------------------------------------------


def test_a_file_larger_than_any_weights_file_is_refused_unread(tmp_path):
    """In a child process limited to 2 GB: a 6 GiB sparse --weights file was read whole first."""
    import resource

    path = tmp_path / "huge.pkl"
    with open(path, "wb") as f:
        f.truncate(6 << 30)
    code = f"from nn_numpy.data.weights import load_weights; load_weights({str(path)!r})"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30)),
    )
    assert proc.stderr.splitlines()[-1] == (
        f"nn_numpy.errors.WeightsError: {path}: 6.0 GiB, more than any weights "
        "file can be (16.0 MiB at most)"
    ), proc.stderr


@pytest.mark.parametrize("names", [["W1.npy", "W1.npy"], ["W1", "W1.npy"]])
def test_a_npz_storing_a_key_twice_is_refused(tmp_path, names):
    """np.load keeps the last of them: the accuracy was 0.1028, with exit 0."""
    import zipfile

    weights = make_weights()
    path = tmp_path / "w.npz"
    with zipfile.ZipFile(path, "w") as archive, warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", UserWarning
        )  # zipfile warns of the duplicate name it writes
        for key in LAYER_NAMES[1:]:
            archive.writestr(f"{key}.npy", npy_bytes(weights[key]))
        for i, name in enumerate(names):
            archive.writestr(name, npy_bytes(weights["W1"] * i))
    with pytest.raises(WeightsError) as raised:
        load_weights(path)
    assert str(raised.value) == f"{path}: 'W1' stored more than once"


def test_a_npz_with_many_extra_members_gives_one_short_line(tmp_path):
    import zipfile

    path = tmp_path / "w.npz"
    with zipfile.ZipFile(path, "w") as archive:
        for key, w in make_weights().items():
            archive.writestr(f"{key}.npy", npy_bytes(w))
        for i in range(3000):
            archive.writestr(f"junk{i}.npy", b"")
    with pytest.raises(WeightsError) as raised:
        load_weights(path)
    assert str(raised.value) == (
        f"{path}: expected keys W1, b1, W2, b2, W3, b3; missing: none; unexpected: 'junk0', "
        "'junk1', 'junk2', 'junk3', 'junk4' and 2995 more"
    )


def npy_bytes(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_weights_load_from_bytes_as_from_their_file(real_path):
    assert_same_weights(load_weights(real_path.read_bytes()), load_weights(real_path))


@pytest.mark.parametrize("protocol", [2, 4])
def test_a_negative_integer_beyond_the_limit_is_refused_too(protocol):
    data = pickle.dumps({"W1": ShapedArray((-(1 << 14000),))}, protocol=protocol)
    with pytest.raises(UnsafePickleError, match="<14001-bit integer> at opcode"):
        safe_load_pickle(data)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_array_data_longer_than_its_shape_is_refused(protocol):
    obj = Call(
        _reconstruct, np.ndarray, (0,), b"b", state=(1, (2,), np.dtype("f4"), False, bytes(12))
    )
    with pytest.raises(
        WeightsError, match="array of shape \\(2,\\) float32 needs 8 bytes, found 12"
    ):
        safe_load_pickle(pickle.dumps({"W1": obj}, protocol=protocol))


def test_an_array_built_twice_is_refused():
    """BUILD may fill a reconstructed array once: a second BUILD would replace checked data."""
    data = pickle.dumps({"W1": np.arange(2, dtype=np.float32)}, protocol=2)
    ops = list(pickletools.genops(data))
    build = max(
        i for i, (op, _, _) in enumerate(ops) if op.name == "BUILD"
    )  # the array's, after its dtype's
    assert ops[build - 1][0].name == "BINPUT"  # the state tuple, memoised: BINGET fetches it again
    end = ops[build + 1][2]
    twice = data[:end] + b"h" + bytes([ops[build - 1][1]]) + b"b" + data[end:]
    with pytest.raises(UnsafePickleError, match="array state .* refused"):
        safe_load_pickle(twice)


@pytest.mark.parametrize("dtype", ["<U1", "S1", "<M8[s]", "<m8[s]"])
def test_a_npz_member_of_a_dtype_off_the_allow_list_is_refused(tmp_path, dtype):
    weights = make_weights()
    np.savez(tmp_path / "w.npz", **{**weights, "b1": np.zeros(weights["b1"].shape, dtype)})
    with pytest.raises(WeightsError, match=f"b1: dtype {re.escape(str(np.dtype(dtype)))} refused"):
        load_npz(tmp_path / "w.npz")
