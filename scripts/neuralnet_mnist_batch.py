#!/usr/bin/env python
"""The book's ch03/neuralnet_mnist_batch.py: the same network on MNIST's test set, 100 images at a time.

    python scripts/neuralnet_mnist_batch.py          # Accuracy:0.9352

``predict`` takes a batch ``(100, 784)`` as it takes one image, and gives ``(100, 10)``.
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
    network, images, t, _ = load_inputs(args)
    x = normalize(images)

    batch_size = 100
    accuracy_cnt = 0
    for i in range(0, len(x), batch_size):
        x_batch = x[i : i + batch_size]
        y_batch = predict(network, x_batch)
        p = np.argmax(y_batch, axis=1)
        accuracy_cnt += np.sum(p == t[i : i + batch_size])

    print("Accuracy:" + str(float(accuracy_cnt) / len(x)))
    return 0


if __name__ == "__main__":
    run_main(main)
