"""A net with embedded categorical columns, per class
==================================================

Explain a tabular net with embedded categorical columns, per class.

The net takes two inputs, as tabular deep learning nets do: the numeric
measurements as floats, and the categorical columns (island, sex) as integer
codes, each looked up in its own ``nn.Embedding``. skattr calls it with
``model_inputs={"x_num": [...], "x_cat": [...]}``: the user's DataFrame, with
``category`` columns, goes in as it is, and the attributions come out in its
columns, for every species at once (``target="all"``, at the cost of one).

Run: ``python examples/penguins_embeddings.py``
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from palmerpenguins import load_penguins
from torch import nn

import skattr

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]
MODEL_INPUTS = {"x_num": NUMERIC, "x_cat": CATEGORICAL}


class EmbeddingNet(nn.Module):
    """Numeric columns, plus one learned embedding per categorical column."""

    def __init__(self, cardinalities=(3, 2), dim=4, n_classes=3):
        super().__init__()
        self.embeddings = nn.ModuleList(nn.Embedding(c, dim) for c in cardinalities)
        width = len(NUMERIC) + dim * len(cardinalities)
        self.mlp = nn.Sequential(
            nn.Linear(width, 32), nn.ReLU(), nn.Linear(32, n_classes)
        )

    def forward(self, x_num, x_cat):
        embedded = [e(x_cat[:, i]) for i, e in enumerate(self.embeddings)]
        return self.mlp(torch.cat([x_num, *embedded], dim=1))


def load() -> tuple[pd.DataFrame, pd.Series]:
    """The penguins with complete rows: scaled measurements, category columns."""
    df = load_penguins().dropna().reset_index(drop=True)
    X = df[NUMERIC].astype(np.float32)
    X = (X - X.mean()) / X.std()
    for column in CATEGORICAL:
        X[column] = df[column].astype("category")
    return X, df["species"].astype("category")


def train(X: pd.DataFrame, species: pd.Series) -> EmbeddingNet:
    torch.manual_seed(0)
    net = EmbeddingNet()
    x_num = torch.tensor(X[NUMERIC].to_numpy(np.float32))
    x_cat = torch.tensor(np.stack([X[c].cat.codes for c in CATEGORICAL], 1))
    y = torch.tensor(species.cat.codes.to_numpy(), dtype=torch.long)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    for _ in range(150):  # full-batch training: a few seconds
        optimizer.zero_grad()
        nn.functional.cross_entropy(net(x_num, x_cat.long()), y).backward()
        optimizer.step()
    return net.eval()


def main() -> dict[str, pd.DataFrame]:
    X, species = load()
    net = train(X, species)
    explainer = skattr.ShapleyValues(target="all", model_inputs=MODEL_INPUTS)
    attributions = explainer.fit(net, X).explain(X.iloc[::10])
    importance = explainer.importance(X.iloc[::10])
    classes = list(species.cat.categories)
    importance = importance.rename(columns=dict(enumerate(classes)))
    print("Mean |Shapley value| per column and species (exact, 2^6 coalitions):")
    print(importance.round(3).to_string())
    first = attributions.iloc[0].unstack("output").reindex(X.columns)
    first = first.rename(columns=dict(enumerate(classes)))
    print(f"\nRow {attributions.index[0]}, every species (sums to f(x) - f(baseline)):")
    print(first.round(3).to_string())
    return {"importance": importance, "attributions": attributions}


if __name__ == "__main__":
    main()
