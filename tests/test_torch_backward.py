"""nn_torch.backward: autograd's loss and gradients under the book's names, and one optimizer step."""

import pytest
import torch

import nn_numpy
from nn_torch import MnistNet
from nn_torch.backward import loss_and_gradients, train_step


@pytest.fixture
def batch(test_set):
    images, labels = test_set
    return torch.from_numpy(nn_numpy.normalize(images[:50])), torch.from_numpy(
        labels[:50].astype("int64")
    )


@pytest.mark.slow  # about a second: autograd's first use
def test_gradients_are_the_books_layout_and_do_not_accumulate(weights, batch):
    model = MnistNet.from_numpy(weights, torch.float64)
    x, t = batch[0].double(), batch[1]
    loss, grads = loss_and_gradients(model, x, t)
    assert isinstance(loss, float) and 0 < loss < 1
    assert {k: tuple(v.shape) for k, v in grads.items()} == nn_numpy.MNIST_SHAPES
    # the output layer by hand: da3 = (softmax(a3) - onehot(t)) / N, db3 = sum over N, dW3 = z2.T @ da3
    layers = model.forward_layers(x)
    da3 = (layers["y"] - torch.nn.functional.one_hot(t, 10)) / len(t)
    torch.testing.assert_close(grads["b3"], da3.sum(0), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(grads["W3"], layers["z2"].T @ da3, rtol=1e-12, atol=1e-15)
    first = {k: v.clone() for k, v in grads.items()}
    again = loss_and_gradients(model, x, t)[1]
    assert all(torch.equal(again[k], first[k]) for k in grads), (
        "a second call added to the first's gradients"
    )


@pytest.mark.slow  # about a second
def test_train_step_is_an_sgd_step_and_returns_the_loss_before_it(weights, batch):
    model = MnistNet.from_numpy(weights)
    before = model.to_numpy()
    expected_loss, grads = loss_and_gradients(model, *batch)
    grads = {k: v.clone() for k, v in grads.items()}
    loss = train_step(model, torch.optim.SGD(model.parameters(), lr=0.5), *batch)
    assert loss == expected_loss
    after = model.book_layout()
    for k in before:
        torch.testing.assert_close(
            after[k], torch.from_numpy(before[k]) - 0.5 * grads[k], rtol=0, atol=0
        )
