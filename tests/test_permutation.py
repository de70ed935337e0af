"""FeaturePermutation: Captum's local attribution and sklearn's permutation importance."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import get_scorer, log_loss
from torch import nn

from skattr import FeaturePermutation
from skattr.core.permutation import random_permutations
from tests.conftest import make_linear


def _perms_of(ex, n, *, avoid_identity=True):
    """The permutations ``ex`` draws for ``n`` rows: [g, n_repeats, n]."""
    g = len(ex.group_names_)
    perms = random_permutations(
        n, g * ex.n_repeats, generator=ex._generator(), avoid_identity=avoid_identity
    )
    return perms.reshape(g, ex.n_repeats, n)


@pytest.fixture
def linear_data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    return X, make_linear([1.0, -2.0, 0.0], bias=0.5, dtype=torch.float64)


# ------------------------------------------------------------------ explain
@pytest.mark.parametrize("feature_groups", [None, [0, 1, 0, 2, 1]])
def test_explain_matches_captum_with_same_permutations(mlp, X_frame, feature_groups):
    from captum.attr import FeaturePermutation as CaptumFP

    ex = FeaturePermutation(
        target=1, feature_groups=feature_groups, random_state=0
    ).fit(mlp, X_frame)
    attr = ex.explain(X_frame)
    perms = _perms_of(ex, len(X_frame))[:, 0]
    groups = torch.as_tensor(ex.groups_)

    def perm_func(x, mask):
        # the group Captum is permuting, identified by its columns
        j = int(groups[mask.reshape(-1)][0])
        return x[perms[j]] * mask + x * ~mask

    mask = None if feature_groups is None else torch.tensor([feature_groups])
    X = torch.tensor(X_frame.to_numpy())
    expected = CaptumFP(mlp, perm_func=perm_func).attribute(
        X, target=1, feature_mask=mask
    )
    got = torch.tensor(attr.to_numpy())[:, groups]  # back to one value per column
    np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-6, atol=1e-6)


def test_explain_is_f_minus_f_of_permuted_averaged(linear_data):
    X, model = linear_data
    ex = FeaturePermutation(n_repeats=4, random_state=1).fit(model, X)
    attr = ex.explain(X)
    perms = _perms_of(ex, len(X)).numpy()  # [3, 4, n]
    w = np.array([1.0, -2.0, 0.0])
    diff = w[:, None, None] * (
        X.T[:, None, :] - X.T[np.arange(3)[:, None, None], perms]
    )
    np.testing.assert_allclose(attr.to_numpy(), diff.mean(1).T, atol=1e-12)
    np.testing.assert_allclose(attr.attrs["std"].to_numpy(), diff.std(1).T, atol=1e-12)


def test_ignored_feature_gets_exactly_zero(linear_data):
    X, model = linear_data
    y = X @ np.array([1.0, -2.0, 0.0]) + 0.5 + 0.1
    ex = FeaturePermutation(n_repeats=3, random_state=0).fit(model, X)
    assert (ex.explain(X)["x2"] == 0).all()
    assert ex.importance(X).loc["x2", "importance"] == 0
    for scoring in ("neg_mean_squared_error", "r2", get_scorer("r2")):
        imp = ex.set_params(scoring=scoring).importance(X, y)
        assert imp.loc["x2", "importance"] == 0
        assert (imp.attrs["importances"].loc["x2"] == 0).all()
        assert imp.loc["x1", "importance"] > imp.loc["x0", "importance"] > 0


class _Product(nn.Module):
    def forward(self, x):
        return (x[:, 0] * x[:, 1] + x[:, 2])[:, None]


def test_grouped_features_are_permuted_together(X_frame):
    X = X_frame.to_numpy().astype(np.float64)
    ex = FeaturePermutation(
        feature_groups={"ab": ["f0", "f1"]}, n_repeats=2, random_state=0
    ).fit(_Product().double(), X_frame.astype(np.float64))
    attr = ex.explain(X_frame.astype(np.float64))
    assert list(attr.columns) == ["ab", "f2", "f3", "f4"]
    perms = _perms_of(ex, len(X)).numpy()[0]  # group "ab": [2, n]
    # one row permutation for both columns: the product moves as a whole
    expected = (X[:, 0] * X[:, 1])[None] - (X[perms, 0] * X[perms, 1])
    np.testing.assert_allclose(attr["ab"], expected.mean(0), rtol=1e-5, atol=1e-6)
    assert (attr[["f3", "f4"]] == 0).all().all()


def test_single_row_is_refused(mlp, X_frame, y_labels):
    ex = FeaturePermutation(scoring="accuracy").fit(mlp, X_frame)
    with pytest.raises(ValueError, match="at least 2 rows.*1 row.*FeatureAblation"):
        ex.explain(X_frame.iloc[:1])
    with pytest.raises(ValueError, match="at least 2 rows"):
        ex.importance(X_frame.iloc[:1], y_labels[:1])
    with pytest.raises(ValueError, match="at least 2 rows"):
        ex.importance(X_frame, y_labels, max_samples=1)


# ------------------------------------------------------------------ importance
def test_linear_regression_importance_is_two_coef_squared():
    # scikit-learn's closed form: with standardised features and MSE, permuting
    # feature j raises the error by coef_j^2 * E[(x - x')^2] = 2 coef_j^2.
    rng = np.random.default_rng(0)
    n, coef = 20_000, np.array([1.0, -0.5, 0.25, 0.0])
    X = rng.normal(size=(n, 4))
    X = (X - X.mean(0)) / X.std(0)
    y = X @ coef + 0.1 * rng.normal(size=n)
    model = make_linear(coef, dtype=torch.float64)
    imp = (
        FeaturePermutation(
            n_repeats=5, scoring="neg_mean_squared_error", random_state=0
        )
        .fit(model, X)
        .importance(X, y)
    )
    got = imp["importance"].reindex([f"x{i}" for i in range(4)]).to_numpy()
    # one repeat's relative standard error is sqrt(2 / n) = 1%: 3% is > 6 sigma
    np.testing.assert_allclose(got, 2 * coef**2, rtol=0.03, atol=1e-3)
    assert got[3] == 0


def test_agrees_with_sklearn_on_skorch_classifier(breast_cancer_net):
    from scipy.stats import spearmanr
    from sklearn.inspection import permutation_importance

    net, X, y = breast_cancer_net
    # 200 of the 569 rows: scikit-learn calls the skorch net 1 + 30 * 30 times
    X, y, R = X.iloc[:200], y[:200], 30
    ref = permutation_importance(
        net, X.to_numpy(), y, scoring="neg_log_loss", n_repeats=R, random_state=0
    )
    imp = (
        FeaturePermutation(n_repeats=R, scoring="neg_log_loss", random_state=0)
        .fit(net, X)
        .importance(X, y)
        .reindex(X.columns)
    )
    assert imp.attrs["importances"].shape == (30, R)
    np.testing.assert_allclose(
        imp.attrs["importances"].loc[X.columns].mean(1), imp["importance"]
    )
    se = np.sqrt((ref.importances_std**2 + imp["std"].to_numpy() ** 2) / R)
    diff = np.abs(ref.importances_mean - imp["importance"].to_numpy())
    assert (diff <= 4 * se + 1e-4).all(), np.max(diff / (se + 1e-12))
    rho = spearmanr(ref.importances_mean, imp["importance"]).statistic
    assert rho >= 0.9
    # baseline score: the same as scikit-learn's scorer on the net itself
    assert imp.attrs["baseline_score"] == pytest.approx(
        get_scorer("neg_log_loss")(net, X.to_numpy(), y), rel=1e-5
    )


def test_a_multi_output_regressor_is_scored_on_every_output():
    # no target and a 2-D y: fit refused target=None for a regressor of two
    # outputs, and importance refused any 2-D y, where scikit-learn's
    # permutation_importance scores both outputs
    from sklearn.metrics import r2_score
    from skorch import NeuralNetRegressor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 3)).astype(np.float32)
    module = nn.Linear(3, 2)
    with torch.no_grad():
        module.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, -2.0, 0.0]]))
        module.bias.zero_()
    net = NeuralNetRegressor(module, max_epochs=0, train_split=None).initialize()
    y = X[:, :2] * np.array([1.0, -2.0]) + 0.1 * rng.normal(size=(400, 2))
    ex = FeaturePermutation(scoring="r2", n_repeats=3, random_state=0).fit(net, X)
    imp = ex.importance(X, y)
    assert imp.attrs["baseline_score"] == pytest.approx(r2_score(y, net.predict(X)))
    assert imp.loc["x2", "importance"] == 0  # an input no output reads
    assert imp.loc["x0", "importance"] > 0.5 and imp.loc["x1", "importance"] > 0.5
    with pytest.raises(ValueError, match="target=None explains each row's"):
        ex.explain(X)  # explain itself explains one output, or all


@pytest.mark.parametrize(
    "scoring", ["accuracy", "r2", "neg_mean_squared_error", "neg_mean_absolute_error"]
)
@pytest.mark.parametrize("weighted", [False, True])
def test_fast_scores_equal_sklearn_scorers(
    scoring, weighted, breast_cancer_net, linear_data
):
    # scorer names with a vectorised path against the same scorer as a callable
    if scoring == "accuracy":
        net, X, y = breast_cancer_net
        X, y = X.iloc[:150], y[:150]
    else:
        X, net = linear_data
        y = X @ np.array([1.0, -2.0, 0.0]) + np.random.default_rng(1).normal(
            size=len(X)
        )
    w = np.random.default_rng(2).uniform(0.1, 2, size=len(X)) if weighted else None
    ex = FeaturePermutation(n_repeats=3, scoring=scoring, random_state=0).fit(net, X)
    fast = ex.importance(X, y, sample_weight=w)
    slow = ex.set_params(scoring=get_scorer(scoring)).importance(X, y, sample_weight=w)
    pd.testing.assert_frame_equal(fast, slow.loc[fast.index], atol=1e-10, rtol=1e-9)
    pd.testing.assert_frame_equal(
        fast.attrs["importances"], slow.attrs["importances"].loc[fast.index]
    )
    assert fast.attrs["baseline_score"] == pytest.approx(slow.attrs["baseline_score"])


def test_callable_scorer_sees_the_permuted_rows(linear_data):
    X, model = linear_data
    seen = []

    def scorer(estimator, X_perm, y):
        # predictions must be the model's own on exactly these rows
        seen.append(X_perm)
        pred = estimator.predict(X_perm)
        return -np.mean((pred - (X_perm @ np.array([1.0, -2.0, 0.0]) + 0.5)) ** 2)

    imp = (
        FeaturePermutation(n_repeats=2, scoring=scorer, random_state=0)
        .fit(model, X)
        .importance(X, np.zeros(len(X)))
    )
    assert len(seen) == 1 + 3 * 2
    assert (imp["importance"].abs() < 1e-12).all()
    # each permuted copy differs from X in one column only
    changed = [np.flatnonzero((s != X).any(0)).tolist() for s in seen[1:]]
    assert changed == [[0], [0], [1], [1], [2], [2]]


def test_classifier_module_scores_probabilities(mlp, X_frame, y_labels):
    ex = FeaturePermutation(n_repeats=2, scoring="neg_log_loss", random_state=0)
    imp = ex.fit(mlp, X_frame).importance(X_frame, y_labels)
    with torch.no_grad():
        proba = torch.softmax(mlp(torch.tensor(X_frame.to_numpy())), 1).numpy()
    expected = -log_loss(y_labels, proba, labels=[0, 1, 2])
    assert imp.attrs["baseline_score"] == pytest.approx(expected, rel=1e-5)
    # roc_auc (ovr) takes probabilities, balanced accuracy labels
    for scoring in ("roc_auc_ovr", "balanced_accuracy", "top_k_accuracy"):
        out = ex.set_params(scoring=scoring).importance(X_frame, y_labels)
        assert np.isfinite(out["importance"]).all()


def test_random_state_and_batch_size(breast_cancer_net):
    net, X, y = breast_cancer_net
    X, y = X.iloc[:100], y[:100]
    ex = FeaturePermutation(n_repeats=3, scoring="accuracy", random_state=5).fit(net, X)
    a = ex.importance(X, y)
    pd.testing.assert_frame_equal(a, ex.importance(X, y))
    pd.testing.assert_frame_equal(a, ex.set_params(batch_size=37).importance(X, y))
    other = ex.set_params(random_state=6).importance(X, y)
    assert not np.allclose(
        other.attrs["importances"].loc[a.index].to_numpy(),
        a.attrs["importances"].to_numpy(),
    )


def test_max_samples_and_attribution_importance(mlp, X_frame, y_labels):
    ex = FeaturePermutation(n_repeats=2, random_state=0).fit(mlp, X_frame)
    attr = ex.explain(X_frame)
    imp = ex.importance(X_frame)
    np.testing.assert_allclose(
        imp["importance"], attr.abs().mean()[imp.index], rtol=1e-12
    )
    w = np.arange(1.0, 13.0)
    weighted = ex.importance(X_frame, sample_weight=w)
    np.testing.assert_allclose(
        weighted["importance"],
        (attr.abs().mul(w / w.sum(), axis=0)).sum()[weighted.index],
        rtol=1e-12,
    )
    assert ex.importance(X_frame, max_samples=0.5).attrs["n_rows"] == 6
    ex.set_params(scoring="accuracy")
    assert ex.importance(X_frame, y_labels, max_samples=5).attrs["n_rows"] == 5
    for bad in (0, 13, 1.5, -0.1, "half"):
        with pytest.raises(ValueError, match="max_samples"):
            ex.importance(X_frame, y_labels, max_samples=bad)
    with pytest.raises(ValueError, match="sample_weight"):
        ex.importance(X_frame, y_labels, sample_weight=np.ones(3))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_repeats": 0}, "n_repeats"),
        ({"scoring": "acuracy"}, "get_scorer_names"),
        ({"scoring": 3}, "scoring must be"),
    ],
)
def test_bad_params(mlp, params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        FeaturePermutation(**params).fit(mlp)


def test_a_callable_scorer_predicting_on_a_copy_stays_in_the_model_space():
    """Through a Pipeline, the scorer's rows are the transformed batch; a
    prediction on a copy of them must not be preprocessed a second time."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from skorch import NeuralNetRegressor

    rng = np.random.default_rng(0)
    X = (rng.normal(size=(40, 3)) * 5 + 10).astype(np.float32)
    y = X @ np.array([1.0, -2.0, 0.5], dtype=np.float32)
    net = NeuralNetRegressor(
        nn.Linear, module__in_features=3, module__out_features=1, max_epochs=1,
        verbose=0, train_split=None,
    )  # fmt: skip
    pipe = make_pipeline(StandardScaler(), net).fit(X, y[:, None])
    gaps = []

    def scorer(estimator, X_perm, y_true):
        gaps.append(
            np.abs(estimator.predict(X_perm) - estimator.predict(X_perm.copy())).max()
        )
        return 0.0

    FeaturePermutation(scoring=scorer, random_state=0).fit(pipe, X).importance(X, y)
    assert max(gaps) < 1e-6


def test_integer_labels_held_as_objects_are_numbers_beside_string_classes():
    # the message said "y holds strings" of an object array of ints
    from skattr._data import check_label_kind

    classes = np.array(["lo", "mid", "hi"])
    with pytest.raises(ValueError, match="y holds numbers"):
        check_label_kind(np.array([0, 1, 2], dtype=object), classes)
    with pytest.raises(ValueError, match="y holds strings"):
        check_label_kind(np.array(["a"], dtype=object), np.arange(3))
    check_label_kind(np.array(["lo", "hi"], dtype=object), classes)
    check_label_kind(np.array([0, "a"], dtype=object), classes)  # mixed: scikit-learn's
