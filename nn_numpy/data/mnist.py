"""MNIST as the book loads it, plus any dataset of the same layout (28x28 uint8 IDX images, labels 0-9).

Every load checks the pair's structure (28x28 uint8 images, as many labels as images,
labels in 0-9) and raises :class:`DataCorruptedError` naming the file otherwise.

The decoded uint8 arrays of verified MNIST files are cached beside them as
``<name>.<first 16 hex of its SHA-256>.npy``: a warm load reads ~8 MB of .npy instead of
gunzipping (about 2 ms, 1 of it re-hashing the .gz, instead of 35 ms). Hand-placed uncompressed files have no hash to
tie a cache to and are read directly.
"""

import os
import tempfile

import numpy as np

from .download import MNIST_FILES, fetch_mnist_file, is_writable
from .errors import DataCorruptedError
from .idx import read_idx

SPLITS = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}
# What each verified file decodes to: a cache of any other shape is not trusted.
DECODED_SHAPES = {"train-images-idx3-ubyte.gz": (60000, 28, 28), "train-labels-idx1-ubyte.gz": (60000,),
                  "t10k-images-idx3-ubyte.gz": (10000, 28, 28), "t10k-labels-idx1-ubyte.gz": (10000,)}


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
    """``read_idx(path)``, through a .npy cache when ``path`` is a verified MNIST .gz."""
    if path.name not in MNIST_FILES:  # a hand-placed raw file: no hash to tie a cache to
        return read_idx(path)
    # fetch_mnist_file re-hashed the .gz just now (~1 ms) and the cache's name holds that
    # hash, so a cache can never outlive or mismatch its source; trusting a recorded
    # size+mtime instead would save that 1 ms but take a copied-over file on faith.
    cache = path.with_name(f"{path.name[:-3]}.{MNIST_FILES[path.name][:16]}.npy")
    try:
        array = np.load(cache, allow_pickle=False)
        if array.dtype == np.uint8 and array.shape == DECODED_SHAPES[path.name]:
            return array
    except Exception:  # absent, truncated, not a .npy...: any unreadable cache means decoding the source
        pass
    array = read_idx(path)
    _write_atomically(cache, array)
    return array


def _write_atomically(path, array):
    """``np.save`` via a temporary file and ``os.replace``; a read-only dir just means no cache."""
    if not is_writable(path.parent):
        return
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(fd, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, path)
    except OSError:  # e.g. a full disk: no cache this time
        pass
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


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

