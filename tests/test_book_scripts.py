"""The book's two ch03 scripts as a learner runs them: the book's accuracy printed, exit 0; a bad option, exit 2."""

import pytest

BOOK_SCRIPTS = ["neuralnet_mnist.py", "neuralnet_mnist_batch.py"]


@pytest.mark.parametrize("script", BOOK_SCRIPTS)
def test_prints_the_books_accuracy(script, run_script, data_dir):
    proc = run_script(script, "--data-dir", data_dir)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "Accuracy:0.9352\n", "")


@pytest.mark.parametrize("script", BOOK_SCRIPTS)
def test_a_bad_option_is_one_line_and_exit_2(script, run_script, assert_one_line_error):
    assert_one_line_error(run_script(script, "--batch"), "unrecognized arguments: --batch")


@pytest.mark.parametrize("script", BOOK_SCRIPTS)
def test_an_empty_dataset_is_one_line_and_exit_2(script, tmp_path, run_script, assert_one_line_error, data_dir):
    images, labels = tmp_path / "images.idx", tmp_path / "labels.idx"
    images.write_bytes(bytes([0, 0, 8, 3]) + (0).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2)
    labels.write_bytes(bytes([0, 0, 8, 1]) + (0).to_bytes(4, "big"))
    assert_one_line_error(run_script(script, "--images", images, "--labels", labels),
                          f"{images} holds no images: nothing to evaluate")


def test_predict_takes_one_image_or_a_batch(load_script, weights, test_set):
    book = load_script("neuralnet_mnist.py")
    x = test_set[0][:100] / 255
    batch = book.predict(weights, x)
    assert batch.shape == (100, 10) and book.predict(weights, x[7]).shape == (10,)
    assert book.predict(weights, x[7]).tolist() == pytest.approx(batch[7].tolist(), abs=1e-12)
