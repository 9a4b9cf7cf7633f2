"""The IDX parser on the real MNIST test files, on every kind of damage made from them, and on arbitrary bytes."""

import functools
import gzip
import os
import struct
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from nn_numpy.data import idx
from nn_numpy.data.idx import IDX_DTYPES, read_idx
from nn_numpy.errors import DataCorruptedError, DataNotFoundError


@pytest.fixture(scope="module")
def images_gz(data_dir):
    return data_dir / "mnist" / "t10k-images-idx3-ubyte.gz"


@pytest.fixture(scope="module")
def labels_gz(data_dir):
    return data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz"


@pytest.fixture(scope="module")
def labels_raw(labels_gz):
    return gzip.decompress(labels_gz.read_bytes())


@pytest.fixture(scope="module")
def images_raw(images_gz):
    return gzip.decompress(images_gz.read_bytes())


def write(folder, name, data):
    path = folder / name
    path.write_bytes(data)
    return path


def test_real_files_decode_to_mnist_shapes_and_header_values(images_gz, labels_gz):
    images, labels = read_idx(images_gz), read_idx(labels_gz)
    assert (images.shape, images.dtype) == ((10000, 28, 28), np.uint8)
    assert (labels.shape, labels.dtype) == ((10000,), np.uint8)
    assert images.flags.writeable and labels.flags.writeable
    assert images.min() == 0 and images.max() == 255
    assert np.bincount(labels).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_raw_equals_gzip_and_gzip_is_detected_by_magic_not_suffix(tmp_path, images_raw, images_gz):
    from_gz = read_idx(images_gz)
    raw_named_gz = write(tmp_path, "images.gz", images_raw)
    gz_named_raw = write(tmp_path, "images-idx3-ubyte", images_gz.read_bytes())
    for path in (write(tmp_path, "images-idx3-ubyte.raw", images_raw), raw_named_gz, gz_named_raw):
        np.testing.assert_array_equal(read_idx(path), from_gz, err_msg=str(path))


def test_missing_file_is_data_not_found(tmp_path):
    with pytest.raises(DataNotFoundError, match="nowhere.gz"):
        read_idx(tmp_path / "nowhere.gz")


def test_an_unreadable_path_is_one_line_data_not_found_naming_it(tmp_path, monkeypatch, images_gz):
    folder = tmp_path / "t10k-images-idx3-ubyte.gz"
    folder.mkdir()
    with pytest.raises(DataNotFoundError) as raised:
        read_idx(folder)
    assert str(raised.value) == f"{folder}: cannot read it (a folder, not a regular file)"

    def denied(path):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(idx, "open_regular", denied)  # chmod 000 would not stop root
    with pytest.raises(DataNotFoundError) as raised:
        read_idx(images_gz)
    assert str(raised.value) == f"{images_gz}: cannot read it (Permission denied)"


@pytest.mark.parametrize(
    "code,dtype", [(0x09, "i1"), (0x0B, ">i2"), (0x0C, ">i4"), (0x0D, ">f4"), (0x0E, ">f8")]
)
def test_other_idx_types_decode_big_endian_to_native(tmp_path, code, dtype):
    values = np.array([[-1, 0, 1], [np.iinfo(np.int8).min, np.iinfo(np.int8).max, 7]]).astype(dtype)
    path = write(
        tmp_path, "x.idx", bytes([0, 0, code, 2]) + struct.pack(">II", 2, 3) + values.tobytes()
    )
    array = read_idx(path)
    assert array.dtype == np.dtype(dtype).newbyteorder("=") and array.dtype.isnative
    np.testing.assert_array_equal(array, values)


def damaged(images_raw, labels_raw, images_gz):
    """``{kind: (file bytes, what the message must say)}``, all made from the real files."""
    gz = images_gz.read_bytes()
    gz1 = functools.partial(gzip.compress, compresslevel=1)  # level 9 takes a second on 7.8 MB
    flipped = bytearray(labels_raw)
    flipped[2] = 0x07  # not an IDX type code
    more_dims = labels_raw[:4] + struct.pack(">I", 10001) + labels_raw[8:]
    fewer_dims = images_raw[:4] + struct.pack(">III", 10000, 27, 28) + images_raw[16:]
    html = b"<!DOCTYPE html>\n<html><body><h1>403 Forbidden</h1></body></html>\n"
    flipped_mid, flipped_crc = bytearray(gz), bytearray(gz)
    flipped_mid[len(gz) // 2] ^= 0xFF
    flipped_crc[-8] ^= 0xFF
    return {
        "gzip truncated in the middle": (gz[: len(gz) // 2], "truncated gzip"),
        "gzip truncated in the header": (gz1(labels_raw)[:12], "truncated gzip"),
        "gzip missing its trailer": (gz[:-4], "truncated gzip"),
        "gzip with a damaged byte": (bytes(flipped_mid), ""),  # inflates to garbage of some length
        "gzip with a damaged CRC": (
            bytes(flipped_crc),
            "damaged gzip data (Error -3 while decompressing data: incorrect data check)",
        ),
        "gzip of junk": (gz1(os.urandom(5000)), "not an IDX magic"),
        "gzip of text": (gz1(b"hello, world\n" * 100), "not an IDX magic"),
        "gzip of an empty file": (gz1(b""), "empty"),
        "bytes after the gzip stream": (gz + b"\0\0junk", "after the end of the gzip stream"),
        "wrong magic": (bytes(flipped), "not an IDX magic"),
        "wrong magic, gzipped": (gz1(bytes(flipped)), "not an IDX magic"),
        "more items in header than bytes": (
            more_dims,
            "need 10001 bytes, but the file holds only 10000",
        ),
        "fewer items in header than bytes": (
            gz1(fewer_dims),
            "need 7560000 bytes, but the file holds more",
        ),
        "raw file cut short": (images_raw[:-1], "holds only 7839999"),
        "raw file with a byte extra": (labels_raw + b"\0", "holds more"),
        "header cut short": (images_raw[:10], "ends inside the header"),
        "HTML page": (html, "looks like an HTML page, not an IDX file"),
        "gzipped HTML page": (gz1(html), "looks like an HTML page, not an IDX file"),
        "empty file": (b"", "empty"),
    }


@pytest.mark.slow
def test_every_damage_kind_is_data_corrupted_naming_the_file(
    tmp_path, images_raw, labels_raw, images_gz
):
    for kind, (data, says) in damaged(images_raw, labels_raw, images_gz).items():
        path = write(tmp_path, "t10k-damaged-idx-ubyte.gz", data)
        with pytest.raises(DataCorruptedError) as err:
            read_idx(path)
        message = str(err.value)
        assert str(path) in message and says in message, f"{kind}: {message}"
        assert "\n" not in message, kind


# Arbitrary bytes: either an array that matches the header, or DataCorruptedError; nothing else.
# Every message says one of these (a new kind fails the test until it is listed); counted in the statistics.
ERROR_KINDS = (
    "truncated gzip",
    "damaged gzip data",
    "after the end of the gzip stream",
    "is empty",
    "looks like an HTML page",
    "not an IDX magic",
    "ends inside the header",
    "bytes, but the file holds",
)


@pytest.fixture(scope="module")
def fuzz_dir(tmp_path_factory):
    """One folder for every fuzzed file: hypothesis runs no function-scoped fixtures."""
    return tmp_path_factory.mktemp("idx-fuzz")


def check_arbitrary(folder, content, wrapping, position):
    """``wrapping``: raw bytes, their gzip, or that gzip cut at ``position`` or with the byte there flipped.

    A damaged gzip that still decodes (a flipped mtime byte) must give the array of the original bytes.
    """
    data = content if wrapping == "raw" else gzip.compress(content, mtime=0)
    position %= len(data) or 1
    if wrapping == "gzip cut":
        data = data[:position]
    if wrapping == "gzip flipped":
        data = data[:position] + bytes([data[position] ^ 0xFF]) + data[position + 1 :]
    path = write(folder, "fuzz.idx", data)
    try:
        array = read_idx(path)
    except DataCorruptedError as err:
        assert str(path) in str(err)
        event(next(kind for kind in ERROR_KINDS if kind in str(err)))
        return
    event("returned an array")
    ndim = content[3]
    dims = struct.unpack(f">{ndim}I", content[4 : 4 + 4 * ndim])
    dtype = IDX_DTYPES[content[2]]
    assert content[:2] == b"\0\0" and array.shape == dims and array.dtype == dtype.newbyteorder("=")
    assert array.astype(dtype).tobytes() == content[4 + 4 * ndim :]


def idx_like():
    """Bytes that often pass the header: a valid magic, small dims, and a payload of about the right length."""
    return st.builds(
        lambda code, dims, extra, seed: (
            bytes([0, 0, code, len(dims)])
            + struct.pack(f">{len(dims)}I", *dims)
            + np.random.default_rng(seed).bytes(
                max(0, int(np.prod(dims)) * IDX_DTYPES[code].itemsize + extra)
            )
        ),
        st.sampled_from(sorted(IDX_DTYPES)),
        st.lists(st.integers(0, 6), min_size=1, max_size=4),
        st.sampled_from([0, 0, 0, -1, 1, -5]),
        st.integers(0, 2**32 - 1),
    )


@given(
    st.one_of(st.binary(max_size=300), idx_like()),
    st.sampled_from(["raw", "gzip", "gzip cut", "gzip flipped"]),
    st.integers(0, 2**16),
)
@pytest.mark.slow  # about a second: 200 examples
def test_arbitrary_bytes_give_a_matching_array_or_data_corrupted(
    fuzz_dir, content, wrapping, position
):
    check_arbitrary(fuzz_dir, content, wrapping, position)


# --- memory: one copy of the data, and nothing allocated for a header the file cannot back -----------


def test_a_gzip_is_inflated_straight_into_the_array(images_raw, images_gz):
    import tracemalloc

    read_idx(images_gz)  # imports and caches warmed up outside the measurement
    tracemalloc.start()
    try:
        images = read_idx(images_gz)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # reading the whole .gz, inflating it to bytes, then copying into an array peaked at 2.4x
    assert peak < 1.3 * images.nbytes, (
        f"peak {peak / images.nbytes:.2f} x the array's {images.nbytes} bytes"
    )
    assert images.tobytes() == images_raw[16:]


@pytest.mark.parametrize("wrap", ["raw", "gzip"])
def test_a_header_declaring_more_than_the_file_can_hold_allocates_nothing(
    tmp_path, wrap, monkeypatch
):
    header = bytes([0, 0, 0x0E, 3]) + struct.pack(">III", 2**31, 2**31, 2**20)  # 2**82 float64s
    data = header + bytes(1000)
    path = write(tmp_path, "forged.idx", data if wrap == "raw" else gzip.compress(data))
    monkeypatch.setattr(
        np, "empty", lambda *args, **kwargs: pytest.fail("allocated for a forged header")
    )
    with pytest.raises(DataCorruptedError) as raised:
        read_idx(path)
    need = f"{path}: dimensions 2147483648x2147483648x1048576 of float64 need {2**85} bytes, but the file holds "
    assert str(raised.value) == need + (
        "only 1000"
        if wrap == "raw"
        else f"at most {1032 * path.stat().st_size - 16} (a gzip of "
        f"{path.stat().st_size} bytes: a truncated gzip, or a forged header)"
    )


def test_a_fifo_given_as_an_idx_file_is_refused_not_waited_on(tmp_path):
    """In a child process with a timeout: a regression blocks reading the FIFO forever instead of failing."""
    fifo = tmp_path / "images.idx"
    os.mkfifo(fifo)
    code = f"from nn_numpy.data.idx import read_idx; read_idx({str(fifo)!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stderr.splitlines()[-1] == (
        f"nn_numpy.errors.DataNotFoundError: {fifo}: cannot read it (a FIFO, not a regular file)"
    ), proc.stderr


def test_bytes_decode_as_their_file_does_naming_what_the_caller_says(images_gz):
    data = images_gz.read_bytes()
    np.testing.assert_array_equal(read_idx(data, name="the images"), read_idx(images_gz))
    with pytest.raises(
        DataCorruptedError, match="^the images: dimensions 10000x28x28 of uint8 need 7840000 bytes"
    ):
        read_idx(data[:1000], name="the images")


def test_a_gzip_of_several_members_is_read_whole_as_gunzip_reads_it(tmp_path, labels_raw):
    """A valid two-member gzip was said to hold only its first member's bytes."""
    members = (
        gzip.compress(labels_raw[:5000]) + gzip.compress(labels_raw[5000:]) + gzip.compress(b"")
    )
    np.testing.assert_array_equal(
        read_idx(write(tmp_path, "labels.gz", members)), read_idx(labels_raw)
    )
    with pytest.raises(
        DataCorruptedError, match="holds more"
    ):  # a member too many is still too many bytes
        read_idx(write(tmp_path, "more.gz", members + gzip.compress(b"\0")))


@pytest.mark.parametrize(
    "head, says",
    [
        (
            bytes([1, 0, 8, 1]),
            "starts with 01 00 08 01, not an IDX magic number",
        ),  # a type and ndim that are fine
        (bytes([0, 1, 8, 1]), "starts with 00 01 08 01, not an IDX magic number"),
        (bytes([0, 0, 8, 0]), "starts with 00 00 08 00, not an IDX magic number"),  # no dimensions
    ],
)
def test_a_magic_number_off_by_one_byte_is_refused(tmp_path, head, says):
    with pytest.raises(DataCorruptedError, match=says):
        read_idx(write(tmp_path, "x.idx", head + struct.pack(">I", 3) + b"abc"))


def test_a_header_declaring_a_little_more_than_the_payload_allocates_nothing(
    tmp_path, labels_raw, monkeypatch
):
    """10,004 labels declared in a file of 10,008 bytes, 10,000 of them labels: the 8 header bytes count."""
    forged = labels_raw[:4] + struct.pack(">I", 10004) + labels_raw[8:]
    monkeypatch.setattr(
        np, "empty", lambda *a, **k: pytest.fail("allocated for a header the file cannot back")
    )
    with pytest.raises(DataCorruptedError, match="need 10004 bytes, but the file holds only 10000"):
        read_idx(write(tmp_path, "labels.idx", forged))
