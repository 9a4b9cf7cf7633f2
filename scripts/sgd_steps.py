#!/usr/bin/env python
"""`dlfs-ch3 sgd-steps` from a clone, installed or not: python scripts/sgd_steps.py --help."""

import os  # noqa: E401
import sys

sys.path.insert(
    0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)  # this clone's packages first
from dlfs_ch3.cli import run_command

run_command("sgd-steps")  # noqa: E402, E702
