"""nn_numpy.data.fetch for real: a local 127.0.0.1 mirror whose prefixes misbehave; never the internet."""

import errno
import hashlib
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mirror_server import BEHAVIOURS, SERVING, MirrorServer, refused_url

from nn_numpy.data import fetch as fetching
from nn_numpy.data.fetch import FILES, WEIGHTS, fetch, resolve_data_dir
from nn_numpy.errors import DataCorruptedError, DataNotFoundError, NNError

LABELS, IMAGES = "mnist/t10k-labels-idx1-ubyte.gz", "mnist/t10k-images-idx3-ubyte.gz"
FAILURE = re.compile(r"^mirror (\S+) failed: (.+)$", re.MULTILINE)
SLOW = ("trickle", "slowheaders", "continue", "redirect")  # these fail by the deadline alone


@pytest.fixture(scope="module")
def server(data_dir):
    files = {Path(name).name: (data_dir / name).read_bytes() for name in (LABELS, IMAGES, WEIGHTS)}
    with MirrorServer(files) as mirror:
        yield mirror


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """No test may reach the internet: every URL is a refused local port unless a test says otherwise."""
    monkeypatch.setenv("NN_MNIST_MIRRORS", refused_url())
    monkeypatch.setenv("NN_WEIGHTS_URL", refused_url() + WEIGHTS)
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
            real_open, real_replace = os.open, os.replace
            writes = os.O_WRONLY | os.O_RDWR | os.O_CREAT
            monkeypatch.setattr(
                os,
                "open",
                lambda p, flags, *a, **k: (
                    refuse(p) if flags & writes else real_open(p, flags, *a, **k)
                ),
            )
            monkeypatch.setattr(
                os, "replace", lambda a, b, **k: refuse(a, b) or real_replace(a, b, **k)
            )
        return folder

    yield make
    for folder in folders:
        folder.chmod(0o755)


def listing(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def failures(stderr):
    """``[(url, reason)]`` of the mirror-failure lines; asserts stderr shows nothing else but "downloaded"."""
    lines = [line.split("\r")[-1] for line in stderr.split("\n") if line.split("\r")[-1].strip()]
    assert all(FAILURE.match(line) or line.startswith("downloaded ") for line in lines), lines
    return [FAILURE.match(line).groups() for line in lines if FAILURE.match(line)]


def test_the_file_comes_from_the_first_good_mirror_after_one_line_per_failing_one(
    tmp_path, server, monkeypatch, capsys, data_dir
):
    bad = [refused_url()] + [
        server.url(b) for b in BEHAVIOURS if b not in SERVING + ("auth",) + SLOW
    ]
    monkeypatch.setenv(
        "NN_MNIST_MIRRORS", ",".join(bad + [server.url("good"), server.url("good") + "second/"])
    )
    server.requests.clear()
    assert fetch(IMAGES, tmp_path) == (data_dir / IMAGES).read_bytes()
    assert listing(tmp_path / "mnist") == [Path(IMAGES).name]
    assert [url for url, _ in failures(capsys.readouterr().err)] == [
        b + Path(IMAGES).name for b in bad
    ]
    assert server.requests[-1] == f"/good/{Path(IMAGES).name}"


@pytest.mark.parametrize(
    "behaviour,reason",
    [
        ("refused", "Connection refused"),
        ("403", "HTTP 403 Forbidden"),
        ("404", "HTTP 404 Not Found"),
        ("503", "HTTP 503 Service Unavailable"),
        ("html", "SHA-256"),
        ("truncated", "the body ended after 2,271 of the 4,542 bytes announced"),
        ("wrong", "SHA-256"),
        ("endless", "it sent more than the file's 4,542 bytes"),
        ("oversized", "it announces 9,084 bytes; the file has 4,542"),
        ("badlength", "an invalid length, '²'"),
        ("trickle", "bytes after 0.5 s (NN_DOWNLOAD_TIMEOUT)"),
        ("auth", "HTTP 401 Unauthorized"),
    ],
)
def test_each_failure_says_why_in_one_line_and_leaves_nothing(
    tmp_path, server, monkeypatch, capsys, behaviour, reason, data_dir
):
    bad = refused_url() if behaviour == "refused" else server.url(behaviour)
    monkeypatch.setenv("NN_MNIST_MIRRORS", f"{bad},{server.url('good')}")
    if behaviour == "trickle":  # the only one the deadline ends
        monkeypatch.setenv("NN_DOWNLOAD_TIMEOUT", "0.5")
    assert fetch(LABELS, tmp_path) == (data_dir / LABELS).read_bytes()
    (line,) = failures(capsys.readouterr().err)
    assert (
        line[0] == bad + Path(LABELS).name
        and reason in line[1]
        and line[1].endswith("; trying the next")
    ), line
    assert listing(tmp_path / "mnist") == [Path(LABELS).name]


@pytest.mark.slow
@pytest.mark.parametrize("behaviour", SLOW)
def test_the_deadline_covers_the_whole_request(tmp_path, data_dir, monkeypatch, capsys, behaviour):
    """Headers a byte each 0.2 s, endless ``100 Continue``, redirects one each 0.2 s, a trickling body: none
    waits long enough for a per-read timeout, and each costs NN_DOWNLOAD_TIMEOUT (here 0.5 s) and a
    little, then the next mirror is tried."""
    files = {Path(LABELS).name: (data_dir / LABELS).read_bytes()}
    with MirrorServer(files, interval=0.2) as slow:
        monkeypatch.setenv("NN_MNIST_MIRRORS", f"{slow.url(behaviour)},{slow.url('good')}")
        monkeypatch.setenv("NN_DOWNLOAD_TIMEOUT", "0.5")
        start = time.monotonic()
        assert fetch(LABELS, tmp_path) == files[Path(LABELS).name]
        took = time.monotonic() - start
    (line,) = failures(capsys.readouterr().err)
    assert "after 0.5 s (NN_DOWNLOAD_TIMEOUT)" in line[1] and 0.5 <= took < 1.5, (line, took)


@pytest.mark.slow
def test_an_abandoned_request_is_shut_down_not_left_reading(tmp_path, data_dir, monkeypatch):
    """At the deadline the request's socket is shut down: its thread ends at once, instead of
    trickling on in the background for as long as the mirror keeps sending."""
    import threading

    files = {Path(LABELS).name: (data_dir / LABELS).read_bytes()}
    before = threading.active_count()
    with MirrorServer(files, interval=0.2) as slow:
        monkeypatch.setenv("NN_MNIST_MIRRORS", slow.url("trickle"))
        monkeypatch.setenv("NN_DOWNLOAD_TIMEOUT", "0.5")
        with pytest.raises(DataNotFoundError):
            fetch(LABELS, tmp_path)
        deadline = time.monotonic() + 1.5
        while threading.active_count() > before + 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the server's own threads: its loop and one per connection
        assert threading.active_count() <= before + 2


def test_redirects_are_followed_without_reading_their_bodies_and_bounded_in_number(
    tmp_path, server, monkeypatch, capsys, data_dir
):
    monkeypatch.setenv("NN_MNIST_MIRRORS", f"{server.url('redirectbody')}")
    server.sent.clear()
    assert (
        fetch(LABELS, tmp_path) == (data_dir / LABELS).read_bytes()
    )  # its endless body never read
    fast = MirrorServer({Path(LABELS).name: (data_dir / LABELS).read_bytes()}, interval=0)
    with fast:
        monkeypatch.setenv("NN_MNIST_MIRRORS", fast.url("redirect"))
        with pytest.raises(
            DataNotFoundError, match=f"more than {fetching.MAX_REDIRECTS} redirects"
        ):
            fetch(LABELS, tmp_path / "other")
        assert len(fast.requests) == fetching.MAX_REDIRECTS + 1


def test_credentials_in_a_mirror_url_are_sent_and_never_printed(
    tmp_path, server, monkeypatch, capsys, data_dir
):
    good, wrong = server.url("auth", "user:secret@"), server.url("auth", "user:wrong-secret@")
    monkeypatch.setenv("NN_MNIST_MIRRORS", f"{wrong},{good}")
    assert fetch(LABELS, tmp_path) == (data_dir / LABELS).read_bytes()
    err = capsys.readouterr().err
    assert "secret" not in err and err.count("***@127.0.0.1") == 2, err


def test_all_mirrors_failing_is_one_error_naming_the_file_and_the_folder(
    tmp_path, server, monkeypatch, capsys
):
    bad = [server.url(b) for b in BEHAVIOURS if b not in SERVING + ("token",) + SLOW]
    monkeypatch.setenv("NN_MNIST_MIRRORS", ",".join(bad))
    (tmp_path / "kept").mkdir()
    data_dir = tmp_path / "kept" / "new" / "dir"  # no folder made for the file may stay
    with pytest.raises(DataNotFoundError) as err:
        fetch(IMAGES, data_dir)
    message = str(err.value)
    assert (
        err.value.missing == (IMAGES,)
        and str(data_dir / "mnist") in message
        and "\n" not in message
    )
    assert capsys.readouterr().err == ""  # one error says it all: no line per mirror
    assert f"({len(bad)} URLs tried: " in message and "HTTP 404 Not Found" in message
    assert "Connection refused" not in message or message.count("Connection refused") == 1
    assert listing(tmp_path) == ["kept"] and listing(tmp_path / "kept") == []


def test_an_interrupted_download_leaves_nothing(tmp_path, server, monkeypatch):
    def interrupt(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(fetching, "_get", interrupt)
    monkeypatch.setenv("NN_MNIST_MIRRORS", server.url("good"))
    with pytest.raises(KeyboardInterrupt):
        fetch(IMAGES, tmp_path)
    assert listing(tmp_path) == []


def test_importing_the_chapter_or_reading_a_present_file_loads_no_download_machinery(
    tmp_path, data_dir
):
    (tmp_path / "mnist").mkdir()
    (tmp_path / LABELS).write_bytes((data_dir / LABELS).read_bytes())
    code = (
        "import sys, hashlib, nn_numpy; from nn_numpy.data.fetch import fetch; "
        f"print(hashlib.sha256(fetch({LABELS!r}, {str(tmp_path)!r})).hexdigest()); "
        "print(sorted(m for m in ('pooch', 'requests', 'tqdm', 'urllib3', 'platformdirs', 'http.client', 'torch') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "NN_MNIST_MIRRORS": refused_url()},
    )
    assert out.stdout.splitlines() == [FILES[LABELS][1], "[]"] and out.stderr == ""


@pytest.mark.parametrize("damage", ["cut", "same size"])
def test_a_corrupt_present_file_is_moved_aside_and_fetched_again(
    tmp_path, server, monkeypatch, capsys, data_dir, damage
):
    good = (data_dir / LABELS).read_bytes()
    bad = good[:-10] if damage == "cut" else good[:-1] + b"x"
    folder = tmp_path / "mnist"
    folder.mkdir()
    monkeypatch.setenv("NN_MNIST_MIRRORS", server.url("good"))
    for _ in range(2):  # twice in the same second: the first file set aside is never replaced
        (tmp_path / LABELS).write_bytes(bad)
        assert fetch(LABELS, tmp_path) == good
    asides = [p for p in folder.iterdir() if p.name != Path(LABELS).name]
    assert len(asides) == 2 and all(p.read_bytes() == bad for p in asides)
    assert all(
        re.fullmatch(re.escape(Path(LABELS).name) + r"\.corrupt-\d+-\w+", p.name) for p in asides
    )
    err = capsys.readouterr().err
    why = "has 4,532 bytes, not 4,542" if damage == "cut" else "fails its SHA-256 check"
    assert f"{tmp_path / LABELS} {why}" in err and asides[0].name in err


def test_a_good_file_another_process_just_put_there_is_not_moved_aside(
    tmp_path, monkeypatch, data_dir, capsys
):
    """Between reading a corrupt file and moving it aside, another process replaced it with the good one."""
    good = (data_dir / LABELS).read_bytes()
    (tmp_path / "mnist").mkdir()
    (tmp_path / LABELS).write_bytes(good[:-1] + b"x")
    real_stat, calls = os.stat, []

    def replaced_meanwhile(path, *args, **kwargs):
        if str(path) == str(tmp_path / LABELS) and not calls:
            calls.append(path)
            fresh = tmp_path / "fresh"
            fresh.write_bytes(good)
            os.replace(fresh, tmp_path / LABELS)
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", replaced_meanwhile)
    assert (
        fetch(LABELS, tmp_path) == good
    )  # judged again, and used: the offline fixture refuses any download
    assert listing(tmp_path / "mnist") == [Path(LABELS).name] and capsys.readouterr().err == ""


def test_a_file_of_the_wrong_size_is_never_read(tmp_path):
    """In a child process limited to 1 GB: a 3 GiB sparse sample_weight.pkl is refused from its size."""
    import resource

    with open(tmp_path / WEIGHTS, "wb") as f:
        f.truncate(3 << 30)
    (tmp_path / WEIGHTS).chmod(0o444)
    tmp_path.chmod(0o555)  # read-only: an error, not a move aside and a download
    code = f"from nn_numpy.data.fetch import fetch; fetch({WEIGHTS!r}, {str(tmp_path)!r})"
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)),
        )
    finally:
        tmp_path.chmod(0o755)
    assert proc.stderr.splitlines()[-1] == (
        f"nn_numpy.errors.DataCorruptedError: {tmp_path / WEIGHTS} has "
        f"3,221,225,472 bytes, not 181,853 and {tmp_path} is read-only: replace "
        "the file by hand"
    ), proc.stderr


def test_a_corrupt_file_in_a_read_only_dir_is_an_error_with_both_hashes(
    tmp_path, read_only, data_dir
):
    folder = tmp_path / "mnist"
    folder.mkdir()
    bad = (data_dir / LABELS).read_bytes()[:-1] + b"x"
    (tmp_path / LABELS).write_bytes(bad)
    read_only(folder)
    with pytest.raises(DataCorruptedError) as err:
        fetch(LABELS, tmp_path)
    assert str(tmp_path / LABELS) in str(err.value) and FILES[LABELS][1] in str(err.value)
    assert (
        hashlib.sha256(bad).hexdigest() in str(err.value) and "read-only" in str(err.value).lower()
    )
    assert listing(folder) == [Path(LABELS).name] and (tmp_path / LABELS).read_bytes() == bad


def test_a_missing_file_in_a_read_only_dir_is_one_line_and_nothing_is_written(
    tmp_path, server, monkeypatch, read_only
):
    """A mode of 555 is seen before downloading; a read-only mount only when the file is saved."""
    folder = tmp_path / "mnist"
    folder.mkdir()
    read_only(folder)
    monkeypatch.setenv("NN_MNIST_MIRRORS", server.url("good"))
    with pytest.raises(NNError) as err:
        fetch(LABELS, tmp_path)
    assert str(err.value) in (
        f"cannot save the downloaded {Path(LABELS).name} in {folder}: Read-only file system",
        f"{Path(LABELS).name} is missing and cannot be saved in {folder} (read-only); put the "
        f"MNIST files {', '.join(Path(n).name for n in fetching.TRAIN_SET + fetching.TEST_SET)} "
        f"in {folder} (or set NN_DATA_DIR / --data-dir)",
    )
    assert listing(folder) == []


@pytest.mark.parametrize("kind", ["fifo", "dev zero", "folder"])
def test_a_special_file_in_a_data_files_place_is_never_read_or_replaced(
    tmp_path, server, monkeypatch, kind
):
    """In a child process with a timeout: it was a hang, hashing /dev/zero."""
    path = tmp_path / WEIGHTS
    {"fifo": os.mkfifo, "dev zero": lambda p: p.symlink_to("/dev/zero"), "folder": os.mkdir}[kind](
        path
    )
    code = f"from nn_numpy.data.fetch import fetch; fetch({WEIGHTS!r}, {str(tmp_path)!r})"
    proc = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NN_WEIGHTS_URL": server.url("good") + WEIGHTS},
    )
    what = {"fifo": "a FIFO", "dev zero": "a character device", "folder": "a folder"}[kind]
    assert proc.stderr.splitlines()[-1] == (
        f"nn_numpy.errors.NNError: {path}: cannot read it ({what}, not a regular "
        "file): replace it with the file by hand"
    ), proc.stderr
    assert listing(tmp_path) == [WEIGHTS] and os.lstat(path).st_mode == os.lstat(path).st_mode


def test_weights_come_from_nn_weights_url(tmp_path, server, monkeypatch, capsys, data_dir):
    monkeypatch.setenv("NN_WEIGHTS_URL", server.url("good") + WEIGHTS)
    assert fetch(WEIGHTS, tmp_path) == (data_dir / WEIGHTS).read_bytes() and listing(tmp_path) == [
        WEIGHTS
    ]
    monkeypatch.setenv("NN_WEIGHTS_URL", server.url("html") + WEIGHTS)
    (tmp_path / WEIGHTS).unlink()
    with pytest.raises(
        DataNotFoundError,
        match=f"tried: the bytes fail the SHA-256 check .*put the book's {WEIGHTS} in {re.escape(str(tmp_path))}",
    ):
        fetch(WEIGHTS, tmp_path)
    assert failures(capsys.readouterr().err) == [] and listing(tmp_path) == []


def test_a_full_disk_is_named_as_the_cause(tmp_path, server, monkeypatch):
    """On a 64 kB tmpfs where root may mount one; elsewhere the disk fills at fsync, as it can on NFS."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = (
        os.geteuid() == 0
        and not subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True
        ).returncode
    )
    if not mounted:

        def full(fd):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "fsync", full)
    try:
        monkeypatch.setenv("NN_MNIST_MIRRORS", server.url("good"))
        with pytest.raises(NNError) as err:
            fetch(IMAGES, disk)
        assert str(err.value) == (
            f"cannot save the downloaded {Path(IMAGES).name} in {disk / 'mnist'}: "
            "No space left on device"
        ) and not isinstance(err.value, DataNotFoundError)
        assert listing(disk) == []
    finally:
        if mounted:
            subprocess.run(["umount", str(disk)], check=True)


def test_the_data_dir_is_the_argument_else_nn_data_dir_else_a_user_cache(tmp_path, monkeypatch):
    import platformdirs

    monkeypatch.setenv("NN_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir() == tmp_path / "env"
    monkeypatch.delenv("NN_DATA_DIR")
    assert resolve_data_dir() == Path(platformdirs.user_cache_dir("dlfs-ch3"))


@pytest.mark.parametrize(
    "make, says",
    [
        (lambda p: p.write_text("x"), "data dir {p} is not a folder"),
        (
            lambda p: (p.symlink_to(p.with_name("loop")), p.with_name("loop").symlink_to(p)),
            "data dir {p}: Too many levels of symbolic links",
        ),
        (lambda p: None, "data dir ~nosuchuser/x: cannot expand ~nosuchuser (no such user)"),
        (lambda p: None, "data dir {long}: File name too long"),
    ],
    ids=["a file", "a symlink loop", "no such user", "a name too long"],
)
def test_a_data_dir_that_cannot_be_one_is_named_as_such(tmp_path, make, says):
    path, long = tmp_path / "data", tmp_path / ("x" * 300)
    make(path)
    given = "~nosuchuser/x" if "nosuchuser" in says else long if "long" in says else path
    with pytest.raises(NNError) as err:
        resolve_data_dir(given)
    assert str(err.value) == says.format(p=path, long=long)


def test_mirrors_come_from_nn_mnist_mirrors_in_order(monkeypatch):
    monkeypatch.setenv("NN_MNIST_MIRRORS", " http://a/x/ , http://b/y,")
    assert fetching.urls(LABELS) == [
        "http://a/x/t10k-labels-idx1-ubyte.gz",
        "http://b/y/t10k-labels-idx1-ubyte.gz",
    ]
    monkeypatch.delenv("NN_MNIST_MIRRORS")
    assert (
        fetching.urls(LABELS)[0]
        == "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz"
    )


@pytest.mark.parametrize("text", ["abc", "0", "-5", "inf", "nan", "1e999"])
def test_a_bad_nn_download_timeout_is_one_line(monkeypatch, text):
    monkeypatch.setenv("NN_DOWNLOAD_TIMEOUT", text)
    with pytest.raises(
        NNError, match=f"NN_DOWNLOAD_TIMEOUT must be a positive number of seconds, got {text!r}"
    ):
        fetching.download_timeout()


def test_nn_download_timeout_sets_the_deadline_else_the_default(monkeypatch):
    monkeypatch.setenv("NN_DOWNLOAD_TIMEOUT", " 2.5 ")
    assert fetching.download_timeout() == 2.5
    monkeypatch.delenv("NN_DOWNLOAD_TIMEOUT")
    assert fetching.download_timeout() == fetching.DEFAULT_TIMEOUT_S == 900


def test_the_pinned_sizes_and_hashes_are_those_of_the_files(data_dir):
    for name in (IMAGES, LABELS, WEIGHTS):
        data = (data_dir / name).read_bytes()
        assert FILES[name] == (len(data), hashlib.sha256(data).hexdigest())


@pytest.mark.parametrize("exists", [True, False])
def test_a_read_only_folder_is_never_written_even_to_make_mnist_in_it(
    tmp_path, server, monkeypatch, exists
):
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    monkeypatch.setenv("NN_MNIST_MIRRORS", server.url("good"))
    try:
        with pytest.raises(
            DataNotFoundError,
            match=f"cannot be saved in {re.escape(str(read_only))} \\(read-only\\)",
        ):
            fetch(LABELS, read_only if exists else read_only / "new")
        assert listing(read_only) == []
    finally:
        read_only.chmod(0o755)


@pytest.mark.parametrize("umask", [0o022, 0o002, 0o077])
def test_downloaded_files_honour_the_umask(tmp_path, server, monkeypatch, umask):
    monkeypatch.setenv("NN_MNIST_MIRRORS", server.url("good"))
    monkeypatch.setenv("NN_WEIGHTS_URL", server.url("good") + WEIGHTS)
    previous = os.umask(umask)
    try:
        fetch(LABELS, tmp_path)
        fetch(WEIGHTS, tmp_path)
    finally:
        os.umask(previous)
    assert [oct(stat.S_IMODE((tmp_path / n).stat().st_mode)) for n in (LABELS, WEIGHTS)] == [
        oct(0o666 & ~umask)
    ] * 2


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
    code, out, err = run_in_process("evaluate", "--backend", "numpy")
    assert (
        code == 2
        and out == ""
        and err.count("\n") == 1
        and "--data-dir" in err
        and "NN_DATA_DIR" in err
    ), err


CONCURRENT_FETCH = """
import sys, time, hashlib
from pathlib import Path
from nn_numpy.data.fetch import fetch
go = Path(sys.argv[2])
while not go.exists():  # all start reading the corrupt file together
    time.sleep(0.001)
print(hashlib.sha256(fetch("mnist/t10k-images-idx3-ubyte.gz", sys.argv[1])).hexdigest())
"""


@pytest.mark.slow
def test_processes_racing_to_replace_a_corrupt_file_all_get_the_right_data(
    tmp_path, server, data_dir
):
    (tmp_path / "mnist").mkdir()
    (tmp_path / IMAGES).write_bytes(
        (data_dir / IMAGES).read_bytes()[:-1] + b"x"
    )  # the right size, the wrong hash
    go = tmp_path / "go"
    env = {**os.environ, "NN_MNIST_MIRRORS": server.url("good"), "NN_DOWNLOAD_TIMEOUT": "60"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_FETCH, str(tmp_path), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    time.sleep(1)  # let them all import and wait at the line; a late one only races less
    go.touch()
    results = [proc.communicate(timeout=120) + (proc.returncode,) for proc in procs]
    assert [(code, out) for out, err, code in results] == [(0, FILES[IMAGES][1] + "\n")] * 8, [
        err for _, err, _ in results
    ]
    assert hashlib.sha256((tmp_path / IMAGES).read_bytes()).hexdigest() == FILES[IMAGES][1]


@pytest.mark.parametrize("status", ["303", "307", "308"])
def test_every_redirect_status_is_followed(tmp_path, server, monkeypatch, data_dir, status):
    monkeypatch.setenv("NN_MNIST_MIRRORS", server.url(status))
    server.requests.clear()
    assert fetch(LABELS, tmp_path) == (data_dir / LABELS).read_bytes()
    assert server.requests == [f"/{status}/{Path(LABELS).name}", f"/good/{Path(LABELS).name}"]


def test_a_token_with_no_password_is_sent_as_basic_authentication(
    tmp_path, server, monkeypatch, data_dir
):
    monkeypatch.setenv("NN_MNIST_MIRRORS", server.url("token", "token@"))
    assert fetch(LABELS, tmp_path) == (data_dir / LABELS).read_bytes()


def test_a_mirror_url_with_a_bad_port_is_that_mirror_failing_not_a_crash(
    tmp_path, server, monkeypatch, capsys, data_dir
):
    monkeypatch.setenv("NN_MNIST_MIRRORS", f"http://127.0.0.1:99999/,{server.url('good')}")
    assert fetch(LABELS, tmp_path) == (data_dir / LABELS).read_bytes()
    (line,) = failures(capsys.readouterr().err)
    assert line[0] == "http://127.0.0.1:99999/" + Path(LABELS).name and "out of range" in line[1]


def test_the_bytes_returned_are_the_bytes_hashed(tmp_path, monkeypatch, data_dir):
    """The file replaced on disk the moment it is hashed: fetch returns the bytes it hashed, not a
    second read of the name."""
    import hashlib

    from nn_numpy.data import fetch as fetching

    good = (data_dir / LABELS).read_bytes()
    (tmp_path / "mnist").mkdir()
    (tmp_path / LABELS).write_bytes(good)
    real = hashlib.sha256

    def hash_then_swap(data=b""):
        other = tmp_path / "other"
        other.write_bytes(b"not the labels")
        os.replace(other, tmp_path / LABELS)
        return real(data)

    monkeypatch.setattr(fetching.hashlib, "sha256", hash_then_swap)
    assert fetch(LABELS, tmp_path) == good
