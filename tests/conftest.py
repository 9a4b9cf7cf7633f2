"""The test set split into images and labels (``weights`` and ``test_set`` are in the root conftest.py)."""

import pytest


@pytest.fixture(scope="session")
def test_images(test_set):
    """(10000, 784) uint8"""
    return test_set[0]


@pytest.fixture(scope="session")
def test_labels(test_set):
    """(10000,) labels 0..9"""
    return test_set[1]
