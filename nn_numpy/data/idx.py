"""IDX files, MNIST's format: ``00 00 <type> <ndim>``, ndim big-endian uint32 sizes, then the array.

:func:`read_idx` reads raw or gzipped files and checks everything the header promises.
Whatever the bytes, the only errors it raises are :class:`DataCorruptedError` (bad
content) and :class:`DataNotFoundError` (no such file, or one that cannot be read: a
directory, no permission), each naming the file.
"""

import math
import os
import zlib
from pathlib import Path

import numpy as np

from .errors import DataCorruptedError, DataNotFoundError
from .files import open_regular

# The IDX type codes; the payload is big-endian.
IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
GZIP_MAGIC = b"\x1f\x8b"
_MAX_HEADER = 4 + 4 * 255  # ndim is one byte
_MAX_RATIO = 1032  # deflate's largest expansion
_CHUNK = 1 << 18  # bytes read or inflated at a time


def read_idx(path):
    """IDX file (raw, or gzip detected by its magic bytes) -> array of the header's shape and type.

    ``t10k-images-idx3-ubyte.gz`` -> ``(10000, 28, 28) uint8``. The array is a fresh,
    writable, native-endian copy. The file is read (and inflated) in chunks straight into
    that array, so the peak memory is about one copy of the data; a header declaring more
    than the file could hold is refused before anything is allocated.
    """
    path = Path(path)
    try:
        file = open_regular(path)
    except FileNotFoundError:
        raise DataNotFoundError(f"{path}: no such file") from None
    except OSError as err:  # a directory, a FIFO, no permission: as nn_numpy.data.weights reads its files
        raise DataNotFoundError(f"{path}: cannot read it ({err.strerror or err})") from err
    with file:
        size = os.fstat(file.fileno()).st_size
        gzipped = file.read(2) == GZIP_MAGIC
        file.seek(0)
        stream = _Gunzip(file, path) if gzipped else file
        try:
            return _read(stream, path, "gzip content" if gzipped else "file",
                         _MAX_RATIO * size if gzipped else size)
        except zlib.error as err:
            raise DataCorruptedError(f"{path}: damaged gzip data ({err})") from None


def _read(stream, path, where, most):
    """The array from ``stream.read(n)``, which holds at most ``most`` bytes of header and payload."""
    head = stream.read(_MAX_HEADER)
    dims, dtype, start = _header(head, path, where)
    expected = _nbytes(dims, dtype)
    if expected > most - start:  # checked before allocating: a forged header costs nothing
        if where == "file":
            raise _size_error(path, dims, dtype, most - start, "only")
        raise _size_error(path, dims, dtype, f"{most - start} (a gzip of {most // _MAX_RATIO} bytes: "
                                             "a truncated gzip, or a forged header)", "at most")
    array = np.empty(dims, dtype.newbyteorder("="))
    buffer = memoryview(array.reshape(-1).view(np.uint8))
    filled = min(len(head) - start, expected)
    buffer[:filled] = head[start:start + filled]
    excess = len(head) - start > expected
    while filled < expected:
        chunk = stream.read(min(expected - filled, _CHUNK))
        if not chunk:
            raise _size_error(path, dims, dtype, filled, "only")
        buffer[filled:filled + len(chunk)] = chunk
        filled += len(chunk)
    if excess or stream.read(1):
        raise _size_error(path, dims, dtype, None, "more")
    if isinstance(stream, _Gunzip):
        stream.check_end()
    if not dtype.isnative:  # IDX is big-endian
        array.byteswap(inplace=True)
    return array


class _Gunzip:
    """``read(n)`` of a gzip file's content, up to ``n`` bytes, inflated a chunk at a time."""

    def __init__(self, file, path):
        self.file, self.path = file, path
        self.unzip = zlib.decompressobj(wbits=31)  # gzip wrapper: zlib also checks the CRC and length trailer

    def read(self, n):
        parts, got = [], 0
        while got < n and not self.unzip.eof:
            data = self.unzip.unconsumed_tail or self.file.read(_CHUNK)
            part = self.unzip.decompress(data, n - got)
            if not data and not part and not self.unzip.eof:  # no input left, no output pending, stream not over
                raise DataCorruptedError(f"{self.path}: truncated gzip (the compressed stream ends early)")
            parts.append(part)
            got += len(part)
        return b"".join(parts)

    def check_end(self):
        """Raise unless the gzip stream ended (trailer checked) and nothing follows it."""
        if self.unzip.unused_data or self.file.read(1):
            raise DataCorruptedError(f"{self.path}: unexpected bytes after the end of the gzip stream")


def _header(content, path, where):
    """``(dims, dtype, payload offset)`` from the first bytes of an IDX file."""
    if not content:
        raise DataCorruptedError(f"{path}: {where} is empty, not an IDX file")
    if content[:64].lstrip()[:1] == b"<":
        raise DataCorruptedError(f"{path}: {where} looks like an HTML page, not an IDX file")
    if len(content) < 4 or content[:2] != b"\0\0" or content[2] not in IDX_DTYPES or content[3] == 0:
        raise DataCorruptedError(f"{path}: {where} starts with {content[:4].hex(' ')}, not an IDX magic "
                                 f"number (00 00, type 08/09/0b/0c/0d/0e, ndim 01-ff)")
    ndim, start = content[3], 4 + 4 * content[3]
    if len(content) < start:
        raise DataCorruptedError(f"{path}: {where} ends inside the header "
                                 f"({ndim} dimensions need {start} bytes, found {len(content)})")
    dims = tuple(int.from_bytes(content[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    return dims, IDX_DTYPES[content[2]], start


def _nbytes(dims, dtype):
    return math.prod(dims) * dtype.itemsize


def _size_error(path, dims, dtype, found, how):
    holds = f"{how} {found}" if found is not None else how
    return DataCorruptedError(f"{path}: dimensions {'x'.join(map(str, dims))} of {dtype.name} "
                              f"need {_nbytes(dims, dtype)} bytes, but the file holds {holds}")
