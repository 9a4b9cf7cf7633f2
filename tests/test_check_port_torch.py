"""``dlfs-ch3 check-port`` on PyTorch ports: the clean port in tests/ports/ with one slip each,
every slip named; a predict written in torch ops. (Without torch this file is one skip.)"""

import re

import pytest
import torch  # noqa: F401
from test_check_port import PORTS, findings_of, slipped

from dlfs_ch3.check_port import check_port

TORCH = (PORTS / "torch_chapter3.py").read_text()

SLIPS = {
    "torch_reshaped.py": (
        'network[f"W{i}"].T.copy()',
        'network[f"W{i}"].reshape(tuple(fc.weight.shape)).copy()',
        r"fc1\.weight is W1 reshaped to \(50, 784\), not transposed: use W1\.T",
    ),
    "torch_biases_not_loaded.py": (
        '            fc.bias.copy_(torch.from_numpy(network[f"b{i}"]))\n',
        "",
        r"fc1\.bias is not b1: the book's biases were not loaded into it",
    ),
    "torch_zero_b2.py": (
        '            fc.bias.copy_(torch.from_numpy(network[f"b{i}"]))\n',
        '            fc.bias.copy_(torch.from_numpy(network[f"b{i}"]) * (i != 2))\n',
        r"fc2\.bias is all zeros: b2 is missing",
    ),
    "torch_tf32.py": (
        "model = load(Net())\n",
        "from nn_torch.parity import emulate\n\nmodel = emulate(load(Net()), 'tf32')\n",
        r"fc1, fc2, fed the reference's input, beyond the proven bound; fc1's error is consistent with TF32",
    ),
    "torch_bf16.py": (
        "model = load(Net())\n",
        "from nn_torch.parity import emulate\n\nmodel = emulate(load(Net()), 'bf16')\n",
        r"consistent with bfloat16",
    ),
    "torch_half.py": (
        "model = load(Net())\nprint(model(torch.zeros(1, 784)).shape)",
        "model = load(Net()).half()",
        r"fc1 holds W1 in float16: 10 of float32's 23 mantissa bits",
    ),
    "torch_no_softmax.py": (
        "        return torch.softmax(self.fc3(z2), dim=-1)",
        "        return self.fc3(z2)",
        r"first diverges at y .*: no softmax at the output: y is a3",
    ),
    "torch_relu_layer2.py": (
        "        z2 = torch.sigmoid(self.fc2(z1))",
        "        z2 = torch.relu(self.fc2(z1))",
        r"first diverges at z2 .*: layer 2 has relu in place of sigmoid",
    ),
}


@pytest.fixture(scope="module")
def torch_slips(tmp_path_factory, data_dir):
    files = {name: (TORCH, old, new) for name, (old, new, _) in SLIPS.items()}
    return check_port(slipped(tmp_path_factory.mktemp("torch") / "slips", files), data_dir)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLIPS)
def test_each_torch_slip_is_named(torch_slips, name):
    mine = [f for f in findings_of(torch_slips, name) if f["verdict"] == "WRONG"]
    assert any(re.search(SLIPS[name][2], f["text"]) for f in mine), mine
    assert all(f["what"].startswith(("nn.Module model (Net, ", name)) for f in mine), mine


@pytest.mark.slow  # a child that imports torch
def test_the_clean_torch_port_is_all_ok(data_dir):
    report = check_port(PORTS / "torch_chapter3.py", data_dir)
    assert report["ok"] and [f["verdict"] for f in report["findings"]] == ["OK"]
    assert report["findings"][0]["what"].startswith("nn.Module model (Net, torch_chapter3.py:")


@pytest.mark.slow  # a child that imports torch
def test_a_predict_written_in_torch_is_called_with_tensors_and_judged(tmp_path, data_dir):
    port = (
        "import pickle\nimport torch\n\n\n"
        "def predict(network, x):\n"
        "    a1 = x @ network['W1'] + network['b1']\n"
        "    z1 = torch.sigmoid(a1)\n"
        "    a2 = z1 @ network['W2'] + network['b2']\n"
        "    z2 = torch.sigmoid(a2)\n"
        "    a3 = z2 @ network['W3']\n"
        "    y = torch.softmax(a3, dim=-1)\n"
        "    return y\n"
    )
    (tmp_path / "torch_predict.py").write_text(port)
    (predict,) = [
        f
        for f in check_port(tmp_path / "torch_predict.py", data_dir)["findings"]
        if f["what"].startswith("predict")
    ]
    assert predict["verdict"] == "WRONG" and predict["text"].endswith(": b3 is missing"), predict
