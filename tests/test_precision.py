"""nn_torch.precision: each matmul named by what it does to inputs whose exact results are known, not
by flags; and batch invariance told apart from a bug by the proven bound."""

import numpy as np
import pytest
import torch

from dlfs_ch3.precision import verdict
from nn_torch.parity import round_mantissa
from nn_torch.precision import batch_invariance, probe


def accumulate_in(dtype, a, b):
    """``a @ b`` with products exact and the running sum rounded to ``dtype`` after each term."""
    out = torch.zeros(a.shape[0], b.shape[1], dtype=torch.float64)
    for k in range(a.shape[1]):
        out = (out + torch.outer(a[:, k].double(), b[k].double())).to(dtype).double()
    return out


def truncate(t, bits):
    """float32 ``t`` with its mantissa cut to ``bits``, rounding toward zero."""
    return (t.contiguous().view(torch.int32) & ~((1 << (23 - bits)) - 1)).view(torch.float32)


# (matmul, format, input bits, accumulator bits): the chapter's cases, then others' roundings
CASES = {
    "torch.matmul": (torch.matmul, "fp32", 23, 23),
    "TF32 emulated": (lambda a, b: round_mantissa(a, 10) @ round_mantissa(b, 10), "tf32", 10, 23),
    ".half()": (lambda a, b: (a.half() @ b.half()).float(), "fp16", 10, 10),
    ".bfloat16()": (lambda a, b: (a.bfloat16() @ b.bfloat16()).float(), "bf16", 7, 7),
    "bfloat16 accumulator": (lambda a, b: accumulate_in(torch.bfloat16, a, b), "bf16", 23, 7),
    "float16 accumulator": (lambda a, b: accumulate_in(torch.float16, a, b), "fp16", 23, 10),
    "TF32 by truncation": (lambda a, b: truncate(a, 10) @ truncate(b, 10), "tf32", 10, 23),
    "only the weights rounded": (lambda a, b: a @ round_mantissa(b, 10), "tf32", 10, 23),
    "a 3-bit format": (lambda a, b: round_mantissa(a, 3) @ round_mantissa(b, 3), "unknown", 3, 23),
    "float64 inside": (lambda a, b: (a.double() @ b.double()).float(), "fp32", 23, 23),
}


@pytest.mark.parametrize("case", CASES)
def test_each_matmul_is_named_for_what_it_does(case):
    matmul, fmt, inputs, accumulator = CASES[case]
    p = probe(matmul)
    assert (p.format, p.input_bits, p.accumulator_bits) == (fmt, inputs, accumulator)
    assert p.wide_range is (fmt != "fp16")


def test_float64_is_named_fp64_and_an_unknown_format_says_its_bits():
    assert probe(torch.matmul, torch.float64).format == "fp64"
    assert str(probe(CASES["a 3-bit format"][0])) == "unknown (3 bits)"


def mnist_forward(weights, order_changes_above=None, drops_b3_above=None, per_row=False):
    """The chapter's network in float32, as a function of a batch ``(N, 784)`` -> ``(N, 10)``;
    ``per_row``: each row through the same batch-of-1 kernels, so invariant by construction (a
    BLAS may itself pick other kernels for other batch sizes)."""
    W1, b1, W2, b2, W3, b3 = (
        torch.from_numpy(weights[k]) for k in ("W1", "b1", "W2", "b2", "W3", "b3")
    )

    def forward(x):
        x = torch.as_tensor(x)
        if per_row:
            return torch.cat([forward_rows(x[i : i + 1]) for i in range(len(x))])
        return forward_rows(x)

    def forward_rows(x):
        if order_changes_above and len(x) > order_changes_above:  # the same sum, other order
            a1 = x.flip(1) @ W1.flip(0) + b1
        else:
            a1 = x @ W1 + b1
        a3 = torch.sigmoid(torch.sigmoid(a1) @ W2 + b2) @ W3
        if not (drops_b3_above and len(x) > drops_b3_above):
            a3 = a3 + b3
        return torch.softmax(a3, dim=-1)

    return forward


@pytest.fixture(scope="module")
def mnist(weights, test_set):
    from nn_numpy import exact, normalize

    pixels = test_set[0][:200]
    truth = exact.reference(weights, pixels)
    bound = exact.bounds(weights, pixels, truth, "float32")["y"]
    return normalize(pixels), truth["y"][0], bound


@pytest.mark.parametrize(
    "change, bitwise, words",
    [
        ({"per_row": True}, True, "bitwise equal"),
        (
            {"order_changes_above": 50},
            False,
            "within its proven bound: a change of summation order",
        ),
        ({"drops_b3_above": 50}, False, "outside the proven bound: a bug"),
    ],
)
def test_batch_invariance_tells_summation_order_from_a_bug(weights, mnist, change, bitwise, words):
    x, truth, bound = mnist
    result = batch_invariance(mnist_forward(weights, **change), x, [1, 7, 100, 200])
    assert result.bitwise is bitwise and sorted(result.ulps) == [7, 100, 200]
    assert (result.max_ulps == 0) is bitwise and result.alone.shape == (200, 10)
    assert words in verdict(result, truth, bound)


def test_the_command_measures_every_setting_and_both_backends(run_in_process, data_dir, tmp_path):
    import json

    rows = [0, 2224, 9999]
    images, labels = tmp_path / "i.idx", tmp_path / "l.idx"
    from nn_numpy.data.mnist import load_mnist_test

    x, t = load_mnist_test(normalize=False, data_dir=data_dir)
    images.write_bytes(
        bytes([0, 0, 8, 3]) + np.array([3, 28, 28], ">u4").tobytes() + x[rows].tobytes()
    )
    labels.write_bytes(bytes([0, 0, 8, 1]) + np.array([3], ">u4").tobytes() + t[rows].tobytes())
    code, out, err = run_in_process("precision", "--images", images, "--labels", labels, "--json")
    report = json.loads(out)
    cpu = report["devices"]["cpu"]
    assert code == 0 and [r["setting"] for r in cpu["settings"]][:2] == ["default", "allow_tf32"]
    assert cpu["settings"][0]["measured"]["format"] == "fp32" and not cpu["settings"][0]["disagree"]
    assert {
        r["measured"]["format"] for r in cpu["settings"] if r["setting"] == "autocast bf16"
    } == {"bf16"}
    assert sorted(cpu["batch_invariance"]) == ["numpy", "torch"]
    code, out, err = run_in_process("precision", "--images", images, "--labels", labels)
    assert code == 0 and "DISAGREE" not in out and out.startswith("device cpu, float32")
