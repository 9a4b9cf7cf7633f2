"""``dlfs-ch3 check-port`` on ports with one slip each: the clean ports in tests/ports/ with one line
changed, each its own small file, each slip named with its layer; then the ways a reader's code is
laid out and run (the book's folders, a module name, a crash, an endless loop) and the exit codes."""

import re
from pathlib import Path

import numpy as np
import pytest

from dlfs_ch3.check_port import check_port

PORTS = Path(__file__).parent / "ports"
BOOK = (PORTS / "book_chapter3.py").read_text()
PREDICT_BODY = (  # predict's, not the toy network's: it ends in softmax
    "    a1 = np.dot(x, W1) + b1\n    z1 = sigmoid(a1)\n    a2 = np.dot(z1, W2) + b2\n"
    "    z2 = sigmoid(a2)\n    a3 = np.dot(z2, W3) + b3\n    y = softmax"
)

# file: (line of the clean port, the slip put in its place, the function named, its diagnosis)
SLIPS = {
    "softmax_batch.py": (
        "    c = np.max(a, axis=-1, keepdims=True)\n    exp_a = np.exp(a - c)\n    sum_exp_a = np.sum(exp_a, axis=-1, keepdims=True)",
        "    c = np.max(a)\n    exp_a = np.exp(a - c)\n    sum_exp_a = np.sum(exp_a)",
        "softmax",
        r"sums over the whole batch, not each row: the rows of a \(4, 3\) batch sum to 0\.57, 0\.23, 0\.031, 0\.17, the batch to 1",
    ),
    "softmax_no_max.py": (
        "    exp_a = np.exp(a - c)",
        "    exp_a = np.exp(a)",
        "softmax",
        r"softmax\(\[1010, 1000, 990\]\) gives \[nan, nan, nan\] \(warns 'overflow encountered in exp'\): exp overflows without the max subtracted; compute exp_a = np.exp\(a - np.max\(a\)\) first",
    ),
    "softmax_batch_max.py": (
        "    c = np.max(a, axis=-1, keepdims=True)",
        "    c = np.max(a)",
        "softmax",
        r"subtracts the whole batch's max, not each row's",
    ),
    "step_bool.py": (
        "    return np.array(x > 0, dtype=np.int64)",
        "    return x > 0",
        "step_function",
        r"returns bool \(float64 1-D\): the book's returns y\.astype\(np\.int64\)",
    ),
    "step_float.py": (
        "    return np.array(x > 0, dtype=np.int64)",
        "    return (x > 0) * 1.0",
        "step_function",
        r"returns float64 \(float64 1-D\): the book's returns integers",
    ),
    "step_np_int.py": (
        "dtype=np.int64)",
        "dtype=np.int)",
        "step_function",
        r"crashes: step_np_int\.py:12: AttributeError: module 'numpy' has no attribute 'int'\. \(np\.int is gone from NumPy \(1\.24\): write int or np\.int64\)",
    ),
    "step_at_zero.py": (
        "np.array(x > 0,",
        "np.array(x >= 0,",
        "step_function",
        r"^gives 1 at x = 0: the book's code \(x > 0\) gives 0",
    ),
    "relu_product.py": (
        "    return np.maximum(0, x)",
        "    return x * (x > 0)",
        "relu",
        r"gives nan where the reference gives 0 \(float64 1-D input, x = -inf\)",
    ),
    "no_b1.py": (
        PREDICT_BODY,
        PREDICT_BODY.replace("W1) + b1", "W1)"),
        "predict",
        r"first diverges at a1 \(a1 = np\.dot\(x, W1\) \+ b1\): b1 is missing$",
    ),
    "no_b2.py": (
        PREDICT_BODY,
        PREDICT_BODY.replace("W2) + b2", "W2)"),
        "predict",
        r"first diverges at a2 .*: b2 is missing$",
    ),
    "no_b3.py": (
        "    a3 = np.dot(z2, W3) + b3\n    y = softmax",
        "    a3 = np.dot(z2, W3)\n    y = softmax",
        "predict",
        r"first diverges at a3 .*: b3 is missing$",
    ),
    "no_biases.py": (
        PREDICT_BODY,
        PREDICT_BODY.replace(" + b1", "").replace(" + b2", "").replace(" + b3", ""),
        "predict",
        r"first diverges at a1 .*: b1, b2 and b3 are all missing$",
    ),
    "relu_layer1.py": (
        PREDICT_BODY,
        PREDICT_BODY.replace("z1 = sigmoid(a1)", "z1 = relu(a1)"),
        "predict",
        r"first diverges at z1 \(z1 = sigmoid\(a1\)\): .*layer 1 has relu in place of sigmoid",
    ),
    "no_activation_layer2.py": (
        "    z2 = sigmoid(a2)\n    a3 = np.dot(z2, W3) + b3\n    y = softmax",
        "    z2 = a2\n    a3 = np.dot(z2, W3) + b3\n    y = softmax",
        "predict",
        r"first diverges at z2 .*: layer 2 has no activation",
    ),
    "no_softmax.py": (
        "    y = softmax(a3)",
        "    y = a3",
        "predict",
        r"first diverges at y \(y = softmax\(a3\)\): .*no softmax at the output: y is a3",
    ),
    "sigmoid_output.py": (
        "    y = softmax(a3)",
        "    y = sigmoid(a3)",
        "predict",
        r"first diverges at y .*: the output is sigmoid",
    ),
    "weight_transposed.py": (
        PREDICT_BODY,
        PREDICT_BODY.replace("np.dot(x, W1)", "np.dot(x, W1.T)"),
        "predict",
        r"crashes: .*shapes \(100,784\) and \(50,784\) not aligned.*is a weight transposed\?",
    ),
    "bias_key_upper.py": (
        '    b1, b2, b3 = network["b1"], network["b2"], network["b3"]\n    a1 = np.dot(x, W1) + b1\n    z1 = sigmoid(a1)\n    a2 = np.dot(z1, W2) + b2\n    z2 = sigmoid(a2)\n    a3 = np.dot(z2, W3) + b3\n    y = softmax',
        '    b1, b2, b3 = network["B1"], network["B2"], network["B3"]\n    a1 = np.dot(x, W1) + b1\n    z1 = sigmoid(a1)\n    a2 = np.dot(z1, W2) + b2\n    z2 = sigmoid(a2)\n    a3 = np.dot(z2, W3) + b3\n    y = softmax',
        "predict",
        r"KeyError: 'B1' \(sample_weight\.pkl's keys are lower case: b1, b2, b3\)",
    ),
    "toy_b2_for_b3.py": (
        "    a3 = np.dot(z2, W3) + b3\n    y = identity",
        "    a3 = np.dot(z2, W3) + b2\n    y = identity",
        "forward",
        r"first diverges at a3 .*: b2 is used where b3 belongs$",
    ),
    "toy_W3_transposed.py": (
        "    a3 = np.dot(z2, W3) + b3\n    y = identity",
        "    a3 = np.dot(z2, W3.T) + b3\n    y = identity",
        "forward",
        r"first diverges at a3 .*: W3 is transposed$",
    ),
    "not_normalised.py": (
        "load_mnist(normalize=True,",
        "load_mnist(normalize=False,",
        "get_data",
        r"x is uint8 pixels 0-255, not normalised: load_mnist\(normalize=True\)",
    ),
    "not_normalised_float.py": (
        "load_mnist(normalize=True, flatten=True, one_hot_label=False)\n    return x_test, t_test",
        "load_mnist(normalize=False, flatten=True, one_hot_label=False)\n    return x_test.astype(np.float32), t_test",
        "get_data",
        r"x is not normalised \(values up to 255\): load_mnist\(normalize=True\)",
    ),
    "not_flattened.py": (
        "flatten=True,",
        "flatten=False,",
        "get_data",
        r"x has shape \(10000, 1, 28, 28\), not \(10000, 784\): load_mnist\(flatten=True\)",
    ),
    "divided_by_batch.py": (
        "str(float(accuracy_cnt) / len(x))",
        "str(float(accuracy_cnt) / batch_size)",
        "accuracy",
        r"prints 93\.52, but your predict scores 0\.9352 \(9352 of 10000\) on the same data: it divides by 100, not by the 10000 images",
    ),
    "batch_skipped.py": (
        "range(0, len(x), batch_size)",
        "range(0, len(x) - batch_size, batch_size)",
        "accuracy",
        r"prints 0\.926., but your predict scores 0\.9352 .*: it counts 92.. right where your predict gets 9352: .* not counted, as when a batch is skipped",
    ),
    "no_b1_accuracy.py": (
        PREDICT_BODY,
        PREDICT_BODY.replace("W1) + b1", "W1)"),
        "accuracy",
        r"prints 0\.9337, as your predict gives \(9337 of 10000\); the reference gives 0\.9352: the slip is before the loop",
    ),
}


def slipped(folder, files):
    """``files`` ``{name: (clean source, old, new)}`` written into ``folder``, each slip put in once."""
    folder.mkdir()
    for name, (source, old, new) in files.items():
        assert source.count(old) == 1, name
        (folder / name).write_text(source.replace(old, new))
    return folder


def findings_of(report, name):
    return [f for f in report["findings"] if name in f["what"]]


@pytest.fixture(scope="module")
def numpy_slips(tmp_path_factory, data_dir):
    """One check-port run over a folder of every NumPy slip, each file its own child."""
    files = {name: (BOOK, old, new) for name, (old, new, _, _) in SLIPS.items()}
    return check_port(slipped(tmp_path_factory.mktemp("numpy") / "slips", files), data_dir)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLIPS)
def test_each_numpy_slip_is_named_with_its_layer(numpy_slips, name):
    _, _, what, diagnosis = SLIPS[name]
    wrong = [f for f in findings_of(numpy_slips, name) if f["verdict"] == "WRONG"]
    assert [f["what"].split(" ")[0] for f in wrong if f["what"].startswith(what)] == [what], wrong
    (mine,) = [f for f in wrong if f["what"].startswith(what)]
    assert re.search(diagnosis, mine["text"]), mine["text"]
    follows = {"accuracy", "predict"} if what in ("softmax", "accuracy") else {"accuracy"}
    others = {f["what"].split(" ")[0] for f in wrong} - {what, name} - follows
    assert not others, wrong  # one slip, one function named (and what it moves)


@pytest.mark.slow  # a child process each: seconds
@pytest.mark.parametrize("port", ["book_chapter3.py"])
def test_a_clean_port_is_all_ok_and_its_report_short(port, data_dir, tmp_path):
    report = check_port(PORTS / port, data_dir)
    assert report["ok"] and {f["verdict"] for f in report["findings"]} <= {"OK", "note"}
    oks = [f["what"].split(" ")[0] for f in report["findings"] if f["verdict"] == "OK"]
    expected = (
        ["nn.Module"]
        if port.startswith("torch")
        else [
            "step_function",
            "sigmoid",
            "relu",
            "identity_function",
            "softmax",
            "init_network",
            "get_data",
            "predict",
            "forward",
            "accuracy",
        ]
    )
    assert oks == expected
    assert all(
        re.search(
            r"(exact|largest error [0-9.e-]+ of its proven bound|within 1e-12|prints 0\.9352|returns sample_weight|x \(10000)",
            f["text"],
        )
        for f in report["findings"]
        if f["verdict"] == "OK"
    )


@pytest.mark.slow  # a child process each: seconds
def test_the_books_layout_runs_without_network_or_weights_beside_it(tmp_path, data_dir):
    """ch03/ beside common/ and dataset/: the book's dataset/mnist.py (here one that would download)
    is never run, common.functions is the reader's, sample_weight.pkl is the project's copy."""
    for folder in ("ch03", "common", "dataset"):
        (tmp_path / folder).mkdir()
    (tmp_path / "dataset" / "mnist.py").write_text(
        "raise SystemExit('the network must not be used')\n"
    )
    (tmp_path / "common" / "functions.py").write_text(
        "import numpy as np\n\ndef softmax(a):\n    c = np.max(a)\n    return np.exp(a - c) / np.sum(np.exp(a - c))\n"
    )
    script = BOOK.replace(
        "\ndef softmax(", "\nfrom common.functions import softmax\n\ndef _softmax("
    )
    (tmp_path / "ch03" / "neuralnet_mnist.py").write_text(script)
    report = check_port(tmp_path, data_dir)
    assert report["files"] == ["ch03/neuralnet_mnist.py"] and report["found"]["softmax"] == [
        "common/functions.py:3"
    ]
    (softmax,) = [f for f in report["findings"] if f["what"].startswith("softmax")]
    assert "sums over the whole batch" in softmax["text"]
    assert (
        "ch03/neuralnet_mnist.py: sample_weight.pkl does not exist here: the project's verified copy was opened"
        in report["notes"]
    )
    assert any("gave an empty x_train" in n for n in report["notes"])
    assert check_port(tmp_path / "ch03", data_dir)["found"] == report["found"]  # ch03/ itself, too


@pytest.mark.slow  # a child process each: seconds
def test_weights_beside_the_script_are_the_readers_and_an_absolute_path_elsewhere_is_ours(
    tmp_path, data_dir
):
    (tmp_path / "sample_weight.pkl").symlink_to(data_dir / "sample_weight.pkl")
    (tmp_path / "a.py").write_text(BOOK)
    (tmp_path / "b.py").write_text(
        BOOK.replace('open("sample_weight.pkl"', 'open("/home/saitoh/dl/ch03/sample_weight.pkl"')
    )
    report = check_port(tmp_path, data_dir)
    assert report["ok"] and report["notes"] == [
        "a.py: the training split is not in the data dir and nothing is downloaded: load_mnist gave an empty x_train (chapter 3 needs only the test split)",
        "b.py: /home/saitoh/dl/ch03/sample_weight.pkl does not exist here: the project's verified copy was opened",
        "b.py: the training split is not in the data dir and nothing is downloaded: load_mnist gave an empty x_train (chapter 3 needs only the test split)",
    ]


@pytest.mark.slow  # a child process each: seconds
def test_a_module_name_with_a_package_qualified_dataset_import(tmp_path, data_dir, monkeypatch):
    package = tmp_path / "mybooks"
    (package / "dataset").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "chapter3.py").write_text(
        BOOK.replace("from dataset.mnist", "from mybooks.dataset.mnist")
    )
    monkeypatch.chdir(tmp_path)
    report = check_port("mybooks.chapter3", data_dir)
    assert report["ok"] and report["files"] == ["mybooks.chapter3"] and len(report["found"]) == 9


@pytest.mark.slow  # a child process each: seconds
def test_a_crash_at_the_top_names_the_readers_line_and_an_endless_loop_is_stopped(
    tmp_path, data_dir
):
    (tmp_path / "crash.py").write_text(
        "import numpy as np\n\ndef relu(x):\n    return np.maximum(0, x)\n\nnp.dot(np.ones(3), np.ones(4))\n"
    )
    (tmp_path / "endless.py").write_text("def sigmoid(x):\n    return x\n\nwhile True:\n    pass\n")
    report = check_port(tmp_path, data_dir, timeout=2)
    assert findings_of(report, "crash.py")[0] == {
        "verdict": "WRONG",
        "what": "crash.py",
        "text": "crashes: crash.py:6: ValueError: shapes (3,) and (4,) not aligned: 3 (dim 0) != 4 (dim 0) (a matrix product's shapes do not chain: is a weight transposed?)",
    }
    assert (
        findings_of(report, "relu")[0]["verdict"] == "OK"
    )  # defined before the crash: still checked
    assert findings_of(report, "endless.py") == [
        {
            "verdict": "WRONG",
            "what": "endless.py",
            "text": "did not finish within 2 s and was stopped (an endless loop?)",
        }
    ]


@pytest.mark.slow  # a child process each: seconds
def test_exit_codes_and_labels(run_in_process, data_dir, tmp_path, assert_one_line_error):
    code, out, err = run_in_process(
        "check-port", PORTS / "book_chapter3.py", "--data-dir", data_dir
    )
    assert (
        code == 0 and out.splitlines()[-1] == "all OK" and "numpy" not in out and "torch" not in out
    )
    assert "reference: the exact result" in out and "yours: your code" in out
    (tmp_path / "slip.py").write_text(BOOK.replace("    y = softmax(a3)", "    y = a3"))
    code, out, err = run_in_process(
        "check-port", tmp_path / "slip.py", "--data-dir", data_dir, "--json"
    )
    assert code == 1 and '"ok": false' in out
    assert_one_line_error(
        run_in_process("check-port", tmp_path / "nothing_here", "--data-dir", data_dir),
        "no such file, folder or importable module",
    )
    (tmp_path / "hello.py").write_text("print('hello')\n")
    assert_one_line_error(
        run_in_process("check-port", tmp_path / "hello.py", "--data-dir", data_dir),
        "nothing of chapter 3 found",
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_one_line_error(
        run_in_process("check-port", empty, "--data-dir", data_dir), "no .py files"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "empty",
        "hello.py",
        "slip.py",
    ]  # nothing left


@pytest.mark.slow  # a child process each: seconds
def test_the_notes_port_gets_each_of_its_slips_named(data_dir):
    pytest.importorskip(
        "matplotlib", reason="the notes' sigmoid.py imports matplotlib: the plot extra"
    )
    """The reader's notes, as their own files (``from sigmoid import *``): np.int, predict with no
    bias, a one-row softmax used on batches; several slips in one predict, each named."""
    report = check_port(PORTS / "notes", data_dir)
    wrong = {
        f["what"].split(" ")[0]: f["text"] for f in report["findings"] if f["verdict"] == "WRONG"
    }
    assert sorted(wrong) == ["accuracy", "predict", "softmax", "step_function"]
    assert wrong["predict"] == (
        "first diverges at a1 (a1 = np.dot(x, W1) + b1): b1, b2 and b3 are all missing; softmax "
        "sums over the whole batch, not each row (each row's argmax, so the accuracy, is unchanged)"
    )
    assert wrong["accuracy"].startswith("prints 0.9311, as your predict gives (9311 of 10000)")
    assert "np.int is gone from NumPy" in wrong["step_function"]
    assert "sums over the whole batch" in wrong["softmax"]


@pytest.mark.slow  # a child process each: seconds
@pytest.mark.parametrize(
    "rounding, named",
    [
        (
            "x.astype(np.float16).astype(np.float32), W1.astype(np.float16).astype(np.float32)",
            "10 mantissa bits (TF32, or float16)",
        ),
        ("bf16(x), bf16(W1)", "7 mantissa bits (bfloat16)"),
    ],
)
def test_reduced_precision_in_a_numpy_predict_is_named(tmp_path, data_dir, rounding, named):
    """A first layer just beyond its float32 bound, by a rounding of its inputs: the bound decides."""
    bf16 = "\ndef bf16(v):\n    return (v.astype(np.float32).view(np.uint32) + 0x8000 & 0xFFFF0000).view(np.float32)\n"
    source = BOOK.replace("\ndef predict(", bf16 + "\n\ndef predict(").replace(
        "    a1 = np.dot(x, W1) + b1\n    z1 = sigmoid(a1)\n    a2 = np.dot(z1, W2) + b2\n    z2 = sigmoid(a2)\n    a3 = np.dot(z2, W3) + b3\n    y = softmax",
        f"    a1 = np.dot({rounding}).astype(np.float32) + b1\n    z1 = sigmoid(a1)\n    a2 = np.dot(z1, W2) + b2\n    z2 = sigmoid(a2)\n    a3 = np.dot(z2, W3) + b3\n    y = softmax",
    )
    (tmp_path / "port.py").write_text(source)
    (predict,) = [
        f
        for f in check_port(tmp_path / "port.py", data_dir)["findings"]
        if f["what"].startswith("predict")
    ]
    assert predict["verdict"] == "WRONG" and predict["text"].startswith("first diverges at a1")
    assert named in predict["text"], predict["text"]


def test_an_element_exactly_at_its_bound_is_within_and_nan_only_matches_nan():
    from dlfs_ch3.port_verdicts import _beyond

    truth = np.array([1.0, 2.0, np.nan, np.inf, 0.0])
    bound = np.array([0.5, 0.5, 0.5, 0.5, 0.5])
    bad, ratio = _beyond(np.array([1.5, 2.0, np.nan, np.inf, 0.25]), truth, bound)
    assert not bad.any() and ratio == 1.0
    bad, _ = _beyond(np.array([1.5000001, 2.0, 1.0, -np.inf, np.nan]), truth, bound)
    assert bad.tolist() == [True, False, True, True, True]
