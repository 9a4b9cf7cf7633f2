"""Run the learners' notebook top to bottom in a fresh kernel, and save it with its outputs.

    dlfs-ch3 run-notebook            # notebooks/chapter3_numpy_to_pytorch.ipynb, in place
    dlfs-ch3 run-notebook --check    # run it and compare every text output with the saved one

The kernel is this interpreter's ``python3`` (ipykernel), with this package on its path, in an empty
temporary folder. Every text output is machine-independent by design (README: How close to exact?),
so ``--check`` holds a fresh run to the saved text exactly; figures may differ.
Exit codes: 0 ok, 1 a cell failed or a text output changed, 2 bad input or environment.
"""

import copy
import os
import subprocess
import sys
import tempfile

from nn_numpy.data.files import atomic_write, read_regular
from nn_numpy.errors import NNError

from .cli import EXIT_FAILED, EXIT_OK, ArgumentParser, add_data_args

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOK = os.path.join(ROOT, "notebooks", "chapter3_numpy_to_pytorch.ipynb")
CELL_TIMEOUT_S = 300
MAX_BYTES = 64 << 20  # the chapter's notebook, with its figures, is under 1 MB


def parse_args(argv):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "notebook", nargs="?", default=NOTEBOOK, help="the notebook (default: the chapter's)"
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="compare the text outputs with the saved ones; write nothing",
    )
    return add_data_args(p, inputs=False).parse_args(argv)


def read_notebook(path):
    """The notebook at ``path``, validated; any way it fails is one NNError line."""
    import nbformat

    try:
        text = read_regular(path, MAX_BYTES, "notebook").decode("utf-8")
    except OSError as err:  # absent, a folder, a FIFO
        raise NNError(f"cannot read {path}: {err.strerror or err}") from None
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
        return nb
    except (
        Exception
    ) as err:  # not UTF-8, not JSON, JSON of another shape: nbformat raises a dozen kinds
        raise NNError(f"{path}: not a notebook ({' '.join(str(err).split())[:200]})") from None


def execute(nb, started=None):
    """Execute ``nb`` in place, top to bottom, in a fresh kernel; CellExecutionError at the first
    failure. ``started`` gains each cell's index as it starts: the last is the one that failed."""
    from nbclient import NotebookClient

    started = [] if started is None else started

    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
    }
    with tempfile.TemporaryDirectory() as cwd:
        # log level ERROR: ipykernel 7 warns on every start that local TCP is unencrypted
        client = NotebookClient(
            nb,
            kernel_name="python3",
            timeout=CELL_TIMEOUT_S,
            record_timing=False,
            extra_arguments=["--log-level=ERROR"],
            resources={"metadata": {"path": cwd}},
            on_cell_start=lambda cell, cell_index: started.append(cell_index),
        )
        client.execute(env=env, stderr=subprocess.DEVNULL)  # the kernel's own noise stays off
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


def text_changes(saved, executed):
    """``[(index, saved text, new text)]`` for each code cell whose text output differs."""
    return [
        (i, text_output(a), text_output(b))
        for i, (a, b) in enumerate(zip(saved.cells, executed.cells))
        if a.cell_type == "code" and text_output(a) != text_output(b)
    ]


def main(argv=None):
    args = parse_args(argv)
    try:
        from nbclient.exceptions import CellExecutionError
    except ImportError:
        raise NNError(
            "dlfs-ch3 run-notebook needs nbclient and ipykernel: pip install 'dlfs-ch3[notebook]'"
        ) from None
    if args.notebook == NOTEBOOK and not os.path.exists(NOTEBOOK):
        raise NNError(
            "this installation holds no notebook: give the path of chapter3_numpy_to_pytorch.ipynb "
            "(notebooks/ in a clone or the sdist)"
        )
    from nbclient.exceptions import CellTimeoutError, DeadKernelError

    from nn_numpy.data.fetch import TEST_SET, WEIGHTS, fetch, gather, resolve_data_dir

    saved = read_notebook(args.notebook)
    gather(
        *(lambda n=n: fetch(n, args.data_dir) for n in (WEIGHTS,) + TEST_SET),
        data_dir=args.data_dir,
    )
    os.environ["NN_DATA_DIR"] = str(
        resolve_data_dir(args.data_dir)
    )  # the kernel reads the same data
    executed, started = copy.deepcopy(saved), []
    try:
        execute(executed, started)
    except CellExecutionError as err:
        print(
            f"error: cell {started[-1] if started else '?'} failed: {err.ename}: {err.evalue}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except CellTimeoutError:
        print(
            f"error: cell {started[-1] if started else '?'} did not finish within {CELL_TIMEOUT_S} s",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except DeadKernelError:
        print(
            f"error: cell {started[-1] if started else '?'} killed the kernel (it exited, or crashed)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except (
        OSError,
        RuntimeError,
    ) as err:  # no such kernel, its executable missing: the environment
        if isinstance(err, MemoryError):
            raise
        raise NNError(
            f"cannot start the notebook's python3 kernel: {' '.join(str(err).split())[:200]}"
        ) from None
    if args.check:
        changes = text_changes(saved, executed)
        for i, before, after in changes:
            print(f"cell {i} changed:\n--- saved\n{before}--- now\n{after}", file=sys.stderr)
        code = sum(c.cell_type == "code" for c in saved.cells)
        print(f"{code - len(changes)} of {code} code cells print what was saved")
        return EXIT_FAILED if changes else EXIT_OK
    import nbformat

    with atomic_write(
        args.notebook, "w", what=f"save {args.notebook}"
    ) as f:  # never a half-written notebook
        nbformat.write(executed, f)
    print(
        f"ran {sum(c.cell_type == 'code' for c in executed.cells)} code cells; saved {args.notebook}"
    )
    return EXIT_OK
