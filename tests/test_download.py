"""Downloads for real, from a local 127.0.0.1 mirror whose prefixes misbehave; never the internet."""

import errno
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mirror_server import BEHAVIOURS, MirrorServer, refused_url
from nn_numpy.data import download
from nn_numpy.data.download import (MNIST_FILES, WEIGHTS_SHA256, fetch_mnist_file, fetch_weights, resolve_data_dir,
                               sha256_file)
from nn_numpy.data.errors import DataCorruptedError, DataNotFoundError, NNError

LABELS = "t10k-labels-idx1-ubyte.gz"
IMAGES = "t10k-images-idx3-ubyte.gz"
FAILURE = re.compile(r"^mirror (\S+) failed: (.+)$", re.MULTILINE)


@pytest.fixture(scope="module")
def server(data_dir):
    files = {path.name: path.read_bytes() for path in (data_dir / "mnist").iterdir()}
    files["sample_weight.pkl"] = (data_dir / "sample_weight.pkl").read_bytes()
    with MirrorServer(files) as mirror:
        yield mirror


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may reach the internet: every URL defaults to a refused local port. The deadline is
    short for the trickling mirror's sake, and still ample for a local download."""
    monkeypatch.setenv("NN_MNIST_MIRRORS", refused_url())
    monkeypatch.setenv("NN_WEIGHTS_URL", refused_url() + "sample_weight.pkl")
    monkeypatch.setenv("NN_DOWNLOAD_TIMEOUT", "3")


@pytest.fixture(params=["mode", "mount"])
def read_only(request, monkeypatch):
    """``read_only(folder)``: "mode" chmods it 555 like CI's shared dir (root included, by our own rule);
    "mount" keeps mode 755 but fails every write in it with EROFS, as a read-only mount does."""
    folders = []

    def refuse(*paths):
        if any(Path(p).resolve().parent in folders for p in paths):
            raise OSError(errno.EROFS, "Read-only file system", str(paths[0]))

    def make(folder):
        folders.append(folder.resolve())
        if request.param == "mode":
            folder.chmod(0o555)
        else:
            real_open, real_replace, real_rename = os.open, os.replace, os.rename
            writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT
            monkeypatch.setattr(os, "open", lambda p, flags, *a, **k:
                                refuse(p) if flags & writes else real_open(p, flags, *a, **k))
            monkeypatch.setattr(os, "replace", lambda a, b, **k: refuse(a, b) or real_replace(a, b, **k))
            monkeypatch.setattr(os, "rename", lambda a, b, **k: refuse(a, b) or real_rename(a, b, **k))
        return folder

    yield make
    for folder in folders:
        folder.chmod(0o755)


def listing(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def visible(stderr):
    """The lines a terminal ends up showing: progress bars redraw and erase themselves with \\r."""
    return [line.split("\r")[-1] for line in stderr.split("\n") if line.split("\r")[-1].strip()]


def failures(stderr):
    """``[(url, reason)]`` of the mirror-failure lines; asserts stderr shows nothing else but "downloaded"."""
    lines = visible(stderr)
    assert all(FAILURE.match(line) or line.startswith("downloaded ") for line in lines), lines
    return [FAILURE.match(line).groups() for line in lines if FAILURE.match(line)]


def test_the_file_comes_from_the_first_good_mirror_after_one_line_per_failing_one(tmp_path, server, monkeypatch,
                                                                                  capsys):
    bad = [refused_url()] + [server.url(b) for b in BEHAVIOURS if b != "good"]
    monkeypatch.setenv("NN_MNIST_MIRRORS", ",".join(bad + [server.url("good"), server.url("good") + "second/"]))
    server.requests.clear()

    path = fetch_mnist_file(IMAGES, tmp_path)

    assert path == tmp_path / "mnist" / IMAGES and sha256_file(path) == MNIST_FILES[IMAGES]
    assert listing(tmp_path / "mnist") == [IMAGES]
    assert [url for url, _ in failures(capsys.readouterr().err)] == [b + IMAGES for b in bad]
    assert server.requests == [f"/{b}/{IMAGES}" for b in BEHAVIOURS if b != "good"] + [f"/good/{IMAGES}"]


@pytest.mark.parametrize("behaviour,reason", [
    ("refused", "Connection refused"), ("403", "HTTP 403 Forbidden"), ("404", "HTTP 404 Not Found"),
    ("503", "HTTP 503 Service Unavailable"), ("html", "SHA-256"), ("truncated", "IncompleteRead"),
    ("wrong", "SHA-256"), ("endless", "it sent more than the file's 4,542 bytes"),
    ("oversized", "it announces 9,084 bytes; the file has 4,542"), ("trickle", "bytes after 3 s (NN_DOWNLOAD_TIMEOUT)")])
def test_each_failure_says_why_in_one_line_and_leaves_nothing(tmp_path, server, monkeypatch, capsys, behaviour,
                                                              reason, data_dir):
    bad = refused_url() if behaviour == "refused" else server.url(behaviour)
    monkeypatch.setenv("NN_MNIST_MIRRORS", f"{bad},{server.url('good')}")
    assert fetch_mnist_file(LABELS, tmp_path).read_bytes() == (data_dir / "mnist" / LABELS).read_bytes()
    (line,) = failures(capsys.readouterr().err)
    assert line[0] == bad + LABELS and reason in line[1] and line[1].endswith("; trying the next"), line
    assert listing(tmp_path / "mnist") == [LABELS]


def test_all_mirrors_failing_is_one_error_listing_the_files_and_the_folder(tmp_path, server, monkeypatch, capsys):
    bad = [server.url(b) for b in BEHAVIOURS if b != "good"]
    monkeypatch.setenv("NN_MNIST_MIRRORS", ",".join(bad))
    (tmp_path / "kept").mkdir()
    data_dir = tmp_path / "kept" / "new" / "dir"  # pooch would create new/dir/mnist: none may stay
    with pytest.raises(DataNotFoundError) as err:
        fetch_mnist_file(IMAGES, data_dir)
    message = str(err.value)
    assert all(name in message for name in MNIST_FILES) and str(data_dir / "mnist") in message
    assert "\n" not in message
    assert len(failures(capsys.readouterr().err)) == len(bad)
    assert listing(tmp_path) == ["kept"] and listing(tmp_path / "kept") == []


def test_an_interrupted_download_leaves_nothing(tmp_path, server, monkeypatch):
    def half_then_interrupt(url, output_file, *args):
        Path(output_file).write_bytes(b"\0" * 1000)
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "_stream", half_then_interrupt)
    monkeypatch.setenv("NN_MNIST_MIRRORS", server.url("good"))
    with pytest.raises(KeyboardInterrupt):
        fetch_mnist_file(IMAGES, tmp_path)
    assert listing(tmp_path) == []  # not even the mnist/ folder pooch made for it


def test_a_present_file_is_used_without_network_or_importing_pooch(tmp_path, data_dir):
    (tmp_path / "mnist").mkdir()
    (tmp_path / "mnist" / LABELS).write_bytes((data_dir / "mnist" / LABELS).read_bytes())
    code = ("import sys; from nn_numpy.data.download import fetch_mnist_file; "
            f"print(fetch_mnist_file({LABELS!r}, {str(tmp_path)!r})); "
            "print(sorted(m for m in ('pooch', 'requests', 'tqdm', 'platformdirs') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "NN_MNIST_MIRRORS": refused_url()})
    assert out.stdout.splitlines() == [str(tmp_path / "mnist" / LABELS), "[]"]
    assert out.stderr == ""


def test_a_corrupt_present_file_is_moved_aside_and_fetched_again(tmp_path, server, monkeypatch, capsys, data_dir):
    folder = tmp_path / "mnist"
    folder.mkdir()
    bad = (data_dir / "mnist" / LABELS).read_bytes()[:-10]
    (folder / LABELS).write_bytes(bad)
    monkeypatch.setenv("NN_MNIST_MIRRORS", server.url("good"))

    assert sha256_file(fetch_mnist_file(LABELS, tmp_path)) == MNIST_FILES[LABELS]

    (aside,) = [p for p in folder.iterdir() if p.name != LABELS]
    assert re.fullmatch(re.escape(LABELS) + r"\.corrupt-\d+", aside.name) and aside.read_bytes() == bad
    err = capsys.readouterr().err
    assert f"{folder / LABELS} fails its SHA-256 check" in err and aside.name in err


def test_a_corrupt_file_in_a_read_only_dir_is_an_error_with_both_hashes(tmp_path, read_only):
    folder = tmp_path / "mnist"
    folder.mkdir()
    bad = b"<html>not found</html>"
    (folder / LABELS).write_bytes(bad)
    read_only(folder)
    with pytest.raises(DataCorruptedError) as err:
        fetch_mnist_file(LABELS, tmp_path)
    message = str(err.value)
    assert str(folder / LABELS) in message and MNIST_FILES[LABELS] in message
    assert sha256_file(folder / LABELS) in message
    assert listing(folder) == [LABELS] and (folder / LABELS).read_bytes() == bad


def test_a_missing_file_in_a_read_only_dir_is_not_found_and_nothing_is_written(tmp_path, server, monkeypatch,
                                                                                read_only):
    folder = tmp_path / "mnist"
    folder.mkdir()
    read_only(folder)
    monkeypatch.setenv("NN_MNIST_MIRRORS", server.url("good"))
    with pytest.raises(DataNotFoundError, match="cannot be saved in " + re.escape(str(folder))):
        fetch_mnist_file(LABELS, tmp_path)
    assert listing(folder) == []


def test_a_hand_placed_uncompressed_file_is_used_when_the_gz_is_absent(tmp_path, data_dir):
    import gzip

    raw = tmp_path / "mnist" / LABELS[:-3]
    raw.parent.mkdir()
    raw.write_bytes(gzip.decompress((data_dir / "mnist" / LABELS).read_bytes()))
    assert fetch_mnist_file(LABELS, tmp_path) == raw  # the offline fixture would refuse any download


def test_weights_come_from_nn_weights_url(tmp_path, server, monkeypatch, capsys):
    monkeypatch.setenv("NN_WEIGHTS_URL", server.url("good") + "sample_weight.pkl")
    path = fetch_weights(tmp_path)
    assert path == tmp_path / "sample_weight.pkl" and sha256_file(path) == WEIGHTS_SHA256
    assert listing(tmp_path) == ["sample_weight.pkl"]
    monkeypatch.setenv("NN_WEIGHTS_URL", server.url("html") + "sample_weight.pkl")
    path.unlink()
    with pytest.raises(DataNotFoundError, match=f"put the book's sample_weight.pkl in {re.escape(str(tmp_path))}"):
        fetch_weights(tmp_path)
    assert len(failures(capsys.readouterr().err)) == 1 and listing(tmp_path) == []


def test_data_dir_is_the_argument_else_nn_data_dir_else_a_user_cache(tmp_path, monkeypatch):
    import platformdirs

    monkeypatch.setenv("NN_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("NN_DATA_DIR")
    assert resolve_data_dir() == Path(platformdirs.user_cache_dir("dlfs-ch3"))


def test_mirrors_come_from_nn_mnist_mirrors_in_order(monkeypatch):
    monkeypatch.setenv("NN_MNIST_MIRRORS", " http://a/x/ , http://b/y,")
    assert download.mnist_mirrors() == ["http://a/x/", "http://b/y"]
    monkeypatch.delenv("NN_MNIST_MIRRORS")
    assert download.mnist_mirrors() == list(download.DEFAULT_MIRRORS)
    assert download.DEFAULT_MIRRORS[0] == "https://ossci-datasets.s3.amazonaws.com/mnist/"


def test_an_unknown_file_name_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown MNIST file 'mnist.npz'"):
        fetch_mnist_file("mnist.npz", tmp_path)


@pytest.mark.parametrize("text", ["abc", "0", "-5", "inf", "nan", "1e999"])
def test_a_bad_nn_download_timeout_is_one_line(monkeypatch, text):
    monkeypatch.setenv("NN_DOWNLOAD_TIMEOUT", text)
    with pytest.raises(NNError, match=f"NN_DOWNLOAD_TIMEOUT must be a positive number of seconds, got {text!r}"):
        download.download_timeout()


def test_nn_download_timeout_sets_the_deadline_else_the_default(monkeypatch):
    monkeypatch.setenv("NN_DOWNLOAD_TIMEOUT", " 2.5 ")
    assert download.download_timeout() == 2.5
    monkeypatch.delenv("NN_DOWNLOAD_TIMEOUT")
    assert download.download_timeout() == download.DEFAULT_TIMEOUT_S == 900


def test_the_recorded_sizes_are_those_of_the_files(server, data_dir):
    assert download.MNIST_SIZES.keys() == MNIST_FILES.keys()
    for name in (IMAGES, LABELS):
        assert download.MNIST_SIZES[name] == (data_dir / "mnist" / name).stat().st_size
    assert download.WEIGHTS_SIZE == (data_dir / "sample_weight.pkl").stat().st_size


@pytest.mark.parametrize("data_dir_exists", [True, False])
def test_a_read_only_folder_is_never_written_even_to_make_mnist_in_it(tmp_path, server, monkeypatch, data_dir_exists):
    read_only = tmp_path / "ro"
    data_dir = read_only if data_dir_exists else read_only / "new"  # mnist/ absent either way
    read_only.mkdir()
    read_only.chmod(0o555)
    monkeypatch.setenv("NN_MNIST_MIRRORS", server.url("good"))
    try:
        with pytest.raises(DataNotFoundError, match=f"cannot be saved in {re.escape(str(read_only))} \\(read-only\\)"):
            fetch_mnist_file(LABELS, data_dir)
        assert listing(read_only) == []
    finally:
        read_only.chmod(0o755)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_downloaded_files_honour_the_umask(tmp_path, server, monkeypatch, umask):
    monkeypatch.setenv("NN_MNIST_MIRRORS", server.url("good"))
    monkeypatch.setenv("NN_WEIGHTS_URL", server.url("good") + "sample_weight.pkl")
    previous = os.umask(umask)
    try:
        paths = [fetch_mnist_file(LABELS, tmp_path), fetch_weights(tmp_path)]
    finally:
        os.umask(previous)
    assert [oct(stat.S_IMODE(p.stat().st_mode)) for p in paths] == [oct(0o666 & ~umask)] * 2


def test_no_home_folder_is_one_line_naming_data_dir_and_nn_data_dir(monkeypatch, run_in_process):
    """HOME unset and a uid with no passwd entry (``docker run --user 12345``)."""
    import pwd

    def no_entry(uid):
        raise KeyError(f"getpwuid(): uid not found: {uid}")

    for name in ("HOME", "NN_DATA_DIR", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(pwd, "getpwuid", no_entry)
    with pytest.raises(NNError, match="pass --data-dir or set NN_DATA_DIR"):
        resolve_data_dir()
    code, out, err = run_in_process("evaluate.py", "--backend", "numpy")
    assert code == 2 and out == "" and err.count("\n") == 1 and "--data-dir" in err and "NN_DATA_DIR" in err, err


CONCURRENT_FETCH = """
import sys, time
from pathlib import Path
from nn_numpy.data.download import sha256_file
from nn_numpy.data.mnist import load_mnist_test
go = Path(sys.argv[2])
while not go.exists():  # all start hashing the corrupt file together
    time.sleep(0.001)
images, labels = load_mnist_test(normalize=False, data_dir=sys.argv[1])
print(sha256_file(Path(sys.argv[1]) / "mnist" / "t10k-images-idx3-ubyte.gz"), labels.sum())
"""


def test_processes_racing_to_replace_a_corrupt_file_all_get_the_right_data(tmp_path, server, test_set, data_dir):
    (tmp_path / "mnist").mkdir()
    # large, so that hashing it takes long enough for all of them to find it corrupt at once
    (tmp_path / "mnist" / IMAGES).write_bytes((data_dir / "mnist" / IMAGES).read_bytes() + bytes(32 << 20))
    (tmp_path / "mnist" / LABELS).write_bytes((data_dir / "mnist" / LABELS).read_bytes())
    go = tmp_path / "go"
    env = {**os.environ, "NN_MNIST_MIRRORS": server.url("good"), "NN_DOWNLOAD_TIMEOUT": "60"}
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_FETCH, str(tmp_path), str(go)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(8)]
    time.sleep(1)  # let them all import and wait at the line; a late one only races less
    go.touch()
    results = [proc.communicate(timeout=120) + (proc.returncode,) for proc in procs]
    expected = f"{MNIST_FILES[IMAGES]} {test_set[1].sum()}\n"
    assert [(code, out) for out, err, code in results] == [(0, expected)] * 8, [err for _, err, _ in results]
    assert sha256_file(tmp_path / "mnist" / IMAGES) == MNIST_FILES[IMAGES]
