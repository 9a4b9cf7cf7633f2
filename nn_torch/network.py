"""The chapter's MNIST network as an ``nn.Module``: Linear, sigmoid, Linear, sigmoid, Linear, softmax."""

import numpy as np
import torch
from torch import nn

from nn_numpy.errors import InputShapeError
from nn_numpy.evaluate import dtype_name, float_dtype

from .activations import sigmoid, softmax

FLOAT_DTYPES = (torch.float32, torch.float64)


def check_input(x, n_features, dtype):
    """``x`` if it is a ``(n_features,)`` or ``(N, n_features)`` tensor of the weights' ``dtype``."""
    if not torch.is_tensor(x):
        raise InputShapeError(
            f"expected a torch.Tensor, got {type(x).__name__} (wrap arrays with torch.from_numpy)"
        )
    if x.dtype not in FLOAT_DTYPES:
        hint = (
            " (uint8 pixels: divide by 255 with nn_torch.normalize first)"
            if x.dtype == torch.uint8
            else ""
        )
        raise InputShapeError(f"expected float32 or float64 input, got {dtype_name(x.dtype)}{hint}")
    if x.ndim not in (1, 2) or x.shape[-1] != n_features:
        raise InputShapeError(
            f"expected input of shape ({n_features},) or (N, {n_features}), got {tuple(x.shape)}"
        )
    if x.dtype != dtype:
        # NumPy casts the weights to the input; a Module keeps one dtype, so say which to convert
        raise InputShapeError(
            f"input is {dtype_name(x.dtype)} but the weights are {dtype_name(dtype)}: "
            f"use x.to({dtype}) or model.to({x.dtype})"
        )
    return x


class MnistNet(nn.Module):
    r"""The book's MNIST network: ``y = softmax(fc3(sigmoid(fc2(sigmoid(fc1(x))))))``.

    Shape:
        - Input: ``(784,)`` or ``(N, 784)`` pixels in [0, 1], float32 or float64 like the weights.
        - Output: ``(10,)`` or ``(N, 10)`` class probabilities, each row summing to 1.

    Attributes:
        fc1: ``nn.Linear(784, 50)``:  weight ``(50, 784)`` = ``W1.T``, bias ``(50,)`` = ``b1``
        fc2: ``nn.Linear(50, 100)``:  weight ``(100, 50)`` = ``W2.T``, bias ``(100,)`` = ``b2``
        fc3: ``nn.Linear(100, 10)``:  weight ``(10, 100)`` = ``W3.T``, bias ``(10,)`` = ``b3``

    ``nn.Linear`` stores its weight as (out, in) and computes ``x @ weight.T + bias``;
    the book stores ``W`` as (in, out) and computes ``np.dot(x, W) + b``. Hence ``weight = W.T``.
    ``MnistNet()`` holds random weights; :meth:`from_file` and :meth:`from_numpy` load the book's.
    """

    def __init__(self):
        """Random weights, as any ``nn.Module``; the book's come through :meth:`from_file`."""
        super().__init__()
        self.fc1 = nn.Linear(784, 50)
        self.fc2 = nn.Linear(50, 100)
        self.fc3 = nn.Linear(100, 10)

    def _layers(self):
        return (("W1", "b1", self.fc1), ("W2", "b2", self.fc2), ("W3", "b3", self.fc3))

    def book_layout(self, grad=False):
        """``{W1 (784, 50), b1 (50,), ...}``: the parameters (or, with ``grad``, their ``.grad``) by the book's
        names and (in, out) layout, ``W1 = fc1.weight.T``. Views: writing ``W1`` under no_grad writes ``fc1``."""
        out = {}
        for w, b, fc in self._layers():
            weight, bias = (fc.weight.grad, fc.bias.grad) if grad else (fc.weight, fc.bias)
            out[w], out[b] = weight.T, bias
        return out

    @classmethod
    def from_numpy(cls, weights, dtype=torch.float32):
        """From the book's dict ``{W1 (784, 50), b1 (50,), ...}``: ``weight = W.T, bias = b``, checked as
        NumPy checks it; ``dtype`` is float32 or float64 in any spelling."""
        from nn_numpy.data.weights import validate_weights

        dtype = getattr(torch, float_dtype(dtype))
        weights = validate_weights(weights)
        model = cls().to(dtype)
        with torch.no_grad():
            for k, param in model.book_layout().items():
                param.copy_(torch.from_numpy(weights[k]))
        return model

    @classmethod
    def from_file(cls, path=None, data_dir=None, dtype=torch.float32):
        """From a weights file through NumPy's safe loader (default: the book's ``sample_weight.pkl``)."""
        from nn_numpy.data.weights import load_weights

        return cls.from_numpy(load_weights(path, data_dir=data_dir), dtype)

    def to_numpy(self):
        """The book's dict back: C-contiguous copies in the model's dtype, ``W = weight.T``, bitwise its values."""
        return {
            k: np.array(v.detach().cpu().numpy(), order="C") for k, v in self.book_layout().items()
        }

    def forward(self, x, layers=None):
        """``(784,) or (N, 784) -> (10,) or (N, 10)`` probabilities, as :func:`nn_numpy.predict`;
        ``layers``, a dict, also receives a1 z1 a2 z2 a3 y."""
        x = check_input(x, self.fc1.in_features, self.fc1.weight.dtype)

        a1 = self.fc1(x)  # x @ W1 + b1
        z1 = sigmoid(a1)
        a2 = self.fc2(z1)
        z2 = sigmoid(a2)
        a3 = self.fc3(z2)
        y = softmax(a3)

        if layers is not None:
            layers.update(a1=a1, z1=z1, a2=a2, z2=z2, a3=a3, y=y)
        return y

    def forward_layers(self, x):
        """``{a1, z1 (.., 50), a2, z2 (.., 100), a3 logits, y probabilities (.., 10)}``, as NumPy's."""
        layers = {}
        MnistNet.forward(self, x, layers)
        return layers

    def logits(self, x):
        """``(784,) or (N, 784) -> (10,) or (N, 10)``: the scores before softmax."""
        return self.forward_layers(x)["a3"]
