"""IDX files, MNIST's format: ``00 00 <type> <ndim>``, ndim big-endian uint32 sizes, then the array.

:func:`read_idx` reads raw or gzipped bytes and checks everything the header promises. Whatever the
bytes, it raises only :class:`DataCorruptedError` (bad content) or :class:`DataNotFoundError` (no
such file, or one that cannot be read), each naming the file.
"""

import io
import math
import os
import zlib

import numpy as np

from ..errors import DataCorruptedError, DataNotFoundError
from .files import open_regular

IDX_DTYPES = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
GZIP_MAGIC = b"\x1f\x8b"
_MAX_HEADER = 4 + 4 * 255  # ndim is one byte
_MAX_RATIO = 1032  # deflate's largest expansion
_CHUNK = 1 << 18


def read_idx(source, name=None):
    """IDX bytes, or the file at the path ``source``, raw or gzip (told by its magic) -> array.

    ``t10k-images-idx3-ubyte.gz`` gives ``(10000, 28, 28) uint8``, a fresh native-endian array,
    filled chunk by chunk: the peak memory is about one copy of the data. ``name`` names bytes in errors.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        file, name, size = io.BytesIO(source), name or "IDX data", len(source)
    else:
        name = source
        try:
            file = open_regular(source)
        except FileNotFoundError:
            raise DataNotFoundError(f"{source}: no such file") from None
        except OSError as err:
            raise DataNotFoundError(f"{source}: cannot read it ({err.strerror or err})") from None
        size = os.fstat(file.fileno()).st_size
    with file:
        gzipped = file.read(2) == GZIP_MAGIC
        file.seek(0)
        try:
            if gzipped:
                return _read(_Gunzip(file, name), name, "gzip content", _MAX_RATIO * size)
            return _read(file, name, "file", size)
        except zlib.error as err:
            raise DataCorruptedError(f"{name}: damaged gzip data ({err})") from None


def _read(stream, path, where, most):
    """The array from ``stream``, which holds at most ``most`` bytes of header and payload."""
    head = stream.read(_MAX_HEADER)
    dims, dtype, start = _header(head, path, where)
    expected = math.prod(dims) * dtype.itemsize
    if expected > most - start:  # before allocating: a forged header costs nothing
        if where == "file":
            raise _size_error(path, dims, dtype, most - start, "only")
        raise _size_error(
            path,
            dims,
            dtype,
            f"{most - start} (a gzip of {most // _MAX_RATIO} bytes: "
            "a truncated gzip, or a forged header)",
            "at most",
        )
    array = np.empty(dims, dtype.newbyteorder("="))
    buffer = memoryview(array.reshape(-1).view(np.uint8))
    filled = min(len(head) - start, expected)
    buffer[:filled] = head[start : start + filled]
    excess = len(head) - start > expected
    while filled < expected:
        chunk = stream.read(min(expected - filled, _CHUNK))
        if not chunk:
            raise _size_error(path, dims, dtype, filled, "only")
        buffer[filled : filled + len(chunk)] = chunk
        filled += len(chunk)
    if excess or stream.read(1):
        raise _size_error(path, dims, dtype, None, "more")
    if not dtype.isnative:
        array.byteswap(inplace=True)
    return array


class _Gunzip:
    """``read(n)`` of a gzip file's content, every member in turn as gunzip reads them."""

    def __init__(self, file, path):
        self.file, self.path = file, path
        self.unzip = zlib.decompressobj(wbits=31)  # checks each member's CRC and length trailer

    def read(self, n):
        parts, got = [], 0
        while got < n:
            if self.unzip.eof:
                rest = self.unzip.unused_data or self.file.read(_CHUNK)
                if not rest:
                    break
                if not rest.startswith(GZIP_MAGIC[: len(rest)]):
                    raise DataCorruptedError(
                        f"{self.path}: unexpected bytes after the end of the gzip stream"
                    )
                self.unzip = zlib.decompressobj(wbits=31)  # another member follows
                data = rest
            else:
                data = self.unzip.unconsumed_tail or self.file.read(_CHUNK)
            part = self.unzip.decompress(data, n - got)
            if not data and not part and not self.unzip.eof:
                raise DataCorruptedError(
                    f"{self.path}: truncated gzip (the compressed stream ends early)"
                )
            parts.append(part)
            got += len(part)
        return b"".join(parts)


def _header(content, path, where):
    """``(dims, dtype, payload offset)`` from the first bytes of an IDX file."""
    if not content:
        raise DataCorruptedError(f"{path}: {where} is empty, not an IDX file")
    if content[:64].lstrip()[:1] == b"<":
        raise DataCorruptedError(f"{path}: {where} looks like an HTML page, not an IDX file")
    if (
        len(content) < 4
        or content[:2] != b"\0\0"
        or content[2] not in IDX_DTYPES
        or content[3] == 0
    ):
        raise DataCorruptedError(
            f"{path}: {where} starts with {content[:4].hex(' ')}, not an IDX magic "
            f"number (00 00, type 08/09/0b/0c/0d/0e, ndim 01-ff)"
        )
    ndim, start = content[3], 4 + 4 * content[3]
    if len(content) < start:
        raise DataCorruptedError(
            f"{path}: {where} ends inside the header "
            f"({ndim} dimensions need {start} bytes, found {len(content)})"
        )
    dims = tuple(int.from_bytes(content[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return dims, IDX_DTYPES[content[2]], start


def _size_error(path, dims, dtype, found, how):
    holds = f"{how} {found}" if found is not None else how
    return DataCorruptedError(
        f"{path}: dimensions {'x'.join(map(str, dims))} of {dtype.name} "
        f"need {math.prod(dims) * dtype.itemsize} bytes, but the file holds {holds}"
    )
