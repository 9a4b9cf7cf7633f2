"""Batched evaluation: the book's accuracy, checked inputs, caller's model untouched, OOM halving, and the
fused path bitwise the module's forward, one image at a time equal to batched (NumPy's side: parity_tests/)."""

import numpy as np
import pytest
import torch

import nn_numpy
import nn_torch
import nn_torch.evaluate
from nn_numpy.errors import InputShapeError
from nn_numpy.network import BOOK_ACCURACY
from nn_torch import MnistNet, predict_labels, predict_proba
from nn_torch.device import DeviceError


@pytest.fixture(scope="module")
def model(weights):
    return MnistNet.from_numpy(weights)


def test_a_ragged_last_batch_gives_the_books_accuracy(model, test_images, test_labels):
    ours = predict_labels(model, test_images, batch_size=3333, device="cpu")
    assert ours.dtype == np.int64 and ours.shape == (10000,)
    assert nn_numpy.accuracy(ours, test_labels) == BOOK_ACCURACY


def test_float_images_are_used_as_given(model, weights, test_images):
    x = nn_numpy.normalize(test_images[:500])
    from_pixels = predict_labels(model, test_images[:500], device="cpu")
    assert np.array_equal(predict_labels(model, x, device="cpu"), from_pixels)


def test_proba_rows_sum_to_one_in_the_asked_dtype(model, test_images):
    y = predict_proba(model, test_images[:100], batch_size=30, device="cpu", dtype=torch.float64)
    assert y.dtype == np.float64 and y.shape == (100, 10)
    np.testing.assert_allclose(y.sum(-1), 1, rtol=0, atol=1e-12)


def test_the_callers_model_is_left_as_it_was(model, test_images):
    predict_labels(model, test_images[:10], device="cpu", dtype=torch.float64)
    assert model.fc1.weight.dtype == torch.float32 and model.fc1.weight.device.type == "cpu"


def test_read_only_images_give_no_warning(model, test_images, recwarn):
    frozen = test_images[:10].copy()
    frozen.flags.writeable = False
    predict_labels(model, frozen, device="cpu")
    assert not [w for w in recwarn if "not writable" in str(w.message)]


def test_empty_input_gives_empty_output(model):
    assert predict_labels(model, np.zeros((0, 784), np.uint8), device="cpu").shape == (0,)


@pytest.mark.parametrize("function", [predict_labels, predict_proba])
@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros(784, np.uint8), r"expected images of shape \(N, 784\), got \(784,\)"),
        (np.zeros((2, 28, 28), np.uint8), r"got \(2, 28, 28\)"),
        (
            np.zeros((2, 784), np.int32),
            "expected uint8 pixels or float32/float64 images, got int32",
        ),
        (
            torch.zeros(2, 784, dtype=torch.int64),
            "expected uint8 pixels or float32/float64 images, got int64",
        ),
        (
            torch.zeros(2, 784, dtype=torch.float16),
            "expected uint8 pixels or float32/float64 images, got float16",
        ),
        (
            torch.zeros(2, 784, dtype=torch.bfloat16),
            "expected uint8 pixels or float32/float64 images, got bfloat16",
        ),
        (
            np.zeros((2, 784), np.float16),
            "expected uint8 pixels or float32/float64 images, got float16",
        ),
    ],
)
def test_bad_images_are_refused(model, function, images, message):
    with pytest.raises(InputShapeError, match=message):
        function(model, images, device="cpu")


@pytest.mark.parametrize("batch_size", [0, -3, 2.5, True])
def test_bad_batch_size_is_refused(model, batch_size):
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        predict_labels(model, np.zeros((2, 784), np.uint8), batch_size=batch_size, device="cpu")


@pytest.mark.parametrize(
    "dtype, name", [(torch.float16, "float16"), (torch.int64, "int64"), (np.int8, "int8")]
)
def test_bad_dtype_is_refused(model, dtype, name):
    with pytest.raises(ValueError, match=f"^dtype must be float32 or float64, got {name}"):
        predict_proba(model, np.zeros((2, 784), np.uint8), dtype=dtype, device="cpu")


# (images, dtype argument) -> the dtype computed in: the images' own float dtype, float32 for
# uint8, unless a dtype is given; whatever the model's own dtype
DTYPE_RULE = [
    (np.uint8, None, torch.float32),
    (np.uint8, torch.float64, torch.float64),
    (np.float64, None, torch.float64),
    (np.float64, torch.float32, torch.float32),
    (np.float32, None, torch.float32),
    (np.float32, torch.float64, torch.float64),
]


@pytest.mark.parametrize("model_dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("images_dtype, dtype, expected", DTYPE_RULE)
def test_evaluation_computes_in_the_dtype_the_rule_names(
    weights, test_images, monkeypatch, model_dtype, images_dtype, dtype, expected
):
    images = (
        test_images[:1000]
        if images_dtype == np.uint8
        else nn_numpy.normalize(test_images[:1000], images_dtype)
    )
    seen, logits_into = [], nn_torch.evaluate._logits_into

    def spy(params, x, *buffers):
        seen.append((len(x), x.dtype, params[0].dtype))
        return logits_into(params, x, *buffers)

    monkeypatch.setattr(nn_torch.evaluate, "_logits_into", spy)
    model = MnistNet.from_numpy(weights, model_dtype)
    y = predict_proba(model, images, batch_size=300, device="cpu", dtype=dtype)
    assert y.dtype == str(expected).removeprefix("torch.")
    assert seen == [(300, expected, expected)] * 3 + [(100, expected, expected)]


def test_absent_device_is_a_device_error(model, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="cuda is not available"):
        predict_labels(model, np.zeros((2, 784), np.uint8), device="cuda")


def fails_above(model, limit):
    """Make ``model`` raise CUDA's out-of-memory error on batches larger than ``limit``."""
    forward = model.forward

    def forward_with_small_memory(x):
        if len(x) > limit:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory: tried a batch of {len(x)}")
        return forward(x)

    model.forward = forward_with_small_memory


def test_out_of_memory_halves_the_batch_says_so_once_and_goes_on(weights, test_images, capsys):
    model = MnistNet.from_numpy(weights)
    fails_above(model, 700)
    expected = predict_labels(MnistNet.from_numpy(weights), test_images[:3000], device="cpu")
    labels = predict_labels(model, test_images[:3000], device="cpu")
    assert np.array_equal(labels, expected)
    err = capsys.readouterr().err.splitlines()
    assert err == ["cpu out of memory: halving the batch to 1500 images and going on"]


def test_out_of_memory_in_the_fused_path_halves_too(weights, test_images, monkeypatch, capsys):
    """A plain MnistNet takes the fused path, not model.forward: make that path run out of memory."""
    logits_into = nn_torch.evaluate._logits_into

    def small_memory(params, x, *buffers):
        if len(x) > 700:
            raise torch.cuda.OutOfMemoryError(f"CUDA out of memory: tried a batch of {len(x)}")
        return logits_into(params, x, *buffers)

    expected = predict_labels(
        MnistNet.from_numpy(weights), test_images[:3000], batch_size=3000, device="cpu"
    )
    monkeypatch.setattr(nn_torch.evaluate, "_logits_into", small_memory)
    labels = predict_labels(
        MnistNet.from_numpy(weights), test_images[:3000], batch_size=3000, device="cpu"
    )
    assert np.array_equal(labels, expected)
    assert capsys.readouterr().err.splitlines() == [
        "cpu out of memory: halving the batch to 1500 images and going on"
    ]


def test_out_of_memory_on_one_image_is_a_device_error(weights):
    model = MnistNet.from_numpy(weights)
    fails_above(model, 0)
    with pytest.raises(DeviceError, match="out of memory even for a batch of one image"):
        predict_labels(model, np.zeros((4, 784), np.uint8), device="cpu")


DTYPES = ["float32", "float64"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_fast_path_is_bitwise_the_modules_forward(dtype, device, weights, test_set):
    """Same batches through ``model(normalize(x))``: the fused path, uint8 or float input, changes no bit."""
    dt = getattr(torch, dtype)
    model = nn_torch.MnistNet.from_numpy(weights, dt).to(device)
    pixels = torch.from_numpy(test_set[0].copy()).to(device)
    with torch.inference_mode(), nn_torch.full_precision():
        expected = torch.cat(
            [
                model(nn_torch.normalize(pixels[i : i + 4096], dt))
                for i in range(0, len(pixels), 4096)
            ]
        )
    expected = expected.cpu().numpy()
    from_pixels = nn_torch.predict_proba(
        model, test_set[0], batch_size=4096, device=device, dtype=dt
    )
    from_floats = nn_torch.predict_proba(
        model,
        nn_numpy.normalize(test_set[0], np.dtype(dtype).type),
        batch_size=4096,
        device=device,
        dtype=dt,
    )
    from_device = nn_torch.predict_proba(model, pixels, batch_size=4096, device=device, dtype=dt)
    for name, ours in [
        ("uint8", from_pixels),
        ("float", from_floats),
        ("tensor on the device", from_device),
    ]:
        assert np.array_equal(ours, expected), (
            f"{name} images ({dtype}, {device}): not bitwise model(x)"
        )


@pytest.mark.slow  # a second or more: the whole test set, or a fresh process
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_image_at_a_time_equals_batched(dtype, device, weights, test_set):
    """All 10,000 images, one ``(784,)`` forward call each, within the parity tolerance (nn_torch.parity)."""
    from nn_torch.parity import TOLERANCE

    model = nn_torch.MnistNet.from_numpy(weights, getattr(torch, dtype)).to(device)
    pixels = torch.from_numpy(test_set[0].copy()).to(device)
    with torch.inference_mode(), nn_torch.full_precision():
        x = nn_torch.normalize(pixels, getattr(torch, dtype))
        single = torch.stack([model(img) for img in x])
        torch.testing.assert_close(single, model(x), **TOLERANCE[dtype])


def test_a_model_with_its_own_forward_is_copied_to_another_dtype_never_changed(
    weights, test_images
):
    """Only a model that runs its own forward is moved to the dtype computed in: a copy, never the caller's."""

    class Subclass(MnistNet):
        def forward(self, x):
            return super().forward(x)

    model = Subclass.from_numpy(weights)
    labels = predict_labels(model, test_images[:100], device="cpu", dtype=torch.float64)
    assert model.fc1.weight.dtype == torch.float32 and model.fc3.bias.dtype == torch.float32
    assert np.array_equal(
        labels, predict_labels(MnistNet.from_numpy(weights), test_images[:100], device="cpu")
    )


@pytest.mark.cuda
def test_a_real_cuda_out_of_memory_halves_the_batch_and_gives_the_cpus_labels(
    weights, test_images, capsys
):
    """1,000,000 images in one batch on a GPU held to 1 GiB: ~3.8 GB of float32 buffers must halve."""
    no_cuda = f"CUDA is not available (torch {torch.__version__}); the cpu cases run the same code"
    if not torch.cuda.is_available():
        pytest.skip(no_cuda)
    model, images = MnistNet.from_numpy(weights), np.resize(test_images, (1_000_000, 784))
    expected = np.resize(predict_labels(model, test_images, device="cpu"), 1_000_000)
    torch.cuda.set_per_process_memory_fraction(
        2**30 / torch.cuda.get_device_properties(0).total_memory
    )
    try:
        labels = predict_labels(model, images, batch_size=len(images), device="cuda")
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        torch.cuda.empty_cache()
    assert np.array_equal(labels, expected)
    assert (
        "out of memory: halving the batch to 500000 images and going on" in capsys.readouterr().err
    )
