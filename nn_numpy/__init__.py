"""Chapter 3 of *Deep Learning from Scratch* in NumPy: the reference implementation.

The chapter is the top level: :mod:`.activations`, :mod:`.network`, :mod:`.toy_network`,
:mod:`.evaluate` (the book's loop and batches) and :mod:`.backward` (chapter 5's pass, for the
parity with autograd). Files, downloads and the safe weight loader live in :mod:`nn_numpy.data`.
"""

from .activations import identity_function, relu, sigmoid, softmax, softmax_naive, step_function
from .data.errors import (DataCorruptedError, DataNotFoundError, InputShapeError, NNError, UnsafePickleError,
                          WeightsError)
from .data.mnist import normalize
from .evaluate import accuracy, predict_labels, predict_labels_loop
from .network import LAYER_NAMES, MNIST_SHAPES, forward_layers, predict
from .toy_network import forward, init_network
