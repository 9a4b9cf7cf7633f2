"""The errors the project raises on purpose. The commands print them as one line and exit 2."""


class NNError(Exception):
    """A problem with the user's input, files or environment, not a bug."""


class DataNotFoundError(NNError, FileNotFoundError):
    """A data or weights file is absent and could not be downloaded; ``missing`` names the data dir's."""

    def __init__(self, message, missing=(), reasons=""):
        super().__init__(message)
        self.missing, self.reasons = tuple(missing), reasons  # reasons: why each mirror failed


class DataCorruptedError(NNError, ValueError):
    """A data file exists but is malformed or fails its size or SHA-256 check."""


class WeightsError(NNError, ValueError):
    """Weights with the wrong keys, shapes, dtypes or values."""


class UnsafePickleError(WeightsError):
    """A pickle naming a global outside the allow-list; refused before anything runs."""


class InputShapeError(NNError, ValueError):
    """An input of the wrong rank, size or dtype."""
