"""Explain a table that lives in Parquet files, with Dask
========================================================

A model is explained where its data lives: many Parquet files, too many
rows for one pandas frame. Dask reads them lazily; the explainer, fitted on
an in-memory sample, explains each partition as it streams through, and the
attributions (with their base values and standard errors) are written back
to Parquet without ever holding the whole table.

The same code runs on a cluster: create a ``distributed.Client`` first
(``Client(LocalCluster(n_workers=2))`` on one machine) and every
``compute`` or ``to_parquet`` below runs there; the fitted explainer and its
model travel to each worker once.

Run: ``python examples/dask_parquet.py``
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import torch
from sklearn.datasets import load_wine
from torch import nn

import skattr
from skattr.dask import explain_with_extras


def write_table(folder: Path, copies: int) -> pd.DataFrame:
    """The wine table, enlarged with noise, written as one Parquet file per copy."""
    data = load_wine(as_frame=True)
    X = data.data.astype(np.float32)
    X = (X - X.mean()) / X.std()
    rng = np.random.default_rng(0)
    folder.mkdir()
    for i in range(copies):
        noisy = X + rng.normal(scale=0.1, size=X.shape).astype(np.float32)
        noisy.index = pd.RangeIndex(i * len(X), (i + 1) * len(X))
        noisy.assign(label=data.target.to_numpy()).to_parquet(
            folder / f"part-{i:03d}.parquet"
        )
    return X.assign(label=data.target.to_numpy())


def train(table: pd.DataFrame) -> nn.Module:
    X = torch.tensor(table.drop(columns="label").to_numpy())
    y = torch.tensor(table["label"].to_numpy())
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(X.shape[1], 32), nn.ReLU(), nn.Linear(32, 3))
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(net(X), y).backward()
        opt.step()
    return net.eval()


def main(copies: int = 20) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        table = write_table(tmp / "rows", copies)
        net = train(table)

        # Lazy: nothing is read until something is computed or written.
        rows = dd.read_parquet(tmp / "rows")
        X, y = rows.drop(columns="label"), rows["label"]
        print(f"{X.npartitions} partitions, {len(X.columns)} columns")

        # Fit on an in-memory sample (the background of the baseline).
        background = X.sample(frac=0.02, random_state=0).compute()
        explainer = skattr.ShapleyValueSampling(n_samples=10, random_state=0)
        explainer.fit(net, background)

        # Attributions and their extras from the same tasks, both to Parquet.
        attributions, extras = explain_with_extras(explainer, X)
        dask.compute(
            attributions.to_parquet(tmp / "attributions", compute=False),
            extras.to_parquet(tmp / "extras", compute=False),
        )
        written = dd.read_parquet(tmp / "attributions")
        print(f"wrote {len(written)} rows of attributions")
        print(dd.read_parquet(tmp / "extras")[["base_values", "target"]].head())

        # Global importance: a Dask reduction, a small pandas table back.
        importance = explainer.importance(X)
        print(importance.head())

        # Permutation importance scored against the labels, within partitions.
        scored = skattr.FeaturePermutation(
            scoring="accuracy", n_repeats=3, random_state=0
        ).fit(net, background)
        drops = scored.importance(X, y)
        print(drops.head())
        return {"importance": importance, "scored": drops, "rows": len(written)}


if __name__ == "__main__":
    main()
