"""Everything behind the chapter: files in, arrays out.

- :mod:`~nn_numpy.data.mnist`: ``load_mnist``, ``load_mnist_test``, ``normalize``, any IDX dataset;
- :mod:`~nn_numpy.data.weights`: the book's weights, loaded without running pickle code; ``.npz``;
- :mod:`~nn_numpy.data.download`: the data directory and SHA-256-checked downloads;
- :mod:`~nn_numpy.data.idx`: the IDX file format;
- :mod:`~nn_numpy.data.errors`: the one-line errors every module raises.

Nothing here imports the chapter's evaluation code or torch.
"""
