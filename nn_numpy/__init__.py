"""Chapter 3 of *Deep Learning from Scratch* in NumPy: the reference implementation.

The chapter: :mod:`.activations`, :mod:`.network`, :mod:`.toy_network`, :mod:`.evaluate` and
:mod:`.backward` (chapter 5's pass). Files and downloads live in :mod:`nn_numpy.data`, the exact
reference and error bounds in :mod:`nn_numpy.exact`; the chapter imports neither.
"""

from .activations import identity_function, relu, sigmoid, softmax, softmax_naive, step_function
from .errors import (
    DataCorruptedError,
    DataNotFoundError,
    InputShapeError,
    NNError,
    UnsafePickleError,
    WeightsError,
)
from .evaluate import accuracy, normalize, predict_labels, predict_labels_loop
from .network import LAYER_NAMES, MNIST_SHAPES, forward_layers, predict
from .toy_network import forward, init_network
