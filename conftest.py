"""What both test folders share: the real data from $NN_DATA_DIR, and the Hypothesis profiles of
every property test: ``ci`` (default) keeps runs short and bounded, ``fuzz`` is the campaign's
(``HYPOTHESIS_PROFILE=fuzz FUZZ_COUNT=100000``; see tests/fuzz.py)."""

import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# The scripts import their shared CLI helpers as `cli`, from their own folder.
sys.path.insert(0, str(Path(__file__).parent / "scripts"))

settings.register_profile("ci", max_examples=200, deadline=None)
# No example database: a campaign's hundreds of thousands of inputs would only bloat .hypothesis/.
settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_COUNT", 100_000)), deadline=None,
                          database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_configure(config):
    """Point $NN_DATA_DIR at real data before any test module reads it.

    Unset, it becomes the user's cache folder, where the test files and the book's weights
    are fetched once (SHA-256 checked); CI and offline users set it to a folder holding them.
    """
    if os.environ.get("NN_DATA_DIR"):
        return
    from nn_numpy.data.download import fetch_mnist_file, fetch_weights, resolve_data_dir
    from nn_numpy.data.errors import NNError
    from nn_numpy.data.mnist import SPLITS

    try:
        for name in SPLITS["test"]:
            fetch_mnist_file(name)
        fetch_weights()
    except NNError as err:
        raise pytest.UsageError(f"the tests need MNIST's test set and the book's weights: {err}") from None
    os.environ["NN_DATA_DIR"] = str(resolve_data_dir())


@pytest.fixture(scope="session")
def weights():
    """The book's weights from $NN_DATA_DIR, through the safe loader."""
    from nn_numpy.data.weights import load_weights
    return load_weights()


@pytest.fixture(scope="session")
def test_set():
    """MNIST's test set from $NN_DATA_DIR: ``(images (10000, 784) uint8, labels (10000,))``."""
    from nn_numpy.data.mnist import load_mnist_test
    return load_mnist_test(normalize=False)


SCRIPTS_DIR = Path(__file__).parent / "scripts"


@pytest.fixture(scope="session")
def run_script():
    """``run_script("evaluate.py", *args, env={...}, timeout=300) -> CompletedProcess``: the script as a
    user runs it, in a fresh process (text output; ``env`` is added to this process's environment)."""
    import subprocess

    def run(name, *args, env=None, timeout=300, **kwargs):
        return subprocess.run([sys.executable, str(SCRIPTS_DIR / name), *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, "MPLBACKEND": "Agg", **(env or {})},
                              **kwargs)
    return run


@pytest.fixture(scope="session")
def load_script():
    """``load_script("benchmark.py") -> module``: the script imported without running its main."""
    import importlib.util

    def load(name):
        spec = importlib.util.spec_from_file_location(f"script_{name[:-3]}", SCRIPTS_DIR / name)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    return load


@pytest.fixture
def run_in_process(load_script, capsys):
    """``run_in_process("evaluate.py", *args) -> (exit code, stdout, stderr)`` through ``cli.run_main``, in
    this process, so a test can patch what the script calls first."""
    from cli import run_main

    def run(name, *args):
        with pytest.raises(SystemExit) as done:
            run_main(load_script(name).main, [str(a) for a in args])
        out, err = capsys.readouterr()
        return done.value.code, out, err
    return run


@pytest.fixture(scope="session")
def assert_one_line_error():
    """``assert_one_line_error(proc, text, code=2)``: a script's bad-input exit, ``code`` with one
    ``error: ...`` line on stderr holding ``text``, and no traceback."""
    def check(proc, text, code=2):
        assert proc.returncode == code, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.startswith("error: ") and text in proc.stderr, proc.stderr
    return check
