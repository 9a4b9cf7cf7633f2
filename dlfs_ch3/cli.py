"""The ``dlfs-ch3`` command, and what its subcommands share: data options, loading, one-line errors.

Exit codes: 0 success, 1 a parity or accuracy failure, 2 bad input or environment (one line), 3 a bug (its
traceback), 130 interrupted (Ctrl-C), 143 and 129 terminated or hung up (SIGTERM, SIGHUP: Ctrl-C's cleanup),
141 stdout closed early (``| head``). Imports no torch: ``dlfs-ch3 evaluate --backend numpy`` never pays for it.
"""

import argparse
import contextlib
import errno
import importlib
import importlib.util
import math
import os
import signal
import sys
import traceback
import warnings

from nn_numpy.errors import NNError

from . import __version__

COMMANDS = {
    "evaluate": "accuracy on MNIST's test set, NumPy and torch side by side (the main job)",
    "check-port": "check your own chapter-3 code: each function against the exact result",
    "parity-report": "NumPy against torch layer by layer, and each against the exact result (--exact)",
    "precision": "the arithmetic each device's matmul really does, measured; batch invariance",
    "benchmark": "every way of evaluating the 10,000 test images, timed side by side",
    "figures": "the chapter's plots, as PNG files",
    "sgd-steps": "a few SGD steps: the hand-written backward against autograd",
    "fetch-data": "fill a data folder for offline use",
    "gpu-check": "every GPU check in one command; writes docs/gpu.md",
    "run-notebook": "run the learners' notebook in a fresh kernel, saving or checking its outputs",
}
NEEDS_TORCH = ("parity-report", "precision", "figures", "sgd-steps", "gpu-check")
EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_BUG, EXIT_INTERRUPTED, EXIT_BROKEN_PIPE = (
    0,
    1,
    2,
    3,
    130,
    141,
)
FLOAT32_MAX = 3.4028234663852886e38


def main(argv=None):
    """``dlfs-ch3 <command> [options]``; ``python -m dlfs_ch3`` is the same."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["--version"]:
        print(f"dlfs-ch3 {__version__}")
        sys.exit(EXIT_OK)
    if not argv or argv[0] in ("-h", "--help"):
        print(
            "usage: dlfs-ch3 <command> [options]   (dlfs-ch3 <command> --help for its options)\n\nChapter 3 of "
            "Deep Learning from Scratch in NumPy and PyTorch.\n\ncommands:\n"
            + "".join(f"  {name:13}  {text}\n" for name, text in COMMANDS.items())
        )
        sys.exit(EXIT_OK if argv else EXIT_BAD_INPUT)
    if argv[0] not in COMMANDS:
        print(
            f"error: unknown command {argv[0]!r}: choose from {', '.join(COMMANDS)} (see --help)",
            file=sys.stderr,
        )
        sys.exit(EXIT_BAD_INPUT)
    run_command(argv[0], argv[1:])


def torch_problem(try_import=True):
    """None if torch imports, else why not, in words: not installed, or installed but broken
    (that only with ``try_import``: importing torch takes a second or two)."""
    if importlib.util.find_spec("torch") is None:
        return "pip install 'dlfs-ch3[torch]' (README: Quick start, for the CPU build)"
    if not try_import:
        return None
    try:
        import torch  # noqa: F401
    except (ImportError, OSError) as err:  # a missing libtorch_cpu.so, a half-removed install
        text = " ".join(str(err).split())[:160]
        return f"torch is installed but `import torch` fails ({type(err).__name__}: {text}): reinstall it"
    return None


def run_command(name, argv=None):
    """Run the subcommand ``name`` with ``argv`` (default: the process's, as scripts/ call it) and exit
    with its code."""
    asks_help = any(a in ("-h", "--help") for a in (sys.argv[1:] if argv is None else argv))
    problem = torch_problem(try_import=not asks_help) if name in NEEDS_TORCH else None
    if problem:
        print(f"error: dlfs-ch3 {name} needs PyTorch: {problem}", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    ArgumentParser.prog_name = f"dlfs-ch3 {name}"
    run_main(importlib.import_module(f"dlfs_ch3.{name.replace('-', '_')}").main, argv)


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error and exit 2; the options parsed last feed the out-of-memory hint."""

    prog_name, options = None, frozenset()

    def __init__(self, **kwargs):
        super().__init__(prog=ArgumentParser.prog_name, **kwargs)

    def parse_known_args(self, args=None, namespace=None):
        ArgumentParser.options = frozenset(self._option_string_actions)
        return super().parse_known_args(args, namespace)

    def error(self, message):
        self.exit(EXIT_BAD_INPUT, f"error: {message} (see --help)\n")


def add_data_args(parser, inputs=True):
    """``--data-dir`` and ``--debug``; with ``inputs``, ``--weights`` and ``--images/--labels`` too."""
    parser.add_argument(
        "--data-dir",
        help="folder holding mnist/*.gz and sample_weight.pkl "
        "(default: $NN_DATA_DIR, else a per-user cache; missing files are downloaded)",
    )
    if inputs:
        parser.add_argument(
            "--weights", help="weights file (.pkl or .npz; default: the book's sample_weight.pkl)"
        )
        parser.add_argument(
            "--images", help="IDX image file (28x28 uint8) to evaluate instead of MNIST's test set"
        )
        parser.add_argument("--labels", help="IDX label file matching --images")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def load_inputs(args):
    """``(weights, images (N, 784) uint8, labels (N,) uint8, source)``, each file read once; the data dir's
    absent files are named together in one error, and ``source`` says whether the images' hash was checked."""
    from nn_numpy.data.fetch import gather
    from nn_numpy.data.mnist import load_idx_dataset, load_split
    from nn_numpy.data.weights import load_weights

    if (args.images is None) != (args.labels is None):
        raise NNError("--images and --labels go together: give both or neither")
    weights, split = gather(
        lambda: load_weights(args.weights, data_dir=args.data_dir),
        lambda: None if args.images else load_split("test", args.data_dir),
        data_dir=args.data_dir,
    )
    if args.images:
        (images, labels), source = (
            load_idx_dataset(args.images, args.labels, normalize=False),
            args.images,
        )
    else:
        images, labels, by_hand = split
        source = (
            f"MNIST test set from {' and '.join(map(str, by_hand))}"
            if by_hand
            else "MNIST test set"
        )
        images = images.reshape(len(images), -1)
    if len(images) == 0:
        raise NNError(f"{source} holds no images: nothing to evaluate")
    checked = (
        "SHA-256 verified" if source == "MNIST test set" else "hash unknown: structure checked only"
    )
    return weights, images, labels, f"{source} ({checked})"


def _is_out_of_memory(err):
    return (
        isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError"
    )  # torch's, by name


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised where the program is, as Ctrl-C is: the same cleanup runs."""


@contextlib.contextmanager
def signals_as_interrupt():
    """SIGTERM and SIGHUP run Ctrl-C's cleanup, then exit 143 or 129 with one line."""

    def stop(signum, frame):
        raise Terminated(signum)

    previous = {}
    for signum in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        with contextlib.suppress(ValueError, TypeError):  # not the main thread, or no SIGHUP here
            previous[signum] = signal.signal(signum, stop)
    try:
        yield
    except Terminated as err:
        print(
            "hung up" if err.args[0] == getattr(signal, "SIGHUP", None) else "terminated",
            file=sys.stderr,
        )
        raise SystemExit(128 + err.args[0]) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class _Forgiving:
    """stderr that loses a line rather than the run: closed (``2>&-``, where print would fall back
    to stdout and spoil ``--json``) or full (``2>/dev/full``)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self.stream.write(text)
        return len(text)

    def flush(self):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            self.stream.flush()

    def __getattr__(self, name):
        return getattr(self.stream, name)


def run_main(main, argv=None):
    """Run ``main(argv) -> exit code`` and exit with it, or with the module docstring's codes.

    :class:`NNError` (bad input or environment, raised on purpose) and running out of memory are one
    ``error: ...`` line and exit 2; any other exception is a bug: its traceback, exit 3.
    """
    debug, code = "--debug" in (sys.argv[1:] if argv is None else argv), EXIT_BAD_INPUT
    ArgumentParser.options = frozenset()
    if not isinstance(sys.stderr, _Forgiving):
        sys.stderr = _Forgiving(sys.stderr)  # a closed or full stderr never costs the results
    if sys.stdout is None:  # started with stdout closed (>&-)
        print("error: stdout is closed: run with it open, or send it to /dev/null", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)
    for stream in (sys.stdout, sys.stderr):  # a file name that is not UTF-8 must not end the run
        with contextlib.suppress(AttributeError, ValueError):
            stream.reconfigure(errors="backslashreplace")
    try:
        with signals_as_interrupt(), warnings.catch_warnings():
            if not debug:
                warnings.showwarning = lambda message, *_: print(
                    f"warning: {' '.join(str(message).split())}", file=sys.stderr
                )
            code = main(argv)
            sys.stdout.flush()  # here, not at exit: a closed pipe must be caught below
    except BrokenPipeError:
        os.dup2(
            os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno()
        )  # the exit's own flush must not fail
        code = EXIT_BROKEN_PIPE
    except (NNError, MemoryError, RuntimeError) as err:
        if not isinstance(err, NNError) and not _is_out_of_memory(
            err
        ):  # torch's OOM is a RuntimeError
            traceback.print_exc()
            code = EXIT_BUG
        elif debug:
            traceback.print_exc()
        else:
            text = " ".join(str(err).split())
            if _is_out_of_memory(err):
                smaller = [
                    option
                    for option in ("--size", "--batch-size")
                    if option in ArgumentParser.options
                ]
                text = f"out of memory ({text or type(err).__name__})" + (
                    f": try a smaller {' or '.join(smaller)}" if smaller else ""
                )
            print(f"error: {text}", file=sys.stderr)
    except OSError as err:  # NNError wraps the user's paths: what is left is stdout (>/dev/full)
        if err.errno not in (errno.ENOSPC, errno.EIO, errno.EFBIG, errno.EDQUOT):
            traceback.print_exc()
            sys.exit(EXIT_BUG)
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        print(f"error: cannot write the output: {err.strerror or err}", file=sys.stderr)
        code = EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = EXIT_INTERRUPTED
    except Exception:  # not raised on purpose: a bug, shown in full
        traceback.print_exc()
        code = EXIT_BUG
    sys.exit(code)


def _number(kind, minimum, words):
    """An argparse type: a finite ``kind`` of at least ``minimum`` (above it, for floats)."""

    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {words}, got {text!r}") from None
        if not (math.isfinite(value) and (value >= minimum if kind is int else value > minimum)):
            raise argparse.ArgumentTypeError(
                f"expected {'a finite ' + words[2:] if kind is float else words}, "
                f"got {text if kind is float else value}"
            )
        return value

    return parse


positive_int, non_negative_int = (
    _number(int, 1, "a positive integer"),
    _number(int, 0, "a non-negative integer"),
)
positive_float = _number(float, 0, "a positive number")
