"""MNIST as the book loads it, and any dataset of the same layout (28x28 uint8 IDX images, labels 0-9).

Every load checks the pair's structure and raises :class:`DataCorruptedError` naming the file otherwise.
The decoded test arrays are cached beside the ``.gz`` as ``<name>.<first 16 hex of its SHA-256>.npy``;
a cache is used only when its content has the pinned SHA-256 of what the official file decodes to
(:data:`DECODED_SHA256`), so a warm load reads ~8 MB of .npy instead of gunzipping, and never the .gz.
"""

import hashlib
import os

import numpy as np

from ..errors import DataCorruptedError, NNError
from ..evaluate import normalize
from .fetch import FILES, TEST_SET, TRAIN_SET, fetch, gather, resolve_data_dir
from .files import NotRegularFileError, atomic_write, is_writable, open_regular, read_npy
from .idx import read_idx

SPLITS = {"train": TRAIN_SET, "test": TEST_SET}
DECODED_SHAPES = {
    TRAIN_SET[0]: (60000, 28, 28),
    TRAIN_SET[1]: (60000,),
    TEST_SET[0]: (10000, 28, 28),
    TEST_SET[1]: (10000,),
}
# SHA-256 of the decoded test arrays' C-order bytes. The training files' were not at hand to pin:
# they are decoded on every load, never cached.
DECODED_SHA256 = {
    TEST_SET[0]: "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    TEST_SET[1]: "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}


def load_mnist(normalize=True, flatten=True, one_hot_label=False, data_dir=None):
    """``((x_train, t_train), (x_test, t_test))``, the book's ``load_mnist``; missing files are downloaded.

    x: ``(N, 784)``, or ``(N, 1, 28, 28)`` with ``flatten=False``; float32 in [0, 1] with ``normalize``,
    else uint8. t: ``(N,)`` uint8, or ``(N, 10)`` float32 with ``one_hot_label``. N is 60000 and 10000.
    """
    splits = gather(
        lambda: load_split("train", data_dir),
        lambda: load_split("test", data_dir),
        data_dir=data_dir,
    )
    return tuple(
        _format(images, labels, normalize, flatten, one_hot_label) for images, labels, _ in splits
    )


def load_mnist_test(normalize=True, flatten=True, one_hot_label=False, data_dir=None):
    """``(x_test, t_test)`` as :func:`load_mnist` gives them, fetching only the test files."""
    images, labels, _ = load_split("test", data_dir)
    return _format(images, labels, normalize, flatten, one_hot_label)


def load_idx_dataset(images_path, labels_path, normalize=True, flatten=True, one_hot_label=False):
    """``(x, t)`` from any IDX files of MNIST's layout, formatted as :func:`load_mnist`; structure checked only."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    _check_pair(images, labels, images_path, labels_path)
    return _format(images, labels, normalize, flatten, one_hot_label)


def load_split(split, data_dir=None):
    """``(images (N, 28, 28) uint8, labels (N,) uint8, hand-placed files used)`` of one MNIST split.

    An uncompressed file placed by hand (``<name>`` less ``.gz``) is used when the ``.gz`` is absent;
    its hash is unknown, so its path is returned, for the caller to say so.
    """
    folder = resolve_data_dir(data_dir)
    (images, image_source, *hand), (labels, label_source, *by_hand) = gather(
        *(lambda name=name: _load_file(folder, name, data_dir) for name in SPLITS[split]),
        data_dir=data_dir,
    )
    _check_pair(images, labels, image_source, label_source)
    return images, labels, hand + by_hand


def _load_file(folder, name, data_dir):
    """``(array, its source[, the hand-placed file])``: a raw file placed by hand where the .gz is
    absent (its hash unknown, said by the caller), else the verified cache, else the verified .gz."""
    path = folder / name
    digest = DECODED_SHA256.get(name)
    cache = path.with_name(f"{path.name[:-3]}.{FILES[name][1][:16]}.npy")
    if not os.path.lexists(path) and os.path.isfile(path.with_suffix("")):  # before any cache
        return read_idx(path.with_suffix("")), path.with_suffix(""), path.with_suffix("")
    if digest is not None:
        array = _read_cache(cache, name, digest)
        if array is not None:
            return array, cache
    array = read_idx(fetch(name, data_dir), name=path)
    if digest is not None:
        _write_cache(cache, array)
    return array, path


def _read_cache(cache, name, digest):
    """The array in ``cache`` if its bytes have the SHA-256 ``name`` decodes to, else None.

    The content is checked, not the name: all-zero labels under the right name would otherwise be
    used. Hashing 7.8 MB makes a warm load ~12 ms instead of ~4; a cold one takes ~50.
    """

    def expected(shape, fortran_order, dtype):
        if (shape, fortran_order, dtype) != (DECODED_SHAPES[name], False, np.dtype(np.uint8)):
            raise ValueError("not the cache's shape")

    try:
        with open_regular(cache) as file:
            array = read_npy(file, expected)
    except (
        NotRegularFileError
    ) as err:  # a FIFO would hang the read, and must not be written through either
        raise DataCorruptedError(
            f"{cache}: {err.strerror}, where the cache of {name} goes: remove it"
        ) from None
    except Exception:  # absent, truncated, not a .npy, unreadable: decode the source instead
        return None
    return array if hashlib.sha256(array).hexdigest() == digest else None


def _write_cache(cache, array):
    """Save the cache atomically; a read-only dir or a full disk just means no cache this time."""
    if is_writable(cache.parent):
        try:
            with atomic_write(cache, follow=False) as file:
                np.save(file, array, allow_pickle=False)
        except NNError:
            pass


def _check_pair(images, labels, images_path, labels_path):
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise DataCorruptedError(
            f"{images_path}: holds {images.dtype} {images.shape}; expected (N, 28, 28) uint8 images"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataCorruptedError(
            f"{labels_path}: holds {labels.dtype} {labels.shape}; expected (N,) uint8 labels"
        )
    if len(images) != len(labels):
        raise DataCorruptedError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels"
        )
    bad = np.flatnonzero(labels > 9)
    if bad.size:
        raise DataCorruptedError(
            f"{labels_path}: label {labels[bad[0]]} at index {bad[0]} is outside 0-9 "
            f"({bad.size} such labels)"
        )


def _format(images, labels, to_unit, flatten, one_hot_label):
    x = images.reshape((len(images), 784) if flatten else (len(images), 1, 28, 28))
    x = normalize(x) if to_unit else x  # the book's flag is named `normalize`, like the function
    t = np.eye(10, dtype=np.float32)[labels] if one_hot_label else labels
    return x, t
