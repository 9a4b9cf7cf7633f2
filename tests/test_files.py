"""nn_numpy.data.files on real special files: FIFOs, symlinks, character devices, folders, and the umask."""

import os
import re
import stat
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest

from nn_numpy.data.files import (
    NotRegularFileError,
    atomic_write,
    open_regular,
    read_npy,
    read_regular,
)
from nn_numpy.errors import NNError


def test_a_new_file_is_written_whole_and_honours_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        with atomic_write(tmp_path / "new.bin") as file:
            file.write(b"data")
    finally:
        os.umask(old)
    assert (tmp_path / "new.bin").read_bytes() == b"data"
    assert (
        stat.S_IMODE(os.stat(tmp_path / "new.bin").st_mode) == 0o640
    )  # 0o666 & ~0o027, not mkstemp's 0o600
    assert os.listdir(tmp_path) == ["new.bin"]


def test_a_replaced_file_keeps_its_mode(tmp_path):
    path = tmp_path / "old.txt"
    path.write_text("old")
    path.chmod(0o604)
    with atomic_write(path, "w") as file:
        file.write("new")
    assert path.read_text() == "new" and stat.S_IMODE(os.stat(path).st_mode) == 0o604


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_or_interrupted_write_leaves_the_old_file_and_no_temp(tmp_path, failure):
    path = tmp_path / "w.npz"
    path.write_bytes(b"old")
    with pytest.raises(NNError if isinstance(failure, OSError) else KeyboardInterrupt) as raised:
        with atomic_write(path) as file:
            file.write(b"half")
            assert len(os.listdir(tmp_path)) == 2  # the old file and the temporary one
            raise failure
    if isinstance(failure, OSError):
        assert (
            str(raised.value) == f"cannot write {path}: No space left on device"
        )  # the user's path, not the temp
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["w.npz"]


def test_the_temporary_file_is_named_for_the_stale_temp_sweep(tmp_path, monkeypatch):
    names = []
    real_replace = os.replace
    monkeypatch.setattr(
        os,
        "replace",
        lambda src, dst: (names.append(os.path.basename(src)), real_replace(src, dst)),
    )
    with atomic_write(tmp_path / "bench.json", "w") as file:
        file.write("{}")
    assert len(names) == 1 and re.fullmatch(rf"bench\.json\.{os.getpid()}\.[^.]+\.tmp", names[0]), (
        names
    )


def test_a_missing_folder_is_one_line_naming_it(tmp_path):
    path = tmp_path / "nowhere" / "x.json"
    with pytest.raises(NNError) as raised:
        with atomic_write(path, "w", what=f"write --json {path}"):
            pytest.fail("the body must not run")
    assert str(raised.value) == f"cannot write --json {path}: folder {path.parent} does not exist"


def test_a_symlink_is_followed_and_stays_a_link(tmp_path):
    target, link = tmp_path / "results.json", tmp_path / "latest.json"
    target.write_text("old")
    link.symlink_to(target)
    with atomic_write(link, "w") as file:
        file.write("new")
    assert link.is_symlink() and os.readlink(link) == str(target) and target.read_text() == "new"


def test_a_fifo_is_written_through_not_replaced(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(
        target=lambda: got.append(open(fifo, "rb").read()), daemon=True
    )  # never blocks exit
    reader.start()
    with atomic_write(fifo) as file:
        file.write(b"through the pipe")
    reader.join(timeout=30)
    assert got == [b"through the pipe"] and stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert os.listdir(tmp_path) == ["fifo"]


def test_a_character_device_is_written_through_not_replaced(tmp_path):
    """A second /dev/null made with mknod as root; else /dev/null itself, which a non-root regression could not replace."""
    null = tmp_path / "null"
    if os.geteuid() == 0:
        os.mknod(null, 0o666 | stat.S_IFCHR, os.stat(os.devnull).st_rdev)
    else:
        null = os.devnull
    before = os.lstat(null)
    with atomic_write(null) as file:
        file.write(b"discarded")
    after = os.lstat(null)
    assert stat.S_ISCHR(after.st_mode) and (after.st_ino, after.st_rdev) == (
        before.st_ino,
        before.st_rdev,
    )
    assert os.listdir(tmp_path) == (["null"] if null != os.devnull else [])


def test_a_block_device_is_refused(tmp_path):
    block = tmp_path / "block"
    try:
        os.mknod(
            block, 0o600 | stat.S_IFBLK, os.makedev(7, 200)
        )  # a loop device number; never opened
    except (
        PermissionError
    ):  # not root: a link to one of /dev's, which the refusal never opens either
        device = next((p for p in Path("/dev").iterdir() if p.is_block_device()), None)
        if device is None:
            pytest.skip("not root, and /dev holds no block device to link to")
        block.symlink_to(device)
    with pytest.raises(
        NNError, match=re.escape(f"cannot write {block}: it is a block device, not a file")
    ):
        with atomic_write(block):
            pytest.fail("the body must not run")
    assert stat.S_ISBLK(os.stat(block).st_mode)


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(
        NNError, match=re.escape(f"cannot write {tmp_path}: it is a folder, not a file")
    ):
        with atomic_write(tmp_path):
            pytest.fail("the body must not run")


# --- reading: regular files only ------------------------------------------------------------------------


def test_only_regular_files_are_read(tmp_path):
    (tmp_path / "data").write_bytes(b"bytes")
    (tmp_path / "link").symlink_to(tmp_path / "data")
    assert read_regular(tmp_path / "link") == b"bytes"
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "zero").symlink_to("/dev/zero")
    for path, kind in [
        (tmp_path / "fifo", "a FIFO"),
        (tmp_path / "zero", "a character device"),
        (tmp_path, "a folder"),
    ]:
        with pytest.raises(NotRegularFileError) as raised:
            open_regular(path)
        assert (
            raised.value.strerror == f"{kind}, not a regular file"
            and raised.value.filename == str(path)
        )


def test_reading_a_fifo_with_no_writer_does_not_hang(tmp_path):
    """In a child process with a timeout: a regression would block in open() forever, not fail."""
    os.mkfifo(tmp_path / "fifo")
    code = f"from nn_numpy.data.files import read_regular; read_regular({str(tmp_path / 'fifo')!r})"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (
        proc.returncode == 1
        and "NotRegularFileError" in proc.stderr
        and "a FIFO, not a regular file" in proc.stderr
    )


def test_read_npy_reads_nothing_before_its_check_passed(tmp_path):
    path = tmp_path / "big.npy"
    with open(path, "wb") as file:  # a header declaring 8 TB, and no data
        np.lib.format.write_array_header_1_0(
            file, {"descr": "<f8", "fortran_order": False, "shape": (10**12,)}
        )
    headers = []

    def refuse(shape, fortran_order, dtype):
        headers.append((shape, fortran_order, dtype))
        raise NNError("refused")

    with open(path, "rb") as file, pytest.raises(NNError, match="refused"):
        read_npy(file, refuse)
    assert headers == [((10**12,), False, np.dtype("<f8"))]
    np.save(path, np.arange(6).reshape(2, 3))
    with open(path, "rb") as file:
        np.testing.assert_array_equal(
            read_npy(file, lambda *header: None), np.arange(6).reshape(2, 3)
        )


def test_a_npy_header_with_a_bad_escape_is_refused_without_a_warning(tmp_path):
    """Found by the fuzzing campaign: a mutated cache's header made NumPy's literal parser warn on stderr."""
    header = b"{'descr': '|u1', 'fortran_order': False, 'shape': (3,), '\\o': 1}"
    path = tmp_path / "bad.npy"
    path.write_bytes(b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header + b"abc")
    with warnings.catch_warnings(record=True) as shown, open(path, "rb") as file:
        warnings.simplefilter("always")
        with pytest.raises(Exception) as raised:
            read_npy(file, lambda *header: None)
    assert shown == [] and "Cannot parse header" in str(raised.value)


def test_read_regular_refuses_a_file_larger_than_its_limit_before_reading(tmp_path):
    path = tmp_path / "big"
    with open(path, "wb") as f:
        f.truncate(3 << 30)  # sparse: reading it would take 3 GiB
    with pytest.raises(NNError) as raised:
        read_regular(path, 1 << 20, "test file")
    assert str(raised.value) == f"{path}: 3.0 GiB, more than any test file can be (1.0 MiB at most)"
    path.write_bytes(b"x" * 10)
    assert read_regular(path, 10) == b"x" * 10


def test_a_cache_write_replaces_a_planted_symlink_and_leaves_its_target_alone(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    cache = tmp_path / "data" / "labels.npy"
    cache.parent.mkdir()
    cache.symlink_to(victim)
    with atomic_write(cache, follow=False) as file:
        file.write(b"cache")
    assert victim.read_text() == "precious" and not cache.is_symlink()
    assert cache.read_bytes() == b"cache"


def test_the_exact_cache_and_the_decoded_cache_never_follow_a_planted_symlink(
    tmp_path, data_dir, weights, test_set
):
    from nn_numpy import exact
    from nn_numpy.data.fetch import FILES
    from nn_numpy.data.mnist import load_mnist_test

    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    folder = tmp_path / "data"
    (folder / "mnist").mkdir(parents=True)
    for name in (
        "sample_weight.pkl",
        "mnist/t10k-images-idx3-ubyte.gz",
        "mnist/t10k-labels-idx1-ubyte.gz",
    ):
        (folder / name).symlink_to(data_dir / name)
    labels = "mnist/t10k-labels-idx1-ubyte.gz"
    decoded = folder / f"{labels[:-3]}.{FILES[labels][1][:16]}.npy"
    decoded.symlink_to(victim)
    load_mnist_test(data_dir=folder)
    exact.reference(weights, test_set[0][:3], cache_dir=folder)
    (cached,) = folder.glob("exact-*.npy")
    cached.unlink()
    cached.symlink_to(victim)
    exact.reference(weights, test_set[0][:3], cache_dir=folder)
    assert victim.read_text() == "precious"
    assert not decoded.is_symlink() and not cached.is_symlink()


def _npy_with_header_length(n):
    """A .npy v2 start whose header length field says ``n`` bytes."""
    return b"\x93NUMPY\x02\x00" + n.to_bytes(4, "little")


def test_a_npy_header_claiming_a_gigabyte_is_refused_before_it_is_read(tmp_path):
    import io

    from nn_numpy.data.files import read_npy

    with pytest.raises(
        ValueError, match=r"^a \.npy header of 1\.0 GiB: a real one is under 10000 bytes$"
    ):
        read_npy(io.BytesIO(_npy_with_header_length(2**30) + b" " * 100), lambda *h: None)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads VmHWM (Linux)")
def test_a_sparse_gigabyte_header_in_the_decoded_cache_costs_no_memory(tmp_path, data_dir):
    """The labels' cache replaced by a file whose header holds its claimed 1 GiB (sparse): ignored,
    the .gz decoded instead, and the process's peak memory stays far below the gigabyte."""
    import subprocess
    import sys

    from nn_numpy.data.fetch import FILES

    (tmp_path / "mnist").mkdir()
    for name in (
        "sample_weight.pkl",
        "mnist/t10k-images-idx3-ubyte.gz",
        "mnist/t10k-labels-idx1-ubyte.gz",
    ):
        (tmp_path / name).symlink_to(data_dir / name)
    labels = "mnist/t10k-labels-idx1-ubyte.gz"
    cache = tmp_path / f"{labels[:-3]}.{FILES[labels][1][:16]}.npy"
    with open(cache, "wb") as f:
        f.write(_npy_with_header_length(2**30))
        f.truncate(12 + 2**30)  # sparse: the claimed header is there, as spaces of zeros
    code = (  # VmHWM: this process's own peak (ru_maxrss keeps the forking parent's)
        "from nn_numpy.data.mnist import load_mnist_test; "
        f"x, t = load_mnist_test(data_dir={str(tmp_path)!r}); "
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]; "
        "print(len(t), int(hwm.split()[1]) // 1024)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    n, peak_mb = map(int, out.stdout.split())
    assert n == 10000 and peak_mb < 500, out.stderr
