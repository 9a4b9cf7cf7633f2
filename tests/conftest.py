"""Real data for the unit tests: the MNIST test set and the book's weights from $NN_DATA_DIR."""

import pytest


@pytest.fixture(scope="session")
def weights():
    from nn_numpy.weights import load_weights
    return load_weights()


@pytest.fixture(scope="session")
def test_set():
    from nn_numpy.mnist import load_mnist_test
    return load_mnist_test(normalize=False)


@pytest.fixture(scope="session")
def test_images(test_set):
    """(10000, 784) uint8"""
    return test_set[0]


@pytest.fixture(scope="session")
def test_labels(test_set):
    """(10000,) labels 0..9"""
    return test_set[1]
