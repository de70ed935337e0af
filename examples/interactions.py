"""Which features act together: Shapley interaction values of an MLP
===================================================================

Train a small MLP on the diabetes data, then ask which pairs of features
act together in its predictions. ``ShapleyInteractions`` gives each row a
matrix in SHAP's layout (half of each pair's interaction in each of its two
cells, the main effect on the diagonal; each matrix row sums to that
feature's Shapley value), exactly from all ``2^10`` coalitions of every row,
and ranks the pairs with ``importance``. The sampled mode
(``n_samples=``) estimates the same matrices from fewer coalitions, with
standard errors.

Run: ``python examples/interactions.py``
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_diabetes
from torch import nn

import skattr


def train() -> tuple[nn.Module, pd.DataFrame]:
    data = load_diabetes(as_frame=True)
    X = data.data.astype(np.float32)
    X = (X - X.mean()) / X.std()
    y = torch.tensor(
        ((data.target - data.target.mean()) / data.target.std()).to_numpy(np.float32)
    )
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    Xt = torch.tensor(X.to_numpy())
    for _ in range(300):
        opt.zero_grad()
        nn.functional.mse_loss(net(Xt)[:, 0], y).backward()
        opt.step()
    return net.eval(), X


def main() -> dict:
    net, X = train()
    rows = X.iloc[:50]
    exact = skattr.ShapleyInteractions().fit(net, X)  # baseline: the mean row
    attr = exact.explain(rows)
    pairs = exact.importance(rows)
    print("Pairs that act together most (mean |interaction| over 50 rows):")
    print(pairs.head(5).to_string(float_format=lambda v: f"{v:.4f}"))
    first = attr.loc[rows.index[0]]
    print("\nRow 0's matrix, its row sums (the Shapley values) and f(x) - f(b):")
    print(first.round(3).iloc[:4, :4].to_string())
    shapley = first.sum(axis=1)
    gap = attr.attrs["prediction"].iloc[0] - attr.attrs["base_values"].iloc[0]
    print(f"  sum of Shapley values {shapley.sum():.4f} = f(x) - f(b) {gap:.4f}")
    sampled = skattr.ShapleyInteractions(n_samples=256, random_state=0).fit(net, X)
    estimate = sampled.explain(rows)
    within = (
        np.abs(estimate - attr).to_numpy() <= estimate.attrs["ci95"].to_numpy() + 1e-12
    )
    error = ((estimate - attr) ** 2).to_numpy().sum() / (attr**2).to_numpy().sum()
    print(
        f"\nSampled from 256 of the 1,024 coalitions per row: relative squared "
        f"error {error:.2e}; {within.mean():.0%} of the exact values inside the "
        "95% intervals."
    )
    try:
        import matplotlib

        matplotlib.use("Agg")
        from skattr import plot

        plot.interactions(attr, max_display=10)
    except ImportError:  # the plot extra is optional
        pass
    return {"pairs": pairs, "attributions": attr, "sampled": estimate}


if __name__ == "__main__":
    main()
