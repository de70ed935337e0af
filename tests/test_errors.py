"""One test per error in DESIGN.md's list: a clear message, nothing changed."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from skattr import FeatureAblation
from skattr.exceptions import NotFittedError


@pytest.fixture
def fitted(mlp, X_frame):
    return FeatureAblation().fit(mlp, X_frame)


def test_nan_names_the_column(fitted, X_frame):
    X = X_frame.copy()
    X.iloc[2, 3] = np.nan
    before = X.copy()
    with pytest.raises(ValueError, match=r"NaN in column\(s\) 'f3'"):
        fitted.explain(X)
    pd.testing.assert_frame_equal(X, before)


def test_nullable_missing_value_is_nan(fitted, X_frame):
    X = X_frame.astype("Float64")
    X.iloc[0, 1] = pd.NA
    with pytest.raises(ValueError, match=r"NaN in column\(s\) 'f1'"):
        fitted.explain(X)


def test_inf_names_the_column(fitted, X_frame):
    X = X_frame.to_numpy().copy()
    X[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"infinity in column\(s\) 'f0'"):
        fitted.explain(pd.DataFrame(X, columns=X_frame.columns))


def test_wrong_number_of_columns(fitted, X_frame):
    with pytest.raises(
        ValueError, match="X has 4 features, but FeatureAblation is expecting 5"
    ):
        fitted.explain(X_frame.to_numpy()[:, :4])


def test_wrong_column_order(fitted, X_frame):
    with pytest.raises(ValueError, match="same order as they were in fit"):
        fitted.explain(X_frame[X_frame.columns[::-1]])


def test_names_are_compared_with_the_last_fit(mlp, X_frame):
    # explain compares a frame's columns with the Index of fit's names in
    # one call; a new fit on other names (or on an array) replaces them, and
    # the first frame's very Index is then refused, not let through
    ex = FeatureAblation().fit(mlp, X_frame)
    ex.explain(X_frame)  # fit's own Index
    ex.explain(X_frame.set_axis(list(X_frame.columns), axis=1))  # equal names
    renamed = X_frame.rename(columns=lambda c: c.upper())
    ex.fit(mlp, renamed)
    with pytest.raises(ValueError, match="unseen at fit time"):
        ex.explain(X_frame)
    ex.fit(mlp, X_frame.to_numpy())  # no names: the number of columns
    with pytest.warns(UserWarning, match="fitted without feature names"):
        assert list(ex.explain(X_frame).columns) == list(X_frame.columns)


def test_a_frame_after_an_unnamed_fit_is_warned_of_as_scikit_learn_does(mlp, X_frame):
    # rows without names at fit, a named frame at explain: scikit-learn's
    # warning (the columns are taken by position, and named as the frame)
    ex = FeatureAblation().fit(mlp, X_frame.to_numpy())
    with pytest.warns(UserWarning, match="X has feature names, but FeatureAblation"):
        ex.explain(X_frame)
    with warnings.catch_warnings():  # no rows at fit: the frame gives the names
        warnings.simplefilter("error")
        for baseline in ("zeros", np.zeros(X_frame.shape[1], np.float32)):
            ex = FeatureAblation(baseline=baseline).fit(mlp)
            assert list(ex.explain(X_frame).columns) == list(X_frame.columns)
        ex = FeatureAblation().fit(mlp, X_frame.to_numpy())
        ex.fit(mlp)  # a later fit without rows forgets the unnamed ones
        ex.explain(X_frame)
        FeatureAblation().fit(mlp, X_frame).explain(X_frame)


def test_unseen_column_names(fitted, X_frame):
    with pytest.raises(ValueError, match="Feature names unseen at fit time:\n- zz"):
        fitted.explain(X_frame.rename(columns={"f2": "zz"}))


def test_non_numeric_column_recommends_pipeline(mlp, X_frame):
    X = X_frame.copy()
    X["f4"] = ["a", "b"] * 6
    with pytest.raises(TypeError, match=r"non-numeric column\(s\) 'f4'.*Pipeline"):
        FeatureAblation().fit(mlp, X)


def test_empty_X(fitted, X_frame):
    with pytest.raises(ValueError, match="X is empty: it has 0 rows"):
        fitted.explain(X_frame.iloc[:0])


def test_one_dimensional_X(fitted):
    with pytest.raises(ValueError, match="Expected 2-D X.*reshape"):
        fitted.explain(np.zeros(5))
    with pytest.raises(ValueError, match="pandas Series"):
        fitted.explain(pd.Series(np.zeros(5)))


def test_target_out_of_range(mlp, X_frame):
    with pytest.raises(
        ValueError, match=r"target=3 is out of range.*3 output\(s\).*0\.\.2"
    ):
        FeatureAblation(target=3).fit(mlp, X_frame)


def test_unknown_target_word(mlp, X_frame):
    with pytest.raises(ValueError, match="target='best' is neither"):
        FeatureAblation(target="best").fit(mlp, X_frame)


def test_true_target_needs_y(mlp, X_frame):
    ex = FeatureAblation(target="true").fit(mlp, X_frame)
    with pytest.raises(
        ValueError, match=r"target='true' needs the true labels.*explain\(X, y\)"
    ):
        ex.explain(X_frame)


def test_true_target_y_length(mlp, X_frame):
    ex = FeatureAblation(target="true").fit(mlp, X_frame)
    with pytest.raises(ValueError, match="y has 3 entries but X has 12 rows"):
        ex.explain(X_frame, np.zeros(3, dtype=int))


def test_true_target_label_out_of_range(mlp, X_frame):
    ex = FeatureAblation(target="true").fit(mlp, X_frame)
    with pytest.raises(ValueError, match=r"outside 0\.\.2"):
        ex.explain(X_frame, np.full(len(X_frame), 7))


def test_true_target_label_not_a_class(breast_cancer_net):
    net, X, y = breast_cancer_net
    rows = X.iloc[:4]
    ex = FeatureAblation(target="true").fit(net, X)
    got = ex.explain(rows, y[:4])  # labels map to the classes' columns
    assert list(got.attrs["target"]) == list(y[:4])
    with pytest.raises(ValueError, match=r"labels \[7\] that are not classes"):
        ex.explain(rows, np.array([0, 7, 1, 7]))


class _Cube(nn.Module):
    def forward(self, x):
        return x[:, :, None] * torch.ones(1, 1, 2)


class _Pair(nn.Module):
    def forward(self, x):
        return x, x


def test_model_output_shape_does_not_fit(X_frame):
    with pytest.raises(
        ValueError, match=r"shape \(n_rows,\) or \(n_rows, n_outputs\).*\(2, 5, 2\)"
    ):
        FeatureAblation().fit(_Cube(), X_frame)
    with pytest.raises(TypeError, match="returned a tuple"):
        FeatureAblation().fit(_Pair(), X_frame)


def test_not_a_model(X_frame):
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        FeatureAblation().fit("net", X_frame)


def test_explain_before_fit(X_frame):
    with pytest.raises(NotFittedError, match=r"Call fit\(model, X\)"):
        FeatureAblation().explain(X_frame)


def test_bad_parameters(mlp, X_frame):
    with pytest.raises(ValueError, match="output must be one of"):
        FeatureAblation(output="logits").fit(mlp, X_frame)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1; got 0"):
        FeatureAblation(batch_size=0).fit(mlp, X_frame)
    with pytest.raises(ValueError, match="baseline must be one of"):
        FeatureAblation(baseline="average").fit(mlp, X_frame)


def test_baseline_needs_X_for_mean(mlp):
    with pytest.raises(
        ValueError, match=r"baseline='mean' is computed from the X given to fit"
    ):
        FeatureAblation(baseline="mean").fit(mlp)


def test_baseline_wrong_features(mlp, X_frame):
    with pytest.raises(ValueError, match=r"missing \['f4'\]"):
        FeatureAblation(baseline={f"f{i}": 0.0 for i in range(4)}).fit(mlp, X_frame)
    with pytest.raises(ValueError, match="baseline has 3 values per row, but X has 5"):
        FeatureAblation(baseline=np.zeros(3)).fit(mlp, X_frame)


def test_uninitialized_skorch_net(X_frame):
    from skorch import NeuralNetRegressor

    net = NeuralNetRegressor(nn.Linear(5, 1))
    with pytest.raises(ValueError, match=r"not initialized; call net.initialize\(\)"):
        FeatureAblation().fit(net, X_frame)


def test_feature_groups_errors(mlp, X_frame):
    with pytest.raises(ValueError, match="names column 'nope', which is not in X"):
        FeatureAblation(feature_groups={"g": ["f0", "nope"]}).fit(mlp, X_frame)
    with pytest.raises(ValueError, match="Column 'f1' is in two feature groups"):
        FeatureAblation(feature_groups={"a": ["f0", "f1"], "b": ["f1"]}).fit(
            mlp, X_frame
        )
    with pytest.raises(ValueError, match="one entry per column"):
        FeatureAblation(feature_groups=[0, 0, 1]).fit(mlp, X_frame)


def test_fit_without_X_takes_columns_from_explain(mlp):
    ex = FeatureAblation().fit(mlp)
    assert not hasattr(ex, "n_features_in_")  # no guessing from the first layer
    assert ex.explain(np.ones((2, 5))).shape == (2, 5)
    with pytest.raises(ValueError, match=r"could not be run on rows of 4 input"):
        ex.explain(np.ones((2, 4)))
    fixed = FeatureAblation(baseline=np.zeros(5)).fit(mlp)  # the baseline's width
    assert fixed.n_features_in_ == 5
    with pytest.raises(ValueError, match="X has 4 features"):
        fixed.explain(np.ones((2, 4)))
