#!/usr/bin/env python
"""`dlfs-ch3 precision` from a clone, installed or not: python scripts/precision.py --help."""

import os  # noqa: E401
import sys

sys.path.insert(
    0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)  # this clone's packages first
from dlfs_ch3.cli import run_command

run_command("precision")  # noqa: E402, E702
