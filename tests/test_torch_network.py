"""MnistNet: built from the book's weights, converted back bitwise, saved like any model, inputs checked."""

import inspect
import pydoc

import numpy as np
import pytest
import torch

import nn_numpy
import nn_torch
from nn_numpy.errors import InputShapeError, WeightsError
from nn_torch import MnistNet


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_to_numpy_gives_the_original_dict_bitwise_in_the_models_dtype(weights, dtype):
    back = MnistNet.from_numpy(weights, dtype).to_numpy()
    assert back.keys() == weights.keys()
    for k in weights:
        expected = weights[k].astype(str(dtype).removeprefix("torch."))
        assert back[k].dtype == expected.dtype and back[k].flags.c_contiguous
        assert back[k].shape == weights[k].shape
        assert back[k].tobytes() == expected.tobytes(), k


def test_a_float64_models_own_values_come_back_bitwise(weights):
    """Values float32 cannot hold (the weights after float64 training) survive to_numpy."""
    model = MnistNet.from_numpy(weights, torch.float64)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1e-12)
    back = model.to_numpy()
    for fc, w, b in ((model.fc1, "W1", "b1"), (model.fc2, "W2", "b2"), (model.fc3, "W3", "b3")):
        assert back[w].dtype == back[b].dtype == np.float64
        assert back[w].tobytes() == fc.weight.detach().T.contiguous().numpy().tobytes(), w
        assert back[b].tobytes() == fc.bias.detach().numpy().tobytes(), b
        assert not np.array_equal(back[w], weights[w])


def test_book_layout_is_views_of_the_parameters_and_their_gradients(weights):
    model = MnistNet.from_numpy(weights)
    layout = model.book_layout()
    assert {k: tuple(v.shape) for k, v in layout.items()} == nn_numpy.MNIST_SHAPES
    with torch.no_grad():
        layout["W2"][3, 7] = 42
    assert model.fc2.weight[7, 3] == 42
    model.logits(torch.rand(4, 784)).sum().backward()
    grads = model.book_layout(grad=True)
    assert torch.equal(grads["W1"], model.fc1.weight.grad.T) and torch.equal(
        grads["b3"], model.fc3.bias.grad
    )


def test_help_leads_with_the_class_docstring_not_torchs():
    text = pydoc.render_doc(MnistNet, renderer=pydoc.plaintext)
    assert text.index("The book's MNIST network") < text.index("__init__")
    assert "Initialize internal Module state" not in text
    assert "from_file" in inspect.getdoc(MnistNet.__init__)


def test_linear_weight_is_W_transposed_out_in(weights):
    model = MnistNet.from_numpy(weights)
    for fc, w, b in ((model.fc1, "W1", "b1"), (model.fc2, "W2", "b2"), (model.fc3, "W3", "b3")):
        assert fc.weight.shape == weights[w].T.shape  # (out, in)
        assert torch.equal(fc.weight, torch.from_numpy(weights[w]).T)
        assert torch.equal(fc.bias, torch.from_numpy(weights[b]))


def test_fortran_ordered_weights_load_the_same(weights):
    fortran = {k: np.asfortranarray(v) for k, v in weights.items()}
    assert torch.equal(
        MnistNet.from_numpy(fortran).fc1.weight, MnistNet.from_numpy(weights).fc1.weight
    )


def test_from_file_uses_the_same_loader(weights):
    model = MnistNet.from_file()
    assert all(np.array_equal(model.to_numpy()[k], weights[k]) for k in weights)


def test_state_dict_saves_and_loads_like_any_model(weights, tmp_path):
    model = MnistNet.from_numpy(weights)
    torch.save(model.state_dict(), tmp_path / "mnist.pt")
    loaded = MnistNet()
    loaded.load_state_dict(torch.load(tmp_path / "mnist.pt", weights_only=True))
    x = torch.rand(4, 784)
    assert torch.equal(loaded(x), model(x))
    assert list(model.state_dict()) == [
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
        "fc3.weight",
        "fc3.bias",
    ]


def test_bad_weights_are_the_numpy_sides_error(weights):
    with pytest.raises(WeightsError, match="W2: expected shape"):
        MnistNet.from_numpy({**weights, "W2": np.zeros((100, 50), np.float32)})
    with pytest.raises(WeightsError, match="missing: b3"):
        MnistNet.from_numpy({k: v for k, v in weights.items() if k != "b3"})
    with pytest.raises(ValueError, match="^dtype must be float32 or float64, got float16$"):
        MnistNet.from_numpy(weights, torch.float16)


def test_single_sample_and_batch_agree_and_rows_sum_to_one(weights):
    model = MnistNet.from_numpy(weights)
    x = torch.rand(5, 784)
    y = model(x)
    assert model(x[2]).shape == (10,)
    torch.testing.assert_close(model(x[2]), y[2])
    torch.testing.assert_close(y.sum(-1), torch.ones(5))
    torch.testing.assert_close(torch.softmax(model.logits(x), -1), y)


@pytest.mark.parametrize(
    "x, message",
    [
        (
            torch.zeros(2, 784, dtype=torch.uint8),
            r"got uint8 \(uint8 pixels: divide by 255 with nn_torch.normalize first",
        ),
        (torch.zeros(2, 784, dtype=torch.int64), "expected float32 or float64 input, got int64"),
        (torch.zeros(2, 785), r"expected input of shape \(784,\) or \(N, 784\), got \(2, 785\)"),
        (torch.zeros(2, 28, 28), r"got \(2, 28, 28\)"),
        (torch.zeros(2, 784, dtype=torch.float64), "input is float64 but the weights are float32"),
        (np.zeros((2, 784), np.float32), "expected a torch.Tensor, got ndarray"),
    ],
)
def test_bad_input_is_one_clear_line(weights, x, message):
    with pytest.raises(InputShapeError, match=message) as err:
        MnistNet.from_numpy(weights)(x)
    assert "\n" not in str(err.value)


def test_toy_network_gives_the_chapters_numbers():
    y = nn_torch.forward(nn_torch.init_network(), [1.0, 0.5])
    assert y.dtype == torch.float64 and y.shape == (2,)
    np.testing.assert_allclose(
        y.numpy(), [0.31682708, 0.69627909], rtol=0, atol=5e-9
    )  # the chapter's printout
