"""Benchmark workloads W1, W2 and W3 (see benchmarks/README.md).

Needs only torch, numpy, pandas, scikit-learn and skorch, so that the
harness also runs as a plain script on a GPU machine without the Makefile's
virtual environment.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
from torch import nn


@dataclass
class Workload:
    name: str
    model: nn.Module  #: on the device, eval mode
    X: torch.Tensor  #: rows to explain, on the device
    baseline: torch.Tensor  #: [1, p] zeros on the device
    target: int
    device: torch.device
    X_all: torch.Tensor | None = None  #: W1: all 569 rows (permutation importance)
    y_all: np.ndarray | None = None
    feature_names: list[str] = field(default_factory=list)
    batch_size: int = 4096  #: see batch_size_for

    @cached_property
    def frame(self):
        """The rows to explain as a named DataFrame, as a user holds them."""
        return _frame(self.X, self.feature_names)

    @cached_property
    def frame_all(self):
        """W1's 569 labelled rows as a named DataFrame."""
        return _frame(self.X_all, self.feature_names)

    def tensor(self, frame):
        """What a peer that takes tensors is handed: the frame, converted."""
        return torch.as_tensor(frame.to_numpy(), device=self.device)

    def skorch_net(self):
        """The same trained module inside an initialized skorch classifier."""
        from skorch import NeuralNetClassifier

        net = NeuralNetClassifier(
            type(self.model),
            criterion=nn.CrossEntropyLoss,
            device=str(self.device),
            batch_size=128,
            verbose=0,
        )
        net.initialize()
        net.module_ = self.model
        net.classes_inferred_ = np.unique(self.y_all)
        return net


def _frame(X: torch.Tensor, names: list[str]):
    import pandas as pd

    return pd.DataFrame(X.cpu().numpy(), columns=names)


def batch_size_for(device: torch.device) -> int:
    """Rows per forward call: 4,096 on a CPU; 65,536 on a GPU, where 4,096
    rows of these small MLPs leave the device idle between kernel launches."""
    return 4096 if device.type == "cpu" else 65536


class W1Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Sequential(
            nn.Linear(30, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU()
        )
        self.out = nn.Linear(64, 2)

    def forward(self, x):
        return self.out(self.hidden(x))


class W2Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Sequential(
            nn.Linear(100, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU()
        )
        self.out = nn.Linear(256, 1)

    def forward(self, x):
        return self.out(self.hidden(x))


#: W1's seven feature groups for the exact Shapley benchmark: the mean, se and
#: worst columns of each measurement, with related measurements merged.
W1_GROUPS = {
    "size": ["radius", "perimeter", "area"],
    "texture": ["texture"],
    "smoothness": ["smoothness"],
    "compactness": ["compactness"],
    "concavity": ["concavity", "concave points"],
    "symmetry": ["symmetry"],
    "fractal dimension": ["fractal dimension"],
}


def w1_group_mask(feature_names: list[str]) -> np.ndarray:
    """Captum-style mask of W1_GROUPS over the 30 breast-cancer columns."""
    mask = np.empty(len(feature_names), dtype=np.int64)
    for i, name in enumerate(feature_names):
        stem = name.removeprefix("mean ").removeprefix("worst ").removesuffix(" error")
        mask[i] = next(j for j, cols in enumerate(W1_GROUPS.values()) if stem in cols)
    return mask


def w1(device: torch.device) -> Workload:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    X = data.data.astype(np.float32)
    X = (X - X.mean(0)) / X.std(0)
    torch.manual_seed(0)
    model = W1Net()
    Xt, yt = torch.from_numpy(X), torch.from_numpy(data.target).long()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):  # brief full-batch training, fixed seed
        opt.zero_grad()
        nn.functional.cross_entropy(model(Xt), yt).backward()
        opt.step()
    model = model.to(device).eval()
    X_all = Xt.to(device)
    return Workload(
        name="W1",
        model=model,
        X=X_all[:100].clone(),
        baseline=torch.zeros(1, 30, device=device),
        target=1,
        device=device,
        X_all=X_all,
        y_all=data.target,
        feature_names=list(data.feature_names),
        batch_size=batch_size_for(device),
    )


def _random_workload(name: str, n_rows: int, device: torch.device) -> Workload:
    X = torch.randn(n_rows, 100, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = W2Net().to(device).eval()
    return Workload(
        name=name,
        model=model,
        X=X.to(device),
        baseline=torch.zeros(1, 100, device=device),
        target=0,
        device=device,
        feature_names=[f"x{i}" for i in range(100)],
        batch_size=batch_size_for(device),
    )


def w2(device: torch.device) -> Workload:
    return _random_workload("W2", 2000, device)


def w3(device: torch.device) -> Workload:
    return _random_workload("W3", 20000, device)


class W4Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.hidden = nn.Sequential(
            nn.Linear(500, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU()
        )
        self.out = nn.Linear(64, 1)

    def forward(self, x):
        return self.out(self.hidden(x))


def w4(device: torch.device) -> Workload:
    """A wide table: 400 rows of 500 columns, MLP 500 -> 64 -> 64 -> 1."""
    X = torch.randn(400, 500, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = W4Net().to(device).eval()
    return Workload(
        name="W4",
        model=model,
        X=X.to(device),
        baseline=torch.zeros(1, 500, device=device),
        target=0,
        device=device,
        feature_names=[f"x{i}" for i in range(500)],
        batch_size=batch_size_for(device),
    )


WORKLOADS = {"W1": w1, "W2": w2, "W3": w3, "W4": w4}
