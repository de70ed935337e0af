"""Audit a Pipeline that ends in a skorch net
==========================================

Audit a scikit-learn Pipeline that ends in a skorch net, on Palmer penguins.

The data has categorical columns (island, sex), numeric measurements and
missing values. The Pipeline imputes, one-hot encodes and scales them before
a small skorch classifier. skattr explains the Pipeline in the user's own
columns: one attribution per original column, however many one-hot columns
the encoder made, and exactly 0 for a column the preprocessing drops.

Run: ``python examples/penguins_audit.py``
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from palmerpenguins import load_penguins
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from skorch import NeuralNetClassifier
from torch import nn

import skattr

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]


class PenguinNet(nn.Module):
    def __init__(self, n_in=9, n_hidden=32, n_out=3):
        super().__init__()
        self.hidden = nn.Sequential(nn.Linear(n_in, n_hidden), nn.ReLU())
        self.out = nn.Linear(n_hidden, n_out)

    def forward(self, x):
        return self.out(self.hidden(x))


def to_float32(a):
    return np.asarray(a, dtype=np.float32)


def main() -> dict[str, pd.DataFrame]:
    df = load_penguins()
    species = df["species"].astype("category")
    X = df.drop(columns="species")  # keeps "year", which the model never sees
    y = species.cat.codes.to_numpy().astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.3, random_state=0, stratify=y
    )

    prep = ColumnTransformer(
        [
            (
                "num",
                make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                NUMERIC,
            ),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                ),
                CATEGORICAL,
            ),
        ],
        remainder="drop",
    )
    torch.manual_seed(0)
    net = NeuralNetClassifier(
        PenguinNet,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=0.01,
        max_epochs=40,
        batch_size=32,
        train_split=None,
        verbose=0,
    )
    model = make_pipeline(prep, FunctionTransformer(to_float32), net).fit(
        X_train, y_train
    )
    accuracy = (model.predict(X_test) == y_test).mean()
    print(
        f"Held-out accuracy: {accuracy:.3f} on {len(X_test)} penguins "
        f"({int(X_test.isna().any(axis=1).sum())} with missing values)\n"
    )

    reports = {}
    # 1. Which columns drive the predicted species? (each row's predicted class)
    explainer = skattr.FeatureAblation(baseline="mean").fit(model, X_train)
    attr = explainer.explain(X_test)
    reports["ablation"] = explainer.importance(X_test)
    print("FeatureAblation, predicted class, mean |attribution| per original column:")
    print(reports["ablation"].round(4).to_string(), "\n")
    assert (attr["year"] == 0).all(), "a dropped column must get exactly 0"

    # 2. Shapley values per class, with the measurements of the bill grouped.
    if hasattr(skattr, "ShapleyValues"):
        groups = {"bill": ["bill_length_mm", "bill_depth_mm"]}
        per_class = {}
        for code, name in enumerate(species.cat.categories):
            shap = skattr.ShapleyValues(
                target=code, feature_groups=groups, baseline="mean"
            )
            values = shap.fit(model, X_train).explain(X_test)
            per_class[name] = values.abs().mean()
        reports["shapley_per_class"] = pd.DataFrame(per_class)
        print("Exact Shapley values per species (mean |value|), bill columns grouped:")
        print(reports["shapley_per_class"].round(4).to_string(), "\n")

    # 3. The same audit in one line per explainer: a ranking of the columns.
    ranking = {}
    for name in (
        "FeatureAblation",
        "ShapleyValueSampling",
        "KernelShap",
        "FeaturePermutation",
        "GradientShap",
    ):
        if hasattr(skattr, name):
            cls = getattr(skattr, name)
            params = {"random_state": 0} if "random_state" in cls().get_params() else {}
            imp = cls(**params).fit(model, X_train).importance(X_test, y_test)
            ranking[name] = imp["importance"].rank(ascending=False).astype(int)
    reports["ranking"] = pd.DataFrame(ranking).sort_values(next(iter(ranking)))
    print("Rank of each original column by method (1 = most important):")
    print(reports["ranking"].to_string())
    return reports


if __name__ == "__main__":
    main()
