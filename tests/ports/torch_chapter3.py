"""Chapter 3's MNIST network ported to PyTorch as a reader would: the clean port check-port's tests
put slips into."""

import pickle

import numpy as np
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 50)
        self.fc2 = nn.Linear(50, 100)
        self.fc3 = nn.Linear(100, 10)

    def forward(self, x):
        z1 = torch.sigmoid(self.fc1(x))
        z2 = torch.sigmoid(self.fc2(z1))
        return torch.softmax(self.fc3(z2), dim=-1)


def load(model, path="sample_weight.pkl"):
    with open(path, "rb") as f:
        network = pickle.load(f)
    with torch.no_grad():
        for i, fc in enumerate([model.fc1, model.fc2, model.fc3], 1):
            fc.weight.copy_(torch.from_numpy(network[f"W{i}"].T.copy()))
            fc.bias.copy_(torch.from_numpy(network[f"b{i}"]))
    return model


model = load(Net())
print(model(torch.zeros(1, 784)).shape)
