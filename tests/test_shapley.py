"""ShapleyValueSampling and ShapleyValues: exact references and properties."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from skattr import ShapleyValues, ShapleyValueSampling
from skattr.core.shapley import FIRST_ROUND, _coalitions_without
from tests.conftest import MLP, Counting


def brute_force_shapley(model, x, b, target, groups):
    """Shapley values of one row by the subset formula, in plain Python."""
    g = max(groups) + 1
    cols = [[c for c in range(len(groups)) if groups[c] == j] for j in range(g)]

    def v(S):
        z = b.clone()
        for j in S:
            z[cols[j]] = x[cols[j]]
        with torch.no_grad():
            return float(model(z[None])[0, target])

    phi = np.zeros(g)
    for j in range(g):
        others = [k for k in range(g) if k != j]
        for size in range(g):
            w = math.factorial(size) * math.factorial(g - size - 1) / math.factorial(g)
            for S in itertools.combinations(others, size):
                phi[j] += w * (v(S + (j,)) - v(S))
    return phi


class Additive(nn.Module):
    """f(x) = sum_j h_j(x_j): every marginal contribution is the same."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones((), dtype=torch.float64))  # float64

    def forward(self, x):
        w = torch.arange(1, x.shape[1] + 1, dtype=x.dtype)
        return self.scale * (torch.sin(x) * w + 0.3 * x**2).sum(1, keepdim=True)


@pytest.fixture
def mlp64():
    return MLP().double()


@pytest.fixture
def X64(X_frame):
    return X_frame.astype(np.float64)


# --------------------------------------------------------------- exact
@pytest.mark.parametrize("feature_groups", [None, [0, 1, 0, 2, 1]])
def test_exact_equals_brute_force_subset_formula(mlp64, X64, feature_groups):
    ex = ShapleyValues(baseline="mean", target=2, feature_groups=feature_groups)
    attr = ex.fit(mlp64, X64).explain(X64[:4])
    b = torch.as_tensor(X64.mean().to_numpy())
    groups = list(range(5)) if feature_groups is None else feature_groups
    for i in range(4):
        x = torch.as_tensor(X64.iloc[i].to_numpy())
        ref = brute_force_shapley(mlp64, x, b, 2, groups)
        np.testing.assert_allclose(attr.iloc[i].to_numpy(), ref, rtol=0, atol=1e-10)


def test_exact_equals_captum_shapley_values(mlp, X_frame):
    from captum.attr import ShapleyValues as CaptumShapleyValues

    mask = torch.tensor([[0, 1, 1, 2, 3]])
    X = torch.as_tensor(X_frame.to_numpy())
    baseline = X.mean(0, keepdim=True)
    ours = ShapleyValues(target=1, feature_groups=mask[0].numpy())
    attr = ours.fit(mlp, X_frame).explain(X_frame)
    theirs = CaptumShapleyValues(mlp).attribute(
        X, baselines=baseline, target=1, feature_mask=mask
    )
    # captum repeats a group's value on each of its columns
    theirs = theirs[:, [0, 1, 3, 4]].double().numpy()
    np.testing.assert_allclose(attr.to_numpy(), theirs, rtol=1e-4, atol=1e-5)


def test_shapley_weights_of_each_group_sum_to_one():
    without, weights = _coalitions_without(6, "cpu")
    assert without.shape == (6, 32)
    assert ((without & (2 ** torch.arange(6))[:, None]) == 0).all()
    assert all(len(set(row.tolist())) == 32 for row in without)
    # the marginal contributions of a player that adds 1 everywhere sum to 1
    np.testing.assert_allclose(float(weights.sum()), 1.0, atol=1e-14)


def test_max_groups_error_names_cost_and_sampling(X_frame):
    model = Counting(MLP())
    ex = ShapleyValues(max_groups=4).fit(model, X_frame)
    model.rows = 0
    with pytest.raises(ValueError, match="ShapleyValueSampling") as info:
        ex.explain(X_frame)
    assert "2^5 = 32 model evaluations per row (and per background row)" in str(
        info.value
    )
    assert model.rows == 0  # refused before any work
    grouped = ShapleyValues(max_groups=4, feature_groups={"a": ["f0", "f1"]})
    assert grouped.fit(model, X_frame).explain(X_frame).shape == (12, 4)


# --------------------------------------------------------------- both
@pytest.mark.parametrize(
    "make",
    [
        lambda: ShapleyValues(),
        lambda: ShapleyValueSampling(n_samples=6, random_state=0),
        lambda: ShapleyValueSampling(n_samples=5, antithetic=False, random_state=1),
        lambda: ShapleyValueSampling(n_samples=40, tol=0.05, random_state=2),
    ],
)
def test_efficiency_on_every_row(make, mlp, X_frame):
    ex = make().fit(mlp, X_frame.iloc[:6])
    attr = ex.explain(X_frame)
    fx = model_output(mlp, X_frame, attr.attrs["target"].to_numpy())
    base = attr.attrs["base_values"].to_numpy()
    np.testing.assert_allclose(attr.sum(1).to_numpy(), fx - base, atol=2e-6)


def model_output(model, X, target):
    """The model's output at each row's own target column."""
    with torch.no_grad():
        out = model(torch.as_tensor(np.asarray(X, dtype=np.float32)))
    return out[torch.arange(out.shape[0]), torch.as_tensor(target)].double().numpy()


class IgnoresOne(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = MLP(n_in=4)

    def forward(self, x):
        return self.inner(x[:, [0, 1, 3, 4]])


@pytest.mark.parametrize(
    "make",
    [
        lambda: ShapleyValues(),
        lambda: ShapleyValueSampling(n_samples=8, random_state=0),
        lambda: ShapleyValueSampling(n_samples=8, tol=1e-3, random_state=0),
    ],
)
def test_ignored_feature_gets_exactly_zero(make, X_frame):
    attr = make().fit(IgnoresOne(), X_frame).explain(X_frame)
    assert (attr["f2"] == 0).all()
    assert (attr[["f0", "f1"]] != 0).all().all()
    if "std" in attr.attrs:
        assert (attr.attrs["std"]["f2"] == 0).all()


class Symmetric(nn.Module):
    def forward(self, x):
        return (x[:, :1] * x[:, 1:2] + torch.tanh(x[:, :1] + x[:, 1:2])) * x[:, 2:3]


def test_symmetric_features_get_equal_values():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 3))
    X[:, 1] = X[:, 0]  # the two symmetric players take the same values
    exact = ShapleyValues(baseline=0.5).fit(Symmetric(), X).explain(X)
    np.testing.assert_allclose(exact["x0"], exact["x1"], rtol=0, atol=1e-12)
    sampled = ShapleyValueSampling(n_samples=60, baseline=0.5, random_state=0)
    attr = sampled.fit(Symmetric(), X).explain(X)
    se = attr.attrs["std"]
    gap = (attr["x0"] - attr["x1"]).abs()
    assert (gap <= 5 * np.hypot(se["x0"], se["x1"]) + 1e-12).all()


def test_background_rows_average_single_baseline_runs(mlp64, X64):
    background = X64.iloc[8:11]
    for make in (
        lambda b: ShapleyValues(baseline=b, target=0),
        lambda b: ShapleyValueSampling(baseline=b, target=0, random_state=3),
    ):
        together = make(background).fit(mlp64, X64).explain(X64[:6])
        singles = [
            make(background.iloc[i]).fit(mlp64, X64).explain(X64[:6]).to_numpy()
            for i in range(len(background))
        ]
        np.testing.assert_allclose(
            together.to_numpy(), np.mean(singles, 0), rtol=0, atol=1e-12
        )


# --------------------------------------------------------------- sampling
@pytest.mark.parametrize("antithetic", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_sampling_equals_exact_on_additive_model(X64, antithetic, seed):
    exact = ShapleyValues(baseline="median").fit(Additive(), X64).explain(X64)
    ex = ShapleyValueSampling(
        n_samples=3, antithetic=antithetic, baseline="median", random_state=seed
    )
    attr = ex.fit(Additive(), X64).explain(X64)
    np.testing.assert_allclose(attr.to_numpy(), exact.to_numpy(), atol=1e-12)
    np.testing.assert_allclose(attr.attrs["std"].to_numpy(), 0, atol=1e-12)
    assert (attr.attrs["n_samples"] == (4 if antithetic else 3)).all()


def test_error_shrinks_like_inverse_sqrt_and_std_covers_it(mlp64, X64):
    exact = ShapleyValues(target=0).fit(mlp64, X64).explain(X64).to_numpy()
    rms, covered = {}, []
    for n_samples in (16, 256):
        errors, ses = [], []
        for seed in range(4):
            ex = ShapleyValueSampling(
                n_samples=n_samples, antithetic=False, target=0, random_state=seed
            )
            attr = ex.fit(mlp64, X64).explain(X64)
            errors.append(attr.to_numpy() - exact)
            ses.append(attr.attrs["std"].to_numpy())
        errors, ses = np.array(errors), np.array(ses)
        rms[n_samples] = np.sqrt((errors**2).mean())
        covered.append((np.abs(errors) <= 2 * ses).mean())
    # 16x the permutations: about 4x smaller error
    assert 2.5 < rms[16] / rms[256] < 6.5
    # about 95% of the errors within 2 standard errors
    assert all(0.85 <= c <= 1.0 for c in covered), covered


def test_antithetic_pairs_are_one_draw(mlp64, X64):
    ex = ShapleyValueSampling(n_samples=5, target=0, random_state=0)
    attr = ex.fit(mlp64, X64).explain(X64)
    assert (attr.attrs["n_samples"] == 6).all()  # rounded up to 3 pairs
    one_pair = ShapleyValueSampling(n_samples=2, target=0, random_state=0)
    assert one_pair.fit(mlp64, X64).explain(X64).attrs["std"].isna().all().all()


class Interacting(nn.Module):
    """Strong interactions: the marginal contributions vary with the order."""

    def forward(self, x):
        product = x[:, 0] * x[:, 1] * x[:, 2]
        return (product + torch.tanh(2 * x[:, 3] * x[:, 4]) + x[:, 0])[:, None]


def test_tol_stops_precise_rows_early(X_frame):
    model = Counting(Interacting())
    X = X_frame.copy()
    X.iloc[:4] = X_frame.iloc[0].to_numpy()  # rows equal to the baseline
    tol, cap = 0.01, 4000
    ex = ShapleyValueSampling(
        n_samples=cap, tol=tol, baseline=X.iloc[0], random_state=0
    )
    ex.fit(model, X_frame)
    model.rows = 0
    attr = ex.explain(X)
    counts, se = attr.attrs["n_samples"], attr.attrs["std"]
    assert (se.max(axis=1) <= tol).all()
    assert (counts.iloc[:4] == 2 * FIRST_ROUND).all()  # one round, then stop
    assert (attr.iloc[:4] == 0).all().all()
    assert (counts.iloc[4:] > 2 * FIRST_ROUND).sum() >= 4  # hard rows go on
    assert counts.max() > 50 * counts.min()
    n, B, g = len(X), 1, X.shape[1]
    assert model.rows == (2 * n + int(counts.sum()) * (g - 1)) * B
    exact = ShapleyValues(baseline=X.iloc[0]).fit(model, X_frame).explain(X)
    assert (np.abs(attr - exact) <= 5 * tol).all().all()


def test_tol_on_model_linear_in_the_rows(X_frame):
    """A linear model is additive: one round gives zero error for every row."""
    model = nn.Linear(5, 1)
    ex = ShapleyValueSampling(n_samples=1000, tol=1e-6, random_state=0)
    attr = ex.fit(model, X_frame).explain(X_frame)
    assert (attr.attrs["n_samples"] == 2 * FIRST_ROUND).all()


@pytest.mark.parametrize("B", [1, 3])
@pytest.mark.parametrize("feature_groups", [None, {"a": ["f0", "f3"]}])
def test_model_rows_evaluated_equals_documented_cost(X_frame, B, feature_groups):
    model = Counting(MLP())
    baseline = X_frame.iloc[:B] if B > 1 else "mean"
    n, g = len(X_frame), 5 if feature_groups is None else 4
    for ex, inner in (
        (ShapleyValueSampling(n_samples=7, random_state=0), 2 + 8 * (g - 1)),
        (ShapleyValueSampling(n_samples=7, antithetic=False), 2 + 7 * (g - 1)),
        (ShapleyValues(), 2**g),
    ):
        ex.set_params(baseline=baseline, feature_groups=feature_groups, batch_size=50)
        ex.fit(model, X_frame)
        model.rows = 0
        ex.explain(X_frame)
        pick = n if ex.n_outputs_ > 1 else 0  # the rows, to pick predicted classes
        assert model.rows == pick + n * inner * B


def test_result_frame_and_extras(mlp, X_frame):
    attr = ShapleyValueSampling(n_samples=4, random_state=0).fit(mlp, X_frame)
    attr = attr.explain(X_frame)
    assert isinstance(attr.attrs["std"], pd.DataFrame)
    assert attr.attrs["std"].index.equals(X_frame.index)
    assert list(attr.attrs["std"].columns) == list(X_frame.columns)
    assert attr.attrs["n_samples"].index.equals(X_frame.index)
    assert attr.attrs["base_values"].index.equals(X_frame.index)
    imp = ShapleyValues().fit(mlp, X_frame).importance(X_frame)
    assert {"importance", "std", "mean"} <= set(imp.columns)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_samples": 0}, "n_samples must be an integer >= 1"),
        ({"tol": 0}, "tol must be a finite number > 0"),
        ({"tol": -1.0}, "tol must be"),
    ],
)
def test_bad_sampling_params(mlp, X_frame, params, match):
    with pytest.raises(ValueError, match=match):
        ShapleyValueSampling(**params).fit(mlp, X_frame)


def test_bad_antithetic_and_max_groups(mlp, X_frame):
    with pytest.raises(TypeError, match="antithetic must be True or False"):
        ShapleyValueSampling(antithetic="yes").fit(mlp, X_frame)
    with pytest.raises(ValueError, match="max_groups must be an integer"):
        ShapleyValues(max_groups=0).fit(mlp, X_frame)


@pytest.mark.parametrize("cls", [ShapleyValueSampling, ShapleyValues])
def test_chunking_paths_agree(cls, mlp64, X64):
    """Chunks of whole permutations (rows) and arbitrary chunks: same result."""
    background = X64.iloc[:3]
    results = []
    for batch_size in (1, 5, 11, 4096):  # below and above one permutation's rows
        ex = cls(baseline=background, target=0, batch_size=batch_size)
        if cls is ShapleyValueSampling:
            ex.set_params(n_samples=4, random_state=0)
        results.append(ex.fit(mlp64, X64).explain(X64[:5]).to_numpy())
    for other in results[1:]:
        np.testing.assert_allclose(other, results[0], rtol=0, atol=1e-12)
