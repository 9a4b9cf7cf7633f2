"""MNIST as the book loads it, plus any dataset of the same layout (28x28 uint8 IDX images, labels 0-9).

Every load checks the pair's structure (28x28 uint8 images, as many labels as images,
labels in 0-9) and raises :class:`DataCorruptedError` naming the file otherwise.

The decoded uint8 arrays of the verified test files are cached beside them as
``<name>.<first 16 hex of its SHA-256>.npy``, and a cache is used only when its content has the
pinned SHA-256 of what the file decodes to (:data:`DECODED_SHA256`): a warm load reads and hashes
~8 MB of .npy instead of gunzipping. Files with no pinned decoded digest (hand-placed uncompressed
files, the training set) are decoded every time.
"""

import hashlib

import numpy as np

from .download import MNIST_FILES, fetch_mnist_file, is_writable
from .errors import DataCorruptedError, NNError
from .files import NotRegularFileError, atomic_write, open_regular, read_npy
from .idx import read_idx

SPLITS = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
# What each verified file decodes to: a cache of any other shape is not trusted.
DECODED_SHAPES = {"train-images-idx3-ubyte.gz": (60000, 28, 28), "train-labels-idx1-ubyte.gz": (60000,),
                  "t10k-images-idx3-ubyte.gz": (10000, 28, 28), "t10k-labels-idx1-ubyte.gz": (10000,)}
# SHA-256 of the decoded uint8 arrays' C-order bytes, hashlib.sha256(read_idx(file)): a cache is used
# only if its content has this digest. The training files' are not pinned (they were not at hand
# to compute them), so they are decoded on every load, never cached.
DECODED_SHA256 = {
    "t10k-images-idx3-ubyte.gz": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "t10k-labels-idx1-ubyte.gz": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}


def normalize(images, dtype=np.float32):
    """uint8 pixels ``(..., 784)`` -> ``dtype`` in [0, 1], as the book's ``load_mnist(normalize=True)``.

    Divides by 255 (not multiplies by 1/255) so that every value is the correctly
    rounded quotient, which ``nn_torch.normalize`` (a division by a 255 tensor) gives bit for bit.
    """
    return np.asarray(images).astype(dtype) / dtype(255)


def load_mnist(normalize=True, flatten=True, one_hot_label=False, data_dir=None):
    """``((x_train, t_train), (x_test, t_test))``, the book's ``load_mnist``; missing files are downloaded.

    x: ``(N, 784)``, or ``(N, 1, 28, 28)`` with ``flatten=False``; float32 in [0, 1]
    (``x / 255``) with ``normalize=True``, else uint8. t: ``(N,)`` uint8, or with
    ``one_hot_label=True`` ``(N, 10)`` float32 of exact 0s and 1s (the book's code gives
    float64; float32 matches the images and the network). N is 60000 and 10000.
    """
    return tuple(_format(*_load_split(split, data_dir), normalize, flatten, one_hot_label)
                 for split in ("train", "test"))


def load_mnist_test(normalize=True, flatten=True, one_hot_label=False, data_dir=None):
    """``(x_test, t_test)`` as :func:`load_mnist` gives them, fetching only the test files."""
    return _format(*_load_split("test", data_dir), normalize, flatten, one_hot_label)


def load_idx_dataset(images_path, labels_path, normalize=True, flatten=True, one_hot_label=False):
    """``(x, t)`` from any IDX image and label files of MNIST's layout, formatted as :func:`load_mnist`.

    Their hashes are unknown, so only their structure is checked.
    """
    images, labels = read_idx(images_path), read_idx(labels_path)
    _check_pair(images, labels, images_path, labels_path)
    return _format(images, labels, normalize, flatten, one_hot_label)


def _load_split(split, data_dir):
    """``(images (N, 28, 28) uint8, labels (N,) uint8)`` of one MNIST split, checked."""
    paths = [fetch_mnist_file(name, data_dir) for name in SPLITS[split]]
    images, labels = (_decode_cached(path) for path in paths)
    _check_pair(images, labels, *paths)
    return images, labels


def _decode_cached(path):
    """``read_idx(path)``, through a .npy cache when ``path`` is an official MNIST file whose decoded digest is pinned."""
    digest = DECODED_SHA256.get(path.name)
    if digest is None:  # a hand-placed raw file, or the training files: nothing to check a cache against
        return read_idx(path)
    cache = path.with_name(f"{path.name[:-3]}.{MNIST_FILES[path.name][:16]}.npy")
    array = _read_cache(cache, path.name, digest)
    if array is None:
        array = read_idx(path)
        _write_cache(cache, array)
    return array


def _read_cache(cache, name, digest):
    """The array in ``cache`` if its bytes have the SHA-256 that ``name`` decodes to, else None.

    The content is checked, not the name: a cache of the right name and shape holding other
    numbers (all-zero labels) would otherwise be used and reported as verified. Hashing 7.8 MB
    makes a warm load ~12 ms instead of ~4 (a cold one is ~50; 2-core Xeon, idle); a cache of the
    wrong shape or dtype is refused from its header, unread.
    """
    def expected(shape, fortran_order, dtype):
        if (shape, fortran_order, dtype) != (DECODED_SHAPES[name], False, np.dtype(np.uint8)):
            raise ValueError("not the cache's shape")
    try:
        with open_regular(cache) as file:
            array = read_npy(file, expected)
    except NotRegularFileError as err:  # a FIFO would hang the read, and must not be written through either
        raise DataCorruptedError(f"{cache}: {err.strerror}, where the cache of {name} goes: remove it") from None
    except Exception:  # absent, truncated, not a .npy, unreadable...: any such cache means decoding the source
        return None
    return array if hashlib.sha256(array).hexdigest() == digest else None


def _write_cache(cache, array):
    """``np.save`` atomically (see :func:`~nn_numpy.data.files.atomic_write`); a read-only dir or a full disk
    just means no cache this time."""
    if not is_writable(cache.parent):
        return
    try:
        with atomic_write(cache) as file:
            np.save(file, array, allow_pickle=False)
    except NNError:
        pass


def _check_pair(images, labels, images_path, labels_path):
    """Raise :class:`DataCorruptedError` unless images are ``(N, 28, 28) uint8`` and labels ``(N,)`` in 0-9."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataCorruptedError(f"{images_path}: holds {images.dtype} {images.shape}; "
                                 f"expected (N, 28, 28) uint8 images")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataCorruptedError(f"{labels_path}: holds {labels.dtype} {labels.shape}; expected (N,) uint8 labels")
    if len(images) != len(labels):
        raise DataCorruptedError(f"{images_path} holds {len(images)} images but {labels_path} "
                                 f"holds {len(labels)} labels")
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise DataCorruptedError(f"{labels_path}: label {labels[bad[0]]} at index {bad[0]} is outside 0-9 "
                                 f"({bad.size} such labels)")


def _format(images, labels, to_unit, flatten, one_hot_label):
    """``(N, 28, 28) uint8, (N,) uint8`` -> ``(x, t)`` as :func:`load_mnist` documents."""
    x = images.reshape((len(images), 784) if flatten else (len(images), 1, 28, 28))
    x = normalize(x) if to_unit else x  # the book's flag is named `normalize`, like the function
    t = np.eye(10, dtype=np.float32)[labels] if one_hot_label else labels
    return x, t

