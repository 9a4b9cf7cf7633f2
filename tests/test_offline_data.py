"""The offline route: ``dlfs-ch3 fetch-data`` fills a folder; a command, or the test run, without its data says in
one line which files are missing and how to get them."""

import subprocess
import sys
from pathlib import Path

import pytest
from mirror_server import MirrorServer, refused_url

ROOT = Path(__file__).resolve().parents[1]
TEST_FILES = [
    "mnist/t10k-images-idx3-ubyte.gz",
    "mnist/t10k-labels-idx1-ubyte.gz",
    "sample_weight.pkl",
]


@pytest.fixture
def no_network(monkeypatch):
    """Every download refused at once: a closed local port for MNIST's mirrors and for the weights."""
    url = refused_url()
    monkeypatch.setenv("NN_MNIST_MIRRORS", url)
    monkeypatch.setenv("NN_WEIGHTS_URL", url + "sample_weight.pkl")
    return url


def test_fetch_data_fills_a_new_folder_with_the_verified_files(
    tmp_path, data_dir, run_in_process, monkeypatch
):
    files = {Path(name).name: (data_dir / name).read_bytes() for name in TEST_FILES}
    folder = tmp_path / "new" / "data"
    with MirrorServer(files) as server:
        monkeypatch.setenv("NN_MNIST_MIRRORS", server.url("good"))
        monkeypatch.setenv("NN_WEIGHTS_URL", server.url("good") + "sample_weight.pkl")
        code, out, err = run_in_process("fetch-data", "--data-dir", folder)
    assert code == 0 and "%" not in err  # a download this fast draws no progress bar
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == sorted(
        TEST_FILES
    )
    assert [line.split(" (")[0] for line in out.splitlines()] == [
        str(folder / n) for n in TEST_FILES
    ] + [f"{folder} holds the 3 files"]
    assert out.count("SHA-256 verified") == 3


def test_fetch_data_offline_names_every_file_it_could_not_fetch(tmp_path, no_network, run_command):
    proc = run_command("fetch-data", "--data-dir", tmp_path, "--train")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.splitlines()[-1] == (
        "error: could not fetch mnist/t10k-images-idx3-ubyte.gz, mnist/t10k-labels-idx1-ubyte.gz, "
        "mnist/train-images-idx3-ubyte.gz, mnist/train-labels-idx1-ubyte.gz, sample_weight.pkl into "
        f"{tmp_path}; see the README's 'The data directory' for where to get them by hand"
    )


def test_fetch_data_says_why_a_file_that_is_there_is_unusable(tmp_path, no_network, run_command):
    (tmp_path / "sample_weight.pkl").mkdir()  # in the file's place, and no network to replace it
    proc = run_command("fetch-data", "--data-dir", tmp_path)
    assert proc.returncode == 2 and proc.stderr.splitlines()[-1] == (
        f"error: {tmp_path / 'sample_weight.pkl'}: cannot read it (a folder, not a regular file): replace it with "
        "the file by hand"
    ), proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "command", [["-m", "dlfs_ch3", "evaluate"], [str(ROOT / "scripts" / "neuralnet_mnist.py")]]
)
def test_missing_data_names_every_file_the_command_needs_at_once(command, tmp_path, no_network):
    proc = subprocess.run(
        [sys.executable, *command, "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    (error,) = proc.stderr.splitlines()  # one line: no line per mirror before it
    assert error.startswith(
        f"error: {tmp_path} lacks sample_weight.pkl, mnist/t10k-images-idx3-ubyte.gz, "
        "mnist/t10k-labels-idx1-ubyte.gz, which could not be downloaded (Connection refused): "
        f"run `dlfs-ch3 fetch-data --data-dir {tmp_path}`"
    ), error
    assert "%" not in proc.stderr  # a mirror that fails draws no progress bar
    assert "train" not in error  # evaluation needs the test set only
    assert list(tmp_path.iterdir()) == []


def test_given_weights_are_not_asked_for(tmp_path, no_network, run_command, data_dir):
    proc = run_command(
        "evaluate",
        "--backend",
        "numpy",
        "--data-dir",
        tmp_path,
        "--weights",
        data_dir / "sample_weight.pkl",
    )
    assert proc.stderr.splitlines()[-1].startswith(
        f"error: {tmp_path} lacks mnist/t10k-images-idx3-ubyte.gz, "
        "mnist/t10k-labels-idx1-ubyte.gz, which"
    )


# --- the test run itself, without its data: a tiny suite under the real root conftest.py ------------------

TINY_SUITE = """
def test_needs_the_data(data_dir):
    assert (data_dir / "sample_weight.pkl").is_file()


def test_needs_nothing():
    assert True
"""


def run_pytest(folder, env):
    """pytest on ``folder`` (a copy of the root conftest.py and a tiny suite) in a fresh process."""
    (folder / "conftest.py").write_text((ROOT / "conftest.py").read_text())  # ROOT is on PYTHONPATH
    (folder / "test_tiny.py").write_text(TINY_SUITE)
    clean = {k: v for k, v in __import__("os").environ.items() if not k.startswith("NN_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(folder)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=folder,
        env={**clean, "PYTHONPATH": str(ROOT), **env},
    )


@pytest.mark.slow
@pytest.mark.parametrize("lacks", ["the folder", "a file", "every file"])
def test_nn_data_dir_without_the_files_is_one_line_and_no_run(tmp_path, lacks, data_dir):
    folder = tmp_path / "data"
    if lacks != "the folder":
        (folder / "mnist").mkdir(parents=True)
    if lacks == "a file":
        for name in TEST_FILES[:2]:
            (folder / name).write_bytes((data_dir / name).read_bytes())
    (tmp_path / "suite").mkdir()
    proc = run_pytest(tmp_path / "suite", {"NN_DATA_DIR": str(folder)})
    assert proc.returncode != 0 and "passed" not in proc.stdout
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    why = {
        "the folder": f"{folder} does not exist",
        "a file": f"lacks {folder / TEST_FILES[2]}",
        "every file": f"lacks {', '.join(str(folder / n) for n in TEST_FILES)}",
    }[lacks]
    assert len(lines) == 1 and lines[0].startswith(
        f"ERROR: NN_DATA_DIR={folder}: {why}: fill it with "
        f"`dlfs-ch3 fetch-data --data-dir {folder}`"
    ), lines


@pytest.mark.slow
def test_no_data_and_no_network_runs_the_rest_and_says_why_the_others_did_not_run(tmp_path):
    url = refused_url()
    (tmp_path / "suite").mkdir()
    proc = run_pytest(
        tmp_path / "suite",
        {
            "XDG_CACHE_HOME": str(tmp_path / "cache"),
            "NN_MNIST_MIRRORS": url,
            "NN_WEIGHTS_URL": url + "w.pkl",
        },
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("1 passed, 1 deselected")
    (why,) = [line for line in proc.stdout.splitlines() if "not run" in line]
    assert why.startswith(
        "1 tests not run (deselected): they need MNIST's test set and the book's weights, and "
        f"{tmp_path / 'cache' / 'dlfs-ch3'} lacks sample_weight.pkl, mnist/t10k-images-idx3-ubyte.gz, "
        "mnist/t10k-labels-idx1-ubyte.gz, which could not be downloaded ("
    )
    assert why.endswith(
        "Get them with `dlfs-ch3 fetch-data`, or set NN_DATA_DIR to a folder holding them "
        "(README: The data directory)"
    )


def test_a_read_only_home_names_the_folder_that_cannot_be_made(
    tmp_path, run_command, assert_one_line_error
):
    """No NN_DATA_DIR and a HOME that cannot hold the per-user cache: nothing could be downloaded,
    and the line says why, not 'could not be downloaded' with advice to fetch there."""
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o555)
    try:
        proc = run_command(
            "evaluate",
            "--backend",
            "numpy",
            env={"HOME": str(home), "NN_DATA_DIR": "", "XDG_CACHE_HOME": ""},
        )
    finally:
        home.chmod(0o755)
    assert_one_line_error(
        proc, f"and cannot be made: {home} is read-only, so nothing was downloaded"
    )
    assert "fetch-data" not in proc.stderr and list(home.iterdir()) == []
