#!/usr/bin/env python
"""The fuzzing campaign: the suite's own hypothesis properties, run outside CI with many more examples.

    nice -n 19 python tests/fuzz.py --count 100000            # every target, 100,000 inputs each
    python tests/fuzz.py --count 2000 --target idx            # a quick look at one

Each target is run by pytest under the ``fuzz`` profile (``conftest.py``): ``--count`` examples
per property, no example database. Hypothesis's statistics follow each target: examples run,
time, and the events the property records (which error each input raised). CI runs the very
same properties under the short ``ci`` profile. Exit code: pytest's, the first that is not 0.
"""

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {
    "idx": ["tests/test_idx.py::test_arbitrary_bytes_give_a_matching_array_or_data_corrupted"],
    "unpickler": [
        "tests/test_weights.py::test_arbitrary_bytes_give_only_documented_errors",
        "tests/test_weights.py::test_mutated_pickles_give_only_documented_errors",
        "tests/test_weights.py::test_opcode_soup_gives_only_documented_errors",
    ],
    "npz": ["tests/test_weights.py::test_mutated_npz_gives_weights_or_a_weights_error"],
    "cache": ["tests/test_mnist.py::test_whatever_the_cache_holds_the_labels_are_right"],
    "activations": ["parity_tests/test_parity_activations.py::test_activations_arbitrary_floats"],
}


def versions():
    import hypothesis
    import numpy
    import torch

    return (
        f"Python {platform.python_version()}, NumPy {numpy.__version__}, torch {torch.__version__}, "
        f"hypothesis {hypothesis.__version__}, {platform.machine()} {os.cpu_count()} CPUs"
    )


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--count", type=int, default=100_000, help="examples per property (default 100000)"
    )
    p.add_argument(
        "--target", choices=list(TARGETS), action="append", help="repeatable; default: all"
    )
    args = p.parse_args()
    print(f"fuzz: {args.count} examples per property; {versions()}", flush=True)
    env = {**os.environ, "HYPOTHESIS_PROFILE": "fuzz", "FUZZ_COUNT": str(args.count)}
    code = 0
    for target in args.target or TARGETS:
        start = time.perf_counter()
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "--hypothesis-show-statistics",
                *TARGETS[target],
            ],
            cwd=ROOT,
            env=env,
        )
        print(
            f"fuzz: {target}: exit {proc.returncode} after {time.perf_counter() - start:.0f} s",
            flush=True,
        )
        code = code or proc.returncode
    return code


if __name__ == "__main__":
    sys.exit(main())
