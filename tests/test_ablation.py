"""FeatureAblation against Captum and closed forms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from captum.attr import FeatureAblation as CaptumFeatureAblation

from skattr import FeatureAblation
from tests.conftest import MLP, make_linear


def _first_column_of_groups(captum_attr: torch.Tensor, mask: np.ndarray) -> np.ndarray:
    # Captum repeats a group's value on each of its columns; skattr's column k
    # is the group with the k-th smallest id
    firsts = [int(np.flatnonzero(mask == g)[0]) for g in sorted(set(mask.tolist()))]
    return captum_attr[:, firsts].detach().double().numpy()


@pytest.mark.parametrize("baseline", ["zeros", "mean", 0.5, "row"])
@pytest.mark.parametrize("mask", [None, np.array([2, 2, 0, 1, 1])])
@pytest.mark.parametrize("target", [None, 1, "true"])
def test_equals_captum(baseline, mask, target, X_frame, y_labels):
    model = MLP()
    X = torch.tensor(X_frame.to_numpy())
    base_param = baseline
    if baseline == "row":  # one explicit background row
        base_param = X_frame.iloc[0].to_numpy() * 0.3
    ex = FeatureAblation(baseline=base_param, target=target, feature_groups=mask)
    ours = ex.fit(model, X_frame).explain(X_frame, y_labels)
    if target is None:
        captum_target = model(X).argmax(1)
    elif target == "true":
        captum_target = torch.as_tensor(y_labels)
    else:
        captum_target = target
    captum_mask = None if mask is None else torch.as_tensor(mask)[None]
    theirs = CaptumFeatureAblation(model).attribute(
        X, baselines=ex.baseline_, target=captum_target, feature_mask=captum_mask
    )
    ref = (
        theirs.detach().double().numpy()
        if mask is None
        else _first_column_of_groups(theirs, mask)
    )
    np.testing.assert_allclose(ours.to_numpy(), ref, atol=1e-6)


def test_linear_closed_form():
    w = np.array([2.0, -1.0, 0.0, 3.0])
    model = make_linear(w, bias=0.7, dtype=torch.float64)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 4))
    b = rng.normal(size=4)
    attr = FeatureAblation(baseline=b).fit(model, X).explain(X)
    np.testing.assert_allclose(attr.to_numpy(), w * (X - b), atol=1e-12)
    assert (attr["x2"] == 0).all()  # the ignored feature gets exactly 0
    np.testing.assert_allclose(attr.attrs["base_values"], w @ b + 0.7)


def test_background_rows_average(X_frame):
    model = MLP()
    background = X_frame.iloc[:4]
    avg = FeatureAblation(baseline=background).fit(model, X_frame).explain(X_frame)
    singles = [
        FeatureAblation(baseline=background.iloc[i].to_numpy())
        .fit(model, X_frame)
        .explain(X_frame)
        for i in range(4)
    ]
    np.testing.assert_allclose(
        avg.to_numpy(), sum(s.to_numpy() for s in singles) / 4, atol=1e-6
    )


def test_groups_by_name_and_order(X_frame):
    model = MLP()
    ex = FeatureAblation(feature_groups={"pair": ["f3", "f1"]}).fit(model, X_frame)
    attr = ex.explain(X_frame)
    assert list(attr.columns) == ["pair", "f0", "f2", "f4"]
    mask = np.array([1, 0, 2, 0, 3])
    ref = FeatureAblation(feature_groups=mask).fit(model, X_frame).explain(X_frame)
    np.testing.assert_allclose(attr.to_numpy(), ref.to_numpy())


def test_skorch_classifier_proba_and_labels(breast_cancer_net):
    net, X, y = breast_cancer_net
    rows = X.iloc[:20]
    ex = FeatureAblation(output="proba", target=1, baseline="mean").fit(net, X)
    attr = ex.explain(rows)
    assert list(ex.classes_) == [0, 1]
    proba = net.predict_proba(rows.to_numpy())[:, 1]
    # attributions use the net's own predict nonlinearity
    base = net.predict_proba(ex.baseline_.numpy())[0, 1]
    np.testing.assert_allclose(attr.attrs["base_values"], base, atol=1e-6)
    ablated = rows.to_numpy().copy()
    ablated[:, 0] = ex.baseline_.numpy()[0, 0]
    expected = proba - net.predict_proba(ablated)[:, 1]
    np.testing.assert_allclose(attr.iloc[:, 0], expected, atol=1e-6)
    true = FeatureAblation(target="true").fit(net, X).explain(rows, y[:20])
    assert (true.attrs["target"].to_numpy() == y[:20]).all()


def test_show_progress_runs(X_frame, capsys):
    attr = (
        FeatureAblation(show_progress=True, batch_size=5)
        .fit(MLP(), X_frame)
        .explain(X_frame)
    )
    assert attr.shape == X_frame.shape


def test_model_rows_evaluated(X_frame):
    """Cost is n * (g + 2) * B model rows (with f(x) and f(baseline) in the
    same pass), plus n to pick the predicted class of a multi-output model."""
    calls = []

    class Counting(MLP):
        def forward(self, x):
            calls.append(x.shape[0])
            return super().forward(x)

    model = Counting()
    ex = FeatureAblation(baseline=X_frame.iloc[:3]).fit(model, X_frame)
    calls.clear()
    ex.explain(X_frame)
    n, p = X_frame.shape
    pick = n if ex.n_outputs_ > 1 else 0
    assert sum(calls) == pick + n * (p + 2) * 3


def test_nullable_dtypes_accepted(X_frame):
    model = MLP()
    X = X_frame.astype("Float64")
    X["f4"] = (X_frame["f4"] > 0).astype("boolean")
    X["f3"] = (X_frame["f3"] * 10).round().astype("Int64")
    attr = FeatureAblation().fit(model, X).explain(X)
    ref_X = pd.DataFrame(X.to_numpy(dtype=np.float32), columns=X.columns, index=X.index)
    ref = FeatureAblation().fit(model, ref_X).explain(ref_X)
    np.testing.assert_allclose(attr.to_numpy(), ref.to_numpy())
