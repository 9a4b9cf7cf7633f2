#!/usr/bin/env python
"""The book's ch03/neuralnet_mnist.py: MNIST's test set through the 3-layer network, one image at a time.

    python scripts/neuralnet_mnist.py                # Accuracy:0.9352

With this project's fixes (README: What this fixes in the chapter notes): the data is SHA-256 checked
and the weights load without running pickle code; nn_numpy's predict adds every bias (b3 in the last
layer, where the notes had b2), and its sigmoid and softmax never overflow.
"""

import os
import sys

sys.path.insert(
    0, os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
)  # this clone's packages first
import numpy as np  # noqa: E402

from dlfs_ch3.cli import ArgumentParser, add_data_args, load_inputs, run_main  # noqa: E402
from nn_numpy import normalize, predict  # noqa: E402


def main(argv=None):
    args = add_data_args(ArgumentParser(description=__doc__.splitlines()[0])).parse_args(argv)
    network, images, t, _ = load_inputs(args)  # the book's init_network() and get_data()
    x = normalize(images)

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
