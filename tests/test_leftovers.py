"""Killed runs, for real: ``dlfs-ch3 evaluate`` downloading from a trickling 127.0.0.1 mirror is sent SIGTERM,
SIGHUP, SIGINT or SIGKILL. A download is held in memory until verified, so none of them leaves a partial
file; what a killed atomic write leaves, the next run removes once its pid is gone, and nothing else."""

import os
import signal
import subprocess
import sys
import time

import pytest
from mirror_server import MirrorServer, refused_url

from nn_numpy.data.fetch import FILES, remove_stale_leftovers

CACHE = "t10k-images-idx3-ubyte." + FILES["mnist/t10k-images-idx3-ubyte.gz"][1][:16] + ".npy"


@pytest.fixture(scope="module")
def server(data_dir):
    files = {
        path.name: path.read_bytes()
        for path in (data_dir / "mnist").iterdir()
        if path.suffix == ".gz"
    }
    with MirrorServer(files, interval=0.5) as mirror:
        yield mirror


@pytest.fixture
def weights_only(tmp_path, data_dir):
    """A data dir holding the weights only: evaluate gets past them and downloads MNIST."""
    (tmp_path / "sample_weight.pkl").write_bytes((data_dir / "sample_weight.pkl").read_bytes())
    return tmp_path


def evaluate(data_dir, mirror):
    env = {
        **os.environ,
        "NN_MNIST_MIRRORS": mirror,
        "NN_WEIGHTS_URL": refused_url(),
        "NN_DOWNLOAD_TIMEOUT": "60",
    }
    # SIGINT as a terminal gives it: a shell runs background jobs with SIGINT ignored, which the
    # child would inherit, and then no Ctrl-C could reach it
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dlfs_ch3",
            "evaluate",
            "--backend",
            "numpy",
            "--data-dir",
            str(data_dir),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def downloading(server, proc):
    """Wait until ``proc`` is receiving the trickled body (at most ~30 s)."""
    for _ in range(600):
        if server.requests and time.monotonic() > downloading.since + 0.3:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no download started: {proc.communicate()}")


def listing(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.slow
@pytest.mark.parametrize(
    "signum,code,line",
    [
        (signal.SIGTERM, 143, "terminated"),
        (signal.SIGHUP, 129, "hung up"),
        (signal.SIGINT, 130, "interrupted"),
    ],
)
def test_sigterm_and_sighup_clean_up_as_ctrl_c_does(weights_only, server, signum, code, line):
    server.requests.clear()
    downloading.since = time.monotonic()
    proc = evaluate(weights_only, server.url("trickle"))
    downloading(server, proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert (
        proc.returncode == code and err.strip().splitlines()[-1].split("\r")[-1].strip() == line
    ), err
    assert listing(weights_only) == ["sample_weight.pkl"]  # no partial file, no folder made for it


def killed_writer(path):
    """A real process that writes ``path`` and is killed (SIGKILL) halfway, as a killed cache writer is."""
    code = (
        "import sys, time; f = open(sys.argv[1], 'wb'); f.write(b'\\x93NUMPY' + bytes(1000)); f.flush(); "
        "print('ready', flush=True); time.sleep(60)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout.readline() == "ready\n"
    proc.kill()
    proc.wait(timeout=30)
    return proc.pid


@pytest.mark.slow
def test_sigkill_leaves_no_partial_file_and_a_killed_writers_file_is_swept_by_the_next_run(
    weights_only, server
):
    folder = weights_only / "mnist"
    server.requests.clear()
    downloading.since = time.monotonic()
    proc = evaluate(weights_only, server.url("trickle"))
    downloading(server, proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert (
        proc.returncode == -signal.SIGKILL and listing(folder) == []
    )  # the bytes were in memory only

    folder.mkdir()
    dead = killed_writer(folder / "probe")
    stale = [
        f"{CACHE}.{dead}.k1ll3d_x.tmp",
        f"{CACHE}.2147483648.abcdefgh.tmp",
        f"{CACHE}.0.abcdefgh.tmp",
    ]
    for (
        name
    ) in stale:  # a killed writer's, and pids no process can have (one made every run exit 3)
        (folder / name).write_bytes(b"\x93NUMPY")
        aged(folder / name)
    keep = {
        f"{CACHE}.{os.getpid()}.l1ve_abc.tmp": b"\x93NUMPY",  # a live writer's
        "notes.1.abcdefgh.tmp": b"mine",
        "tmpabcdefgh": b"\x1f\x8b",
    }  # not this project's names
    for name, content in keep.items():
        (folder / name).write_bytes(content)
    proc = evaluate(weights_only, server.url("good"))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    names = [n.split("/")[1] for n in FILES if n.startswith("mnist/t10k")]
    caches = [f"{n[:-3]}.{FILES['mnist/' + n][1][:16]}.npy" for n in names]
    assert listing(folder) == sorted(names + caches + list(keep) + ["probe"])


def aged(path, seconds=120):
    """``path`` made ``seconds`` old: the sweep leaves anything younger than a minute alone."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_a_fresh_leftover_is_kept_whatever_its_pid_and_an_old_one_of_a_dead_pid_swept(tmp_path):
    """A pid not running here may be a live writer in another pid namespace, container or NFS client."""
    dead = killed_writer(tmp_path / "probe")
    (tmp_path / "probe").unlink()
    fresh, old = (
        tmp_path / f"sample_weight.pkl.{dead}.{tag}.tmp" for tag in ("fresh123", "old12345")
    )
    for path in (fresh, old):
        path.write_bytes(b"\x80")
    aged(old)
    aged(fresh, 50)
    assert remove_stale_leftovers(tmp_path) == [old.name] and fresh.exists()


def test_a_read_only_folder_is_left_alone(tmp_path):
    leftover = tmp_path / f"{CACHE}.2147483648.abcdefgh.tmp"
    leftover.write_bytes(b"\x93NUMPY")
    aged(leftover)
    tmp_path.chmod(0o555)
    try:
        assert remove_stale_leftovers(tmp_path) == [] and leftover.exists()
    finally:
        tmp_path.chmod(0o755)
    assert remove_stale_leftovers(tmp_path) == [leftover.name] and not leftover.exists()


def test_the_sweep_never_fails_a_run(tmp_path, monkeypatch):
    (tmp_path / f"{CACHE}.12345.abcdefgh.tmp").write_bytes(b"")

    def broken_kill(pid, sig):
        raise OverflowError("signed integer is greater than maximum")

    monkeypatch.setattr(os, "kill", broken_kill)
    assert (
        remove_stale_leftovers(tmp_path) == [] and remove_stale_leftovers(tmp_path / "absent") == []
    )


def test_fetching_the_weights_sweeps_the_data_dir(weights_only):
    from nn_numpy.data.fetch import fetch

    dead = killed_writer(weights_only / "probe")
    (weights_only / "probe").unlink()
    (weights_only / f"sample_weight.pkl.{dead}.abcdefgh.tmp").write_bytes(b"\x80")
    aged(weights_only / f"sample_weight.pkl.{dead}.abcdefgh.tmp")
    fetch("sample_weight.pkl", weights_only)
    assert listing(weights_only) == ["sample_weight.pkl"]
