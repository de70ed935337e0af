"""KernelShap and Lime: exact references, closed forms, sklearn and Captum."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import Lasso, LinearRegression

from skattr import KernelShap, Lime
from skattr.core.coalitions import proper_coalitions
from skattr.core.designs import PairedDesign
from skattr.core.surrogate import bernoulli_coalitions, weighted_lasso
from tests.conftest import MLP, make_linear


def _value(model, x, background, mask, target):
    """v(S): mean model output over background rows, S's columns from x."""
    Z = torch.where(mask[None, :], x[None, :], background)
    with torch.no_grad():
        return model(Z)[:, target].double().mean().item()


def brute_force_shapley(model, X, background, target, groups=None):
    """Shapley values by the subset formula, one row and group at a time."""
    X = torch.as_tensor(X, dtype=torch.float32)
    background = torch.as_tensor(background, dtype=torch.float32).reshape(
        -1, X.shape[1]
    )
    p = X.shape[1]
    groups = np.arange(p) if groups is None else np.asarray(groups)
    g = int(groups.max()) + 1
    out = np.zeros((X.shape[0], g))
    for r, x in enumerate(X):
        for j in range(g):
            others = [k for k in range(g) if k != j]
            for size in range(g):
                weight = math.factorial(size) * math.factorial(g - size - 1)
                weight /= math.factorial(g)
                for S in itertools.combinations(others, size):
                    keep = np.isin(groups, S)
                    with_j = torch.as_tensor(keep | (groups == j))
                    out[r, j] += weight * (
                        _value(model, x, background, with_j, target)
                        - _value(model, x, background, torch.as_tensor(keep), target)
                    )
    return out


# ------------------------------------------------------------------ KernelShap


def test_kernel_shap_enumeration_is_exact_shapley(mlp, X_frame):
    X = X_frame.iloc[:4]
    ks = KernelShap(n_samples=2**5, baseline="zeros", target=1, random_state=0)
    attr = ks.fit(mlp, X_frame).explain(X)
    assert attr.attrs["exact"] and (attr.attrs["n_samples"] == 30).all()
    ref = brute_force_shapley(mlp, X.to_numpy(), np.zeros(5), target=1)
    np.testing.assert_allclose(attr.to_numpy(), ref, atol=1e-5)


def test_kernel_shap_exact_with_groups_and_background(mlp, X_frame):
    X = X_frame.iloc[:3]
    background = X_frame.iloc[6:9]
    mask = [0, 1, 0, 2, 1]
    ks = KernelShap(baseline=background, feature_groups=mask, target=2)
    attr = ks.fit(mlp, X_frame).explain(X)  # default n_samples: enumeration
    assert attr.attrs["exact"]
    ref = brute_force_shapley(
        mlp, X.to_numpy(), background.to_numpy(), target=2, groups=mask
    )
    np.testing.assert_allclose(attr.to_numpy(), ref, atol=1e-5)


@pytest.mark.parametrize("baseline", ["zeros", "background"])
def test_kernel_shap_efficiency_when_sampling(mlp, X_frame, baseline):
    if baseline == "background":
        baseline = X_frame.iloc[:4]
    ks = KernelShap(n_samples=11, baseline=baseline, random_state=3)
    attr = ks.fit(mlp, X_frame).explain(X_frame)
    assert not attr.attrs["exact"]
    with torch.no_grad():
        out = mlp(torch.as_tensor(X_frame.to_numpy()))
        fx = out.gather(1, out.argmax(1, keepdim=True)).squeeze(1).double().numpy()
    np.testing.assert_allclose(
        attr.sum(1).to_numpy(), fx - attr.attrs["base_values"].to_numpy(), atol=1e-6
    )


def test_kernel_shap_linear_model_closed_form(X_frame):
    w = np.array([1.0, -2.0, 0.0, 0.5, 3.0])
    model = make_linear(w, bias=0.3)
    b = X_frame.mean().to_numpy()
    # 24 of the 30 coalitions: sampled, but enough to tell every feature apart
    ks = KernelShap(n_samples=24, random_state=1).fit(model, X_frame)
    attr = ks.explain(X_frame)
    assert not attr.attrs["exact"]
    np.testing.assert_allclose(attr.to_numpy(), w * (X_frame.to_numpy() - b), atol=1e-5)
    assert np.abs(attr["f2"]).max() < 1e-6  # an ignored feature gets 0


def test_kernel_shap_coalitions():
    design = PairedDesign(6, "leverage", torch.Generator().manual_seed(0))
    design.grow(4)
    Z = design.coalitions()
    assert Z.shape == (8, 6)
    assert torch.equal(Z[1::2], ~Z[0::2])  # paired with complements
    sizes = Z.sum(1)
    assert bool(((sizes >= 1) & (sizes <= 5)).all())
    full = proper_coalitions(4)
    assert full.shape == (14, 4) and len({tuple(r.tolist()) for r in full}) == 14


@pytest.mark.parametrize("g", [1, 7, 56, 57, 130])
def test_bernoulli_coalitions_are_fair_independent_bits(g):
    gen = torch.Generator().manual_seed(0)
    Z = bernoulli_coalitions(40, g, 500, gen)
    assert Z.shape == (40, 500, g) and Z.dtype == torch.bool
    flat = Z.reshape(-1, g).double()  # 20,000 draws per column
    # each column (every bit of every random word) is kept with probability 1/2
    assert (flat.mean(0) - 0.5).abs().max() < 0.02
    if g > 1:  # and columns are uncorrelated
        centred = 2 * flat - 1
        corr = centred.T @ centred / flat.shape[0]
        assert (corr - torch.eye(g, dtype=corr.dtype)).abs().max() < 0.04
    again = bernoulli_coalitions(40, g, 500, torch.Generator().manual_seed(0))
    assert torch.equal(Z, again)


def test_kernel_shap_single_group(mlp, X_frame):
    ks = KernelShap(feature_groups=[0, 0, 0, 0, 0], baseline="zeros", target=0)
    attr = ks.fit(mlp, X_frame).explain(X_frame)
    with torch.no_grad():
        X = torch.as_tensor(X_frame.to_numpy())
        delta = (mlp(X)[:, 0] - mlp(torch.zeros(1, 5))[:, 0]).double().numpy()
    np.testing.assert_allclose(attr.iloc[:, 0].to_numpy(), delta, atol=1e-6)


def test_kernel_shap_agrees_with_captum_in_distribution(mlp, X_frame):
    from captum.attr import KernelShap as CaptumKernelShap

    X = X_frame.iloc[:4]
    Xt = torch.as_tensor(X.to_numpy())
    exact = brute_force_shapley(mlp, X.to_numpy(), np.zeros(5), target=0)
    seeds = range(12)
    ours_list = [
        KernelShap(n_samples=16, baseline="zeros", target=0, random_state=s)
        .fit(mlp, X_frame)
        .explain(X)
        .to_numpy()
        for s in seeds
    ]
    cks = CaptumKernelShap(mlp)
    theirs = []
    for s in seeds:
        torch.manual_seed(s)
        theirs.append(
            cks.attribute(
                Xt,
                baselines=torch.zeros(1, 5),
                target=0,
                n_samples=18,
                perturbations_per_eval=18,
            ).numpy()
        )
    ours, theirs = np.stack(ours_list), np.stack(theirs)
    scale = np.abs(exact).max()
    # both estimate the Shapley values: each mean over 12 seeds within 4
    # standard errors of the exact values (plus 1% of the scale), and ours,
    # paired and with exact efficiency, has the smaller error
    for est in (ours, theirs):
        se = est.std(0) / np.sqrt(len(seeds))
        assert (np.abs(est.mean(0) - exact) <= 4 * se + 0.01 * scale).all()
    assert np.abs(ours.mean(0) - exact).max() < np.abs(theirs.mean(0) - exact).max()


# ------------------------------------------------------------------ Lasso


@pytest.mark.parametrize(
    "n, s, g, alpha", [(8, 60, 5, 0.01), (6, 120, 12, 0.05), (5, 80, 6, 0.0)]
)
def test_batched_lasso_matches_sklearn(n, s, g, alpha):
    gen = torch.Generator().manual_seed(0)
    Z = torch.rand(n, s, g, generator=gen) < 0.5
    beta = torch.randn(n, g, generator=gen, dtype=torch.float64)
    y = (Z.double() * beta[:, None]).sum(2)
    y += 0.3 * torch.randn(n, s, generator=gen, dtype=torch.float64)
    w = torch.rand(n, s, generator=gen, dtype=torch.float64) + 0.05
    coef, intercept = weighted_lasso(Z, y, w, alpha)
    for r in range(n):
        Zr = Z[r].double().numpy()
        if alpha:
            ref = Lasso(alpha=alpha, tol=1e-12, max_iter=100_000)
        else:
            ref = LinearRegression()
        ref.fit(Zr, y[r].numpy(), sample_weight=w[r].numpy())
        np.testing.assert_allclose(coef[r].numpy(), ref.coef_, atol=1e-4)
        np.testing.assert_allclose(intercept[r].item(), ref.intercept_, atol=1e-4)
    if alpha:
        assert (coef == 0).any()  # the L1 penalty does select


def test_batched_lasso_shared_and_degenerate_columns():
    gen = torch.Generator().manual_seed(1)
    Z = torch.rand(40, 4, generator=gen) < 0.5
    Z[:, 2] = True  # a constant column gets coefficient 0
    y = torch.randn(3, 40, generator=gen, dtype=torch.float64)
    w = torch.ones(3, 40, dtype=torch.float64)
    coef, intercept = weighted_lasso(Z, y, w, 0.01)
    for r in range(3):
        ref = Lasso(alpha=0.01, tol=1e-12, max_iter=100_000).fit(
            Z.double().numpy(), y[r].numpy()
        )
        np.testing.assert_allclose(coef[r].numpy(), ref.coef_, atol=1e-4)
        np.testing.assert_allclose(intercept[r].item(), ref.intercept_, atol=1e-4)
    assert (coef[:, 2] == 0).all()


# ------------------------------------------------------------------ Lime


def test_lime_linear_regression_recovers_linear_model(X_frame):
    w = np.array([1.0, -2.0, 0.0, 0.5, 3.0])
    model = make_linear(w, bias=0.3)
    b = X_frame.mean().to_numpy()
    expected = w * (X_frame.to_numpy() - b)
    slow = Lime(n_samples=30, interpretable_model=LinearRegression(), random_state=0)
    attr = slow.fit(model, X_frame).explain(X_frame)
    np.testing.assert_allclose(attr.to_numpy(), expected, atol=1e-5)
    fb = float(w @ b + 0.3)
    np.testing.assert_allclose(attr.attrs["intercept"].to_numpy(), fb, atol=1e-5)
    fast = Lime(n_samples=30, alpha=0.0, random_state=0).fit(model, X_frame)
    attr = fast.explain(X_frame)
    np.testing.assert_allclose(attr.to_numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(attr.attrs["intercept"].to_numpy(), fb, atol=1e-5)
    assert attr.attrs["intercept"].index.equals(X_frame.index)


def test_lime_batched_lasso_equals_sklearn_per_row(mlp, X_frame):
    fast = Lime(n_samples=80, random_state=0).fit(mlp, X_frame).explain(X_frame)
    slow = (
        Lime(
            n_samples=80,
            interpretable_model=Lasso(alpha=0.01, tol=1e-12, max_iter=100_000),
            random_state=0,
        )
        .fit(mlp, X_frame)
        .explain(X_frame)
    )
    np.testing.assert_allclose(fast.to_numpy(), slow.to_numpy(), atol=1e-4)
    np.testing.assert_allclose(
        fast.attrs["intercept"].to_numpy(),
        slow.attrs["intercept"].to_numpy(),
        atol=1e-4,
    )


def _fixed_perturbations(n, s, g, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.rand(n, s, g, generator=gen) < 0.5).long()


def _replay(rows):
    """A Captum perturb_func that hands out the given coalitions in order."""
    it = iter(rows)

    def perturb(original_inp, **kwargs):
        return next(it)[None, :]

    return perturb


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
def test_lime_matches_captum_on_the_same_perturbations(mlp, X_frame, distance):
    from captum._utils.models.linear_model import SkLearnLasso
    from captum.attr import Lime as CaptumLime
    from captum.attr._core.lime import get_exp_kernel_similarity_function

    X = X_frame.iloc[:4]
    n, s, g = len(X), 40, 5
    Z = _fixed_perturbations(n, s, g)
    baseline = X_frame.iloc[5].to_numpy()
    ours = (
        Lime(
            n_samples=s,
            distance=distance,
            kernel_width=0.7,
            baseline=baseline,
            target=1,
            perturb_func=lambda n_rows, n_groups, n_samples, gen: Z,
        )
        .fit(mlp, X_frame)
        .explain(X)
    )
    for r in range(n):
        perturb = _replay(Z[r])

        captum = CaptumLime(
            mlp,
            interpretable_model=SkLearnLasso(alpha=0.01, tol=1e-12, max_iter=100_000),
            similarity_func=get_exp_kernel_similarity_function(distance, 0.7),
            perturb_func=perturb,
        )
        ref = captum.attribute(
            torch.as_tensor(X.to_numpy()[r : r + 1]),
            baselines=torch.as_tensor(baseline[None, :]),
            target=1,
            n_samples=s,
            perturbations_per_eval=s,
        )
        np.testing.assert_allclose(ours.iloc[r].to_numpy(), ref[0].numpy(), atol=1e-4)


def test_lime_agrees_with_captum_in_distribution(mlp, X_frame):
    from captum.attr import Lime as CaptumLime

    X = X_frame.iloc[:4]
    Xt = torch.as_tensor(X.to_numpy())
    seeds = range(10)
    ours = np.stack(
        [
            Lime(n_samples=100, baseline="zeros", target=0, random_state=s)
            .fit(mlp, X_frame)
            .explain(X)
            .to_numpy()
            for s in seeds
        ]
    )
    lime = CaptumLime(mlp)
    theirs = []
    for s in seeds:
        torch.manual_seed(s)
        theirs.append(
            lime.attribute(
                Xt,
                baselines=torch.zeros(1, 5),
                target=0,
                n_samples=100,
                perturbations_per_eval=100,
            ).numpy()
        )
    theirs = np.stack(theirs)
    # same estimator: difference of the means over 10 seeds within 4 standard
    # errors (plus 1e-3, for coefficients that are 0 in every run)
    se = np.sqrt((ours.var(0) + theirs.var(0)) / len(seeds))
    assert (np.abs(ours.mean(0) - theirs.mean(0)) <= 4 * se + 1e-3).all()


def test_lime_custom_similarity_and_shared_perturbations(X_frame):
    w = np.array([1.0, -2.0, 0.0, 0.5, 3.0])
    model = make_linear(w)
    calls = []

    def similarity(X, Z_inputs, Z_interp):
        calls.append((X.shape, Z_interp.shape, Z_inputs.shape))
        return torch.ones(X.shape[0])

    def perturb(n_rows, n_groups, n_samples, generator):
        return torch.rand(n_samples, n_groups, generator=generator) < 0.5

    lime = Lime(
        n_samples=25,
        alpha=0.0,
        similarity_func=similarity,
        perturb_func=perturb,
        baseline="zeros",
        batch_size=50,
        random_state=0,
    )
    attr = lime.fit(model, X_frame).explain(X_frame)
    np.testing.assert_allclose(attr.to_numpy(), w * X_frame.to_numpy(), atol=1e-5)
    n = len(X_frame)
    assert sum(c[0][0] for c in calls) == n * 25
    assert all(c[1][1] == 5 and c[2][1] == 5 for c in calls)


def test_lime_background_rows_and_batch_size(mlp, X_frame):
    background = X_frame.iloc[:3]
    a = Lime(n_samples=30, baseline=background, random_state=0, batch_size=4096)
    b = Lime(n_samples=30, baseline=background, random_state=0, batch_size=13)
    ra = a.fit(mlp, X_frame).explain(X_frame)
    rb = b.fit(mlp, X_frame).explain(X_frame)
    np.testing.assert_allclose(ra.to_numpy(), rb.to_numpy(), atol=1e-6)
    ks = KernelShap(n_samples=14, baseline=background, random_state=0)
    ka = ks.fit(mlp, X_frame).explain(X_frame)
    kb = ks.set_params(batch_size=5).fit(mlp, X_frame).explain(X_frame)
    np.testing.assert_allclose(ka.to_numpy(), kb.to_numpy(), atol=1e-6)


@pytest.mark.parametrize(
    "cls, n_samples, evaluated",
    [(Lime, 7, 7), (KernelShap, 10, 10), (KernelShap, 11, 10), (KernelShap, 100, 30)],
)
def test_model_rows_evaluated(X_frame, cls, n_samples, evaluated):
    model = MLP()
    seen = []
    model.register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[0]))
    ex = cls(n_samples=n_samples, baseline=X_frame.iloc[:2], random_state=0)
    ex.fit(model, X_frame)
    seen.clear()
    ex.explain(X_frame)
    # n * (s + 2) * B perturbed rows (the full and the empty coalition with
    # the others; KernelShap evaluates whole pairs, so 11 is 10, and with
    # n_samples >= 2**5 - 2 the 30 non-trivial coalitions), and the rows
    # themselves to pick a predicted class
    n = len(X_frame)
    pick = n if ex.n_outputs_ > 1 else 0
    assert sum(seen) == pick + n * (evaluated + 2) * 2


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_samples": 0}, "n_samples"),
        ({"kernel_width": 0.0}, "kernel_width"),
        ({"distance": "manhattan"}, "distance"),
        ({"alpha": -1.0}, "alpha"),
        ({"interpretable_model": "lasso"}, "interpretable_model"),
        ({"perturb_func": 3}, "perturb_func"),
        ({"similarity_func": "cos"}, "similarity_func"),
    ],
)
def test_lime_bad_params(mlp, X_frame, params, match):
    with pytest.raises((ValueError, TypeError), match=match):
        Lime(**params).fit(mlp, X_frame)


def test_lime_bad_perturb_func_shape(mlp, X_frame):
    lime = Lime(perturb_func=lambda n, g, s, gen: torch.ones(s, g + 1))
    with pytest.raises(ValueError, match="perturb_func"):
        lime.fit(mlp, X_frame).explain(X_frame)


def test_kernel_shap_bad_n_samples(mlp, X_frame):
    with pytest.raises(ValueError, match="n_samples"):
        KernelShap(n_samples=0).fit(mlp, X_frame)


def test_results_are_frames_with_extras(mlp, X_frame):
    attr = KernelShap(n_samples=10, random_state=0).fit(mlp, X_frame).explain(X_frame)
    assert isinstance(attr.attrs["base_values"], pd.Series)
    assert isinstance(attr.attrs["target"], pd.Series)


class _ThirdOrder(torch.nn.Module):
    """f(x) = x . a + 3 x0 x1 x2: additive, plus one product of three columns."""

    def __init__(self):
        super().__init__()
        self.register_buffer("a", torch.linspace(-1.0, 1.0, 8))

    def forward(self, x):
        return x @ self.a + 3 * x[:, 0] * x[:, 1] * x[:, 2]


def test_kernel_shap_cubic_fit_against_exact_shapley_values():
    """As a user calls it, on a custom module and a named frame: rows where
    the product vanishes (x0 = 0) are additive, and the fit is exact there;
    elsewhere the cubic fit, which a third-order term suits, is close to
    the exact values, and closer than the linear fit."""
    from skattr import ShapleyValues

    rng = np.random.default_rng(3)
    X = pd.DataFrame(
        rng.normal(size=(6, 8)).astype(np.float32), columns=[f"x{i}" for i in range(8)]
    )
    X.iloc[:3, 0] = 0.0
    model = _ThirdOrder()
    exact = ShapleyValues(baseline="zeros").fit(model, X).explain(X).to_numpy()

    def error(regression):
        ex = KernelShap(
            n_samples=180, regression=regression, baseline="zeros", random_state=0
        )
        got = ex.fit(model, X).explain(X).to_numpy()
        return np.abs(got - exact).max(1)

    cubic, linear = error("cubic"), error("linear")
    assert (cubic[:3] < 1e-5).all()  # additive rows: exact (float32 model)
    assert (cubic[3:] < 1e-3).all()
    assert (cubic[3:] < linear[3:]).all()


def test_kernel_shap_on_a_table_wider_than_a_float_binomial():
    # C(1100, 550) is beyond a float: the design's allocation once raised
    # OverflowError from 1,030 columns on; a linear model's exact values
    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(1, 1100)).astype(np.float32)).add_prefix("c")
    torch.manual_seed(0)
    model = torch.nn.Linear(1100, 1)
    attr = KernelShap(n_samples=2200, baseline="zeros", random_state=0)
    attr = attr.fit(model).explain(X)
    w = model.weight.detach().double().numpy()[0]
    np.testing.assert_allclose(attr.to_numpy(), X.to_numpy() * w, rtol=0, atol=1e-6)


def test_a_captum_users_similarity_func(mlp, X_frame):
    # Captum calls similarity_func(original, perturbed, interpretable); it
    # got (original, coalitions, perturbed) and, written Captum's way, the
    # kernel weighed the 0/1 coalitions without a word; Captum's own
    # kernel, a scalar per call, failed with a reshape error
    from captum.attr._core.lime import get_exp_kernel_similarity_function

    def captum_order(original, perturbed, interpretable):
        d = torch.linalg.vector_norm(original - perturbed, dim=-1)
        return torch.exp(-(d**2) / (2 * 2.0**2))

    common = {"n_samples": 30, "baseline": "zeros", "target": 1, "random_state": 0}
    default = Lime(distance="euclidean", kernel_width=2.0, **common)
    mine = Lime(similarity_func=captum_order, **common)
    np.testing.assert_allclose(
        mine.fit(mlp, X_frame).explain(X_frame).to_numpy(),
        default.fit(mlp, X_frame).explain(X_frame).to_numpy(),
        atol=1e-6,
    )
    scalar = Lime(
        similarity_func=get_exp_kernel_similarity_function("euclidean", 0.75),
        **common,
    )
    with pytest.raises(ValueError, match=r"one weight per perturbed input.*dim=-1"):
        scalar.fit(mlp, X_frame).explain(X_frame)
    negative = Lime(similarity_func=lambda x, z, c: -torch.ones(len(z)), **common)
    with pytest.raises(ValueError, match="negative, NaN or infinite weights"):
        negative.fit(mlp, X_frame).explain(X_frame)


def test_captums_perturb_func_and_surrogate_get_a_message(mlp, X_frame):
    from captum._utils.models.linear_model import SkLearnLasso
    from captum.attr._core.lime import default_perturb_func

    lime = Lime(perturb_func=default_perturb_func, baseline="zeros")
    with pytest.raises(TypeError, match=r"perturb_func is called as perturb_func\("):
        lime.fit(mlp, X_frame).explain(X_frame)
    with pytest.raises(TypeError, match="SkLearnLasso wraps one"):
        Lime(interpretable_model=SkLearnLasso(alpha=0.01)).fit(mlp, X_frame)


def test_lime_weights_that_leave_no_data_are_refused_and_few_are_warned(X_frame):
    # at a kernel_width far below the distances every perturbed input of a
    # row can weigh 0 in float32, and the surrogate returned zeros; a few
    # inputs with weight left an ill-conditioned fit, without a word
    from skattr import Lime

    model = make_linear(np.array([1.0, -2.0, 0.0, 0.5, 3.0]))

    def none_for_row_r3(X, Z_inputs, Z_interp):
        far = (X[:, 0] == float(X_frame.loc["r3", "f0"])).double()
        return torch.exp(-(torch.linalg.vector_norm(X - Z_inputs, dim=-1) ** 2)) * (
            1 - far
        )

    common = {"n_samples": 40, "baseline": "zeros", "random_state": 0}
    lime = Lime(similarity_func=none_for_row_r3, **common)
    with pytest.raises(
        ValueError, match=r"For 1 of the 12 rows of X \(first rows: 'r3'\)"
    ):
        lime.fit(model, X_frame).explain(X_frame)
    narrow = Lime(distance="euclidean", kernel_width=0.3, **common)
    with pytest.warns(UserWarning, match="fewer effective samples") as seen:
        narrow.fit(model, X_frame).explain(X_frame.iloc[:4])
    assert seen[0].filename == __file__  # the warning points at the user's call
    with pytest.warns(UserWarning, match="fewer effective samples") as seen:
        narrow.fit(model, X_frame).importance(X_frame.iloc[:4])
    assert seen[0].filename == __file__  # also through importance
    # narrower still, only the copies of each row itself (the coalition that
    # keeps every feature) weigh: the surrogate returned all zeros
    Z = torch.rand(40, 5, generator=torch.Generator().manual_seed(0)) < 0.5
    Z[0] = True

    def only_itself(X, Z_inputs, Z_interp):
        return (Z_interp.min(-1).values == 1).double()

    tiny = Lime(similarity_func=only_itself, perturb_func=lambda *a: Z, **common)
    with pytest.raises(ValueError, match="all keep the same features"):
        tiny.fit(model, X_frame).explain(X_frame.iloc[:4])
    # a group a perturb_func never varies is the user's design: no warning
    # for it (every row warned of "0 on the rarer side" with 194 samples)
    fixed = torch.rand(200, 5, generator=torch.Generator().manual_seed(1)) < 0.5
    fixed[:, 0] = True
    quiet = Lime(perturb_func=lambda *a: fixed, n_samples=200, baseline="zeros")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet.fit(model, X_frame).explain(X_frame)
    # fewer samples than coefficients: the message names n_samples
    few = Lime(n_samples=4, baseline="zeros", random_state=0)
    with pytest.warns(UserWarning, match="n_samples=4 is below them"):
        few.fit(model, X_frame).explain(X_frame)
