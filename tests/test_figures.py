"""``dlfs-ch3 figures`` writes every figure as a valid PNG of its stated size, and fails in one line."""

import contextlib
import io
import os
import struct
import subprocess
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


def test_an_interrupted_run_leaves_only_whole_figures(
    tmp_path, monkeypatch, data_dir, load_command, run_in_process
):
    from matplotlib.figure import Figure

    real_savefig, saved = Figure.savefig, []

    def interrupt_the_second(self, fname, **kwargs):
        if saved:
            fname.write(PNG_SIGNATURE)  # half a PNG, then Ctrl-C
            raise KeyboardInterrupt
        saved.append(fname)
        real_savefig(self, fname, **kwargs)

    monkeypatch.setattr(Figure, "savefig", interrupt_the_second)
    figures = load_command("figures")
    assert run_in_process(figures, "--out", tmp_path)[0] == 130
    first = next(iter(figures.FIGURES))
    assert os.listdir(tmp_path) == [first]
    assert png_size((tmp_path / first).read_bytes()) == tuple(
        round(s * figures.DPI) for s in figures.FIGURES[first]
    )


def test_missing_matplotlib_is_a_one_line_error(tmp_path):
    code = (
        "import sys; sys.modules['matplotlib'] = None; from dlfs_ch3.cli import main; "
        f"main(['figures', '--out', {str(tmp_path)!r}])"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr == "error: dlfs-ch3 figures needs matplotlib: pip install 'dlfs-ch3[plot]'\n"
    assert os.listdir(tmp_path) == []
