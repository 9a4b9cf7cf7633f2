"""Killed runs, for real: a script downloading from a trickling 127.0.0.1 mirror is sent SIGTERM,
SIGINT or SIGKILL. The first two clean up as Ctrl-C always did; what SIGKILL leaves, the next run
removes, once it is stale, and nothing that is not the project's."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mirror_server import MirrorServer, refused_url
from nn_numpy.data.download import MNIST_FILES, READ_TIMEOUT_S, remove_stale_leftovers

EVALUATE = Path(__file__).parents[1] / "scripts" / "evaluate.py"
TIMEOUT_S = 60  # NN_DOWNLOAD_TIMEOUT of every run here: the trickle outlasts the test, never the deadline
STALE_S = TIMEOUT_S + 2 * READ_TIMEOUT_S
CACHE = "t10k-images-idx3-ubyte." + MNIST_FILES["t10k-images-idx3-ubyte.gz"][:16] + ".npy"


@pytest.fixture(scope="module")
def server(data_dir):
    files = {path.name: path.read_bytes() for path in (data_dir / "mnist").iterdir()}
    with MirrorServer(files, trickle_interval=0.5) as mirror:
        yield mirror


@pytest.fixture
def weights_only(tmp_path, data_dir):
    """A data dir holding the weights only: evaluate.py gets past them and downloads MNIST."""
    (tmp_path / "sample_weight.pkl").write_bytes((data_dir / "sample_weight.pkl").read_bytes())
    return tmp_path


def evaluate(data_dir, mirror, **popen):
    env = {**os.environ, "NN_MNIST_MIRRORS": mirror, "NN_WEIGHTS_URL": refused_url(),
           "NN_DOWNLOAD_TIMEOUT": str(TIMEOUT_S)}
    return subprocess.Popen([sys.executable, str(EVALUATE), "--backend", "numpy", "--data-dir", str(data_dir)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def partial_download(folder, proc):
    """The pooch temporary file ``proc`` is downloading into, once it holds bytes (at most ~30 s)."""
    for _ in range(600):
        partial = [p for p in folder.glob("tmp*") if p.stat().st_size > 0] if folder.is_dir() else []
        if partial:
            return partial[0]
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.kill()
    pytest.fail(f"no partial download appeared in {folder}: {proc.communicate()}")


def listing(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("signum,code,line", [(signal.SIGTERM, 143, "terminated"),
                                              (signal.SIGINT, 130, "interrupted")])
def test_sigterm_cleans_up_as_ctrl_c_does(weights_only, server, signum, code, line):
    proc = evaluate(weights_only, server.url("trickle"))
    partial_download(weights_only / "mnist", proc)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    visible = [text.split("\r")[-1] for text in err.split("\n") if text.split("\r")[-1].strip()]
    assert visible[-1] == line and all(text.startswith("t10k-") for text in visible[:-1]), err  # bars, then it
    assert listing(weights_only) == ["sample_weight.pkl"]  # mnist/ was this run's: gone with the partial file


def killed_writer(path):
    """A real process that writes ``path`` and is killed (SIGKILL) halfway, as a killed cache writer is."""
    code = ("import sys, time; f = open(sys.argv[1], 'wb'); f.write(b'\\x93NUMPY' + bytes(1000)); f.flush(); "
            "print('ready', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.kill()
    proc.wait(timeout=30)


def test_what_sigkill_leaves_is_removed_by_the_next_run_once_stale(weights_only, server):
    folder = weights_only / "mnist"
    proc = evaluate(weights_only, server.url("trickle"))
    pooch_partial = partial_download(folder, proc)
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL and listing(folder) == [pooch_partial.name]  # SIGKILL: no cleanup

    # What other killed runs left: a cache half written by a process now dead (the pid is in the
    # name), and one of the older writer, whose name holds no pid.
    probe = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(probe.stdout)
    killed_writer(folder / f"{CACHE}.{dead_pid}.k1ll3d_x.tmp")
    old_style = folder / f"{CACHE}abcd_123.tmp"
    old_style.write_bytes(b"\x93NUMPY")
    empty = folder / "tmpempty__1"  # pooch made it, the run was killed before the first byte
    empty.write_bytes(b"")
    # What must stay: this live process's file, a partial too recent to be stale, and files that are
    # not the project's even though they look like temporary files.
    keep = {f"{CACHE}.{os.getpid()}.l1ve_abc.tmp": b"\x93NUMPY", "tmpfresh_12": b"\x1f\x8b\x08",
            "tmpnotours_": b"PK\x03\x04", "notes.1.abcdefgh.tmp": b"mine"}
    for name, content in keep.items():
        (folder / name).write_bytes(content)
    past = time.time() - STALE_S - 5
    for path in (pooch_partial, old_style, empty, folder / "tmpnotours_", folder / "notes.1.abcdefgh.tmp"):
        os.utime(path, (past, past))

    proc = evaluate(weights_only, server.url("good"))
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    names = [name for name in MNIST_FILES if name.startswith("t10k")]
    caches = [f"{name[:-3]}.{MNIST_FILES[name][:16]}.npy" for name in names]
    assert listing(folder) == sorted(names + caches + list(keep))

def test_a_read_only_folder_is_left_alone(tmp_path):
    leftover = tmp_path / "tmpabcdefgh"
    leftover.write_bytes(b"\x1f\x8b")
    os.utime(leftover, (0, 0))
    tmp_path.chmod(0o555)
    try:
        assert remove_stale_leftovers(tmp_path) == [] and leftover.exists()
    finally:
        tmp_path.chmod(0o755)
    assert remove_stale_leftovers(tmp_path) == ["tmpabcdefgh"] and not leftover.exists()


def test_fetching_the_weights_sweeps_the_data_dir(weights_only):
    from nn_numpy.data.download import fetch_weights

    probe = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    killed_writer(weights_only / f"sample_weight.pkl.{int(probe.stdout)}.abcdefgh.tmp")
    assert fetch_weights(weights_only) == weights_only / "sample_weight.pkl"
    assert listing(weights_only) == ["sample_weight.pkl"]
