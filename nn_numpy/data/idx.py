"""IDX files, MNIST's format: ``00 00 <type> <ndim>``, ndim big-endian uint32 sizes, then the array.

:func:`read_idx` reads raw or gzipped files and checks everything the header promises.
Whatever the bytes, the only errors it raises are :class:`DataCorruptedError` (bad
content) and :class:`DataNotFoundError` (no such file, or one that cannot be read: a
directory, no permission), each naming the file.
"""

import math
import zlib
from pathlib import Path

import numpy as np

from .errors import DataCorruptedError, DataNotFoundError

# The IDX type codes; the payload is big-endian.
IDX_DTYPES = {0x08: np.dtype("u1"), 0x09: np.dtype("i1"), 0x0B: np.dtype(">i2"),
              0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}
GZIP_MAGIC = b"\x1f\x8b"
_MAX_HEADER = 4 + 4 * 255  # ndim is one byte
_MAX_RATIO = 1032  # deflate's largest expansion


def read_idx(path):
    """IDX file (raw, or gzip detected by its magic bytes) -> array of the header's shape and type.

    ``t10k-images-idx3-ubyte.gz`` -> ``(10000, 28, 28) uint8``. The array is a fresh,
    writable, native-endian copy.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataNotFoundError(f"{path}: no such file") from None
    except OSError as err:  # a directory, no permission: as nn_numpy.data.weights reads its files
        raise DataNotFoundError(f"{path}: cannot read it ({err.strerror or err})") from err
    if data[:2] != GZIP_MAGIC:
        dims, dtype, start = _header(data, path, "file")
        return _array(data, dims, dtype, start, path)
    # Decompress no more than the header announces (plus one byte to detect excess),
    # so a gzip bomb cannot fill memory.
    unzip = zlib.decompressobj(wbits=31)  # gzip wrapper: zlib also checks the CRC and length trailer
    try:
        content = unzip.decompress(data, _MAX_HEADER)
        if len(content) < _MAX_HEADER and not unzip.eof:
            raise DataCorruptedError(f"{path}: truncated gzip (the compressed stream ends early)")
        dims, dtype, start = _header(content, path, "gzip content")
        # deflate expands at most 1032:1, so asking for more would only overflow
        want = min(start + _nbytes(dims, dtype) + 1, _MAX_RATIO * len(data)) - len(content)
        if want > 0:
            content += unzip.decompress(unzip.unconsumed_tail, want)
    except zlib.error as err:
        raise DataCorruptedError(f"{path}: damaged gzip data ({err})") from None
    if len(content) <= start + _nbytes(dims, dtype) and not unzip.eof:
        raise DataCorruptedError(f"{path}: truncated gzip (the compressed stream ends early)")
    if unzip.unused_data:
        raise DataCorruptedError(f"{path}: unexpected bytes after the end of the gzip stream")
    return _array(content, dims, dtype, start, path)


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


def _array(content, dims, dtype, start, path):
    expected, found = _nbytes(dims, dtype), len(content) - start
    if found != expected:
        holds = f"only {found}" if found < expected else "more"
        raise DataCorruptedError(f"{path}: dimensions {'x'.join(map(str, dims))} of {dtype.name} "
                                 f"need {expected} bytes, but the file holds {holds}")
    return np.frombuffer(content, dtype, offset=start).reshape(dims).astype(dtype.newbyteorder("="))
