#!/usr/bin/env python
"""The book's ch03/neuralnet_mnist.py: MNIST's test set through the 3-layer network, one image at a time.

    python scripts/neuralnet_mnist.py                # Accuracy:0.9352

As the chapter shows it, with this project's fixes (README: What this fixes in the chapter notes):
the weights load without pickle running their code, only MNIST's test files are read, SHA-256
checked, every layer adds its bias (b3 in the last, where the reader's notes had b2), and sigmoid
and softmax are nn_numpy's, which never overflow.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]  # the packages from a clone, installed or not; `cli` beside us

import numpy as np  # noqa: E402

from cli import ArgumentParser, add_data_args, require_data, run_main  # noqa: E402
from nn_numpy.activations import sigmoid, softmax  # noqa: E402
from nn_numpy.data.errors import NNError  # noqa: E402
from nn_numpy.data.mnist import load_idx_dataset, load_mnist_test  # noqa: E402
from nn_numpy.data.weights import load_weights  # noqa: E402


def get_data(data_dir=None, images=None, labels=None):
    """``x (N, 784) float32 in [0, 1], t (N,)``: MNIST's test set (the book loads the unused training set
    too), or the IDX files ``images`` and ``labels``."""
    if images is None:
        return load_mnist_test(normalize=True, flatten=True, one_hot_label=False, data_dir=data_dir)
    x, t = load_idx_dataset(images, labels, normalize=True, flatten=True, one_hot_label=False)
    if len(x) == 0:
        raise NNError(f"{images} holds no images: nothing to evaluate")
    return x, t


def init_network(weights=None, data_dir=None):
    """The book's ``sample_weight.pkl`` (or the file ``weights``): a dict of W1, b1, W2, b2, W3, b3."""
    return load_weights(weights, data_dir=data_dir)


def predict(network, x):
    """``(784,) or (N, 784) -> (10,) or (N, 10)`` probabilities."""
    W1, W2, W3 = network["W1"], network["W2"], network["W3"]
    b1, b2, b3 = network["b1"], network["b2"], network["b3"]

    a1 = np.dot(x, W1) + b1
    z1 = sigmoid(a1)
    a2 = np.dot(z1, W2) + b2
    z2 = sigmoid(a2)
    a3 = np.dot(z2, W3) + b3
    y = softmax(a3)

    return y


def main(argv=None):
    args = add_data_args(ArgumentParser(description=__doc__.splitlines()[0])).parse_args(argv)
    require_data(args)  # every missing file named at once, before any work

    x, t = get_data(args.data_dir, args.images, args.labels)
    network = init_network(args.weights, args.data_dir)
    accuracy_cnt = 0
    for i in range(len(x)):
        y = predict(network, x[i])
        p = np.argmax(y)  # the most probable digit
        if p == t[i]:
            accuracy_cnt += 1

    print("Accuracy:" + str(float(accuracy_cnt) / len(x)))
    return 0


if __name__ == "__main__":
    run_main(main)
