"""``dlfs-ch3 sgd-steps`` as a user runs it: a row per step, the verdict, exit codes 0, 1 and 2."""

import pytest
import torch  # noqa: F401  (the command compares NumPy with torch; without torch this file is one skip)


@pytest.mark.slow  # a second or more: a fresh process, or the whole test set
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_steps_print_loss_and_accuracy_and_end_matching(dtype, run_in_process, data_dir):
    code, out, err = run_in_process(
        "sgd-steps", "--steps", "3", "--dtype", dtype, "--device", "cpu"
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1].split() == [
        "step",
        "loss",
        "numpy",
        "loss",
        "torch",
        "acc",
        "numpy",
        "acc",
        "torch",
    ]
    rows = [line.split() for line in lines[2:5]]
    assert [r[0] for r in rows] == ["1", "2", "3"]
    for _, loss, torch_loss, acc, torch_acc in rows:
        assert float(loss) == pytest.approx(float(torch_loss), rel=1e-6)
        assert (
            acc == torch_acc and 0.93 < float(acc) < 0.94
        )  # one small step from the book's 0.9352
    assert lines[5].startswith("max |W_numpy - W_torch| = ") and lines[5].endswith(
        "OK, the weights still match"
    )


@pytest.mark.slow  # a second or more: the whole test set, or a fresh process
def test_a_huge_learning_rate_makes_them_diverge_and_exit_1(run_in_process, data_dir):
    # lr 1e9 turns the one-ulp differences of step 1 into different weights at step 2
    code, out, _ = run_in_process("sgd-steps", "--steps", "2", "--lr", "1e9", "--device", "cpu")
    assert code == 1
    assert out.splitlines()[-1].endswith("FAILED, the frameworks diverged")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--lr", "-0.1"], "argument --lr: expected a finite positive number, got -0.1"),
        (["--steps", "0"], "expected a positive integer, got 0"),
        (["--seed", "-1"], "argument --seed: expected a non-negative integer, got -1"),
        (["--seed", "x"], "argument --seed: expected a non-negative integer, got 'x'"),
        (["--device", "nonsense"], "unknown device 'nonsense'"),
    ],
)
def test_bad_options_are_one_line_errors(args, message, run_in_process, assert_one_line_error):
    assert_one_line_error(run_in_process("sgd-steps", *args), message)


def test_a_batch_larger_than_the_data_is_one_line_error(run_in_process, data_dir):
    code, out, err = run_in_process("sgd-steps", "--batch-size", "10001")
    assert code == 2
    assert err.count("\n") == 1 and "--batch-size 10001 is larger than the 10000 images" in err, err
