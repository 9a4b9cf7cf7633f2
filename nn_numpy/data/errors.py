"""Errors the tools raise for bad input. The scripts print ``str(err)`` as one line and exit 2."""


class NNError(Exception):
    """Base class: a problem with the user's input, files or environment, not a bug."""


class DataNotFoundError(NNError, FileNotFoundError):
    """A data or weights file is absent and could not be downloaded."""


class DataCorruptedError(NNError, ValueError):
    """A data file exists but is malformed or fails its SHA-256 check."""


class WeightsError(NNError, ValueError):
    """A weights file is readable but holds the wrong keys, shapes, dtypes or values."""


class UnsafePickleError(WeightsError):
    """A pickle asks for a global outside the allow-list; refused before anything runs."""


class InputShapeError(NNError, ValueError):
    """An input array has the wrong rank, feature count or dtype for the network."""
