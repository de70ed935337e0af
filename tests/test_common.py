"""API checks run over every explainer in ``skattr.__all__``.

Each explainer is built with its fast settings from ``conftest.FAST_PARAMS``.
"""

from __future__ import annotations

import inspect
import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

import skattr
from skattr import FeatureAblation, ShapleyInteractions
from skattr.exceptions import NotFittedError
from tests.conftest import FAST_PARAMS, MLP, explainer_names, per_row

EXPLAINERS = [getattr(skattr, name) for name in explainer_names()]


def build(cls, **extra):
    params = dict(FAST_PARAMS[cls.__name__])
    if "random_state" in inspect.signature(cls).parameters:
        params.setdefault("random_state", 0)
    params.update(extra)
    return cls(**params)


def explainer_ids(cls):
    return cls.__name__


def result_columns(ex):
    """The columns of a fitted explainer's result: features, or layer units."""
    if isinstance(ex, skattr.LayerGradientShap):
        return [f"{ex.layer_}[{i}]" for i in range(int(np.prod(ex.layer_shape_)))]
    return list(ex.group_names_)


def test_public_surface():
    assert skattr.__all__ == sorted(skattr.__all__)
    for name in skattr.__all__:
        assert not name.startswith("_")
        assert hasattr(skattr, name)


def test_every_explainer_has_fast_settings():
    missing = [c.__name__ for c in EXPLAINERS if c.__name__ not in FAST_PARAMS]
    assert not missing, f"add fast settings to tests/conftest.py for {missing}"


@pytest.mark.parametrize("cls", EXPLAINERS, ids=explainer_ids)
def test_params_round_trip(cls):
    ex = build(cls)
    params = ex.get_params()
    assert set(params) == set(inspect.signature(cls).parameters)
    twin = clone(ex)
    assert twin.get_params().keys() == params.keys()
    for key, value in params.items():
        assert twin.get_params()[key] is value or twin.get_params()[key] == value
    twin.set_params(batch_size=17)
    assert twin.batch_size == 17 and ex.batch_size != 17


@pytest.mark.parametrize("cls", EXPLAINERS, ids=explainer_ids)
def test_init_only_stores(cls):
    ex = build(cls)
    assert set(vars(ex)) == set(inspect.signature(cls).parameters)


@pytest.mark.parametrize("cls", EXPLAINERS, ids=explainer_ids)
def test_not_fitted(cls, X_frame):
    ex = build(cls)
    with pytest.raises(NotFittedError, match="not fitted yet"):
        ex.explain(X_frame)
    with pytest.raises(NotFittedError):
        ex.importance(X_frame)


@pytest.mark.parametrize("cls", EXPLAINERS, ids=explainer_ids)
def test_params_set_after_fit_are_checked_again(cls, mlp, X_frame, y_labels):
    ex = build(cls).fit(mlp, X_frame)
    ex.set_params(batch_size=0)
    with pytest.raises(ValueError, match="batch_size"):
        ex.explain(X_frame)
    with pytest.raises(ValueError, match="batch_size"):
        ex.importance(X_frame, y_labels)


#: a new value for each parameter ``fit`` acts on
CHANGED = {
    "output": "proba",
    "baseline": 0.5,
    "feature_groups": {"a": ["f0", "f1"], "b": ["f2", "f3", "f4"]},
    "layer": "out",
    "attribute_to_layer_input": True,
    "attribute_to_neuron_input": True,
    "device": "meta",
    "model_inputs": {"f0": "codes"},
}


@pytest.mark.parametrize("cls", EXPLAINERS, ids=explainer_ids)
def test_a_parameter_fit_acts_on_changed_after_fit_is_refused(cls, mlp, X_frame):
    # set_params(output="proba") after fit explained the logits all the
    # same, baseline= kept fit's base values, feature_groups= fit's columns:
    # what fit made of such a parameter is kept, so a change after it is
    # refused at explain (not ignored), and a new fit takes it
    names = [n for n in cls._fit_parameters if n in cls._get_param_names()]
    assert {"device", "model_inputs"} <= set(names)
    ex = build(cls).fit(mlp, X_frame)
    reference = ex.explain(X_frame)
    for name in names:
        twin = pickle.loads(pickle.dumps(ex))  # a pickled one keeps its values
        pd.testing.assert_frame_equal(twin.explain(X_frame), reference)
        twin.set_params(**{name: getattr(ex, name)})  # the same value: fine
        twin.explain(X_frame)
        twin.set_params(**{name: CHANGED[name]})
        with pytest.raises(ValueError, match=f"{name} was changed by set_params"):
            twin.explain(X_frame)
        if name == names[0]:
            with pytest.raises(ValueError, match=f"{name} was changed"):
                twin.importance(X_frame)
    # a parameter explain reads is taken as it is
    ex.set_params(batch_size=3).explain(X_frame)


@pytest.mark.parametrize("cls", EXPLAINERS, ids=explainer_ids)
def test_fit_returns_self_and_frame_follows_X(cls, mlp, X_frame):
    ex = build(cls)
    assert ex.fit(mlp, X_frame) is ex
    assert ex.n_features_in_ == X_frame.shape[1]
    before = X_frame.copy()
    attr = ex.explain(X_frame)
    pd.testing.assert_frame_equal(X_frame, before)  # X untouched
    assert isinstance(attr, pd.DataFrame)
    assert list(attr.columns) == result_columns(ex)
    assert (attr.dtypes == np.float64).all()
    assert np.isfinite(attr.to_numpy()).all()
    imp = ex.importance(X_frame)
    assert {"importance", "std"} <= set(imp.columns)
    assert imp["importance"].is_monotonic_decreasing
    if isinstance(ex, ShapleyInteractions):  # rows (row of X, feature); pairs
        expected = pd.MultiIndex.from_product([X_frame.index, attr.columns])
        assert attr.index.equals(expected)
        names = list(attr.columns)
        assert set(imp.index) == {
            (a, b) for i, a in enumerate(names) for b in names[i + 1 :]
        }
    else:
        assert attr.index.equals(X_frame.index)
        assert set(imp.index) == set(attr.columns)


@pytest.mark.parametrize("cls", EXPLAINERS, ids=explainer_ids)
def test_numpy_pandas_torch_agree(cls, mlp, X_frame):
    from_frame = build(cls).fit(mlp, X_frame).explain(X_frame)
    arr = X_frame.to_numpy()
    from_numpy = build(cls).fit(mlp, arr).explain(arr)
    from_torch = build(cls).fit(mlp, torch.tensor(arr)).explain(torch.tensor(arr))
    np.testing.assert_allclose(
        from_numpy.to_numpy(), from_frame.to_numpy(), rtol=1e-6, atol=1e-7
    )
    np.testing.assert_allclose(
        from_torch.to_numpy(), from_frame.to_numpy(), rtol=1e-6, atol=1e-7
    )
    assert list(per_row(from_numpy).index) == list(range(len(arr)))


@pytest.mark.parametrize("cls", EXPLAINERS, ids=explainer_ids)
def test_random_state_reproduces(cls, mlp, X_frame):
    ex = build(cls).fit(mlp, X_frame)
    pd.testing.assert_frame_equal(ex.explain(X_frame), ex.explain(X_frame))
    if "random_state" in inspect.signature(cls).parameters:
        other = build(cls, random_state=np.random.default_rng(3)).fit(mlp, X_frame)
        width = len(result_columns(ex))
        rows = len(X_frame) * (width if isinstance(ex, ShapleyInteractions) else 1)
        assert other.explain(X_frame).shape == (rows, width)


@pytest.mark.parametrize("cls", EXPLAINERS, ids=explainer_ids)
def test_batch_size_does_not_change_result(cls, mlp, X_frame):
    big = build(cls).fit(mlp, X_frame).explain(X_frame)
    small = build(cls, batch_size=7).fit(mlp, X_frame).explain(X_frame)
    np.testing.assert_allclose(small.to_numpy(), big.to_numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", EXPLAINERS, ids=explainer_ids)
def test_pickle_round_trip(cls, mlp, X_frame):
    ex = build(cls).fit(mlp, X_frame)
    twin = pickle.loads(pickle.dumps(ex))
    np.testing.assert_allclose(
        twin.explain(X_frame).to_numpy(), ex.explain(X_frame).to_numpy()
    )


def _model_state(model):
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.modules()
        ],
    )


@pytest.mark.parametrize("cls", EXPLAINERS, ids=explainer_ids)
def test_model_state_restored(cls, X_frame):
    model = MLP()
    model.train()
    model.hidden[1].eval()  # mixed modes must come back exactly
    model.out.bias.requires_grad_(False)
    state = _model_state(model)
    ex = build(cls).fit(model, X_frame)
    assert _model_state(model) == state
    ex.explain(X_frame)
    assert _model_state(model) == state
    model.fail = True
    with pytest.raises(RuntimeError, match="on purpose"):
        ex.explain(X_frame)
    assert _model_state(model) == state


@pytest.mark.parametrize("weighted", [False, True])
def test_the_importance_table_is_the_documented_statistics(weighted):
    # the statistics every importance table (and each Dask partition's
    # moments) comes from, against pandas on a result with a known layout
    from skattr.explainers._base import rank_attributions

    rng = np.random.default_rng(3)
    one = pd.DataFrame(rng.normal(size=(9, 4)), columns=["a", "b", "c", "d"])
    w = rng.uniform(0.5, 2.0, size=9) if weighted else None
    table = rank_attributions(one, w)
    mag = one.abs()
    if weighted:
        imp = mag.mul(w, axis=0).sum() / w.sum()
        std = np.sqrt(mag.sub(imp).pow(2).mul(w, axis=0).sum() / w.sum())
        mean = one.mul(w, axis=0).sum() / w.sum()
    else:
        imp, std, mean = mag.mean(), mag.std(ddof=1), one.mean()
    expected = pd.DataFrame({"importance": imp, "std": std, "mean": mean})
    pd.testing.assert_frame_equal(
        table, expected.loc[table.index].rename_axis("feature"), rtol=1e-12
    )
    assert table["importance"].is_monotonic_decreasing
    # target="all": outputs in any column order; each row's mean over outputs
    outputs = pd.concat({"y": one, "x": one * 2}, axis=1).iloc[:, ::-1]
    every = rank_attributions(outputs, w)
    row_mean = (outputs["x"].abs() + outputs["y"].abs()) / 2
    if weighted:
        imp = row_mean.mul(w, axis=0).sum() / w.sum()
        std = np.sqrt(row_mean.sub(imp).pow(2).mul(w, axis=0).sum() / w.sum())
    else:
        imp, std = row_mean.mean(), row_mean.std(ddof=1)
    np.testing.assert_allclose(every.loc[imp.index, "importance"], imp, rtol=1e-12)
    np.testing.assert_allclose(every.loc[imp.index, "std"], std, rtol=1e-12)
    np.testing.assert_allclose(
        every.loc[imp.index, "y"], table.loc[imp.index, "importance"], rtol=1e-12
    )
    np.testing.assert_allclose(
        every.loc[imp.index, "x"], 2 * table.loc[imp.index, "importance"], rtol=1e-12
    )


@pytest.mark.parametrize("target", [0, "all"])
def test_importance_is_the_statistics_of_explain(X_frame, target):
    """As a user reads it: ``importance(X)`` is the mean and spread over the
    rows of ``|explain(X)|`` (with every output, of each row's mean over the
    outputs, and a column per output), computed here in pandas."""
    ex = FeatureAblation(baseline=0.0, target=target).fit(MLP(), X_frame)
    attr = ex.explain(X_frame)
    table = ex.importance(X_frame)
    if target == "all":
        outputs = list(dict.fromkeys(attr.columns.get_level_values(0)))
        magnitude = sum(attr[o].abs() for o in outputs) / len(outputs)
        for o in outputs:
            np.testing.assert_allclose(
                table.loc[magnitude.columns, o], attr[o].abs().mean(), rtol=1e-12
            )
    else:
        magnitude = attr.abs()
        np.testing.assert_allclose(
            table.loc[attr.columns, "mean"], attr.mean(), rtol=1e-12
        )
    features = magnitude.columns
    np.testing.assert_allclose(
        table.loc[features, "importance"], magnitude.mean(), rtol=1e-12
    )
    np.testing.assert_allclose(
        table.loc[features, "std"], magnitude.std(ddof=1), rtol=1e-12
    )
    assert table["importance"].is_monotonic_decreasing


@pytest.mark.parametrize("cls", EXPLAINERS, ids=explainer_ids)
def test_importance_says_how_many_rows_it_averaged(cls, mlp, X_frame, y_labels):
    # the docs give every importance table attrs["n_rows"]; in memory only
    # FeaturePermutation's had it (and every Dask table)
    imp = build(cls).fit(mlp, X_frame).importance(X_frame.iloc[:7], y_labels[:7])
    assert imp.attrs["n_rows"] == 7


def test_a_joblib_round_trip_keeps_the_parameters_fit_saw(mlp, X_frame):
    # joblib stores an array apart from the explainer's reference to it:
    # compared by identity, an array baseline or mask read as changed
    import joblib

    ex = skattr.ShapleyValues(
        baseline=np.zeros(5), feature_groups=np.array([0, 0, 1, 1, 2])
    ).fit(mlp, X_frame)
    reference = ex.explain(X_frame)
    buffer = __import__("io").BytesIO()
    joblib.dump(ex, buffer)
    buffer.seek(0)
    again = joblib.load(buffer)
    pd.testing.assert_frame_equal(again.explain(X_frame), reference)
    again.set_params(baseline=np.ones(5))
    with pytest.raises(ValueError, match="baseline was changed"):
        again.explain(X_frame)


def test_the_fit_time_check_compares_values_in_order(mlp, X_frame):
    # np.float32 == np.float32 gives np.bool_, read as "changed"; a dict of
    # groups in another order passed, though it orders the result's columns
    ex = skattr.ShapleyValues(baseline=np.float32(0.5)).fit(mlp, X_frame)
    ex.set_params(baseline=np.float32(0.5)).explain(X_frame)
    groups = {"a": ["f0", "f1"], "b": ["f2", "f3", "f4"]}
    ex = skattr.ShapleyValues(feature_groups=groups).fit(mlp, X_frame)
    ex.set_params(feature_groups=dict(groups)).explain(X_frame)  # equal: fine
    ex.set_params(feature_groups={"b": groups["b"], "a": groups["a"]})
    with pytest.raises(ValueError, match="feature_groups was changed"):
        ex.explain(X_frame)
