"""The calls a Captum, SHAP or scikit-learn user types first, against known truths.

Each test is written from the user's side: no background data at ``fit``,
named frames, custom modules, Pipelines that reorder, drop and one-hot
encode columns, group order, models that return NaN, and the errors a
newcomer meets, matched by message.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from skorch import NeuralNetRegressor
from torch import nn

import skattr
from skattr import (
    FeatureAblation,
    FeaturePermutation,
    GradientShap,
    KernelShap,
    LayerGradientShap,
    Lime,
    NeuronGradient,
    ShapleyInteractions,
    ShapleyValues,
    ShapleyValueSampling,
)
from skattr.explainers._base import EXTRA_KINDS
from tests.conftest import (
    FAST_PARAMS,
    MLP,
    Counting,
    explainer_names,
    make_linear,
    per_row,
)

EXPLAINERS = [getattr(skattr, name) for name in explainer_names()]


def build(cls, **extra):
    params = dict(FAST_PARAMS[cls.__name__])
    if "random_state" in inspect.signature(cls).parameters:
        params["random_state"] = 0
    if "baseline" in inspect.signature(cls).parameters:
        params["baseline"] = 0.0
    params.update(extra)
    return cls(**params)


def ids(cls):
    return cls.__name__


@pytest.fixture
def frame():
    rng = np.random.default_rng(1)
    return pd.DataFrame(
        rng.normal(size=(8, 5)).astype(np.float32),
        columns=["age", "income", "debt", "score", "tenure"],
        index=pd.Index([f"c{i}" for i in range(8)], name="customer"),
    )


def _state(ex):
    return dict(vars(ex).items())


# ------------------------------------------------------------ 1. fit(model)


@pytest.mark.parametrize("cls", EXPLAINERS, ids=ids)
def test_fit_without_data_keeps_the_frames_columns(cls, frame):
    ex = build(cls).fit(MLP())
    before = _state(ex)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no "fitted without names"
        attr = ex.explain(frame)
    if cls is LayerGradientShap:
        assert list(attr.columns) == [f"hidden.0[{i}]" for i in range(8)]
    else:
        assert list(attr.columns) == list(frame.columns)
    assert per_row(attr).index.equals(frame.index)
    # explain writes no state: the same attributes, the very same objects
    after = _state(ex)
    assert after.keys() == before.keys()
    assert all(after[k] is before[k] for k in before)
    # the same numbers as with the data at fit (a scalar baseline needs none)
    with_data = build(cls).fit(MLP(), frame).explain(frame)
    np.testing.assert_allclose(attr.to_numpy(), with_data.to_numpy(), atol=1e-6)
    # each call takes its own columns
    other = frame.set_axis([f"v{i}" for i in range(5)], axis=1)
    if cls is not LayerGradientShap:
        assert list(ex.explain(other).columns) == list(other.columns)
    assert list(per_row(ex.explain(frame.to_numpy())).index) == list(range(len(frame)))


def test_fitted_attributes_exist_only_when_fit_could_know_them(frame):
    bare = FeatureAblation(baseline=0.0).fit(MLP())
    for attr in ("n_features_in_", "feature_names_in_", "baseline_", "n_outputs_"):
        assert not hasattr(bare, attr), attr
    assert hasattr(bare, "model_") and hasattr(bare, "classes_")
    width = FeatureAblation(baseline=np.zeros(5)).fit(MLP())
    assert width.n_features_in_ == 5 and width.n_outputs_ == 3
    assert width.baseline_.shape == (1, 5) and not hasattr(width, "feature_names_in_")
    named = FeatureAblation(baseline=frame.iloc[:2]).fit(MLP())
    assert list(named.feature_names_in_) == list(frame.columns)
    assert named.group_names_ == list(frame.columns)


def test_fitted_groups_are_the_users_to_change(frame):
    """``groups_`` is a copy: writing into it (a user relabelling groups by
    hand) changes nothing the explainer uses; a layout without groups once
    handed out its own column map, which then crossed the attributions."""
    linear = make_linear([1.0, -2.0, 3.0, 0.5, -1.5])
    ex = FeatureAblation(baseline=0.0).fit(linear, frame)
    ex.groups_[:] = [1, 0, 2, 3, 4]
    got = ex.explain(frame)
    w = linear.weight.detach().numpy()[0]
    np.testing.assert_allclose(got.to_numpy(), frame.to_numpy() * w, atol=1e-5)
    assert list(got.columns) == list(frame.columns)


def test_dict_groups_and_baselines_align_by_name_without_data(frame):
    model = make_linear([1.0, 2.0, 3.0, 4.0, 5.0])
    groups = {"money": ["debt", "income"]}
    baseline = {c: float(i) for i, c in enumerate(frame.columns[::-1])}
    ex = FeatureAblation(feature_groups=groups, baseline=baseline).fit(model)
    attr = ex.explain(frame)
    assert list(attr.columns) == ["money", "age", "score", "tenure"]
    b = pd.Series(baseline)[frame.columns].to_numpy()
    contrib = (frame.to_numpy() - b) * np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(attr["money"], contrib[:, 1] + contrib[:, 2], atol=1e-5)
    np.testing.assert_allclose(attr["tenure"], contrib[:, 4], atol=1e-5)
    # same through a Series baseline
    series = FeatureAblation(baseline=pd.Series(baseline)).fit(model).explain(frame)
    np.testing.assert_allclose(series.to_numpy(), contrib, atol=1e-5)
    with pytest.raises(
        ValueError, match=r"names column 'zeta', which is not in X.*'age'"
    ):
        FeatureAblation(feature_groups={"za": ["zeta"]}).fit(model).explain(frame)
    with pytest.raises(ValueError, match=r"missing \['tenure'\]; unknown \['zz'\]"):
        bad = {**dict.fromkeys(frame.columns[:4], 0.0), "zz": 0.0}
        FeatureAblation(baseline=bad).fit(model).explain(frame)


def test_names_given_at_fit_fix_the_columns(frame):
    reordered = frame[frame.columns[::-1]]
    by_baseline = FeatureAblation(baseline=frame.iloc[:1]).fit(MLP())
    with pytest.raises(ValueError, match="same order as they were in fit"):
        by_baseline.explain(reordered)
    by_X = FeatureAblation().fit(MLP(), frame)
    with pytest.raises(ValueError, match="same order as they were in fit"):
        by_X.explain(reordered)


def test_target_out_of_range_is_found_before_heavy_work(frame):
    counted = Counting(MLP())
    ex = ShapleyValueSampling(target=7, baseline=0.0).fit(counted)
    with pytest.raises(ValueError, match=r"target=7 is out of range.*0\.\.2"):
        ex.explain(frame)
    assert counted.rows <= 2  # the probe only


# ------------------------------------------------------------ 2. any module


class _NoLinear(nn.Module):
    """f(x) = x . w with a bare parameter vector: no in_features anywhere."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(torch.tensor(w))

    def forward(self, x):
        return (x * self.w).sum(1, keepdim=True)


class _OutputFirst(nn.Module):
    """Registers its output layer first (8 inputs), then its input layer (5)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.out = nn.Linear(8, 1)
        self.inp = nn.Linear(5, 8)

    def forward(self, x):
        return self.out(torch.tanh(self.inp(x)))


class _ConvFirst(nn.Module):
    """A Conv1d over the columns, then a head."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv1d(1, 2, kernel_size=3, padding=1)
        self.head = nn.Linear(10, 1)

    def forward(self, x):
        return self.head(self.conv(x[:, None, :]).flatten(1))


@pytest.mark.parametrize("cls", EXPLAINERS, ids=ids)
@pytest.mark.parametrize("module", [_NoLinear, _OutputFirst, _ConvFirst])
def test_any_module_fits_without_data(cls, module, frame):
    model = _NoLinear([1.0, -2.0, 0.5, 0.0, 3.0]) if module is _NoLinear else module()
    extra = {}
    if cls in (LayerGradientShap, NeuronGradient):
        layer = {_NoLinear: None, _OutputFirst: "inp", _ConvFirst: "conv"}[module]
        if layer is None:
            return  # no layer to attribute to
        extra = {"layer": layer}
        if cls is NeuronGradient and module is _ConvFirst:
            extra["neuron"] = (1, 2)
    attr = per_row(build(cls, **extra).fit(model).explain(frame))
    assert attr.index.equals(frame.index) and np.isfinite(attr.to_numpy()).all()
    if module is _NoLinear and cls in (
        FeatureAblation,
        ShapleyValues,
        KernelShap,
        ShapleyInteractions,
    ):
        truth = frame.to_numpy() * np.array([1.0, -2.0, 0.5, 0.0, 3.0])
        np.testing.assert_allclose(attr.to_numpy(), truth, atol=1e-5)


def test_a_model_of_another_width_says_pass_X_to_fit(frame):
    with pytest.raises(ValueError, match=r"rows of 5 input column.*fit\(model, X\)"):
        FeatureAblation(baseline=0.0).fit(nn.Linear(4, 1)).explain(frame)


# ------------------------------------------------------------ 3. Pipelines

WEIGHTED = {"reorder": "a", "drop": "a", "onehot": "kind"}


def _linear_pipeline(kind):
    """(pipeline, X, model-input weights, weighted column) of a linear skorch net."""
    rng = np.random.default_rng(0)
    n = 40
    X = pd.DataFrame(
        {
            "a": rng.normal(size=n),
            "b": rng.normal(size=n) * 3 + 1,
            "c": rng.normal(size=n) - 2,
            "kind": rng.choice(["x", "y", "z"], size=n),
        }
    )
    if kind == "reorder":  # same width, columns crossed: b first, then a
        X = X[["a", "b"]]
        ct = ColumnTransformer(
            [("s", StandardScaler(), ["b"]), ("t", StandardScaler(), ["a"])]
        )
        w = [0.0, 1.5]  # on a
    elif kind == "drop":  # c and a reach the model, b is dropped
        X = X[["a", "b", "c"]]
        ct = ColumnTransformer([("s", StandardScaler(), ["c", "a"])], remainder="drop")
        w = [0.0, -2.0]
    else:  # one-hot "kind" first, then a scaled "a" with no weight
        X = X[["a", "kind"]]
        ct = ColumnTransformer(
            [
                ("oh", OneHotEncoder(sparse_output=False), ["kind"]),
                ("num", StandardScaler(), ["a"]),
            ]
        )
        w = [1.0, -1.0, 0.5, 0.0]
    ct.fit(X)
    cast = FunctionTransformer(lambda z: np.asarray(z, dtype=np.float32)).fit(X)
    net = NeuralNetRegressor(
        nn.Sequential(nn.Linear(len(w), 1)), max_epochs=0, train_split=None
    )
    net.initialize()
    with torch.no_grad():
        net.module_[0].weight.copy_(torch.tensor([w]))
        net.module_[0].bias.fill_(0.25)
    return make_pipeline(ct, cast, net), X, np.array(w), WEIGHTED[kind]


def _truth(pipe, X, w, baseline_z):
    """Per user column: sum of w_i (z_i - b_i) over its model inputs."""
    Z = np.asarray(pipe[:-1].transform(X), dtype=np.float64)
    ex = FeatureAblation().fit(pipe, X)
    contrib = (Z - baseline_z) * w
    out = pd.DataFrame(0.0, index=X.index, columns=X.columns)
    for i, j in enumerate(ex.groups_):
        out.iloc[:, j] += contrib[:, i]
    return out


@pytest.mark.parametrize("kind", ["reorder", "drop", "onehot"])
@pytest.mark.parametrize("cls", EXPLAINERS, ids=ids)
def test_pipelines_attribute_to_the_right_column(cls, kind):
    pipe, X, w, weighted = _linear_pipeline(kind)
    rows = X.iloc[:10]
    extra = {"layer": "0"} if cls in (LayerGradientShap, NeuronGradient) else {}
    if cls is NeuronGradient:
        extra["neuron"] = 0
    if cls is Lime:
        extra.update(alpha=0.0, n_samples=60)
    ex = build(cls, **extra).fit(pipe, X)
    attr = per_row(ex.explain(rows))  # interactions: their Shapley values
    if cls is LayerGradientShap:
        return  # its columns are the layer's units, not the user's columns
    assert list(attr.columns) == list(X.columns)
    others = [c for c in X.columns if c != weighted]
    if cls in (Lime, ShapleyInteractions):  # zero up to rounding
        np.testing.assert_allclose(attr[others].to_numpy(), 0.0, atol=1e-9)
    else:  # no weight, or dropped: exactly 0
        assert (attr[others] == 0).all().all(), attr
    assert (attr[weighted] != 0).any()
    if cls is NeuronGradient:  # the gradient of the output unit: the weights
        expected = dict.fromkeys(X.columns, 0.0)
        for i, j in enumerate(ex.groups_):
            expected[X.columns[j]] += w[i]
        np.testing.assert_allclose(attr[weighted], expected[weighted], rtol=1e-6)
    elif cls is not FeaturePermutation:  # exact for a linear model
        truth = _truth(pipe, rows, w, 0.0)
        np.testing.assert_allclose(attr.to_numpy(), truth.to_numpy(), atol=1e-4)
    imp = ex.importance(rows)
    if cls is ShapleyInteractions:  # a linear model: no pair interacts
        assert (imp["importance"] < 1e-9).all()
    else:
        assert imp.index[0] == weighted


def test_scored_permutation_importance_on_a_reordering_pipeline():
    pipe, X, w, weighted = _linear_pipeline("drop")
    y = pipe.predict(X).ravel()
    for scoring in ("r2", lambda est, X_, y_: -np.mean((est.predict(X_) - y_) ** 2)):
        imp = FeaturePermutation(scoring=scoring, n_repeats=3, random_state=0)
        imp = imp.fit(pipe, X).importance(X, y)
        assert imp.index[0] == weighted and imp.loc[weighted, "importance"] > 0
        assert imp.loc["b", "importance"] == 0 and imp.loc["c", "importance"] == 0


# ------------------------------------------------------------ 4. group order


def test_dict_groups_come_out_in_key_order_then_the_rest(frame):
    model = make_linear([1.0, 2.0, 3.0, 4.0, 5.0])
    groups = {"g0": ["score", "tenure"], "g1": ["age", "income"]}
    attr = FeatureAblation(feature_groups=groups, baseline=0.0).fit(model, frame)
    attr = attr.explain(frame)
    assert list(attr.columns) == ["g0", "g1", "debt"]
    contrib = frame.to_numpy() * np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(attr["g0"], contrib[:, 3] + contrib[:, 4], atol=1e-5)
    np.testing.assert_allclose(attr["g1"], contrib[:, 0] + contrib[:, 1], atol=1e-5)


@pytest.mark.parametrize(
    "cls", [FeatureAblation, ShapleyValues, KernelShap, GradientShap]
)
def test_mask_groups_come_out_by_increasing_id(cls, frame):
    model = make_linear([1.0, 2.0, 3.0, 4.0, 5.0])
    mask = [2, 2, 0, 5, 5]  # ids with a gap: columns are ids 0, 2, 5
    attr = build(cls, feature_groups=mask).fit(model, frame).explain(frame)
    assert list(attr.columns) == ["debt", "age+income", "score+tenure"]
    contrib = frame.to_numpy() * np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(attr.iloc[:, 0], contrib[:, 2], atol=1e-5)
    np.testing.assert_allclose(attr.iloc[:, 1], contrib[:, :2].sum(1), atol=1e-5)
    np.testing.assert_allclose(attr.iloc[:, 2], contrib[:, 3:].sum(1), atol=1e-5)


# ------------------------------------------------------------ 5. NaN outputs


class _NaNFor(nn.Module):
    """A linear model that returns NaN where ``age`` is above 0.5 (or inf)."""

    def __init__(self, value=float("nan")):
        super().__init__()
        self.lin = make_linear([1.0, 2.0, 3.0, 4.0, 5.0])
        self.value = value

    def forward(self, x):
        out = self.lin(x)
        return torch.where(x[:, :1] > 0.5, torch.full_like(out, self.value), out)


@pytest.mark.parametrize("cls", EXPLAINERS, ids=ids)
def test_non_finite_outputs_are_said_not_averaged(cls, frame):
    bad = frame.index[frame["age"] > 0.5]
    assert 0 < len(bad) < len(frame)
    extra = {"layer": "lin"} if cls in (LayerGradientShap, NeuronGradient) else {}
    if cls is NeuronGradient:
        extra["neuron"] = 0
    ex = build(cls, **extra).fit(_NaNFor(), frame)
    pattern = rf"For {len(bad)} of the 8 rows of X the model returned NaN or infinity "
    pattern += rf"\(first rows: '{bad[0]}'"
    if cls is FeaturePermutation:  # the NaN rows' ages reach other rows too
        pattern = r"For \d of the 8 rows of X the model returned NaN or infinity"
    with pytest.raises(ValueError, match=pattern):
        ex.explain(frame)
    with pytest.raises(ValueError, match="NaN or infinity"):
        ex.importance(frame)
    inf = build(cls, **extra).fit(_NaNFor(float("inf")), frame)
    with pytest.raises(ValueError, match="NaN or infinity"):
        inf.explain(frame)


def test_outputs_whose_sum_overflows_are_finite_still(frame):
    """Each output near float32's largest value: their sum is infinite, yet
    no output is. The check looks at the outputs, not at their sum, so the
    attributions come back (and are finite where the model is)."""

    class Huge(nn.Module):
        def forward(self, x):
            big = torch.full_like(x[:, :1], 3e38)
            return torch.cat([big, x.sum(1, keepdim=True)], 1)

    out = Huge()(torch.as_tensor(frame.to_numpy(np.float32)))
    assert not torch.isfinite(out.sum()) and torch.isfinite(out).all()
    for cls in (ShapleyValueSampling, FeatureAblation, GradientShap):
        attr = build(cls, target=1).fit(Huge(), frame).explain(frame)
        assert np.isfinite(attr.to_numpy()).all()


def test_nan_only_at_perturbations_and_at_the_baseline(frame):
    class NaNWhenOnlyAgeIsAblated(nn.Module):
        """Finite at the rows and at the all-baseline row; NaN when age alone
        takes the baseline (-6) while income keeps the row's value."""

        def forward(self, x):
            out = x.sum(1, keepdim=True)
            odd = (x[:, :1] < -5) & (x[:, 1:2] > -5)
            return torch.where(odd, torch.full_like(out, float("nan")), out)

    model = NaNWhenOnlyAgeIsAblated()
    for cls in (ShapleyValueSampling, FeatureAblation, KernelShap, Lime):
        ex = build(cls, baseline=-6.0).fit(model)
        with pytest.raises(ValueError, match=r"For 8 of the 8 rows.*perturbations"):
            ex.explain(frame)

    class LogAge(nn.Module):  # NaN at the all-(-6) baseline row
        def forward(self, x):
            return torch.log(x[:, :1] + 5.0) + x[:, 1:].sum(1, keepdim=True)

    X = frame.assign(age=frame["age"].abs())
    with pytest.raises(ValueError, match="NaN or infinity at the baseline"):
        FeatureAblation(baseline=-6.0).fit(LogAge()).explain(X)


def test_scored_permutation_importance_with_nan_outputs(frame):
    y = np.zeros(len(frame))
    imp = FeaturePermutation(scoring="neg_mean_squared_error", random_state=0)
    with pytest.raises(ValueError, match="the model returned NaN or infinity"):
        imp.fit(_NaNFor(), frame).importance(frame, y)


def test_non_finite_gradients_are_said(frame):
    class SqrtAtZero(nn.Module):  # finite output, infinite gradient at 0
        def forward(self, x):
            return torch.sqrt(x.abs()).sum(1, keepdim=True)

    X = frame.copy()
    X.iloc[3, 2] = 0.0
    with pytest.raises(ValueError, match=r"For 1 of the 8 rows.*gradients.*'c3'"):
        NeuronGradient(layer="0", neuron=0).fit(nn.Sequential(SqrtAtZero())).explain(X)


# ------------------------------------------------------------ 6. errors


def test_strings_without_a_pipeline_are_named_before_the_width(frame):
    ex = FeatureAblation().fit(MLP(), frame)
    X = frame.assign(city=["Oslo", "Rome"] * 4, plan=["a", "b"] * 4)
    with pytest.raises(
        TypeError, match=r"non-numeric column\(s\) 'city', 'plan'.*Pipeline"
    ):
        ex.explain(X)
    with pytest.raises(TypeError, match=r"non-numeric column\(s\) 'city'.*Pipeline"):
        FeatureAblation().fit(MLP(), X[["age", "city"]])


def test_scoring_without_y_says_so(frame):
    ex = FeaturePermutation(scoring="accuracy").fit(MLP(), frame)
    with pytest.raises(ValueError, match=r"scoring='accuracy'.*importance\(X, y\)"):
        ex.importance(frame)


def test_proba_of_a_skorch_regressor_is_refused(frame):
    net = NeuralNetRegressor(nn.Linear(5, 1), max_epochs=0, train_split=None)
    net.initialize()
    with pytest.raises(ValueError, match=r"output='proba'.*regressor.*output='raw'"):
        FeatureAblation(output="proba").fit(net, frame)


def test_shapley_values_refusal_writes_a_power(frame):
    X = np.zeros((2, 500), dtype=np.float32)
    ex = ShapleyValues(baseline=0.0).fit(nn.Linear(500, 1))
    with pytest.raises(ValueError, match="needs 2\\^500 model evaluations") as info:
        ex.explain(X)
    assert len(str(info.value)) < 400 and "ShapleyValueSampling" in str(info.value)


@pytest.mark.parametrize("target", [[0, 1], np.array([0, 1]), torch.tensor([1])])
def test_target_as_a_list_points_to_true(target, frame):
    with pytest.raises(TypeError, match=r"one output for every row.*target='true'"):
        FeatureAblation(target=target).fit(MLP(), frame)


# ------------------------------------------------------------ 7. extras, progress


@pytest.mark.parametrize("cls", EXPLAINERS, ids=ids)
def test_every_extra_has_its_one_kind(cls, frame):
    attr = build(cls).fit(MLP(), frame).explain(frame)
    assert set(attr.attrs) == set(cls._extras)  # what the class declares
    for key, value in attr.attrs.items():
        kind = cls._extras[key]
        assert kind in EXTRA_KINDS
        # one key, one kind, in every explainer
        assert {c._extras[key] for c in EXPLAINERS if key in c._extras} == {kind}
        if kind in ("row", "target"):  # per row of X
            rows = attr.index.get_level_values(0).unique()
            assert isinstance(value, pd.Series) and value.index.equals(rows), key
        elif kind == "cell":
            assert isinstance(value, pd.DataFrame), key
            assert value.index.equals(attr.index) and value.columns.equals(attr.columns)
        else:
            assert np.isscalar(value), key


class _Bars:
    """Records the tqdm bars a call opens, writing them to a string."""

    def __init__(self):
        self.bars = []

    def __call__(self, *args, **kwargs):
        import io

        from tqdm.std import tqdm

        bar = tqdm(*args, file=io.StringIO(), **kwargs)
        self.bars.append(bar)
        return bar


@pytest.mark.parametrize("cls", EXPLAINERS, ids=ids)
def test_one_progress_bar_per_call_ends_at_its_total(cls, frame, monkeypatch):
    import tqdm.auto

    bars = _Bars()
    monkeypatch.setattr(tqdm.auto, "tqdm", bars)
    counted = Counting(MLP())
    extra = {"layer": "module.hidden.0"} if "layer" in FAST_PARAMS[cls.__name__] else {}
    ex = build(cls, show_progress=True, **extra).fit(counted, frame)
    counted.rows = 0
    ex.explain(frame)
    assert len(bars.bars) == 1
    bar = bars.bars[0]
    assert bar.leave
    assert bar.n == bar.total == counted.rows  # the documented cost, exactly
    assert bar.fp.getvalue().rstrip().endswith("]")  # drawn, not erased


def test_progress_bar_with_tol_ends_at_what_was_evaluated(frame, monkeypatch):
    import tqdm.auto

    bars = _Bars()
    monkeypatch.setattr(tqdm.auto, "tqdm", bars)
    model = make_linear([1.0, 2.0, 3.0, 4.0, 5.0])
    ex = ShapleyValueSampling(tol=1e-3, n_samples=200, show_progress=True)
    ex.fit(model, frame).explain(frame)  # linear: every draw agrees, stops early
    (bar,) = bars.bars
    assert bar.n == bar.total and bar.total < 8 * (2 + 200 * 4)


def test_python_m_skattr_without_a_command_prints_help(capsys):
    from skattr.__main__ import main

    assert main([]) == 0
    out = capsys.readouterr().out
    assert "usage: python -m skattr" in out and "demo" in out


def test_a_multi_output_regressor_has_no_predicted_class(frame):
    # target=None means each row's predicted class on a multi-output model;
    # a skorch regressor's outputs are not classes, so the argmax of two
    # predictions was explained without a word: now the call says so
    from skorch import NeuralNetRegressor

    torch.manual_seed(0)
    net = NeuralNetRegressor(nn.Linear(frame.shape[1], 2)).initialize()
    for target in (None, "predicted"):
        with pytest.raises(ValueError, match="is a regressor.*target=0..1"):
            FeatureAblation(target=target).fit(net, frame)
    one = FeatureAblation(target=1).fit(net, frame).explain(frame)
    both = FeatureAblation(target="all").fit(net, frame).explain(frame)
    pd.testing.assert_frame_equal(both[1], one, check_names=False)
    # set_params after fit is checked at explain too
    ex = FeatureAblation(target=0).fit(net, frame).set_params(target=None)
    with pytest.raises(ValueError, match="is a regressor"):
        ex.explain(frame)
    # a method without a target explains the regressor as before
    two_layers = NeuralNetRegressor(
        nn.Sequential(nn.Linear(frame.shape[1], 3), nn.Linear(3, 2))
    ).initialize()
    grad = NeuronGradient(layer="0", neuron=1).fit(two_layers, frame).explain(frame)
    assert grad.shape == frame.shape
    # a single-output regressor keeps target=None and "predicted": its one output
    single = NeuralNetRegressor(nn.Linear(frame.shape[1], 1)).initialize()
    for target in (None, "predicted"):
        attr = FeatureAblation(target=target).fit(single, frame).explain(frame)
        assert attr.shape == frame.shape


def test_a_binary_skorch_classifier_explains_its_probabilities(frame):
    # its module returns one score per row, from which skorch stacks
    # (1 - p, p); held as [m, 1], it stacked to [m, 2, 1], and target=None
    # (each row's predicted class) raised from a shape mismatch
    from skorch import NeuralNetBinaryClassifier

    class Score(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(frame.shape[1], 1)

        def forward(self, x):
            return self.lin(x).squeeze(-1)

    torch.manual_seed(0)
    net = NeuralNetBinaryClassifier(Score).initialize()
    proba = net.predict_proba(frame.to_numpy(np.float32))
    attr = ShapleyValueSampling(output="proba", random_state=0).fit(net, frame)
    attr = attr.explain(frame)
    picked = proba[np.arange(len(frame)), proba.argmax(1)]
    np.testing.assert_allclose(attr.attrs["prediction"], picked, rtol=1e-6)
    # raw, its one output is the score of class 1: class 0 has none, said plainly
    with pytest.raises(ValueError, match=r"the score of class 1; target=0 has no"):
        ShapleyValueSampling(target=0).fit(net, frame)
    every = ShapleyValueSampling(output="proba", target="all", random_state=0)
    every = every.fit(net, frame).explain(frame)
    for k in (0, 1):
        np.testing.assert_allclose(
            every.attrs["prediction"].iloc[:, k], proba[:, k], rtol=1e-6
        )


def test_a_binary_skorch_classifier_scored_and_labelled_as_scikit_learn_does(frame):
    # FeaturePermutation(scoring=...) on NeuralNetBinaryClassifier raised
    # (accuracy: a reshape error; roc_auc and log-loss: inconsistent sample
    # counts): the scorer's copies were stacked [S, m, 1] and skorch's
    # nonlinearity stacked (1 - p, p) along the wrong axis; and attrs["target"]
    # said class 0 for the one score column, which is class 1's
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score
    from skorch import NeuralNetBinaryClassifier

    class Score(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(frame.shape[1] - 1, 1)

        def forward(self, x):
            return self.lin(x[:, 1:]).squeeze(-1) * 3.0  # ignores column 0

    torch.manual_seed(0)
    net = NeuralNetBinaryClassifier(Score).initialize()
    X32 = frame.to_numpy(np.float32)
    proba = net.predict_proba(X32)
    y = (proba[:, 1] > np.median(proba[:, 1])).astype(np.int64)
    y[:3] = 1 - y[:3]  # not a perfect score
    expected = {
        "accuracy": accuracy_score(y, net.predict(X32)),
        "roc_auc": roc_auc_score(y, proba[:, 1]),
        "neg_log_loss": -log_loss(y, proba),
    }
    for scoring, base in expected.items():
        ex = FeaturePermutation(n_repeats=3, scoring=scoring, random_state=0)
        imp = ex.fit(net, frame).importance(frame, y)
        assert imp.attrs["baseline_score"] == pytest.approx(base, rel=1e-6)
        assert imp.loc[frame.columns[0], "importance"] == 0.0  # ignored column
        assert (imp["importance"] != 0).sum() > 1
    for target in (None, 1, "predicted"):
        attr = FeatureAblation(target=target).fit(net, frame).explain(frame)
        assert set(attr.attrs["target"]) == {1}


def _assert_same(a, b):
    if isinstance(b, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b)
    else:
        pd.testing.assert_series_equal(a, b)


@pytest.mark.parametrize(
    "make",
    [
        lambda: ShapleyValues(target="all"),
        lambda: KernelShap(n_samples=20, random_state=0),
        lambda: skattr.ShapleyInteractions(target=1),
    ],
    ids=["ShapleyValues-all", "KernelShap", "ShapleyInteractions"],
)
def test_results_of_chunks_join_with_their_extras(make, frame):
    # pandas.concat compares attrs to keep them and raised on their Series
    # ("Can only compare identically-labeled Series objects"); skattr.concat
    # joins the frames and their extras, equal to one call on every row for
    # a method whose rows do not share draws
    from skattr import concat

    net = MLP()
    ex = make().fit(net, frame)
    whole = ex.explain(frame)
    parts = [ex.explain(frame.iloc[:7]), ex.explain(frame.iloc[7:])]
    joined = concat(parts)
    if not isinstance(ex, KernelShap):  # its chunks draw their own designs
        pd.testing.assert_frame_equal(joined, whole)
        assert joined.attrs.keys() == whole.attrs.keys()
        for key, value in whole.attrs.items():
            if isinstance(value, (pd.Series, pd.DataFrame)):
                _assert_same(joined.attrs[key], value)
            else:
                assert joined.attrs[key] == value
    fx = joined.attrs["prediction"]
    rows = (
        joined.index.get_level_values(0).unique()
        if joined.index.nlevels > 1
        else joined.index
    )
    assert fx.index.equals(rows)
    # slices of one result carry every row's extras: each keeps its own
    again = concat([whole.iloc[: len(whole) // 2], whole.iloc[len(whole) // 2 :]])
    pd.testing.assert_frame_equal(again, whole)
    _assert_same(again.attrs["base_values"], whole.attrs["base_values"])
    with pytest.raises(ValueError, match="other columns"):
        concat([whole, whole.iloc[:, :2]])


def test_concat_numbers_an_arrays_chunks_on_and_keeps_whole_interactions(frame):
    # chunks of an array are each numbered 0..k-1: joined, their labels
    # repeated, and a row of the joined result could not be matched
    from skattr import concat, plot

    X = frame.to_numpy()
    ex = ShapleyValues(target=1).fit(MLP(), X)
    whole = concat([ex.explain(X[:5]), ex.explain(X[5:])])
    assert whole.index.equals(pd.RangeIndex(len(X)))
    pd.testing.assert_frame_equal(whole, ex.explain(X))
    pd.testing.assert_series_equal(
        whole.attrs["base_values"], ex.explain(X).attrs["base_values"]
    )
    plot.waterfall(whole.iloc[7])
    # interactions: whole rows only, also for a MultiIndex X
    inter = skattr.ShapleyInteractions(target=1).fit(MLP(), frame)
    attr = inter.explain(frame)
    with pytest.raises(ValueError, match="read as whole matrices"):
        concat([attr.iloc[:7], attr.iloc[7:]])
    two = frame.iloc[:4].set_axis(
        pd.MultiIndex.from_product([["u1", "u2"], [1, 2]], names=["user", "t"])
    )
    parts = [inter.explain(two.iloc[:2]), inter.explain(two.iloc[2:])]
    joined = concat(parts)
    pd.testing.assert_frame_equal(joined, inter.explain(two))
    assert joined.attrs["base_values"].index.equals(two.index)


def test_y_holding_Xs_labels_in_another_order_is_refused_not_read_by_position(frame):
    # y is read by position, as scikit-learn does; a Series whose labels are
    # X's own in another order (sorted or shuffled apart from X) paired each
    # row with another row's label without a word
    y = pd.Series((frame["age"] > 0).astype(int).to_numpy(), index=frame.index)
    shuffled = y.sample(frac=1, random_state=0)
    ex = ShapleyValues(target="true", baseline=0.0).fit(MLP(), frame)
    truth = ex.explain(frame, y)
    with pytest.raises(ValueError, match="y holds the labels of X in another order"):
        ex.explain(frame, shuffled)
    # by label, as the message says, it is the call with y in X's order
    pd.testing.assert_frame_equal(ex.explain(frame, shuffled.loc[frame.index]), truth)
    # other labels (X's index reset, y's kept): by position, as scikit-learn
    moved = y.set_axis(range(100, 100 + len(y)))
    pd.testing.assert_frame_equal(ex.explain(frame, moved), truth)
    # labels 0..n-1 in order beside the same in another order: X's index
    # reset after a shuffle (y in X's order) looks like a y sorted apart from
    # a read_csv X (y in another order); refused, the message gives both fixes
    plain = frame.reset_index(drop=True)
    kept = y.set_axis(np.random.default_rng(0).permutation(len(y)))
    with pytest.raises(ValueError, match=r"reset since.*pass y\.to_numpy\(\)"):
        ex.explain(plain, kept)
    pd.testing.assert_frame_equal(
        ex.explain(plain, kept.to_numpy()), truth.reset_index(drop=True)
    )
    perm = FeaturePermutation(scoring="accuracy", random_state=0).fit(MLP(), frame)
    with pytest.raises(ValueError, match="y holds the labels of X in another order"):
        perm.importance(frame, shuffled)
    weights = pd.Series(np.linspace(1, 2, len(frame)), index=frame.index)
    with pytest.raises(ValueError, match="sample_weight holds the labels of X"):
        perm.importance(frame, y, sample_weight=weights.iloc[::-1])


def test_a_frame_with_integer_column_labels_reordered_is_refused():
    # scikit-learn's name checks skip labels that are not strings: a frame
    # fitted with columns [2, 0, 1] and explained as [0, 1, 2] went to the
    # model by position, each column where another belongs, without a word
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(6, 3)), columns=[2, 0, 1])
    w = np.array([3.0, 0.0, 0.0])  # the model reads its first input: column 2
    ex = ShapleyValues(baseline=0.0).fit(make_linear(w), X)
    np.testing.assert_allclose(ex.explain(X)["2"], 3.0 * X[2], rtol=1e-5)
    with pytest.raises(ValueError, match="columns of fit in another order"):
        ex.explain(X[[0, 1, 2]])
    # refitted on string names, the labels of the first fit are forgotten
    named = X.set_axis(["c", "a", "b"], axis=1)
    ex.fit(make_linear(w), named)
    with pytest.raises(ValueError, match="same order as they were in fit"):
        ex.explain(named[["a", "b", "c"]])
    ex.fit(make_linear(w))  # no X: each call's own columns
    ex.explain(X[[0, 1, 2]])


class _Squeezed(nn.Module):
    """A regression net ending in ``.squeeze()``: shape () for one row."""

    def __init__(self, w):
        super().__init__()
        self.linear = make_linear(w)

    def forward(self, x):
        return self.linear(x).squeeze()


class _WritesItsInput(nn.Module):
    """A model that writes into its input (an in-place first operation)."""

    def __init__(self, w):
        super().__init__()
        self.linear = make_linear(w)

    def forward(self, x):
        x.mul_(1.0).add_(0.5)  # changes the very tensor it is given
        return self.linear(x - 0.5)


@pytest.mark.parametrize("cls", EXPLAINERS, ids=ids)
def test_a_model_squeezing_its_output_is_explained(cls, frame):
    # the probe at fit ran one row, got shape () and refused the model;
    # a chunk of one row at explain would have been refused alike
    w = np.arange(1.0, 6.0)
    extra = {"layer": "linear"} if cls in (LayerGradientShap, NeuronGradient) else {}
    if cls is NeuronGradient:
        extra["neuron"] = 0
    ex = build(cls, **extra).fit(_Squeezed(w), frame)
    n = 2 if cls is FeaturePermutation else 1  # it shuffles across rows
    attr = per_row(ex.explain(frame.iloc[:n]))
    assert attr.shape == (n, 5) or isinstance(ex, LayerGradientShap)
    if isinstance(ex, (ShapleyValues, FeatureAblation)):  # exact: w * (x - 0)
        np.testing.assert_allclose(attr.to_numpy()[0], w * frame.iloc[0], rtol=1e-5)


def test_a_model_writing_into_its_input_leaves_the_baseline_alone(frame):
    # fit's probe handed the model the explainer's own baseline rows: a
    # model that writes into its input moved baseline_ from 0.5 to 1.0
    w = np.array([1.0, -2.0, 0.5, 3.0, 0.0])
    ex = ShapleyValues(baseline=0.5).fit(_WritesItsInput(w), frame)
    np.testing.assert_array_equal(ex.baseline_.numpy(), np.full((1, 5), 0.5))
    attr = ex.explain(frame)
    np.testing.assert_allclose(attr.to_numpy(), w * (frame.to_numpy() - 0.5), atol=1e-5)


def test_a_model_writing_into_its_input_leaves_the_users_X_alone(frame):
    # the rows of X went to the model as the user's own memory where no
    # conversion was needed (a tensor, a float64 array beside a float64
    # model), and a model writing into its input changed them
    w = np.array([1.0, -2.0, 0.5, 3.0, 0.0])
    given = (
        torch.tensor(frame.to_numpy()),
        frame.to_numpy(np.float64),
    )
    for X in given:
        before = X.clone() if isinstance(X, torch.Tensor) else X.copy()
        model = _WritesItsInput(w)
        if X.dtype in (torch.float64, np.float64):
            model = model.double()
        ex = FeaturePermutation(random_state=0).fit(model, X)
        ex.explain(X)
        ex.importance(X)
        GradientShap(baseline=0.0, random_state=0).fit(model, X).explain(X)
        np.testing.assert_array_equal(np.asarray(X), np.asarray(before))


def test_a_0d_baseline_is_its_one_value(frame):
    w = np.array([1.0, -2.0, 0.5, 3.0, 0.0])
    want = ShapleyValues(baseline=0.5).fit(make_linear(w), frame).explain(frame)
    for zero_d in (torch.tensor(0.5), np.array(0.5)):
        got = ShapleyValues(baseline=zero_d).fit(make_linear(w), frame).explain(frame)
        pd.testing.assert_frame_equal(got, want)
