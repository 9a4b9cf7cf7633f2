#!/usr/bin/env python
"""The book's ch03/neuralnet_mnist_batch.py: the same network on MNIST's test set, 100 images at a time.

    python scripts/neuralnet_mnist_batch.py          # Accuracy:0.9352

``get_data``, ``init_network`` and ``predict`` are neuralnet_mnist.py's: ``predict`` takes a batch
``(100, 784)`` as it takes one image, and gives ``(100, 10)``.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]  # the packages from a clone, installed or not; the scripts beside us

import numpy as np  # noqa: E402

from cli import ArgumentParser, add_data_args, require_data, run_main  # noqa: E402
from neuralnet_mnist import get_data, init_network, predict  # noqa: E402


def main(argv=None):
    args = add_data_args(ArgumentParser(description=__doc__.splitlines()[0])).parse_args(argv)
    require_data(args)

    x, t = get_data(args.data_dir, args.images, args.labels)
    network = init_network(args.weights, args.data_dir)

    batch_size = 100
    accuracy_cnt = 0

    for i in range(0, len(x), batch_size):
        x_batch = x[i:i + batch_size]
        y_batch = predict(network, x_batch)
        p = np.argmax(y_batch, axis=1)
        accuracy_cnt += np.sum(p == t[i:i + batch_size])

    print("Accuracy:" + str(float(accuracy_cnt) / len(x)))
    return 0


if __name__ == "__main__":
    run_main(main)
