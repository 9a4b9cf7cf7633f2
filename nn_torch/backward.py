"""Backpropagation by autograd, the twin of :mod:`nn_numpy.backward`, and one optimizer step.

The loss is ``F.cross_entropy`` on the logits, as NumPy's ``softmax_with_loss``. Gradients come back
under the book's names and layout (``dW1 = fc1.weight.grad.T``), so they compare key by key.
"""

import torch
import torch.nn.functional as F

from nn_numpy.backward import check_targets
from nn_numpy.errors import InputShapeError

from .device import full_precision
from .network import check_input


def loss_and_gradients(model, x, t):
    """Loss and its gradient for every weight: ``x (N, 784) float, t (N,) int or (N, 10) -> (loss, grads)``.

    Tensors on the model's device, ``x`` in its dtype; they are refused as NumPy's twin refuses its
    arrays. ``grads`` are views of the parameters' ``.grad``, which this call zeroes and fills (TF32 off).
    """
    x = check_input(x, model.fc1.in_features, model.fc1.weight.dtype)
    if x.ndim != 2 or x.shape[0] == 0:
        raise InputShapeError(
            f"expected a batch (N, {x.shape[-1]}) with N >= 1, got {tuple(x.shape)}"
        )
    if not torch.is_tensor(t):
        raise InputShapeError(f"expected labels as a torch.Tensor, got {type(t).__name__}")
    check_targets(t.detach().cpu().numpy(), model.fc3.out_features, len(x))
    model.zero_grad()
    with full_precision():
        loss = F.cross_entropy(
            model.logits(x), t.to(x.dtype) if t.is_floating_point() else t.long()
        )
        loss.backward()
    return loss.item(), model.book_layout(grad=True)


def train_step(model, optimizer, x, t):
    """One step of ``optimizer`` (e.g. ``torch.optim.SGD``) on the batch; returns the loss before it."""
    loss, _ = loss_and_gradients(model, x, t)
    with full_precision():
        optimizer.step()
    return loss
