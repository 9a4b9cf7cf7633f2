"""Files in and out: only regular files are read as data, never more than they can be, and every file
the project writes is atomic.

What is at an output path decides how :func:`atomic_write` writes it:

=============================  ===================================================================
nothing, or a regular file     replaced atomically; a new file gets ``0o666 & ~umask``, an existing
                               one keeps its permission bits
a symlink                      followed: its target is written by these same rules, the link stays
a FIFO or a character device   written through, never replaced (``/dev/null``, ``/dev/stdout``, a pipe)
anything else                  refused (a folder, a block device, a socket)
=============================  ===================================================================
"""

import contextlib
import os
import stat
import tempfile
import warnings
from pathlib import Path

import numpy as np

from ..errors import NNError

_KINDS = {
    stat.S_ISDIR: "a folder",
    stat.S_ISFIFO: "a FIFO",
    stat.S_ISCHR: "a character device",
    stat.S_ISBLK: "a block device",
    stat.S_ISSOCK: "a socket",
}


class NotRegularFileError(OSError):
    """A path that exists but is not a regular file (a FIFO, a device, a folder)."""


def _kind(mode):
    return next((name for test, name in _KINDS.items() if test(mode)), "a special file")


def size_text(n):
    return (
        f"{n / 2**30:.1f} GiB"
        if n >= 2**30
        else f"{n / 2**20:.1f} MiB"
        if n >= 2**20
        else f"{n:,} bytes"
    )


def open_regular(path):
    """``path`` opened ``rb`` if it is a regular file, else :class:`NotRegularFileError`.

    Opened non-blocking, so that a FIFO cannot wait for a writer, then checked on the descriptor,
    so nothing can swap the file between the check and the read.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(0, f"{_kind(mode)}, not a regular file", str(path))
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path, limit=None, what="file", error=NNError):
    """The bytes of the regular file ``path``; one larger than ``limit`` bytes is refused, unread, as ``error``."""
    with open_regular(path) as file:
        size = os.fstat(file.fileno()).st_size
        data = file.read(-1 if limit is None else limit + 1)
    if limit is not None and max(size, len(data)) > limit:
        raise error(
            f"{path}: {size_text(max(size, len(data)))}, more than any {what} can be "
            f"({size_text(limit)} at most)"
        )
    return data


MAX_NPY_HEADER = 10_000  # NumPy's own limit on what it trusts; ours take under 200 bytes


def read_npy(file, check):
    """The array in a seekable ``.npy`` stream, read only once ``check(shape, fortran_order, dtype)`` passes.

    ``check`` raises to refuse, so a header declaring gigabytes costs nothing. Object arrays never load,
    and a header with a bad string escape is refused, not warned about.
    """
    version = np.lib.format.read_magic(file)
    readers = {
        (1, 0): np.lib.format.read_array_header_1_0,
        (2, 0): np.lib.format.read_array_header_2_0,
    }
    if version not in readers:
        raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
    # NumPy reads the whole header before it checks its size: a length field of 1 GiB cost 2 GB
    size = int.from_bytes(file.read(2 if version == (1, 0) else 4), "little")
    if size > MAX_NPY_HEADER:
        raise ValueError(
            f"a .npy header of {size_text(size)}: a real one is under {MAX_NPY_HEADER} bytes"
        )
    file.seek(6 + 2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", SyntaxWarning)
        header = readers[version](file)
    check(*header)
    file.seek(0)
    return np.lib.format.read_array(file, allow_pickle=False)


def is_writable(folder):
    """Whether we may write in ``folder``: False when its mode has no write bit, even for root."""
    try:
        return os.access(folder, os.W_OK) and bool(os.stat(folder).st_mode & 0o222)
    except OSError:
        return False


def new_file_mode():
    """``0o666 & ~umask``: the mode ``open()`` gives a new file (mkstemp makes 0600)."""
    mask = os.umask(0o022)  # the only way to read the umask is to set it
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_write(path, mode="wb", what=None, follow=True):
    """``with atomic_write(path) as file: ...``: ``path`` ends whole or untouched (see the module's table).

    The temporary file is ``<name>.<pid>.<random>.tmp`` beside the target, so a later run can tell a
    killed run's leftover. An OSError becomes one :class:`NNError` line ``cannot <what>: <reason>``.
    ``follow=False``, for the project's own caches: a symlink at ``path`` is replaced, never followed,
    so one planted in a data dir cannot turn a cache write onto a file elsewhere.
    """
    path = Path(path)
    what = what or f"write {path}"
    try:
        target = Path(os.path.realpath(path)) if follow else Path(os.path.abspath(path))
        try:
            st = os.stat(target) if follow else os.lstat(target)
        except FileNotFoundError:
            st = None
        if st is not None and stat.S_ISLNK(st.st_mode):
            st = None  # the link itself is replaced
        if st is not None and (stat.S_ISFIFO(st.st_mode) or stat.S_ISCHR(st.st_mode)):
            with open(target, mode) as file:
                yield file
            return
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise NNError(f"cannot {what}: it is {_kind(st.st_mode)}, not a file")
        if not target.parent.is_dir():
            folder = target.parent if path.is_symlink() else path.parent
            raise NNError(f"cannot {what}: folder {folder} does not exist")
        fd, tmp = tempfile.mkstemp(
            prefix=f"{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent
        )
    except OSError as err:
        raise NNError(f"cannot {what}: {err.strerror or err}") from err
    try:
        with os.fdopen(fd, mode) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.chmod(tmp, stat.S_IMODE(st.st_mode) if st else new_file_mode())
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):  # its message would name the temporary file, not the user's
            raise NNError(f"cannot {what}: {err.strerror or err}") from err
        raise
