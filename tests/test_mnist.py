"""MNIST loading on the real test files (copied into tmp_path: $NN_DATA_DIR is never written), its cache, and bad pairs."""

import errno
import gzip
import hashlib
import io
import itertools
import os
import shutil
import stat
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st
from mirror_server import refused_url

from nn_numpy.data import mnist
from nn_numpy.data.fetch import FILES
from nn_numpy.data.idx import read_idx
from nn_numpy.data.mnist import load_idx_dataset, load_mnist, load_mnist_test
from nn_numpy.errors import DataCorruptedError, DataNotFoundError

IMAGES, LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
MNIST_FILES = {name: FILES[f"mnist/{name}"][1] for name in (IMAGES, LABELS)}
LABEL_COUNTS = [
    980,
    1135,
    1032,
    1010,
    982,
    892,
    958,
    1028,
    974,
    1009,
]  # MNIST's test set, digits 0-9


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("NN_MNIST_MIRRORS", refused_url())


@pytest.fixture(scope="module")
def mnist_dir(data_dir):
    """The real test files' folder, from the root conftest.py: only read, never written."""
    return data_dir / "mnist"


@pytest.fixture(scope="module")
def reference(mnist_dir):
    """``(images (10000, 28, 28), labels (10000,))`` uint8, straight from the real files."""
    return read_idx(mnist_dir / IMAGES), read_idx(mnist_dir / LABELS)


@pytest.fixture
def data_copy(tmp_path, mnist_dir):
    """A writable data dir holding copies of the real test files."""
    (tmp_path / "mnist").mkdir()
    for name in (IMAGES, LABELS):
        shutil.copyfile(mnist_dir / name, tmp_path / "mnist" / name)
    return tmp_path


def listing(folder):
    return sorted(p.name for p in folder.iterdir())


def caches(data_copy):
    return {
        name: data_copy / "mnist" / f"{name[:-3]}.{MNIST_FILES[name][:16]}.npy"
        for name in (IMAGES, LABELS)
    }


@pytest.mark.parametrize(
    "normalize,flatten,one_hot", list(itertools.product([True, False], repeat=3))
)
def test_load_mnist_test_gives_the_books_layout(data_copy, reference, normalize, flatten, one_hot):
    images, labels = reference
    x, t = load_mnist_test(
        normalize=normalize, flatten=flatten, one_hot_label=one_hot, data_dir=data_copy
    )

    assert x.shape == ((10000, 784) if flatten else (10000, 1, 28, 28))
    assert x.dtype == (np.float32 if normalize else np.uint8)
    expected = images.astype(np.float32) / np.float32(255) if normalize else images
    np.testing.assert_array_equal(x.reshape(10000, 28, 28), expected)
    if normalize:
        assert x.min() == 0 and x.max() == 1
    assert t.shape == ((10000, 10) if one_hot else (10000,))
    assert t.dtype == (np.float32 if one_hot else np.uint8)
    if one_hot:
        assert set(np.unique(t)) == {0, 1} and (t.sum(axis=1) == 1).all()
    np.testing.assert_array_equal(t.argmax(axis=1) if one_hot else t, labels)


def test_label_counts(data_copy):
    assert np.bincount(load_mnist_test(data_dir=data_copy)[1]).tolist() == LABEL_COUNTS


def test_every_load_returns_fresh_writable_arrays(data_copy, reference):
    for _ in range(2):  # the first load decodes the .gz, the second reads the cache
        x, t = load_mnist_test(normalize=False, data_dir=data_copy)
        assert x.flags.writeable and t.flags.writeable
        x[:] = 0
        t[:] = 0
    x, t = load_mnist_test(normalize=False, data_dir=data_copy)
    np.testing.assert_array_equal(x.reshape(10000, 28, 28), reference[0])
    np.testing.assert_array_equal(t, reference[1])


def test_a_warm_load_reads_the_cache_named_by_the_source_hash(data_copy, reference, monkeypatch):
    load_mnist_test(data_dir=data_copy)
    assert listing(data_copy / "mnist") == sorted(
        [IMAGES, LABELS] + [p.name for p in caches(data_copy).values()]
    )

    monkeypatch.setattr(
        mnist, "read_idx", lambda *a, **k: pytest.fail(f"decoded {a} despite the cache")
    )
    monkeypatch.setattr(mnist, "fetch", lambda *a, **k: pytest.fail(f"read {a} despite the cache"))
    x, t = load_mnist_test(normalize=False, flatten=False, data_dir=data_copy)
    np.testing.assert_array_equal(x[:, 0], reference[0])
    np.testing.assert_array_equal(t, reference[1])


@pytest.mark.parametrize(
    "damage", ["truncated", "junk", "empty", "wrong shape", "wrong dtype", "pickle"]
)
def test_a_damaged_cache_is_ignored_and_rewritten(data_copy, reference, damage):
    load_mnist_test(data_dir=data_copy)
    cache = caches(data_copy)[IMAGES]
    good = cache.read_bytes()
    if damage == "truncated":
        cache.write_bytes(good[:-784])
    elif damage == "junk":
        cache.write_bytes(os.urandom(len(good)))
    elif damage == "empty":
        cache.write_bytes(b"")
    elif damage == "wrong shape":
        np.save(cache, reference[0][:9999])
    elif damage == "wrong dtype":
        np.save(cache, reference[0].astype(np.int16))
    else:
        np.save(cache, np.array([reference[0]], dtype=object), allow_pickle=True)

    x, _ = load_mnist_test(normalize=False, flatten=False, data_dir=data_copy)

    np.testing.assert_array_equal(x[:, 0], reference[0])
    assert cache.read_bytes() == good
    assert not [p for p in (data_copy / "mnist").iterdir() if p.suffix == ".tmp"]


def test_a_verified_cache_is_used_without_its_source_and_a_corrupt_source_is_noticed_without_it(
    data_copy, reference, capsys
):
    load_mnist_test(data_dir=data_copy)
    source = data_copy / "mnist" / IMAGES
    source.write_bytes(source.read_bytes()[:-100])
    x, _ = load_mnist_test(
        normalize=False, flatten=False, data_dir=data_copy
    )  # the cache's content is pinned
    np.testing.assert_array_equal(x[:, 0], reference[0])
    caches(data_copy)[IMAGES].unlink()
    with pytest.raises(DataNotFoundError, match=IMAGES):
        load_mnist_test(data_dir=data_copy)
    assert f"{source} has 1,648,777 bytes, not 1,648,877" in capsys.readouterr().err


@pytest.mark.parametrize("how", ["mode", "mount", "disk full"])
def test_an_unwritable_dir_loads_and_is_left_untouched(data_copy, reference, monkeypatch, how):
    """ "mode": chmod 555 like CI's shared dir; "mount": mode 755 but writes fail with EROFS;
    "disk full": the cache's temporary file is created, then writing it fails."""
    folder = data_copy / "mnist"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    if how == "mode":
        folder.chmod(0o555)
    if how == "mount":
        real_open = os.open

        def no_writes(path, flags, *args, **kwargs):
            if (
                flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
                and Path(path).resolve().parent == folder.resolve()
            ):
                raise OSError(errno.EROFS, "Read-only file system", str(path))
            return real_open(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", no_writes)
    if how == "disk full":

        def half_then_full(file, array, **kwargs):
            file.write(b"\x93NUMPY" + bytes(1000))
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(np, "save", half_then_full)
    try:
        for _ in range(2):
            x, t = load_mnist_test(normalize=False, flatten=False, data_dir=data_copy)
            np.testing.assert_array_equal(x[:, 0], reference[0])
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    finally:
        folder.chmod(0o755)


def test_load_mnist_offline_without_training_files_names_them_and_the_folder(data_copy):
    with pytest.raises(DataNotFoundError) as err:
        load_mnist(data_dir=data_copy)
    assert err.value.missing == mnist.SPLITS["train"]
    assert str(err.value).startswith(
        f"{data_copy} lacks {', '.join(mnist.SPLITS['train'])}, which could not be"
    )
    assert not [name for name in listing(data_copy / "mnist") if name.startswith("train")]


def test_load_mnist_returns_train_then_test(data_copy, monkeypatch):
    """The training files' real hashes are not at hand offline, so the test files stand in for them."""
    for split_name, test_name in zip(mnist.SPLITS["train"], mnist.SPLITS["test"]):
        shutil.copyfile(data_copy / test_name, data_copy / split_name)
        monkeypatch.setitem(FILES, split_name, FILES[test_name])
        monkeypatch.setitem(mnist.DECODED_SHAPES, split_name, mnist.DECODED_SHAPES[test_name])
    (x_train, t_train), (x_test, t_test) = load_mnist(
        normalize=False, one_hot_label=True, data_dir=data_copy
    )
    x, t = load_mnist_test(normalize=False, one_hot_label=True, data_dir=data_copy)
    for got, want in ((x_train, x), (t_train, t), (x_test, x), (t_test, t)):
        np.testing.assert_array_equal(got, want)


def test_hand_placed_uncompressed_files_load_without_a_cache(tmp_path, reference, mnist_dir):
    (tmp_path / "mnist").mkdir()
    for name in (IMAGES, LABELS):
        (tmp_path / "mnist" / name[:-3]).write_bytes(
            gzip.decompress((mnist_dir / name).read_bytes())
        )
    x, t = load_mnist_test(normalize=False, flatten=False, data_dir=tmp_path)
    np.testing.assert_array_equal(x[:, 0], reference[0])
    np.testing.assert_array_equal(t, reference[1])
    assert listing(tmp_path / "mnist") == [IMAGES[:-3], LABELS[:-3]]


def test_load_idx_dataset_reads_gz_and_raw(tmp_path, reference, mnist_dir):
    raw = tmp_path / "labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress((mnist_dir / LABELS).read_bytes()))
    x, t = load_idx_dataset(mnist_dir / IMAGES, raw, normalize=False, flatten=False)
    np.testing.assert_array_equal(x[:, 0], reference[0])
    np.testing.assert_array_equal(t, reference[1])
    assert listing(tmp_path) == [raw.name]


def idx(array):
    """uint8 array -> IDX bytes."""
    return (
        bytes([0, 0, 8, array.ndim])
        + struct.pack(f">{array.ndim}I", *array.shape)
        + array.tobytes()
    )


def test_every_bad_pair_is_data_corrupted_naming_the_file(tmp_path, reference, mnist_dir):
    images, labels = reference
    ten = labels.copy()
    ten[1234] = 10
    cases = {  # kind: (images bytes, labels bytes, the file the message must name, what it must say)
        "fewer labels than images": (idx(images), idx(labels[:-1]), "both", "10000 images but"),
        "a label 10": (idx(images), idx(ten), "labels", "label 10 at index 1234 is outside 0-9"),
        "images 27x28": (
            idx(images[:, :27]),
            idx(labels),
            "images",
            "expected (N, 28, 28) uint8 images",
        ),
        "images flat": (
            idx(images.reshape(10000, 784)),
            idx(labels),
            "images",
            "expected (N, 28, 28)",
        ),
        "labels as images": (idx(labels), idx(labels), "images", "expected (N, 28, 28)"),
        "labels 2-D": (
            idx(images),
            idx(labels.reshape(100, 100)),
            "labels",
            "expected (N,) uint8 labels",
        ),
        "int8 labels": (
            idx(images),
            bytes([0, 0, 9, 1]) + idx(labels)[4:],
            "labels",
            "expected (N,) uint8",
        ),
        "truncated gzip": (
            (mnist_dir / IMAGES).read_bytes()[:5000],
            idx(labels),
            "images",
            "truncated gzip",
        ),
        "HTML labels": (idx(images), b"<html>503</html>", "labels", "looks like an HTML page"),
    }
    for kind, (image_bytes, label_bytes, names, says) in cases.items():
        images_path, labels_path = tmp_path / "images.idx", tmp_path / "labels.idx"
        images_path.write_bytes(image_bytes)
        labels_path.write_bytes(label_bytes)
        with pytest.raises(DataCorruptedError) as err:
            load_idx_dataset(images_path, labels_path)
        message = str(err.value)
        named = {
            "images": [images_path],
            "labels": [labels_path],
            "both": [images_path, labels_path],
        }[names]
        assert all(str(p) in message for p in named) and says in message, f"{kind}: {message}"


def test_missing_idx_files_are_not_found(tmp_path, mnist_dir):
    with pytest.raises(DataNotFoundError, match="images.idx"):
        load_idx_dataset(tmp_path / "images.idx", mnist_dir / LABELS)


# --- a cache is trusted for its content, never for its name --------------------------------------------


def test_the_pinned_decoded_digests_are_those_of_the_official_files(reference):
    assert {
        f"mnist/{IMAGES}": hashlib.sha256(reference[0]).hexdigest(),
        f"mnist/{LABELS}": hashlib.sha256(reference[1]).hexdigest(),
    } == mnist.DECODED_SHA256


@pytest.mark.parametrize("name", [IMAGES, LABELS])
def test_a_cache_of_the_right_name_and_shape_but_other_content_is_not_used(
    data_copy, reference, name
):
    """All-zero labels of the right shape, under the right name, scored 0.098 and were reported as verified."""
    load_mnist_test(data_dir=data_copy)
    cache = caches(data_copy)[name]
    good = cache.read_bytes()
    np.save(cache, np.zeros_like(reference[name == LABELS]))
    x, t = load_mnist_test(normalize=False, flatten=False, data_dir=data_copy)
    np.testing.assert_array_equal(x[:, 0], reference[0])
    np.testing.assert_array_equal(t, reference[1])
    assert cache.read_bytes() == good  # rewritten from the verified source


def test_the_training_files_are_decoded_every_time_never_cached(data_copy, monkeypatch):
    """Their decoded digests are not pinned, so no cache of them could be checked; the test files stand in."""
    for split_name, test_name in zip(mnist.SPLITS["train"], mnist.SPLITS["test"]):
        shutil.copyfile(data_copy / test_name, data_copy / split_name)
        monkeypatch.setitem(FILES, split_name, FILES[test_name])
        monkeypatch.setitem(mnist.DECODED_SHAPES, split_name, mnist.DECODED_SHAPES[test_name])
    for _ in range(2):
        load_mnist(data_dir=data_copy)
    assert not [
        p.name
        for p in (data_copy / "mnist").iterdir()
        if p.name.startswith("train") and p.suffix == ".npy"
    ]


def test_a_fifo_in_the_caches_place_is_one_line_not_a_hang(data_copy):
    """In a child process with a timeout: a regression blocks on the FIFO forever."""
    cache = caches(data_copy)[LABELS]
    os.mkfifo(cache)
    code = f"from nn_numpy.data.mnist import load_mnist_test; load_mnist_test(data_dir={str(data_copy)!r})"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NN_MNIST_MIRRORS": refused_url()},
    )
    assert proc.stderr.splitlines()[-1] == (
        f"nn_numpy.errors.DataCorruptedError: {cache}: a FIFO, not a "
        f"regular file, where the cache of mnist/{LABELS} goes: remove it"
    ), proc.stderr
    assert stat.S_ISFIFO(os.lstat(cache).st_mode)


@pytest.fixture(scope="module")
def cache_fuzz(tmp_path_factory):
    """A data dir of its own, for every example: hypothesis runs no function-scoped fixtures."""
    return tmp_path_factory.mktemp("cache-fuzz")


@pytest.mark.slow  # about a second: 200 examples
@given(st.data())
def test_whatever_the_cache_holds_the_labels_are_right(reference, mnist_dir, cache_fuzz, data):
    """The labels' cache replaced by arbitrary bytes, a mutated good cache, or a .npy of the right
    header and random content: the loaded labels are always the real ones."""
    source = cache_fuzz / "mnist" / LABELS
    if not source.exists():
        source.parent.mkdir(exist_ok=True)
        shutil.copyfile(mnist_dir / LABELS, source)
    good = io.BytesIO()
    np.save(good, reference[1])
    good = good.getvalue()
    kind = data.draw(st.sampled_from(["bytes", "mutated", "random labels"]))
    if kind == "bytes":
        content = data.draw(st.binary(max_size=300))
    elif kind == "mutated":
        position = data.draw(st.integers(0, len(good) - 1))
        content = (
            good[:position] + data.draw(st.binary(min_size=1, max_size=8)) + good[position + 1 :]
        )
    else:
        content = (
            good[:-10000]
            + np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
            .integers(0, 10, 10000, dtype=np.uint8)
            .tobytes()
        )
    cache = source.with_name(f"{LABELS[:-3]}.{MNIST_FILES[LABELS][:16]}.npy")
    cache.write_bytes(content)
    labels = mnist._load_file(cache_fuzz, f"mnist/{LABELS}", cache_fuzz)[0]
    event(kind + (": used" if cache.read_bytes() == content else ": rewritten"))
    np.testing.assert_array_equal(labels, reference[1])


def test_hand_placed_files_are_used_over_a_decoded_cache_and_never_called_verified(
    tmp_path, reference, mnist_dir, run_command
):
    """The README's promise: raw files placed by hand are used when the .gz is absent, even with a
    verified decoded cache beside them; and the output does not call their bytes verified."""
    folder = tmp_path / "data"
    (folder / "mnist").mkdir(parents=True)
    (folder / "sample_weight.pkl").symlink_to(mnist_dir.parent / "sample_weight.pkl")
    for name in (IMAGES, LABELS):
        shutil.copyfile(mnist_dir / name, folder / "mnist" / name)
    load_mnist_test(data_dir=folder)  # makes the decoded caches
    assert len(list((folder / "mnist").glob("*.npy"))) == 2
    shifted = (reference[1] + 1) % 10  # labels no cache holds
    for name in (IMAGES, LABELS):
        (folder / "mnist" / name).unlink()
    (folder / "mnist" / IMAGES[:-3]).write_bytes(gzip.decompress((mnist_dir / IMAGES).read_bytes()))
    (folder / "mnist" / LABELS[:-3]).write_bytes(idx(shifted.astype(np.uint8)))
    x, t = load_mnist_test(normalize=False, data_dir=folder)
    np.testing.assert_array_equal(t, shifted)
    proc = run_command("evaluate", "--backend", "numpy", "--data-dir", folder)
    assert proc.returncode == 0, proc.stderr
    assert "SHA-256 verified" not in proc.stdout and "structure checked only" in proc.stdout
    assert " 0.9352 " not in proc.stdout
