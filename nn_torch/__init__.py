"""Chapter 3 of *Deep Learning from Scratch* in PyTorch: the mirror of :mod:`nn_numpy`."""

from .activations import identity_function, relu, sigmoid, softmax, step_function
from .device import DeviceError, full_precision, matmul_precision, resolve_device
from .evaluate import normalize, predict_labels, predict_proba
from .network import MnistNet
from .parity import affine_tolerance, assert_parity, compare
from .toy_network import forward, init_network
