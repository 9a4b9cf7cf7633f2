"""The learners' notebook runs top to bottom in a fresh kernel, teaches PyTorch's own code, and prints only what
no machine changes: a fresh run prints every saved text output exactly."""

import copy
import os
import sys
from pathlib import Path

import pytest

for module in ("nbformat", "nbclient", "ipykernel"):
    pytest.importorskip(module, reason=f"{module} is missing: pip install -e '.[notebook]'")
import nbformat  # noqa: E402

from nn_numpy.network import BOOK_ACCURACY  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runner(load_command):
    return load_command("run-notebook")


@pytest.fixture(scope="module")
def saved(runner):
    return nbformat.read(runner.NOTEBOOK, as_version=4)


@pytest.fixture(scope="module")
def executed(runner, saved, data_dir):
    """A fresh run of the saved notebook, plus one cell that says which Python and which packages ran it."""
    nb = copy.deepcopy(saved)
    nb.cells.append(
        nbformat.v4.new_code_cell(
            "import sys, nn_numpy\nprint(sys.prefix)\nprint(nn_numpy.__file__)"
        )
    )
    return runner.execute(nb)  # raises CellExecutionError, naming the cell, if any cell fails


def images(nb):
    return sum(
        "image/png" in out.get("data", {})
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
    )


@pytest.mark.slow
def test_the_kernel_is_this_interpreter_with_this_clones_packages(executed, runner):
    assert runner.text_output(executed.cells[-1]).splitlines() == [
        sys.prefix,
        str(ROOT / "nn_numpy" / "__init__.py"),
    ]


@pytest.mark.slow
def test_a_fresh_run_prints_every_saved_text_output_and_draws_the_figures(executed, saved, runner):
    changes = runner.text_changes(saved, executed)
    assert not changes, "\n".join(f"cell {i}:\n--- saved\n{a}--- now\n{b}" for i, a, b in changes)
    assert images(executed) == images(saved) == 3  # %matplotlib inline, whatever MPLBACKEND says


def test_the_saved_outputs_hold_the_books_results(saved, runner):
    text = "".join(runner.text_output(cell) for cell in saved.cells if cell.cell_type == "code")
    assert (
        text.count(f"Accuracy: {BOOK_ACCURACY}\n") == 4
    )  # the book's loop and batches, in NumPy and in torch
    assert text.count("[0.31682708 0.69627909]") == 2
    assert "my leaky ReLU on cpu: not close!\nMismatched elements: 3 / 7" in text
    assert "MNIST labels (10000,): parity OK" in text and "dW1: parity OK" in text
    assert (
        "torch: every element of every layer within its proven bound of the exact result: True"
        in text
    )
    assert "TF32 inputs: some a1 elements beyond the float32 bound: True" in text


def test_the_code_teaches_pytorch_itself_beside_the_numpy_it_translates(saved):
    source = "\n".join(cell.source for cell in saved.cells if cell.cell_type == "code")
    for piece in (
        "torch.sigmoid(",
        "torch.relu(",
        "torch.softmax(",
        "nn.Linear(",
        "np.dot(",
        " @ ",
        "DataLoader(",
        "torch.bincount(",
        "state_dict",
        "load_state_dict(",
        ".backward()",
        "torch.optim.SGD(",
    ):
        assert piece in source, piece


def test_the_saved_notebook_ran_top_to_bottom_and_shows_no_timing_or_path(saved):
    code = [cell for cell in saved.cells if cell.cell_type == "code"]
    assert [cell.execution_count for cell in code] == list(range(1, len(code) + 1))
    outputs = nbformat.writes(nbformat.v4.new_notebook(cells=code))
    assert '"output_type": "error"' not in outputs and '"name": "stderr"' not in outputs
    for path in (str(ROOT), os.path.expanduser("~")):
        assert len(path) < 2 or path not in outputs, f"{path} in the saved outputs"
    assert not any("execution" in cell.metadata for cell in code), "timings recorded"


def test_text_changes_sees_every_code_cell_and_no_figure(runner):
    def notebook(accuracy, figure):
        printed = nbformat.v4.new_code_cell("print(acc)")
        printed.outputs = [nbformat.v4.new_output("stream", text=f"Accuracy: {accuracy}\n")]
        drawn = nbformat.v4.new_code_cell("plt.show()")
        drawn.outputs = [
            nbformat.v4.new_output(
                "display_data", data={"text/plain": "<Figure>", "image/png": figure}
            )
        ]
        return nbformat.v4.new_notebook(cells=[drawn, printed])

    assert runner.text_changes(notebook(0.9352, "AAAA"), notebook(0.9352, "BBBB")) == []
    assert runner.text_changes(notebook(0.9352, "AAAA"), notebook(0.9351, "AAAA")) == [
        (1, "Accuracy: 0.9352\n", "Accuracy: 0.9351\n")
    ]


def small_notebook(path, *sources, saved_text="2\n"):
    """A notebook of ``sources``, the last one's saved output ``saved_text``."""
    cells = [nbformat.v4.new_code_cell(src) for src in sources]
    cells[-1].outputs = [nbformat.v4.new_output("stream", text=saved_text)]
    nbformat.write(nbformat.v4.new_notebook(cells=cells), path)
    return path


@pytest.mark.slow
def test_the_command_saves_outputs_and_checks_them(run_command, tmp_path):
    path = small_notebook(tmp_path / "nb.ipynb", "x = 1", "print(x + 1)", saved_text="")
    assert run_command("run-notebook", path, "--check").returncode == 1  # "" saved, "2" printed
    proc = run_command("run-notebook", path)
    assert proc.returncode == 0 and proc.stderr == "", (
        proc.stderr
    )  # not even ipykernel's warning about local TCP
    assert nbformat.read(path, as_version=4).cells[1].outputs[0]["text"] == "2\n"
    proc = run_command("run-notebook", path, "--check")
    assert (proc.returncode, proc.stdout) == (0, "2 of 2 code cells print what was saved\n")


@pytest.mark.slow
def test_the_command_names_a_failing_cell_and_leaves_the_notebook_alone(
    run_command, tmp_path, assert_one_line_error
):
    path = small_notebook(tmp_path / "nb.ipynb", "print(1)", "assert 1 == 2, 'boom'")
    before = path.read_bytes()
    assert_one_line_error(
        run_command("run-notebook", path), "cell 1 failed: AssertionError: boom", code=1
    )
    assert path.read_bytes() == before and list(tmp_path.iterdir()) == [path]


@pytest.mark.slow
def test_a_cell_that_kills_its_kernel_is_one_line_and_exit_1(tmp_path, assert_one_line_error):
    """os._exit, SIGKILL and a segfault, each its own run-notebook, the three started together."""
    import subprocess

    kills = ["os._exit(1)", "os.kill(os.getpid(), signal.SIGKILL)", "ctypes.string_at(0)"]
    paths = [
        small_notebook(tmp_path / f"nb{i}.ipynb", "print(1)", f"import os, signal, ctypes\n{kill}")
        for i, kill in enumerate(kills)
    ]
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "dlfs_ch3", "run-notebook", "--check", path],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for path in paths
    ]
    for run in runs:
        out, err = run.communicate(timeout=300)
        assert_one_line_error((run.returncode, out, err), "cell 1 killed the kernel", code=1)


@pytest.mark.slow
def test_a_cell_past_its_time_limit_is_one_line(
    monkeypatch, tmp_path, run_in_process, assert_one_line_error
):
    from dlfs_ch3 import run_notebook

    monkeypatch.setattr(run_notebook, "CELL_TIMEOUT_S", 1)
    path = small_notebook(tmp_path / "nb.ipynb", "import time\ntime.sleep(60)")
    assert_one_line_error(
        run_in_process(run_notebook, str(path), "--check"),
        "cell 0 did not finish within 1 s",
        code=1,
    )


@pytest.mark.slow
def test_a_kernel_that_cannot_start_and_missing_data_are_the_environment(
    run_command, tmp_path, assert_one_line_error
):
    path = small_notebook(tmp_path / "nb.ipynb", "print(1)")
    spec = tmp_path / "jupyter" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        '{"argv": ["/nonexistent/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],'
        ' "display_name": "gone", "language": "python"}'
    )
    assert_one_line_error(
        run_command(
            "run-notebook", path, "--check", env={"JUPYTER_PATH": str(tmp_path / "jupyter")}
        ),
        "cannot start the notebook's python3 kernel: [Errno 2] No such file or directory",
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(
        run_command(
            "run-notebook",
            path,
            "--check",
            "--data-dir",
            empty,
            env={
                "NN_MNIST_MIRRORS": "http://127.0.0.1:9/",
                "NN_WEIGHTS_URL": "http://127.0.0.1:9/w.pkl",
            },
        ),
        f"{empty} lacks sample_weight.pkl",
    )
