"""What both test folders share: the real data from $NN_DATA_DIR (see pytest_configure), the scripts'
test helpers, and the Hypothesis profiles of every property test: ``ci`` (default) keeps runs short
and bounded, ``fuzz`` is the campaign's (``HYPOTHESIS_PROFILE=fuzz FUZZ_COUNT=100000``; see tests/fuzz.py)."""

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


def _missing_data(folder):
    """The files of MNIST's test set and the book's weights absent from ``folder`` (a raw MNIST file,
    uncompressed by hand, stands for its .gz); no network, no hashing."""
    from nn_numpy.data.download import WEIGHTS_NAME
    from nn_numpy.data.mnist import SPLITS

    wanted = [folder / "mnist" / name for name in SPLITS["test"]] + [folder / WEIGHTS_NAME]
    return [str(p) for p in wanted if not p.is_file() and not (p.suffix == ".gz" and p.with_suffix("").is_file())]


def _fetch_data():
    """Fetch MNIST's test set and the book's weights into the per-user cache (SHA-256 checked):
    ``(folder, None)``, or ``(folder, why not)`` in one line when they cannot be fetched."""
    import contextlib
    import io

    from nn_numpy.data.download import fetch_mnist_file, fetch_weights, resolve_data_dir
    from nn_numpy.data.errors import NNError
    from nn_numpy.data.mnist import SPLITS

    folder = resolve_data_dir()
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # a line per failed mirror: the summary says it once
            for name in SPLITS["test"]:
                fetch_mnist_file(name)
            fetch_weights()
    except NNError as err:
        return folder, " ".join(str(err).split(";")[0].split())
    return folder, None


def pytest_configure(config):
    """Point $NN_DATA_DIR at real data before any test module reads it.

    Set, it must hold MNIST's test set and the book's weights: else one line naming every missing
    file, and no run. Unset, the files are fetched once into the user's cache; when they cannot be,
    the tests that need them (see :func:`data_dir`) are deselected and the run says so in one line.
    """
    config._nn_no_data = None
    if os.environ.get("NN_DATA_DIR"):
        folder = Path(os.environ["NN_DATA_DIR"]).expanduser()
        missing = _missing_data(folder)
        if missing:
            raise pytest.UsageError(f"NN_DATA_DIR={os.environ['NN_DATA_DIR']} lacks {', '.join(missing)}: "
                                    f"fill it with `python scripts/fetch_data.py --data-dir {folder}` "
                                    "(README: The data directory), or unset NN_DATA_DIR to use the user's cache")
        return
    folder, why_not = _fetch_data()
    if why_not:
        config._nn_no_data = f"{why_not} (data folder {folder})"
    else:
        os.environ["NN_DATA_DIR"] = str(folder)


def pytest_collection_modifyitems(config, items):
    """Without the data, the tests that need it are deselected: not run, and not counted as passed or skipped."""
    if config._nn_no_data is None:
        return
    needs_data = ["data_dir" in getattr(item, "fixturenames", ()) for item in items]
    deselected = [item for item, needs in zip(items, needs_data) if needs]
    items[:] = [item for item, needs in zip(items, needs_data) if not needs]
    config.hook.pytest_deselected(items=deselected)
    config._nn_not_run = len(deselected)


def pytest_terminal_summary(terminalreporter, config):
    """The one line that says why tests were deselected and how to get the data."""
    if getattr(config, "_nn_not_run", 0):
        terminalreporter.write_line(
            f"{config._nn_not_run} tests not run (deselected): they need MNIST's test set and the book's weights, and "
            f"{config._nn_no_data}. Get them with `python scripts/fetch_data.py`, or set NN_DATA_DIR to a folder "
            "holding them (README: The data directory)", yellow=True)


@pytest.fixture(scope="session")
def data_dir():
    """The folder holding MNIST's test set and the book's weights ($NN_DATA_DIR, checked at startup).
    Every test that needs the real data depends on this fixture: without the data it is deselected."""
    return Path(os.environ["NN_DATA_DIR"])


@pytest.fixture(scope="session")
def weights(data_dir):
    """The book's weights from the data folder, through the safe loader."""
    from nn_numpy.data.weights import load_weights
    return load_weights(data_dir=data_dir)


@pytest.fixture(scope="session")
def test_set(data_dir):
    """MNIST's test set from the data folder: ``(images (10000, 784) uint8, labels (10000,))``."""
    from nn_numpy.data.mnist import load_mnist_test
    return load_mnist_test(normalize=False, data_dir=data_dir)


@pytest.fixture(scope="session")
def numpy_layers(weights, test_set):
    """``layers(dtype_name) -> {a1 .. y}`` of NumPy on all test images, computed once per dtype."""
    import numpy as np

    import nn_numpy

    cache = {}

    def layers(dtype):
        if dtype not in cache:
            cache[dtype] = nn_numpy.forward_layers(weights, nn_numpy.normalize(test_set[0], np.dtype(dtype).type))
        return cache[dtype]
    return layers


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    """Each torch test on "cpu", then on "cuda": skipped with the reason when CUDA is absent (the cpu case
    runs the same code). torch is imported only here, so a NumPy-only install still collects the rest."""
    if request.param == "cuda":
        torch = pytest.importorskip("torch")
        if not torch.cuda.is_available():
            pytest.skip(f"CUDA is not available (torch {torch.__version__}); the cpu cases run the same code")
    return request.param


SCRIPTS_DIR = Path(__file__).parent / "scripts"


@pytest.fixture(scope="session")
def run_script():
    """``run_script("evaluate.py", *args, env={...}, timeout=300) -> CompletedProcess``: the script as a
    user runs it, in a fresh process (text output; ``env`` is added to this process's environment)."""
    import subprocess

    def run_as_user(name, *args, env=None, timeout=300, **kwargs):
        return subprocess.run([sys.executable, str(SCRIPTS_DIR / name), *map(str, args)], capture_output=True,
                              text=True, timeout=timeout, env={**os.environ, "MPLBACKEND": "Agg", **(env or {})},
                              **kwargs)
    return run_as_user


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
    this process, so a test can patch what the script calls first; give a module from :func:`load_script`
    instead of the name to patch the script's own globals."""
    from cli import run_main

    def run_here(script, *args):
        module = load_script(script) if isinstance(script, str) else script
        with pytest.raises(SystemExit) as done:
            run_main(module.main, [str(a) for a in args])
        out, err = capsys.readouterr()
        return done.value.code, out, err
    return run_here


@pytest.fixture(scope="session")
def assert_one_line_error():
    """``assert_one_line_error(proc, text, code=2)``: a script's bad-input exit, ``code`` with one
    ``error: ...`` line on stderr holding ``text``, and no traceback."""
    def check(proc, text, code=2):
        assert proc.returncode == code, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.startswith("error: ") and text in proc.stderr, proc.stderr
    return check
