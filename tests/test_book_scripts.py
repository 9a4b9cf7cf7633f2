"""The book's two ch03 scripts, and every thin entry point in scripts/, as a learner runs them from a clone."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from dlfs_ch3.cli import COMMANDS, NEEDS_TORCH

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
BOOK_SCRIPTS = ["neuralnet_mnist.py", "neuralnet_mnist_batch.py"]


def run(script, *args):
    return subprocess.run(
        [sys.executable, str(SCRIPTS / script), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow  # a second or more: a fresh process, or the whole test set
@pytest.mark.parametrize("script", BOOK_SCRIPTS)
def test_prints_the_books_accuracy(script, data_dir):
    proc = run(script, "--data-dir", data_dir)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "Accuracy:0.9352\n", "")


@pytest.mark.parametrize("script", BOOK_SCRIPTS)
def test_a_bad_option_is_one_line_and_exit_2(script, assert_one_line_error):
    assert_one_line_error(run(script, "--batch"), "unrecognized arguments: --batch")


@pytest.mark.parametrize("script", BOOK_SCRIPTS)
def test_an_empty_dataset_is_one_line_and_exit_2(script, tmp_path, assert_one_line_error, data_dir):
    images, labels = tmp_path / "images.idx", tmp_path / "labels.idx"
    images.write_bytes(bytes([0, 0, 8, 3]) + (0).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
    labels.write_bytes(bytes([0, 0, 8, 1]) + (0).to_bytes(4, "big"))
    assert_one_line_error(
        run(script, "--images", images, "--labels", labels),
        f"{images} holds no images: nothing to evaluate",
    )


def test_every_command_has_its_script_and_no_script_imports_another():
    thin = {p.name for p in SCRIPTS.glob("*.py")} - set(BOOK_SCRIPTS)
    assert thin == {f"{name.replace('-', '_')}.py" for name in COMMANDS}
    for path in SCRIPTS.glob("*.py"):
        text = path.read_text()
        assert not any(
            f"import {p.stem}" in text or f"from {p.stem} " in text for p in SCRIPTS.glob("*.py")
        ), path


@pytest.mark.slow  # a second or more: a fresh process, or the whole test set
@pytest.mark.parametrize("name", COMMANDS)
def test_each_script_runs_its_command_or_says_in_one_line_what_to_install(name):
    proc = run(f"{name.replace('-', '_')}.py", "--help")
    if name in NEEDS_TORCH and importlib.util.find_spec("torch") is None:
        assert (proc.returncode, proc.stderr) == (
            2,
            f"error: dlfs-ch3 {name} needs PyTorch: pip install "
            "'dlfs-ch3[torch]' (README: Quick start, for the CPU build)\n",
        )
    else:
        assert proc.returncode == 0 and proc.stdout.startswith(f"usage: dlfs-ch3 {name}"), (
            proc.stderr
        )


@pytest.mark.parametrize("name", NEEDS_TORCH)
def test_without_torch_a_torch_command_says_in_one_line_what_to_install(name, monkeypatch, capsys):
    import importlib.util as util

    from dlfs_ch3 import cli

    find_spec = util.find_spec
    monkeypatch.setattr(
        util, "find_spec", lambda module, *a: None if module == "torch" else find_spec(module, *a)
    )
    with pytest.raises(SystemExit) as done:
        cli.main([name, "--help"])
    assert done.value.code == 2 and capsys.readouterr().err == (
        f"error: dlfs-ch3 {name} needs PyTorch: pip install 'dlfs-ch3[torch]' (README: Quick start, for the CPU build)\n"
    )


@pytest.mark.parametrize("name", NEEDS_TORCH)
def test_a_scripts_help_does_not_import_torch(name, monkeypatch, capsys):
    """scripts/ call run_command(name) with the script's own argv: --help is sys.argv[1]."""
    from dlfs_ch3 import cli

    asked = []
    monkeypatch.setattr(cli, "torch_problem", lambda try_import=True: asked.append(try_import))
    monkeypatch.setattr(sys, "argv", [str(SCRIPTS / f"{name.replace('-', '_')}.py"), "--help"])
    with pytest.raises(SystemExit) as done:
        cli.run_command(name)
    assert (done.value.code, asked) == (0, [False]) and "usage:" in capsys.readouterr().out
