"""Chapter 3 of *Deep Learning from Scratch* in NumPy: the reference implementation."""

from .activations import identity_function, relu, sigmoid, softmax, softmax_naive, step_function
from .errors import (DataCorruptedError, DataNotFoundError, DeviceError, InputShapeError, NNError,
                     UnsafePickleError, WeightsError)
from .evaluate import accuracy, normalize, predict_labels, predict_labels_loop
from .network import LAYER_NAMES, MNIST_SHAPES, forward_layers, predict
from .toy_network import forward, init_network
