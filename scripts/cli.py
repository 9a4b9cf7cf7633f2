"""What every script shares: data options, loading, and one-line errors with exit codes.

Exit codes: 0 success, 1 a parity or accuracy failure, 2 bad input or environment (one line),
3 a bug (an exception the project did not raise on purpose: its traceback is shown),
130 interrupted (Ctrl-C), 143 terminated (SIGTERM), 141 stdout closed early (``| head``), as a shell
reports a SIGPIPE.
Never imports torch: ``scripts/evaluate.py --backend numpy`` must not pay for it.
"""

import argparse
import contextlib
import math
import os
import signal
import sys
import traceback
import warnings

from nn_numpy.data.errors import NNError

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_BUG, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = 0, 1, 2, 3, 130, 141
FLOAT32_MAX = 3.4028234663852886e38


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (no usage block) and exit code 2.

    The options of the last parser used are kept in ``ArgumentParser.options``, so that an
    out-of-memory message suggests only options the running script has.
    """

    options = frozenset()

    def parse_known_args(self, args=None, namespace=None):
        ArgumentParser.options = frozenset(self._option_string_actions)
        return super().parse_known_args(args, namespace)

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see --help)\n")


def add_data_args(parser):
    """``--data-dir``, ``--weights``, ``--images/--labels`` and ``--debug``."""
    parser.add_argument("--data-dir", help="folder holding mnist/*.gz and sample_weight.pkl "
                        "(default: $NN_DATA_DIR, else a per-user cache; missing files are downloaded)")
    parser.add_argument("--weights", help="weights file (.pkl or .npz; default: the book's sample_weight.pkl)")
    parser.add_argument("--images", help="IDX image file (28x28 uint8) to evaluate instead of MNIST's test set")
    parser.add_argument("--labels", help="IDX label file matching --images")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def require_data(args):
    """Fetch the data-directory files the command needs: the book's weights unless ``--weights``, MNIST's
    test set unless ``--images``. A file that is absent and cannot be fetched is named with all the others
    in one error, never the training set, which no script needs."""
    from nn_numpy.data.download import WEIGHTS_NAME, fetch_mnist_file, fetch_weights, is_writable, resolve_data_dir
    from nn_numpy.data.errors import DataNotFoundError
    from nn_numpy.data.mnist import SPLITS

    if (args.images is None) != (args.labels is None):
        raise NNError("--images and --labels go together: give both or neither")
    wanted = {WEIGHTS_NAME: lambda: fetch_weights(args.data_dir)} if args.weights is None else {}
    if args.images is None:
        wanted.update({f"mnist/{n}": lambda n=n: fetch_mnist_file(n, args.data_dir) for n in SPLITS["test"]})
    folder = resolve_data_dir(args.data_dir)
    missing = []
    for name, fetch in wanted.items():
        try:
            fetch()
        except DataNotFoundError:
            if (folder / name).exists():  # there but unreadable: its own error says why
                raise
            missing.append(name)
    if missing:
        why = "cannot be downloaded into a read-only folder" if folder.is_dir() and not is_writable(folder) else \
            "could not be downloaded"
        raise DataNotFoundError(f"{folder} lacks {', '.join(missing)}, which {why}: run `python scripts/fetch_data.py "
                                f"--data-dir {folder}` where there is network, or copy them there (README: The data "
                                "directory), or point --data-dir / NN_DATA_DIR at a folder holding them")


def load_inputs(args):
    """``(weights, images (N, 784) uint8, labels (N,) uint8, source)`` from parsed :func:`add_data_args`.

    ``source`` says where the images came from and whether their hash was checked.
    """
    from nn_numpy.data.download import hand_placed_mnist_files
    from nn_numpy.data.mnist import SPLITS, load_idx_dataset, load_mnist_test
    from nn_numpy.data.weights import load_weights

    require_data(args)
    weights = load_weights(args.weights, data_dir=args.data_dir)
    if args.images:
        images, labels = load_idx_dataset(args.images, args.labels, normalize=False)
        source = f"{args.images} (hash unknown: structure checked only)"
    else:
        images, labels = load_mnist_test(normalize=False, data_dir=args.data_dir)
        raw = hand_placed_mnist_files(SPLITS["test"], args.data_dir)
        source = (f"MNIST test set from {' and '.join(map(str, raw))} (hash unknown: structure checked only)"
                  if raw else "MNIST test set (SHA-256 verified)")
    if len(images) == 0:
        raise NNError(f"{source.split(' (')[0]} holds no images: nothing to evaluate")
    return weights, images, labels, source


def _is_out_of_memory(err):
    # torch.cuda.OutOfMemoryError, told by name: this module must not import torch
    return isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError"


def _describe(err):
    text = " ".join(str(err).split())  # one line, whatever the message holds
    if _is_out_of_memory(err):
        smaller = [option for option in ("--size", "--batch-size") if option in ArgumentParser.options]
        advice = f": try a smaller {' or '.join(smaller)}" if smaller else ""
        return f"out of memory ({text or type(err).__name__}){advice}"
    return text


def _one_line_warning(message, category, filename, lineno, file=None, line=None):
    print(f"warning: {' '.join(str(message).split())}", file=sys.stderr)


class Terminated(KeyboardInterrupt):
    """SIGTERM (``kill``, ``timeout``, a job scheduler), raised where the program is, as Ctrl-C is."""


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM runs the same cleanup as Ctrl-C (partial downloads removed), then exits 143 with one line."""
    def terminate(signum, frame):
        raise Terminated

    try:
        previous = signal.signal(signal.SIGTERM, terminate)
    except ValueError:  # not the main thread: signals are not ours to handle
        previous = None
    try:
        yield
    except Terminated:
        print("terminated", file=sys.stderr)
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def run_main(main, argv=None):
    """Run ``main(argv) -> exit code`` and exit with it, or with the module docstring's codes.

    Only errors raised on purpose for bad input (:class:`NNError`, whose subclasses wrap OS errors
    on the user's own paths) and running out of memory are one ``error: ...`` line and exit 2;
    any other exception is a bug, shown with its traceback, exit 3. Warnings (e.g. float64 weights
    converted) are one ``warning: ...`` line too. ``--debug`` keeps Python's own two-line
    warnings and prints the traceback of a bad-input error, still with exit 2.
    """
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    ArgumentParser.options = frozenset()  # until main's parser has parsed: no advice from an earlier run
    try:
        with sigterm_as_interrupt(), warnings.catch_warnings():
            if not debug:
                warnings.showwarning = _one_line_warning
            code = main(argv)
            sys.stdout.flush()  # here, not at exit: a closed pipe must be caught below
    except BrokenPipeError:
        # The reader left (`| head -1`): end quietly, as the Python docs recommend. Point stdout at
        # devnull so that the interpreter's own flush at exit cannot fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = EXIT_BROKEN_PIPE
    except (NNError, MemoryError, RuntimeError) as err:
        # torch.cuda.OutOfMemoryError is a RuntimeError; any other RuntimeError is a bug
        if isinstance(err, RuntimeError) and not isinstance(err, NNError) and not _is_out_of_memory(err):
            traceback.print_exc()
            code = EXIT_BUG
        elif debug:
            traceback.print_exc()
            code = EXIT_BAD_INPUT
        else:
            print(f"error: {_describe(err)}", file=sys.stderr)
            code = EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except Exception:  # not raised on purpose: a bug in the project, shown in full
        traceback.print_exc()
        code = EXIT_BUG
    sys.exit(code)


def _int_at_least(minimum, words):
    """An argparse type: an integer >= ``minimum``; argparse names the option in the error."""
    def parse(text):
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {words}, got {value}")
        return value
    return parse


positive_int = _int_at_least(1, "a positive integer")
non_negative_int = _int_at_least(0, "a non-negative integer")


def positive_float(text):
    """An argparse type: a finite number > 0 (``inf``, ``nan``, ``0``, ``-1`` are refused with the option named)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a finite positive number, got {text}")
    return value
