"""The network's weights: a pickle loaded without running its code, validated, and ``.npz`` both ways.

Pickles go through :class:`RestrictedUnpickler`, the idea behind torch's ``weights_only=True``: the pickle
may name only NumPy's array reconstructors, and gets them as stand-ins that check their arguments and
build plain numeric arrays from raw bytes; it never touches a real ``numpy.ndarray`` or ``numpy.dtype``.
"""

import io
import math
import pickle
import pickletools
import reprlib
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataNotFoundError, UnsafePickleError, WeightsError
from ..network import LAYER_NAMES, MNIST_SHAPES, check_keys
from .files import atomic_write, read_npy, read_regular

_ZIP_MAGIC = (
    b"PK\x03\x04",
    b"PK\x05\x06",
)  # told by content: a renamed .npz still loads the safe way
# Plain numbers only: objects ("O8"), structs ("V") and strings never load; integers and complex load so that
# validate_weights can name the wrong dtype.
_NUMERIC_SPECS = {
    "b1",
    *(kind + size for kind in "iu" for size in "1248"),
    "f2",
    "f4",
    "f8",
    "c8",
    "c16",
}
MAX_BYTES = (
    16 << 20
)  # more than any weights file of these shapes can be, even float64 in pickle protocol 0
# Sizes and dimensions fit in intp; a larger integer is refused before any arithmetic (thousands of 14,000-bit
# "dimensions" took minutes of math.prod). NumPy 2 allows at most 64 dimensions.
_MAX_INT, _MAX_NDIM = 2**63 - 1, 64


class _Repr(reprlib.Repr):
    """Messages quote an untrusted file's values in one short line, whatever their nesting or size."""

    def repr_int(self, x, level):  # str() of a 5,000-digit int raises ValueError
        return repr(x) if abs(x) <= _MAX_INT else f"<{x.bit_length()}-bit integer>"


_repr = _Repr()
_repr.maxstring = _repr.maxother = 120


class _Dtype:
    """What ``numpy.dtype(spec, ...)`` gives the pickle: a plain numeric dtype it can only byte-swap."""

    def __init__(self, spec):
        if not isinstance(spec, str) or spec not in _NUMERIC_SPECS:
            raise UnsafePickleError(
                f"dtype {_repr.repr(spec)} refused: only plain numeric arrays load "
                "(object, struct and string dtypes never do)"
            )
        self.dtype = np.dtype(spec)

    def __setstate__(self, state):
        # NumPy writes (3, byteorder, None, None, None, -1, -1, 0) for these; anything else adds fields or flags
        if not (
            isinstance(state, tuple)
            and len(state) == 8
            and state[0] == 3
            and state[1] in ("<", ">", "|", "=")
            and state[2:] == (None, None, None, -1, -1, 0)
        ):
            raise UnsafePickleError(
                f"dtype state {_repr.repr(state)} refused: only a byte order may be set"
            )
        self.dtype = self.dtype.newbyteorder(state[1])


class _Array:
    """What ``_reconstruct`` gives the pickle: an empty slot that BUILD fills once, with checked state."""

    def __init__(self, array=None):
        self.array = array

    def __setstate__(self, state):
        # ndarray.__setstate__'s layout: (version 1, shape, dtype, is_fortran, raw bytes).
        if self.array is not None or not (
            isinstance(state, tuple) and len(state) == 5 and state[0] == 1
        ):
            raise UnsafePickleError(f"array state {_repr.repr(state)} refused")
        _, shape, dtype, fortran, data = state
        if not isinstance(fortran, bool):
            raise UnsafePickleError(
                f"array order flag must be a bool, found {type(fortran).__name__}"
            )
        self.array = _array_from_bytes(data, dtype, shape, "F" if fortran else "C")


def _array_from_bytes(data, dtype, shape, order):
    """An ndarray viewing ``data``, whose size must be exactly the shape's."""
    if not isinstance(dtype, _Dtype):
        raise UnsafePickleError(
            f"array dtype must come from numpy.dtype, found {type(dtype).__name__}"
        )
    if not (
        isinstance(shape, tuple)
        and len(shape) <= _MAX_NDIM
        and all(type(n) is int and 0 <= n <= _MAX_INT for n in shape)
    ):
        raise UnsafePickleError(
            f"array shape {_repr.repr(shape)} refused: at most {_MAX_NDIM} dimensions, "
            f"each an integer from 0 to 2**63-1"
        )
    if not isinstance(data, (bytes, bytearray)):  # an object array's state is a list of objects
        raise UnsafePickleError(f"array data must be bytes, found {type(data).__name__}")
    expected = math.prod(shape) * dtype.dtype.itemsize
    if len(data) != expected:  # checked before allocating anything: a huge shape costs nothing
        raise WeightsError(
            f"array of shape {_repr.repr(shape)} {dtype.dtype} needs {expected} bytes, found {len(data)}"
        )
    return np.ndarray(shape, dtype.dtype, buffer=data, order=order)


def _reconstruct(subtype, *_placeholders):
    # NumPy pickles _reconstruct(ndarray, (0,), b"b"), then BUILD with the real state; another subtype
    # (np.matrix, np.memmap, ...) would run that class's code
    if subtype is not _ALLOWED["numpy", "ndarray"]:
        raise UnsafePickleError(
            f"_reconstruct's first argument must be numpy.ndarray, found {_name(subtype)}"
        )
    return _Array()


def _frombuffer(data, dtype, shape, order):
    # Protocol 5's form for contiguous arrays (NumPy >= 1.16); out-of-band buffers are not supported.
    if order not in ("C", "F"):
        raise UnsafePickleError(f"array order {_repr.repr(order)} refused")
    return _Array(_array_from_bytes(data, dtype, shape, order))


def _latin1(text, encoding):
    # Protocols 0-2 have no bytes opcode: NumPy's raw data is written as _codecs.encode(str, "latin1").
    if not (isinstance(text, str) and encoding == "latin1"):
        raise UnsafePickleError(
            f"_codecs.encode{_repr.repr((text, encoding))} refused: only (str, 'latin1')"
        )
    return text.encode("latin1")


def _ndarray(*args):
    raise UnsafePickleError(
        "calling numpy.ndarray refused: it may only be the first argument of _reconstruct"
    )


class _Global:
    """A handle the pickle may call but never modify: BUILD on it is refused, and it has no ``__dict__``."""

    __slots__ = ("name", "fn")

    def __init__(self, name, fn):
        self.name, self.fn = name, fn

    def __call__(self, *args):
        return self.fn(*args)

    def __setstate__(self, state):
        raise UnsafePickleError(f"setting the state of {self.name} refused")


def _name(obj):
    return obj.name if isinstance(obj, _Global) else type(obj).__name__


# The whole allow-list, as NumPy 1.x ("numpy.core") and 2.x ("numpy._core") spell it in protocols 0-5.
# Not numpy.core.multiarray.scalar: that is for NumPy scalars, which a dict of arrays never holds.
_ALLOWED = {
    key: _Global(".".join(key), fn)
    for key, fn in [
        (("numpy.core.multiarray", "_reconstruct"), _reconstruct),
        (("numpy._core.multiarray", "_reconstruct"), _reconstruct),
        (("numpy", "ndarray"), _ndarray),
        (
            ("numpy", "dtype"),
            lambda spec, *_align_copy: _Dtype(spec),
        ),  # flags mean nothing for plain numbers
        (("numpy.core.numeric", "_frombuffer"), _frombuffer),
        (("numpy._core.numeric", "_frombuffer"), _frombuffer),
        (("_codecs", "encode"), _latin1),
    ]
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only :data:`_ALLOWED` globals; anything else is refused before it is imported."""

    def find_class(self, module, name):
        try:
            return _ALLOWED[module, name]
        except KeyError:
            raise UnsafePickleError(
                f"global {_repr.repr(f'{module}.{name}')} refused: a weights pickle may "
                "only use NumPy's array reconstructors"
            ) from None

    def persistent_load(self, pid):
        raise UnsafePickleError(f"persistent id {_repr.repr(pid)} refused")


def _check_opcodes(data):
    """Walk the opcodes before the C unpickler sizes buffers from them: pickletools checks every count
    against the bytes present, and a memo index beyond the opcode's position (a 9-byte pickle with
    ``LONG_BINPUT 2**29`` took 8 GB) or an integer beyond :data:`_MAX_INT` is refused."""
    for position, (op, arg, _) in enumerate(pickletools.genops(data)):
        if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and arg > position:
            raise UnsafePickleError(
                f"memo index {arg} at opcode {position} refused: picklers number them from 0"
            )
        if op.name in ("LONG", "LONG1", "LONG4") and abs(arg) > _MAX_INT:
            raise UnsafePickleError(
                f"{_repr.repr(arg)} at opcode {position} refused: a weights pickle holds "
                "no integer beyond 2**63-1"
            )


def safe_load_pickle(file_or_bytes, source="pickle"):
    """A pickled ``dict[str, ndarray]`` of plain numeric arrays (read-only views, not validated), from bytes or
    a binary file; UnsafePickleError for anything outside the allow-list, WeightsError for anything else."""
    data = (
        bytes(file_or_bytes)
        if isinstance(file_or_bytes, (bytes, bytearray, memoryview))
        else file_or_bytes.read()
    )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter(
                "error", DeprecationWarning
            )  # a STRING with a bad escape only warns
            _check_opcodes(data)
            obj = RestrictedUnpickler(io.BytesIO(data)).load()
    except WeightsError as err:
        raise type(err)(f"{source}: {err}") from None
    except (
        Exception
    ) as err:  # truncated or garbage bytes raise anything from EOFError to UnicodeDecodeError
        raise WeightsError(
            f"{source}: not a pickle of NumPy arrays ({type(err).__name__}: {_first_line(err)})"
        ) from err
    if not isinstance(obj, dict):
        raise WeightsError(f"{source}: expected a dict of arrays, found {_name(obj)}")
    arrays = {}
    for key, value in obj.items():
        if not isinstance(key, str):
            raise WeightsError(f"{source}: expected str keys, found {_repr.repr(key)}")
        if not isinstance(value, _Array) or value.array is None:
            found = "an array without data" if isinstance(value, _Array) else _name(value)
            raise WeightsError(f"{source}: {_key(key)}: expected a NumPy array, found {found}")
        arrays[key] = value.array
    return arrays


def _key(key):
    return key if key.isprintable() and len(key) <= 40 else _repr.repr(key)


def _first_line(err):
    return (str(err).splitlines() or [""])[0][:200]


def validate_weights(weights, source="weights"):
    """The MNIST network's weights -> a new dict of C-contiguous float32 arrays; float64 is converted with a
    UserWarning. Every error is a WeightsError naming ``source``, the key, the expected and the found."""
    if not isinstance(weights, dict):
        raise WeightsError(f"{source}: expected a dict of arrays, found {_name(weights)}")
    check_keys(weights, source)
    checked, converted = {}, []
    for key in LAYER_NAMES:
        value, shape = weights[key], MNIST_SHAPES[key]
        if not isinstance(value, np.ndarray):
            raise WeightsError(f"{source}: {key}: expected a NumPy array, found {_name(value)}")
        if value.shape != shape:
            raise WeightsError(f"{source}: {key}: expected shape {shape}, found {value.shape}")
        if value.dtype.kind != "f":
            raise WeightsError(f"{source}: {key}: expected a float dtype, found {value.dtype}")
        if value.dtype.type is not np.float32:
            converted.append(f"{key} {value.dtype}")
        with np.errstate(over="ignore"):  # a float64 beyond float32's range is reported just below
            array = np.array(
                value, dtype=np.float32, order="C"
            )  # always a copy: never a view of the file's bytes
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            index = tuple(int(i) for i in np.unravel_index(bad[0], shape))
            raise WeightsError(
                f"{source}: {key}: expected finite float32 values, found {bad.size} non-finite "
                f"(first {value[index]} at index {index})"
            )
        checked[key] = array
    if converted:
        warnings.warn(f"{source}: converted {', '.join(converted)} to float32", stacklevel=2)
    return checked


def _read_bytes(path):
    try:
        return read_regular(path, MAX_BYTES, "weights file", WeightsError)
    except FileNotFoundError:
        raise DataNotFoundError(
            f"weights file not found: {path} (pass an existing .pkl or .npz, "
            "or leave --weights out for the book's sample_weight.pkl)"
        ) from None
    except OSError as err:  # a folder, a FIFO, /dev/zero, no permission
        raise WeightsError(f"{path}: cannot read it ({err.strerror})") from err


def _npz_arrays(data, source):
    """``{key: array}`` of a ``.npz``, each member read only once its name and header are right: an extra
    member or a W1 declaring gigabytes is never decompressed."""

    def expected_shape(key):
        def check(shape, fortran_order, dtype):
            if (
                dtype.kind not in "biufc"
            ):  # as the unpickler's _Dtype: the only kinds validate_weights can name
                raise WeightsError(
                    f"{source}: {key}: dtype {dtype} refused: only plain numeric arrays load "
                    "(object, struct and string dtypes never do)"
                )
            if shape != MNIST_SHAPES[key]:
                raise WeightsError(
                    f"{source}: {key}: expected shape {MNIST_SHAPES[key]}, found {shape}"
                )

        return check

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = archive.namelist()
            members = {name.removesuffix(".npy"): name for name in names}  # as np.load names them
            if len(members) < len(
                names
            ):  # W1.npy twice, or W1 and W1.npy: np.load would keep the last
                twice = sorted(
                    {k for k in members if sum(n.removesuffix(".npy") == k for n in names) > 1}
                )
                raise WeightsError(
                    f"{source}: {', '.join(map(repr, twice[:5]))} stored more than once"
                )
            check_keys(members, source)
            arrays = {}
            for key, name in members.items():
                with archive.open(name) as file:
                    arrays[key] = read_npy(file, expected_shape(key))
            return arrays
    except WeightsError:
        raise
    except (
        Exception
    ) as err:  # a damaged zip raises anything from BadZipFile to EOFError; object arrays ValueError
        raise WeightsError(
            f"{source}: not a loadable .npz of numeric arrays "
            f"({type(err).__name__}: {_first_line(err)})"
        ) from err


def load_weights(source=None, data_dir=None):
    """Validated ``{W1 (784, 50), b1 (50,), W2 (50, 100), b2 (100,), W3 (100, 10), b3 (10,)}`` float32 from a
    path, bytes, or None: the book's verified ``sample_weight.pkl`` from ``data_dir``, downloaded if absent."""
    if source is None:
        from .fetch import (
            WEIGHTS,
            fetch,
            resolve_data_dir,
        )  # the download machinery only when it is needed

        data, source = fetch(WEIGHTS, data_dir), resolve_data_dir(data_dir) / WEIGHTS
    elif isinstance(source, (bytes, bytearray)):
        data, source = bytes(source), "weights"
    else:
        data = _read_bytes(Path(source))
    weights = (
        _npz_arrays(data, source)
        if data.startswith(_ZIP_MAGIC)
        else safe_load_pickle(data, source=source)
    )
    return validate_weights(weights, source=source)


def load_npz(path):
    """Validated weights (see :func:`load_weights`) from a ``.npz``, read with ``allow_pickle=False``."""
    path = Path(path)
    data = _read_bytes(path)
    if not data.startswith(_ZIP_MAGIC):
        raise WeightsError(f"{path}: not a .npz file (no zip header)")
    return validate_weights(_npz_arrays(data, path), source=path)


def save_npz(weights, path):
    """Validate ``weights`` and write them to ``path`` as ``.npz``, atomically; a failure is one NNError line."""
    weights = validate_weights(weights, source=f"weights to save to {path}")
    with atomic_write(path, "wb", what=f"save weights to {path}") as file:
        np.savez(file, **weights)
