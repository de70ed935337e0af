"""Pipelines ending in a skorch net, on the Palmer penguins (mixed, with NaN)."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.decomposition import PCA
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from skorch import NeuralNetClassifier
from torch import nn

import skattr
from skattr import FeatureAblation
from tests.conftest import FAST_PARAMS, MLP, explainer_names, per_row

NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
CATEGORICAL = ["island", "sex"]


def to_float32(a):
    return np.asarray(a, dtype=np.float32)


def _net(n_in):
    torch.manual_seed(0)
    return NeuralNetClassifier(
        MLP,
        module__n_in=n_in,
        module__n_out=3,
        criterion=nn.CrossEntropyLoss,
        max_epochs=10,
        lr=0.1,
        train_split=None,
        verbose=0,
    )


@pytest.fixture(scope="module")
def penguins():
    from palmerpenguins import load_penguins

    df = load_penguins()
    X = df.drop(columns="species")
    X.index = [f"p{i}" for i in range(len(X))]
    y = df["species"].astype("category").cat.codes.to_numpy().astype(np.int64)
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
        remainder="drop",  # "year" never reaches the model
    )
    pipe = make_pipeline(prep, FunctionTransformer(to_float32), _net(9))
    pipe.fit(X, y)
    return pipe, X, y


def _build(cls, **extra):
    params = dict(FAST_PARAMS[cls.__name__])
    if "random_state" in inspect.signature(cls).parameters:
        params["random_state"] = 0
    params.update(extra)
    return cls(**params)


@pytest.mark.parametrize("name", explainer_names())
def test_every_explainer_one_column_per_original_column(name, penguins):
    pipe, X, y = penguins
    ex = _build(getattr(skattr, name)).fit(pipe, X)
    rows = X.iloc[:6]
    attr = per_row(ex.explain(rows, y[:6]))  # interactions: their row sums
    assert attr.index.equals(rows.index)
    if isinstance(ex, skattr.LayerGradientShap):  # layer units, not features
        return
    assert list(attr.columns) == list(X.columns)
    assert (attr["year"] == 0).all()  # dropped by the ColumnTransformer
    assert np.isfinite(attr.to_numpy()).all()


def test_groups_follow_the_preprocessing(penguins):
    pipe, X, _ = penguins
    ex = FeatureAblation().fit(pipe, X)
    names = list(X.columns)
    origin = [names[g] for g in ex.groups_]
    assert origin == NUMERIC + ["island"] * 3 + ["sex"] * 2
    assert ex.baseline_.shape == (1, 9)  # model space
    Xt = pipe[:-1].transform(X)
    np.testing.assert_allclose(
        ex.baseline_.numpy()[0], Xt.mean(0), rtol=1e-5, atol=1e-6
    )


def test_consistent_with_transformed_matrix_and_explicit_groups(penguins):
    pipe, X, _ = penguins
    rows = X.iloc[:20]
    ours = FeatureAblation(target=0).fit(pipe, X).explain(rows)
    Xt_fit = pipe[:-1].transform(X)
    Xt = pipe[:-1].transform(rows)
    groups = {
        **{c: [i] for i, c in enumerate(NUMERIC)},
        "island": [4, 5, 6],
        "sex": [7, 8],
    }
    ref = (
        FeatureAblation(target=0, feature_groups=groups)
        .fit(pipe[-1], Xt_fit)
        .explain(Xt)
    )
    for col in NUMERIC + CATEGORICAL:
        np.testing.assert_allclose(ours[col].to_numpy(), ref[col].to_numpy(), atol=1e-6)


def test_groups_of_original_columns(penguins):
    pipe, X, _ = penguins
    ex = FeatureAblation(feature_groups={"bill": ["bill_length_mm", "bill_depth_mm"]})
    attr = ex.fit(pipe, X).explain(X.iloc[:4])
    assert list(attr.columns) == [  # the group first, then the other columns
        "bill",
        "island",
        "flipper_length_mm",
        "body_mass_g",
        "sex",
        "year",
    ]


def test_raw_nan_and_strings_are_fine_with_a_pipeline(penguins):
    pipe, X, _ = penguins
    rows = X[X.isna().any(axis=1)]
    assert len(rows) > 0
    attr = FeatureAblation().fit(pipe, X).explain(rows)
    assert np.isfinite(attr.to_numpy()).all()


def test_nan_after_preprocessing_names_the_original_column(penguins):
    _, X, y = penguins
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), NUMERIC),
            (
                "cat",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False),
                CATEGORICAL,
            ),
        ]
    )
    complete = X.dropna()
    pipe = make_pipeline(prep, FunctionTransformer(to_float32), _net(4 + 3 + 2))
    pipe.fit(complete, y[X.notna().all(axis=1).to_numpy()])
    ex = FeatureAblation().fit(pipe, complete)
    with pytest.raises(
        ValueError, match=r"NaN in column\(s\) 'bill_length_mm \(model input"
    ):
        ex.explain(X.iloc[[3]])  # row 3 has no measurements


def test_untraceable_transformer_says_what_to_do(penguins):
    _, X, y = penguins
    numeric = X[NUMERIC].dropna()
    pipe = make_pipeline(
        StandardScaler(), PCA(2), FunctionTransformer(to_float32), _net(2)
    )
    pipe.fit(numeric, y[X[NUMERIC].notna().all(axis=1).to_numpy()])
    with pytest.raises(
        ValueError, match=r"Cannot trace the outputs of PCA.*feature_groups"
    ):
        FeatureAblation().fit(pipe, numeric)


def _reversed(a):
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32)[:, ::-1])


def _row_shares(a):
    a = np.abs(np.asarray(a, dtype=np.float32)) + 1
    return a / a.sum(1, keepdims=True)


@pytest.mark.parametrize("func", [_reversed, _row_shares])
def test_a_function_that_moves_or_mixes_columns_is_not_taken_as_column_wise(
    penguins, func
):
    # a FunctionTransformer that keeps the number of columns was taken as
    # column-wise: one that reverses them credited all of one column's
    # effect to another, without a word
    _, X, y = penguins
    numeric = X[NUMERIC].dropna()
    pipe = make_pipeline(StandardScaler(), FunctionTransformer(func), _net(4))
    pipe.fit(numeric, y[X[NUMERIC].notna().all(axis=1).to_numpy()])
    with pytest.raises(ValueError, match="Cannot trace the outputs of Function"):
        FeatureAblation().fit(pipe, numeric)
    # column-wise functions are traced as before
    pipe = make_pipeline(StandardScaler(), FunctionTransformer(np.tanh),
                         FunctionTransformer(to_float32), _net(4))  # fmt: skip
    pipe.fit(numeric, y[X[NUMERIC].notna().all(axis=1).to_numpy()])
    assert list(FeatureAblation().fit(pipe, numeric).groups_) == [0, 1, 2, 3]


def test_pipeline_must_end_in_a_skorch_net(penguins):
    _, X, _ = penguins
    pipe = make_pipeline(StandardScaler(), PCA(2))
    pipe.fit(X[NUMERIC].dropna())
    with pytest.raises(TypeError, match="must end in a skorch net"):
        FeatureAblation().fit(pipe, X[NUMERIC])


def test_dict_baseline_in_user_columns(penguins):
    pipe, X, _ = penguins
    base = {c: X[c].mode()[0] for c in X.columns}
    ex = FeatureAblation(baseline=base).fit(pipe, X)
    expected = pipe[:-1].transform(pd.DataFrame([base]))[0]
    np.testing.assert_allclose(ex.baseline_.numpy()[0], expected, rtol=1e-5)


def test_a_multiclass_target_encoder_gives_one_input_per_class_and_column(penguins):
    # on a multiclass y, TargetEncoder gives each column one output per
    # class (column by column); traced as one output per column, the model's
    # 6 encoded inputs were credited to 2 columns and beyond, silently for
    # some methods and with shape errors deep in the core for others
    from sklearn.preprocessing import TargetEncoder

    _, X, y = penguins
    prep = ColumnTransformer(
        [
            ("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC[:2]),
            (
                "cat",
                make_pipeline(
                    SimpleImputer(strategy="most_frequent"),
                    TargetEncoder(),
                ),
                CATEGORICAL,
            ),
        ]
    )
    pipe = make_pipeline(prep, FunctionTransformer(to_float32), _net(8)).fit(X, y)
    ex = skattr.ShapleyValues(target=0).fit(pipe, X)
    assert [X.columns[g] for g in ex.groups_] == NUMERIC[:2] + ["island"] * 3 + [
        "sex"
    ] * 3
    rows = X.iloc[:10]
    groups = {"island": [2, 3, 4], "sex": [5, 6, 7]}
    ref = (
        skattr.ShapleyValues(target=0, feature_groups=groups)
        .fit(pipe[-1], pipe[:-1].transform(X))
        .explain(pipe[:-1].transform(rows))
    )
    ours = ex.explain(rows)
    for col in CATEGORICAL:
        np.testing.assert_allclose(ours[col].to_numpy(), ref[col].to_numpy(), atol=1e-6)


@pytest.mark.parametrize("names_out", [None, "one-to-one"])
def test_preprocessing_that_gives_other_inputs_than_traced_is_refused(
    penguins, names_out
):
    # the last guard: whatever a transformer's tracing assumes, the model
    # inputs the preprocessing gives must be as many as were traced; with
    # output names (one-to-one) at tracing, else at the transform
    from sklearn.preprocessing import TargetEncoder

    _, X, y = penguins
    encoder = TargetEncoder()
    prep = ColumnTransformer(
        [
            (
                "cat",
                make_pipeline(SimpleImputer(strategy="most_frequent"), encoder),
                CATEGORICAL,
            )
        ]
    )
    cast = FunctionTransformer(to_float32, feature_names_out=names_out)
    pipe = make_pipeline(prep, cast, _net(6)).fit(X, y)
    trace = skattr._pipeline.trace

    def one_to_one(transformer, sources):  # the tracing before the fix
        if type(transformer).__name__ == "TargetEncoder":
            return list(sources)
        return trace(transformer, sources)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(skattr._pipeline, "trace", one_to_one)
        if names_out is not None:  # the names are counted before any transform
            mp.setattr(skattr._model.ModelAdapter, "transform", None)
        with pytest.raises(ValueError, match="gives 6 model input.*traced 2"):
            FeatureAblation(target=0).fit(pipe, X)


def test_messages_name_what_the_pipeline_needs(penguins):
    # an array beside a Pipeline that selects columns by name got
    # scikit-learn's "only supported for dataframes"; a string column the
    # ColumnTransformer passes through was not named
    pipe, X, _ = penguins
    ex = FeatureAblation().fit(pipe, X)
    with (
        pytest.warns(UserWarning, match="feature names"),
        pytest.raises(ValueError, match=r"fitted on a DataFrame.*Pass X as a"),
    ):
        ex.explain(X.to_numpy())
    prep = ColumnTransformer(
        [("num", make_pipeline(SimpleImputer(), StandardScaler()), NUMERIC)],
        remainder="passthrough",
    )
    prep.fit(X)
    through = make_pipeline(prep, _net(9).initialize())
    with pytest.raises(TypeError, match=r"column\(s\) \"island \(model input"):
        FeatureAblation().fit(through, X)


@pytest.mark.parametrize("encode", ["onehot-dense", "ordinal"])
def test_binned_columns_are_traced_to_their_column(penguins, encode):
    from sklearn.preprocessing import KBinsDiscretizer

    _, X, y = penguins
    numeric = X[NUMERIC].dropna()
    bins = KBinsDiscretizer(n_bins=[2, 3, 4, 5], encode=encode, strategy="uniform")
    width = 14 if encode == "onehot-dense" else 4
    pipe = make_pipeline(bins, FunctionTransformer(to_float32), _net(width))
    pipe.fit(numeric, y[X[NUMERIC].notna().all(axis=1).to_numpy()])
    ex = FeatureAblation(target=0).fit(pipe, numeric)
    want = [0, 0, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 3] if width == 14 else [0, 1, 2, 3]
    assert list(ex.groups_) == want
    groups = {
        c: [i for i, g in enumerate(want) if g == j] for j, c in enumerate(NUMERIC)
    }
    rows = numeric.iloc[:8]
    ref = (
        FeatureAblation(target=0, feature_groups=groups)
        .fit(pipe[-1], pipe[:-1].transform(numeric))
        .explain(pipe[:-1].transform(rows))
    )
    np.testing.assert_allclose(ex.explain(rows).to_numpy(), ref.to_numpy(), atol=1e-6)


def _swap_first_two(a):
    a = np.array(a, dtype=np.float64)
    a[:, [0, 1]] = a[:, [1, 0]]
    return a


@pytest.mark.parametrize("n", [2, 3, 8, 9, 64])
def test_the_column_wise_probe_finds_any_column_read_by_another(n):
    from skattr._pipeline import _column_wise

    def fitted(func):
        return FunctionTransformer(func).fit(np.ones((2, n)))

    def contrast(a):  # a difference of differences of other columns
        a = np.asarray(a, dtype=np.float64)
        j = np.arange(a.shape[1])
        return a - a[:, j ^ 1] - a[:, j ^ 2] + a[:, j ^ 3]

    reading = [_swap_first_two, lambda a: np.roll(a, 1, axis=1), _row_shares]
    if n % 4 == 0:  # columns j ^ 1, j ^ 2 and j ^ 3 exist
        reading.append(contrast)
    for func in reading:
        assert not _column_wise(fitted(func), n)
    for func in (to_float32, np.log1p, np.sqrt, lambda a: a - a.mean(0)):
        assert _column_wise(fitted(func), n)


def test_the_column_wise_probe_stays_small_on_wide_tables():
    # the first probe moved each column in turn: n copies of n columns
    from skattr._pipeline import _column_wise

    wide = FunctionTransformer(to_float32).fit(np.ones((2, 20_000)))
    seen = []
    spy = FunctionTransformer(lambda a: seen.append(a.shape) or to_float32(a))
    assert _column_wise(spy.fit(np.ones((2, 20_000))), 20_000)
    assert _column_wise(wide, 20_000)
    assert seen[-1][0] <= 4 * (2 * 15 + 1)  # rows: 2 log2(n) moved copies
