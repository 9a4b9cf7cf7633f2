"""What both test folders share: the real data from $NN_DATA_DIR, and the Hypothesis profiles of
every property test: ``ci`` (default) keeps runs short and bounded, ``fuzz`` is the campaign's
(``HYPOTHESIS_PROFILE=fuzz FUZZ_COUNT=100000``; see tests/fuzz.py)."""

import os

import pytest
from hypothesis import settings

settings.register_profile("ci", max_examples=200, deadline=None)
# No example database: a campaign's hundreds of thousands of inputs would only bloat .hypothesis/.
settings.register_profile("fuzz", max_examples=int(os.environ.get("FUZZ_COUNT", 100_000)), deadline=None,
                          database=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def weights():
    """The book's weights from $NN_DATA_DIR, through the safe loader."""
    from nn_numpy.weights import load_weights
    return load_weights()


@pytest.fixture(scope="session")
def test_set():
    """MNIST's test set from $NN_DATA_DIR: ``(images (10000, 784) uint8, labels (10000,))``."""
    from nn_numpy.mnist import load_mnist_test
    return load_mnist_test(normalize=False)
