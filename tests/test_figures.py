"""``dlfs-ch3 figures`` writes every figure as a valid PNG of its stated size, and fails in one line."""

import contextlib
import io
import os
import struct
import sys

import pytest

from dlfs_ch3.cli import run_main

pytest.importorskip(
    "matplotlib", reason="figures need the plot extra: pip install 'dlfs-ch3[plot]'"
)
import torch  # noqa: F401, E402  (the figures overlay torch's curves; without torch this file is one skip)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(data):
    """``(width, height)`` from a PNG's IHDR chunk, which must come first."""
    assert data[:8] == PNG_SIGNATURE, "not a PNG signature"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert (length, kind) == (13, b"IHDR"), "first chunk is not IHDR"
    return struct.unpack(">II", data[16:24])


@pytest.fixture(scope="module")
def written(tmp_path_factory, load_command, data_dir):
    """Runs the script once, as its ``__main__`` does, into a folder that does not exist yet."""
    out = tmp_path_factory.mktemp("figures") / "new" / "folder"
    figures = load_command("figures")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout), pytest.raises(SystemExit) as done:
        run_main(figures.main, ["--out", str(out)])
    return figures, out, done.value.code, stdout.getvalue()


@pytest.mark.slow
def test_every_figure_is_a_png_of_its_stated_size(written):
    figures, out, code, _ = written
    assert code == 0
    assert sorted(os.listdir(out)) == sorted(figures.FIGURES)  # and no .tmp left behind
    for name, (width, height) in figures.FIGURES.items():
        data = (out / name).read_bytes()
        assert png_size(data) == (round(width * figures.DPI), round(height * figures.DPI)), name
        assert len(data) > 20_000, f"{name} is nearly empty"


@pytest.mark.slow
def test_the_output_folder_is_named_when_done(written):
    figures, out, _, stdout = written
    assert stdout == f"wrote {len(figures.FIGURES)} figures to {out}\n"


def test_an_output_path_that_is_a_file_is_a_one_line_error(tmp_path, run_in_process):
    blocker = tmp_path / "figures"
    blocker.write_text("not a folder")
    code, _, err = run_in_process("figures", "--out", blocker)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and str(blocker) in err, err
    assert blocker.read_text() == "not a folder"


@pytest.mark.slow
@pytest.mark.parametrize("where", ["drawing", "writing"])
def test_an_interrupted_or_failed_run_leaves_nothing_new(
    tmp_path, monkeypatch, data_dir, load_command, run_in_process, where
):
    """Ctrl-C while the second figure is drawn, or while it is written: the first figure written
    and the folders made are removed again."""
    from matplotlib.figure import Figure

    import nn_numpy.data.files as files

    calls = []

    def second_call_interrupts(real):
        def wrapper(*args, **kwargs):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            return real(*args, **kwargs)

        return wrapper

    if where == "drawing":
        monkeypatch.setattr(Figure, "savefig", second_call_interrupts(Figure.savefig))
    else:
        monkeypatch.setattr(files, "atomic_write", second_call_interrupts(files.atomic_write))
    out = tmp_path / "new" / "dir"
    assert run_in_process(load_command("figures"), "--out", out)[0] == 130
    assert os.listdir(tmp_path) == []


def test_inputs_and_targets_are_checked_before_anything_is_made(tmp_path, run_in_process):
    code, _, err = run_in_process(
        "figures", "--out", tmp_path / "new" / "dir", "--weights", tmp_path / "no.pkl"
    )
    assert code == 2 and "weights file not found" in err and os.listdir(tmp_path) == []
    (tmp_path / "misclassified.png").mkdir()
    code, _, err = run_in_process("figures", "--out", tmp_path)
    assert (
        code == 2
        and err
        == f"error: cannot write {tmp_path / 'misclassified.png'}: something other than a file is there\n"
    )
    assert os.listdir(tmp_path) == ["misclassified.png"]


def test_missing_matplotlib_is_a_one_line_error(tmp_path, monkeypatch, run_in_process):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib raises ImportError
    code, _, err = run_in_process("figures", "--out", tmp_path)
    assert code == 2
    assert err == "error: dlfs-ch3 figures needs matplotlib: pip install 'dlfs-ch3[plot]'\n"
    assert os.listdir(tmp_path) == []
