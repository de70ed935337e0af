"""target="all": every output in one call, at the cost of one for perturbation methods."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import skattr
from tests.conftest import FAST_PARAMS, MLP, N_OUTPUTS, Counting

WITH_TARGET = [
    "FeatureAblation",
    "ShapleyValueSampling",
    "ShapleyValues",
    "KernelShap",
    "Lime",
    "FeaturePermutation",
    "GradientShap",
    "LayerGradientShap",
]
PERTURBATION = WITH_TARGET[:6]


def _build(name, **params):
    cls = getattr(skattr, name)
    params = {**FAST_PARAMS[name], **params}
    if "random_state" in cls._get_param_names():
        params.setdefault("random_state", 0)
    return cls(**params)


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(7, 5)).astype(np.float32)
    return pd.DataFrame(X, columns=list("abcde"), index=[f"r{i}" for i in range(7)])


@pytest.mark.parametrize("name", WITH_TARGET)
def test_each_output_is_what_its_own_target_gives(name, frame):
    attr = _build(name, target="all").fit(MLP(), frame).explain(frame)
    assert isinstance(attr.columns, pd.MultiIndex)
    assert attr.columns.names == ["output", "feature"]
    assert list(dict.fromkeys(attr.columns.get_level_values(0))) == [0, 1, 2]
    for c in range(N_OUTPUTS):
        one = _build(name, target=c).fit(MLP(), frame).explain(frame)
        # same draws for every output; the float64 solves of the exact
        # methods may sum in another order
        pd.testing.assert_frame_equal(attr[c], one, check_names=False, atol=1e-12)
        for key, value in one.attrs.items():
            every = attr.attrs[key]
            if isinstance(value, pd.Series):  # a row: one column per output
                assert list(every.columns) == [0, 1, 2]
                np.testing.assert_allclose(every[c], value, atol=1e-12)
            elif isinstance(value, pd.DataFrame):  # a cell: the two-level columns
                assert every.columns.equals(attr.columns)
                np.testing.assert_allclose(every[c], value, atol=1e-12)
            else:
                assert every == value


@pytest.mark.parametrize("name", PERTURBATION)
def test_perturbation_methods_see_as_many_rows_as_for_one_target(name, frame):
    model = Counting(MLP())
    rows = {}
    for target in (1, "all"):
        ex = _build(name, target=target).fit(model, frame)
        model.rows = 0
        ex.explain(frame)
        rows[target] = model.rows
    assert rows["all"] == rows[1]


@pytest.mark.parametrize("name", ["GradientShap", "LayerGradientShap"])
def test_gradient_methods_cost_one_pass_per_output(name, frame):
    model = Counting(MLP())
    layer = {"layer": "module.hidden.0"} if name == "LayerGradientShap" else {}
    rows = {}
    for target in (1, "all"):
        ex = _build(name, target=target, **layer).fit(model, frame)
        model.rows = 0
        ex.explain(frame)
        rows[target] = model.rows
    assert rows["all"] == N_OUTPUTS * rows[1]


def test_class_labels_name_the_outputs(breast_cancer_net):
    net, X, _ = breast_cancer_net
    X = X.iloc[:5]
    attr = skattr.FeatureAblation(target="all").fit(net, X).explain(X)
    labels = list(dict.fromkeys(attr.columns.get_level_values(0)))
    assert labels == list(net.classes_)
    one = skattr.FeatureAblation(target=labels[1]).fit(net, X).explain(X)
    pd.testing.assert_frame_equal(attr[labels[1]], one, check_names=False)
    assert (attr.attrs["target"][labels[0]] == labels[0]).all()


def test_importance_of_every_output(frame):
    ex = _build("ShapleyValues", target="all").fit(MLP(), frame)
    imp = ex.importance(frame)
    assert list(imp.columns) == ["importance", "std", 0, 1, 2]
    assert sorted(imp.index) == list("abcde")
    assert imp["importance"].is_monotonic_decreasing
    # the mean over rows of the mean over outputs = the mean of the outputs' means
    np.testing.assert_allclose(imp["importance"], imp[[0, 1, 2]].mean(1))
    for c in range(N_OUTPUTS):
        one = _build("ShapleyValues", target=c).fit(MLP(), frame).importance(frame)
        np.testing.assert_allclose(imp[c], one.loc[imp.index, "importance"])


def test_tol_stops_a_row_when_every_output_is_precise(frame):
    ex = _build("ShapleyValueSampling", target="all", n_samples=400, tol=0.05)
    attr = ex.fit(MLP(), frame).explain(frame)
    assert (attr.attrs["std"].max(axis=1) <= 0.05).all()
    counts = attr.attrs["n_samples"]
    assert (counts.nunique(axis=1) == 1).all()  # shared draws: one count per row


def test_permutation_importance_with_every_output(frame):
    imp = _build("FeaturePermutation", target="all").fit(MLP(), frame).importance(frame)
    assert list(imp.columns) == ["importance", "std", 0, 1, 2]
    assert imp.attrs["n_rows"] == len(frame)


# ---------------------------------------------------------------- callables


@pytest.mark.parametrize("name", WITH_TARGET[:7])
def test_a_callable_is_explained_like_its_module(name, frame):
    import torch

    module = MLP()

    def forward_func(x):  # Captum's forward_func: probabilities of the module
        return torch.softmax(module(x), -1)

    ours = _build(name, target="all").fit(forward_func, frame).explain(frame)
    theirs = (
        _build(name, target="all", output="proba").fit(module, frame).explain(frame)
    )
    pd.testing.assert_frame_equal(ours, theirs, atol=1e-6)


def test_a_callable_returning_one_value_per_row_and_its_device(frame):
    import torch

    weights = torch.tensor([1.0, -2.0, 0.0, 0.5, 3.0])
    ex = skattr.ShapleyValues(baseline="zeros").fit(lambda x: x @ weights, frame)
    assert ex.device_ == torch.device("cpu") and ex.n_outputs_ == 1
    np.testing.assert_allclose(
        ex.explain(frame).to_numpy(), frame.to_numpy() * weights.numpy(), atol=1e-5
    )


def test_layer_methods_refuse_a_callable(frame):
    with pytest.raises(TypeError, match="plain callable, which has no layers"):
        skattr.LayerGradientShap(layer="0").fit(lambda x: x.sum(1), frame)
    with pytest.raises(TypeError, match="plain callable, which has no layers"):
        skattr.NeuronGradient(layer="0", neuron=0).fit(lambda x: x.sum(1), frame)


def test_set_params_target_takes_effect_without_a_new_fit(frame):
    ex = skattr.FeatureAblation().fit(MLP(), frame)
    before = ex.explain(frame)
    ex.set_params(target=0)
    after = ex.explain(frame)
    assert (after.attrs["target"] == 0).all()
    expected = skattr.FeatureAblation(target=0).fit(MLP(), frame).explain(frame)
    pd.testing.assert_frame_equal(after, expected)
    assert not before.attrs["target"].eq(0).all()  # the predicted classes differ
    with pytest.raises(ValueError, match="out of range"):
        ex.set_params(target=7).explain(frame)
