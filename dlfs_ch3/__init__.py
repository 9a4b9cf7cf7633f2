"""The ``dlfs-ch3`` command: the chapter's jobs (evaluation, parity, benchmark, figures, ...) as subcommands."""

__version__ = "0.2.0"
