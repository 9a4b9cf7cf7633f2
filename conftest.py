"""What both test folders share: the real data from $NN_DATA_DIR (see pytest_configure), the commands' test
helpers, the NumPy-only route (without torch, its tests are skipped with one reason), and the Hypothesis
profiles: ``ci`` (default) keeps runs short, ``fuzz`` is the campaign's (see tests/fuzz.py). ``make test``
runs pytest-xdist's ``-n auto --dist loadfile``: a file's tests stay on one worker, which computes its
fixtures once."""

import importlib.util
import os
import re
import sys
from pathlib import Path

import pytest
from hypothesis import settings

ROOT = Path(__file__).parent
HAS_TORCH = importlib.util.find_spec("torch") is not None
TORCH_MISSING = (
    "torch is not installed: pip install 'dlfs-ch3[torch]' for these tests (README: Quick start)"
)
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):  # a worker of `pytest -n`: its share of the cores
    # for OpenBLAS and torch (read at their import): spinning threads that outnumber the cores
    # slow torch down tenfold (docs/benchmarks.md: Threads beside other work)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(
            name, str(max(1, CORES // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
        )
settings.register_profile("ci", max_examples=200, deadline=None)
settings.register_profile(
    "fuzz", max_examples=int(os.environ.get("FUZZ_COUNT", 100_000)), deadline=None, database=None
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """``-n auto`` (make test): a worker per core, at most 4. Each worker imports torch and computes
    the session's fixtures (the exact reference among them) once more."""
    return min(4, CORES)


def _missing_data(folder):
    """Why ``folder`` cannot serve the tests (a raw MNIST file stands for its .gz), or None; no network."""
    from nn_numpy.data.fetch import TEST_SET, WEIGHTS

    if not folder.is_dir():
        return f"{folder} does not exist" if not folder.exists() else f"{folder} is not a folder"
    missing = [
        str(folder / n)
        for n in TEST_SET + (WEIGHTS,)
        if not (folder / n).is_file() and not (n.endswith(".gz") and (folder / n[:-3]).is_file())
    ]
    return missing and f"lacks {', '.join(missing)}"


def pytest_configure(config):
    """Point $NN_DATA_DIR at real data before any test runs.

    Set, it must hold MNIST's test set and the book's weights: else one line saying what is missing, and
    no run. Unset, the files are fetched into the user's cache; when they cannot be, the tests that need
    them (see :func:`data_dir`) are deselected and the run says so in one line.
    """
    config._nn_no_data = None
    if os.environ.get("NN_DATA_DIR"):
        folder = Path(os.environ["NN_DATA_DIR"]).expanduser()
        why = _missing_data(folder)
        if why:
            raise pytest.UsageError(
                f"NN_DATA_DIR={os.environ['NN_DATA_DIR']}: {why}: fill it with `dlfs-ch3 fetch-data "
                f"--data-dir {folder}` (README: The data directory), or unset NN_DATA_DIR to use "
                "the user's cache"
            )
        return
    import contextlib
    import io

    from nn_numpy.data.fetch import TEST_SET, WEIGHTS, fetch, gather, resolve_data_dir
    from nn_numpy.errors import NNError

    try:
        folder = resolve_data_dir()
        with contextlib.redirect_stderr(
            io.StringIO()
        ):  # a line per failed mirror: the summary says it once
            gather(*(lambda n=n: fetch(n) for n in (WEIGHTS,) + TEST_SET))
        os.environ["NN_DATA_DIR"] = str(folder)
    except NNError as err:
        config._nn_no_data = " ".join(str(err).split(": run `")[0].split())


@pytest.fixture(scope="session", autouse=True)
def _torch_cache_in_tmp_path(tmp_path_factory):
    """torch's compile cache (an SGD step makes one) under pytest's temporary folder, not $TMPDIR's."""
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path_factory.mktemp("torchinductor"))


def pytest_unconfigure(config):
    """Nothing left in $TMPDIR: pytest's own folders are removed (tmp_path_retention_policy) but
    their parent, pytest-of-<user>, stays unless empty and removed here."""
    factory = getattr(config, "_tmp_path_factory", None)
    basetemp = getattr(factory, "_basetemp", None)
    if basetemp is not None and getattr(factory, "_given_basetemp", None) is None:
        try:
            basetemp.parent.rmdir()
        except OSError:  # another run's folders are still in it
            pass


@pytest.hookimpl(tryfirst=True)  # before -m reads the marks
def pytest_collection_modifyitems(config, items):
    """A test that needs the exact reference of all 10,000 images (3 s, once) is slow. Without the
    data, the tests that need it are deselected: not run, and not counted as passed or skipped."""
    for item in items:
        if "exact_layers" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
    if config._nn_no_data is None:
        return
    needs = [item for item in items if "data_dir" in getattr(item, "fixturenames", ())]
    items[:] = [item for item in items if item not in needs]
    config.hook.pytest_deselected(items=needs)
    config._nn_not_run = len(needs)


def pytest_terminal_summary(terminalreporter, config):
    if getattr(config, "_nn_not_run", 0):
        terminalreporter.write_line(
            f"{config._nn_not_run} tests not run (deselected): they need MNIST's test set and the book's weights, and "
            f"{config._nn_no_data}. Get them with `dlfs-ch3 fetch-data`, or set NN_DATA_DIR to a folder holding them "
            "(README: The data directory)",
            yellow=True,
        )


def _skip_unless_torch():
    if not HAS_TORCH:
        pytest.skip(TORCH_MISSING)  # one place: pytest -ra folds every such skip into one line


class _TorchMissing(pytest.Item):
    def runtest(self):
        _skip_unless_torch()


def pytest_pycollect_makemodule(module_path, parent):
    """Without torch, a test file importing it is one skipped item, not a collection error."""
    if not HAS_TORCH and re.search(
        r"^(import|from) (torch|nn_torch)\b", module_path.read_text(), re.M
    ):
        module = pytest.Module.from_parent(parent, path=module_path)
        module.collect = lambda: [_TorchMissing.from_parent(module, name="needs torch")]
        return module


@pytest.fixture(scope="session")
def needs_torch():
    """``needs_torch(command=None)``: skip, with the one torch reason, when torch is absent and the test (or the
    ``dlfs-ch3`` command it runs) needs it."""

    def check(command=None):
        from dlfs_ch3.cli import NEEDS_TORCH

        if command is None or command in NEEDS_TORCH:
            _skip_unless_torch()

    return check


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """MNIST's test set and the book's weights, copied from $NN_DATA_DIR (checked at startup) into a
    session folder that $NN_DATA_DIR then names: every test and every command it runs shares the caches
    written beside the data (decoded arrays, the exact reference), and the user's folder is never
    written. Every test that needs the real data depends on this fixture: without the data it is
    deselected."""
    import shutil

    from nn_numpy.data.fetch import TEST_SET, WEIGHTS

    given, copy = Path(os.environ["NN_DATA_DIR"]).expanduser(), tmp_path_factory.mktemp("data")
    for name in TEST_SET + (WEIGHTS,):  # a hand-placed raw file stands for its .gz
        name = name if (given / name).is_file() else name[:-3]
        (copy / name).parent.mkdir(exist_ok=True)
        shutil.copyfile(given / name, copy / name)
    os.environ["NN_DATA_DIR"] = str(copy)
    return copy


@pytest.fixture(scope="session")
def weights(data_dir):
    from nn_numpy.data.weights import load_weights

    return load_weights(data_dir=data_dir)


@pytest.fixture(scope="session")
def test_set(data_dir):
    """MNIST's test set: ``(images (10000, 784) uint8, labels (10000,))``."""
    from nn_numpy.data.mnist import load_mnist_test

    return load_mnist_test(normalize=False, data_dir=data_dir)


@pytest.fixture(scope="session")
def numpy_layers(weights, test_set):
    """``layers(dtype_name) -> {a1 .. y}`` of NumPy on all test images, computed once per dtype."""
    import nn_numpy

    cache = {}

    def layers(dtype):
        if dtype not in cache:
            cache[dtype] = nn_numpy.forward_layers(weights, nn_numpy.normalize(test_set[0], dtype))
        return cache[dtype]

    return layers


@pytest.fixture(scope="session")
def exact_layers(weights, test_set, data_dir):
    """The exact forward pass on all test images, ``{layer: (hi, lo)}`` (nn_numpy.exact; about 3 s),
    cached beside the data, as the commands cache it: ``parity-report --exact`` reads it there."""
    from nn_numpy import exact

    return exact.reference(weights, test_set[0], cache_dir=data_dir)


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.cuda)])
def device(request):
    """Each torch test on "cpu", then on "cuda": skipped with the reason when CUDA is absent (the cpu case
    runs the same code)."""
    if request.param == "cuda":
        import torch

        if not torch.cuda.is_available():
            pytest.skip(
                f"CUDA is not available (torch {torch.__version__}); the cpu cases run the same code"
            )
    return request.param


@pytest.fixture(scope="session")
def run_command():
    """``run_command("evaluate", *args, env={...}, timeout=300) -> CompletedProcess``: ``dlfs-ch3 evaluate``
    as a user runs it, in a fresh process (``env`` is added to this process's environment)."""
    import subprocess

    def run(name, *args, env=None, timeout=300, **kwargs):
        return subprocess.run(
            [sys.executable, "-m", "dlfs_ch3", name, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "MPLBACKEND": "Agg", **(env or {})},
            cwd=kwargs.pop("cwd", ROOT),
            **kwargs,
        )

    return run


@pytest.fixture(scope="session")
def load_command():
    """``load_command("benchmark") -> the dlfs_ch3.benchmark module``."""
    import importlib

    return lambda name: importlib.import_module(f"dlfs_ch3.{name.replace('-', '_')}")


@pytest.fixture
def run_in_process(load_command, capsys):
    """``run_in_process("evaluate", *args) -> (exit code, stdout, stderr)`` through ``cli.run_main`` in this
    process, so a test can patch what the command calls first; a module may stand for the name."""
    from dlfs_ch3.cli import run_main

    def run_here(command, *args):
        module = load_command(command) if isinstance(command, str) else command
        with pytest.raises(SystemExit) as done:
            run_main(module.main, [str(a) for a in args])
        out, err = capsys.readouterr()
        return done.value.code, out, err

    return run_here


@pytest.fixture
def no_waits(monkeypatch, load_command):
    """``benchmark`` in this process without its 2048^3 peak matmuls (the compute bound's peak is
    set to 100 GFLOP/s) or its pauses between variants; a run through run_command keeps both."""
    script = load_command("benchmark")
    monkeypatch.setattr(script, "sgemm_peak", lambda use_torch: (100.0, "numpy"))
    monkeypatch.setattr(script.time, "sleep", lambda seconds: None)


@pytest.fixture(scope="session")
def assert_one_line_error():
    """``assert_one_line_error(result, text, code=2)``: a bad-input exit, ``code`` with one ``error: ...`` line on
    stderr holding ``text``, nothing on stdout, no traceback; ``result`` is a process or run_in_process's tuple."""

    def check(result, text, code=2):
        returncode, out, err = (
            result
            if isinstance(result, tuple)
            else (result.returncode, result.stdout, result.stderr)
        )
        assert (returncode, out) == (code, ""), err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert err.startswith("error: ") and text in err, err

    return check
