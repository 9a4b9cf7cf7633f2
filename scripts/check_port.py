#!/usr/bin/env python
"""`dlfs-ch3 check-port` from a clone, installed or not: python scripts/check_port.py --help."""

import os  # noqa: E401
import sys

sys.path.insert(
    0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)  # this clone's packages first
from dlfs_ch3.cli import run_command

run_command("check-port")  # noqa: E402, E702
