"""Shared fixtures: small models and data, fast enough for every test."""

from __future__ import annotations

import ast
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

N_FEATURES = 5
N_OUTPUTS = 3


class MLP(nn.Module):
    """5 -> 8 -> 3 with named layers (``hidden.0``, ``hidden.1``, ``out``)."""

    def __init__(self, n_in=N_FEATURES, n_hidden=8, n_out=N_OUTPUTS, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.hidden = nn.Sequential(nn.Linear(n_in, n_hidden), nn.Tanh())
        self.out = nn.Linear(n_hidden, n_out)
        self.fail = False

    def forward(self, x):
        if self.fail:
            raise RuntimeError("model failure on purpose")
        return self.out(self.hidden(x))


class Counting(nn.Module):
    """Counts the rows that go through the wrapped module."""

    def __init__(self, module):
        super().__init__()
        self.module = module
        self.rows = 0

    def forward(self, x):
        self.rows += x.shape[0]
        return self.module(x)


class NaNAtRow(nn.Module):
    """``n_in`` inputs, ``n_out`` outputs, finite except for rows whose first
    value exceeds 100."""

    def __init__(self, n_in=N_FEATURES, n_out=2, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.linear = nn.Linear(n_in, n_out)

    def forward(self, x):
        out = self.linear(x)
        return torch.where(x[:, :1] > 100, torch.nan, out)


class CategoryNet(nn.Module):
    """Two numeric columns and one category code (``model_inputs``:
    :data:`CATEGORY_INPUTS`), the code through an embedding."""

    def __init__(self, n_out=2, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.embed = nn.Embedding(3, 2)
        self.out = nn.Linear(4, n_out)

    def forward(self, num, cat):
        return self.out(torch.cat([num, self.embed(cat[:, 0])], 1))


CATEGORY_INPUTS = {"num": ["a", "b"], "cat": ["kind"]}


def category_frame(n: int) -> pd.DataFrame:
    """``n`` rows for :class:`CategoryNet`: numbers ``a``, ``b`` and a
    categorical ``kind`` of three values."""
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n),
            "kind": pd.Categorical(rng.choice(["x", "y", "z"], n)),
        }
    )


def explainer_names() -> list[str]:
    """The explainers among ``skattr.__all__`` (classes; not the helpers)."""
    import skattr

    return [n for n in skattr.__all__ if isinstance(getattr(skattr, n), type)]


#: Fast settings for every explainer in ``skattr.__all__``: the common checks
#: build each explainer with these. An explainer missing here fails
#: ``test_every_explainer_has_fast_settings``: add it when you export one.
FAST_PARAMS: dict[str, dict] = {
    "FeatureAblation": {},
    "FeaturePermutation": {"n_repeats": 2},
    "GradientShap": {"n_samples": 3},
    "KernelShap": {"n_samples": 20},
    "LayerGradientShap": {"layer": "hidden.0", "n_samples": 3},
    "Lime": {"n_samples": 20},
    "NeuronGradient": {"layer": "hidden.0", "neuron": 2},
    "ShapleyInteractions": {},
    "ShapleyValueSampling": {"n_samples": 4},
    "ShapleyValues": {},
}


@pytest.fixture
def mlp():
    return MLP()


@pytest.fixture
def X_frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        rng.normal(size=(12, N_FEATURES)).astype(np.float32),
        columns=[f"f{i}" for i in range(N_FEATURES)],
        index=pd.Index([f"r{i}" for i in range(12)], name="row"),
    )


@pytest.fixture
def y_labels(X_frame):
    return np.arange(len(X_frame)) % N_OUTPUTS


def make_linear(weights, bias=0.0, dtype=torch.float32):
    """A linear module with the given weights: f(x) = w . x + bias."""
    w = torch.as_tensor(weights, dtype=dtype).reshape(1, -1)
    model = nn.Linear(w.shape[1], 1).to(dtype)
    with torch.no_grad():
        model.weight.copy_(w)
        model.bias.fill_(bias)
    return model


@pytest.fixture(scope="session")
def breast_cancer_net():
    """A small skorch classifier on standardised breast-cancer data."""
    from sklearn.datasets import load_breast_cancer
    from skorch import NeuralNetClassifier

    data = load_breast_cancer(as_frame=True)
    X = data.data
    X = ((X - X.mean()) / X.std()).astype(np.float32)
    y = data.target.to_numpy()
    torch.manual_seed(0)
    net = NeuralNetClassifier(
        nn.Sequential(nn.Linear(30, 16), nn.ReLU(), nn.Linear(16, 2)),
        criterion=nn.CrossEntropyLoss,
        max_epochs=5,
        lr=0.05,
        train_split=None,
        verbose=0,
    )
    net.fit(X.to_numpy(), y)
    return net, X, y


def per_row(attr: pd.DataFrame) -> pd.DataFrame:
    """One row per row of ``X``: ShapleyInteractions' matrices summed along
    their rows (each row of a matrix sums to that feature's Shapley value);
    any other result as it is."""
    if not isinstance(attr.index, pd.MultiIndex):
        return attr
    rows = attr.index.get_level_values(0).unique()
    flat = attr.sum(axis=1).unstack(level=-1)
    return flat.loc[rows, list(attr.columns)]


def modules_imported_by(script: str, names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` are imported once ``script`` has run in a fresh
    interpreter (for checks that a call does not pay an import)."""
    probe = f"{script}\nimport sys\nprint(sorted(m for m in {names!r} if m in sys.modules))\n"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])
