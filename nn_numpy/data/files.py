"""Files in and out: only regular files are read as data, and every file the project writes is atomic.

- :func:`read_npy` reads a ``.npy`` only after its header passed the caller's check.
- :func:`open_regular` opens a file for reading only if it is a regular file (a symlink to one is
  fine): a FIFO would block forever and ``/dev/zero`` never ends.
- :func:`atomic_write` writes a temporary file beside the target, then renames it over the target:
  the target holds the old content or the new, never half. Temporary files are named
  ``<name>.<pid>.<random>.tmp``, so a later run can recognise a killed run's leftovers.

What is at the target decides how it is written:

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

from .errors import NNError

_KINDS = {stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device",
          stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}


class NotRegularFileError(OSError):
    """A path that exists but is not a regular file (a FIFO, a device, a folder), refused by :func:`open_regular`."""


def _kind(mode):
    return next((name for test, name in _KINDS.items() if test(mode)), "a special file")


def open_regular(path):
    """``path`` opened ``rb``, if it is a regular file; else :class:`NotRegularFileError` (``a FIFO, not a regular file``).

    Opened non-blocking first, so that opening a FIFO cannot wait for a writer, then checked on
    the open descriptor, so nothing can swap the file between the check and the read.
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


def read_regular(path):
    """The bytes of ``path``, a regular file (see :func:`open_regular`)."""
    with open_regular(path) as file:
        return file.read()


def is_pipe_or_device(path):
    """Whether ``path`` (symlinks followed) is a FIFO or a character device, which :func:`atomic_write` writes through."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def read_npy(file, check):
    """The array in a ``.npy`` stream, read only once ``check(shape, fortran_order, dtype)`` accepts its header.

    ``check`` raises to refuse: a header declaring gigabytes costs nothing. ``file`` must be
    seekable (a regular file, a zip member). Pickled object arrays are never loaded, and a header
    with a bad string escape is refused, not warned about (found by the fuzzing campaign).
    """
    version = np.lib.format.read_magic(file)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported")
    with warnings.catch_warnings():  # NumPy parses the header as a Python literal: a bad escape only warns
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", SyntaxWarning)
        header = readers[version](file)
    check(*header)
    file.seek(0)
    return np.lib.format.read_array(file, allow_pickle=False)


def new_file_mode():
    """``0o666 & ~umask``: the mode ``open()`` would give a new file (mkstemp and pooch make 0600)."""
    mask = os.umask(0o022)  # the only way to read the umask is to set it
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_write(path, mode="wb", what=None):
    """``with atomic_write(path) as file: file.write(...)``: ``path`` is whole or untouched (module docstring).

    ``mode`` is ``"wb"`` or ``"w"``. On any error or interrupt the temporary file is removed;
    an OSError becomes one :class:`NNError` line ``cannot <what>: <reason>`` (``what`` defaults to
    ``write <path>``), naming the user's path, never the temporary file.
    """
    path = Path(path)
    what = what or f"write {path}"
    try:
        target = Path(os.path.realpath(path))  # a symlink is followed: the link itself stays
        try:
            st = os.stat(target)
        except FileNotFoundError:
            st = None
        if is_pipe_or_device(target):
            with open(target, mode) as file:  # a pipe or a device: written through, never replaced
                yield file
            return
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise NNError(f"cannot {what}: it is {_kind(st.st_mode)}, not a file")
        if not target.parent.is_dir():
            folder = target.parent if path.is_symlink() else path.parent  # the user's spelling where it can
            raise NNError(f"cannot {what}: folder {folder} does not exist")
        fd, tmp = tempfile.mkstemp(prefix=f"{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent)
    except OSError as err:
        raise NNError(f"cannot {what}: {err.strerror or err}") from err
    try:
        with os.fdopen(fd, mode) as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        # mkstemp makes 0600; a shared data dir needs the mode any other new file would get
        os.chmod(tmp, stat.S_IMODE(st.st_mode) if st else new_file_mode())
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):  # its message would name the temporary file, not the user's
            raise NNError(f"cannot {what}: {err.strerror or err}") from err
        raise
