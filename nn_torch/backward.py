"""Backpropagation by autograd, the twin of :mod:`nn_numpy.backward`, and one optimizer step.

The loss is ``F.cross_entropy`` on the logits, the mean over the batch of ``-log softmax(a3)[t]``,
as NumPy's ``softmax_with_loss``. Gradients come back under the book's names and in its layout
(``dW1 = fc1.weight.grad.T``, see :meth:`~nn_torch.network.MnistNet.book_layout`), so they compare
with NumPy's key by key.
"""

import torch.nn.functional as F

from .device import full_precision


def loss_and_gradients(model, x, t):
    """Loss and its gradient for every weight: ``x (N, 784) float, t (N,) int64 or (N, 10) -> (loss, grads)``.

    ``x`` and ``t`` are tensors on the model's device, ``x`` in its dtype. ``loss`` is a Python
    float; ``grads`` maps ``W1 (784, 50), b1 (50,), W2 (50, 100), b2 (100,), W3 (100, 10), b3 (10,)``
    to views of the parameters' ``.grad``, which this call zeroes and fills (TF32 off).
    """
    model.zero_grad()
    with full_precision():
        loss = F.cross_entropy(model.logits(x), t)
        loss.backward()
    return loss.item(), model.book_layout(grad=True)


def train_step(model, optimizer, x, t):
    """One step of ``optimizer`` (e.g. ``torch.optim.SGD``) on the batch ``x (N, 784), t (N,)``.

    Returns the loss before the step, a Python float. With ``SGD(lr)`` this is
    :func:`nn_numpy.backward.sgd_step` after :func:`nn_numpy.backward.loss_and_gradients`.
    """
    loss, _ = loss_and_gradients(model, x, t)
    with full_precision():
        optimizer.step()
    return loss
