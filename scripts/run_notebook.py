#!/usr/bin/env python
"""Run the learners' notebook top to bottom in a fresh kernel and save it with its outputs.

    python scripts/run_notebook.py            # notebooks/chapter3_numpy_to_pytorch.ipynb, in place
    python scripts/run_notebook.py --check    # run it and compare its key values with the saved ones

The kernel is this interpreter's ``python3`` (ipykernel), importing the packages of this clone,
in an empty temporary folder so that nothing it writes lands in the repository. No timings are
recorded, so a re-run changes only what the machine changes (float32 differences, versions).
Cells tagged ``key-value`` print only what no machine changes (accuracy, labels, verdicts):
``--check`` and tests/test_notebook.py hold a fresh run to their saved text.
Exit codes: 0 ok, 1 a cell failed or a key value changed, 2 bad input or environment.
"""

import copy
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]  # the packages from a clone, installed or not; `cli` beside us

from cli import EXIT_FAILED, EXIT_OK, ArgumentParser, run_main  # noqa: E402
from nn_numpy.data.errors import NNError  # noqa: E402
from nn_numpy.data.files import atomic_write, read_regular  # noqa: E402

NOTEBOOK = os.path.join(ROOT, "notebooks", "chapter3_numpy_to_pytorch.ipynb")
KEY_TAG = "key-value"
CELL_TIMEOUT_S = 300


def parse_args(argv):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebook", nargs="?", default=NOTEBOOK, help="the notebook (default: the chapter's)")
    p.add_argument("--check", action="store_true", help="compare the key values with the saved ones; write nothing")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    return p.parse_args(argv)


def execute(nb):
    """Execute the ``NotebookNode`` ``nb`` in place, top to bottom, in a fresh kernel; return it.

    Raises ``nbclient.exceptions.CellExecutionError`` at the first cell that fails.
    """
    from nbclient import NotebookClient

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory() as cwd:
        # log level ERROR: ipykernel 7 warns on every start that local TCP is unencrypted
        client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT_S, record_timing=False,
                                extra_arguments=["--log-level=ERROR"], resources={"metadata": {"path": cwd}})
        client.execute(env=env)
    return nb


def text_output(cell):
    """What a code cell printed and returned, as one text: streams, text/plain results and errors, in order."""
    parts = []
    for out in cell.get("outputs", []):
        if out["output_type"] == "stream":
            parts.append(out["text"])
        elif out["output_type"] in ("execute_result", "display_data"):
            parts.append(out["data"].get("text/plain", "") + "\n")
        elif out["output_type"] == "error":
            parts.append(f"{out['ename']}: {out['evalue']}\n")
    return "".join(parts)


def key_cells(nb):
    """``[(index, cell)]`` of the code cells tagged ``key-value``."""
    return [(i, c) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and KEY_TAG in c.get("metadata", {}).get("tags", [])]


def key_value_changes(saved, executed):
    """``[(index, saved text, new text)]`` for each key-value cell whose output text differs."""
    new = dict(key_cells(executed))
    return [(i, text_output(cell), text_output(new[i])) for i, cell in key_cells(saved)
            if text_output(cell) != text_output(new[i])]


def main(argv=None):
    args = parse_args(argv)
    try:
        import nbformat
        from nbclient.exceptions import CellExecutionError
    except ImportError:
        raise NNError("run_notebook.py needs nbclient and ipykernel: pip install 'dlfs-ch3[notebook]'") from None
    try:
        saved = nbformat.reads(read_regular(args.notebook).decode("utf-8"), as_version=4)
    except OSError as err:  # the user's path: absent, a folder, a FIFO
        raise NNError(f"cannot read {args.notebook}: {err.strerror or err}") from None
    except ValueError as err:  # not UTF-8, not JSON, not a notebook
        raise NNError(f"{args.notebook}: not a notebook ({' '.join(str(err).split())[:200]})") from None
    executed = copy.deepcopy(saved)
    try:
        execute(executed)
    except CellExecutionError as err:
        failed = [i for i, cell in enumerate(executed.cells)
                  if any(out["output_type"] == "error" for out in cell.get("outputs", []))]
        index = failed[0] if failed else "?"
        print(f"error: cell {index} failed: {err.ename}: {err.evalue}", file=sys.stderr)
        return EXIT_FAILED
    if args.check:
        changes = key_value_changes(saved, executed)
        for i, before, after in changes:
            print(f"cell {i} changed:\n--- saved\n{before}--- now\n{after}", file=sys.stderr)
        print(f"{len(key_cells(saved)) - len(changes)} of {len(key_cells(saved))} key-value cells as saved")
        return EXIT_FAILED if changes else EXIT_OK
    with atomic_write(args.notebook, "w", what=f"save {args.notebook}") as f:  # never a half-written notebook
        nbformat.write(executed, f)
    print(f"ran {sum(c.cell_type == 'code' for c in executed.cells)} code cells; saved {args.notebook}")
    return EXIT_OK


if __name__ == "__main__":
    run_main(main)
