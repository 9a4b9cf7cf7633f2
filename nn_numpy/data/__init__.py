"""Everything behind the chapter: files in, arrays out. It may import the chapter; the chapter never imports it.

- :mod:`~nn_numpy.data.fetch`: the data directory, and SHA-256-verified reads and downloads;
- :mod:`~nn_numpy.data.mnist`: ``load_mnist``, ``load_mnist_test``, any IDX dataset of MNIST's layout;
- :mod:`~nn_numpy.data.weights`: the book's weights without running pickle code, and ``.npz``;
- :mod:`~nn_numpy.data.idx`: the IDX file format;
- :mod:`~nn_numpy.data.files`: regular files in, atomic files out.
"""
