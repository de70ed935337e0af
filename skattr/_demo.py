"""The demo behind ``make demo``: every explainer on a skorch classifier.

Trains a small skorch ``NeuralNetClassifier`` on scikit-learn's bundled
breast-cancer data, explains a held-out part with every explainer in
``skattr.__all__``, and prints one ranked table of the features.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import torch
from torch import nn

#: Settings per explainer for the demo (those not listed use their defaults).
MEASUREMENTS = [
    "radius",
    "texture",
    "perimeter",
    "area",
    "smoothness",
    "compactness",
    "concavity",
    "concave points",
    "symmetry",
    "fractal dimension",
]
_MEASUREMENT_GROUPS = {
    m: [f"mean {m}", f"{m} error", f"worst {m}"] for m in MEASUREMENTS
}
DEMO_PARAMS: dict[str, dict] = {
    # exact Shapley values and interactions over 10 groups (mean, error and
    # worst of each measurement): 2^10 coalitions per row, where 30 single
    # features would need 2^30
    "ShapleyValues": {"feature_groups": _MEASUREMENT_GROUPS},
    "ShapleyInteractions": {"feature_groups": _MEASUREMENT_GROUPS},
    "LayerGradientShap": {"layer": "hidden.0"},
    "NeuronGradient": {"layer": "out", "neuron": 1},
}


class DemoNet(nn.Module):
    """30 -> 32 -> 32 -> 2 MLP."""

    def __init__(self, n_in: int = 30, n_hidden: int = 32):
        super().__init__()
        self.hidden = nn.Sequential(
            nn.Linear(n_in, n_hidden),
            nn.ReLU(),
            nn.Linear(n_hidden, n_hidden),
            nn.ReLU(),
        )
        self.out = nn.Linear(n_hidden, 2)

    def forward(self, x):
        return self.out(self.hidden(x))


def train_demo_net(seed: int = 0):
    """Data split and a trained skorch pipeline (scaler + net)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler
    from skorch import NeuralNetClassifier

    data = load_breast_cancer(as_frame=True)
    X_train, X_test, y_train, y_test = train_test_split(
        data.data, data.target, test_size=0.3, random_state=seed, stratify=data.target
    )
    torch.manual_seed(seed)
    epochs = 30
    net = NeuralNetClassifier(
        DemoNet,
        criterion=nn.CrossEntropyLoss,
        optimizer=torch.optim.Adam,
        lr=0.01,
        max_epochs=epochs,
        batch_size=64,
        train_split=None,
        verbose=0,
        callbacks=[_EpochBar(epochs)],
    )
    to_float32 = FunctionTransformer(_to_float32)
    model = make_pipeline(StandardScaler(), to_float32, net)
    model.fit(X_train, y_train.to_numpy())
    return model, X_train, X_test, y_train, y_test


def run_demo(n_rows: int = 100, seed: int = 0, report=None) -> pd.DataFrame:
    """Train, explain with every explainer, print and return the ranking.

    With ``report`` (a folder), also write the HTML audit there
    (:func:`skattr.report.audit`) and say where it is.
    """
    import skattr

    model, X_train, X_test, y_train, y_test = train_demo_net(seed)
    accuracy = float((model.predict(X_test) == y_test.to_numpy()).mean())
    X_explain, y_explain = X_test.iloc[:n_rows], y_test.iloc[:n_rows]
    print(
        f"skattr {skattr.__version__} demo: skorch MLP on breast cancer "
        f"({len(X_train)} train rows, held-out accuracy {accuracy:.3f}); "
        f"explaining {len(X_explain)} held-out rows, target = class 1 (benign) logit.\n"
    )
    columns, others, timings = {}, {}, []
    for name in skattr.__all__:
        cls = getattr(skattr, name)
        if not isinstance(cls, type):  # helpers such as to_shap
            continue
        accepted = _param_names(cls)
        params = {
            k: v
            for k, v in {"target": 1, "random_state": seed}.items()
            if k in accepted
        }
        params.update(DEMO_PARAMS.get(name, {}))
        start = time.perf_counter()
        explainer = cls(**params).fit(model, X_train)
        imp = explainer.importance(X_explain, y_explain.to_numpy())
        timings.append((name, time.perf_counter() - start))
        if set(imp.index) == set(X_explain.columns):
            columns[name] = imp["importance"] / imp["importance"].sum()
        else:
            others[name] = imp
    table = pd.DataFrame(columns).reindex(X_explain.columns)
    ranks = table.rank(ascending=False)
    table.insert(0, "mean rank", ranks.mean(axis=1))
    table = table.sort_values("mean rank")
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print("Feature importance (share of each method's total), best first:")
        print(table.to_string(float_format=lambda v: f"{v:.3f}"))
        for name, imp in others.items():
            print(f"\n{name}: top 5 of {len(imp)}")
            print(imp.head(5).to_string(float_format=lambda v: f"{v:.4f}"))
    print("\nSeconds per explainer (fit + importance):")
    for name, seconds in timings:
        print(f"  {name:22s} {seconds:7.3f}")
    if report is not None:
        from skattr.report import audit

        written = audit(
            model,
            X_explain,
            y_explain.to_numpy(),
            background=X_train,
            path=report,
            title="skattr audit: skorch MLP on breast cancer",
        )
        top = ", ".join(map(str, written.importance.index[:5]))
        print(
            f"\nAudit of {len(written.attributions)} methods written to "
            f"{written.index.resolve()} (top features: {top})."
        )
    return table


def _EpochBar(epochs: int):
    """A skorch callback: one tqdm bar over the training epochs."""
    from skorch.callbacks import Callback
    from tqdm.auto import tqdm

    class EpochBar(Callback):
        def on_train_begin(self, net, **kwargs):
            self.bar = tqdm(total=epochs, desc="training", unit="epoch", leave=True)

        def on_epoch_end(self, net, **kwargs):
            self.bar.update(1)

        def on_train_end(self, net, **kwargs):
            self.bar.close()

    return EpochBar()


def _to_float32(a):
    """skorch modules take float32; scikit-learn scalers give float64."""
    return np.asarray(a, dtype=np.float32)


def _param_names(cls) -> set[str]:
    import inspect

    return set(inspect.signature(cls).parameters)
