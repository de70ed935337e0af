"""ShapleyInteractions: exact SII against brute force and shapiq, SHAP's
layout, known interactions, the sampled mode and its error bars."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from skattr import ShapleyInteractions, ShapleyValues
from tests.conftest import MLP, Counting


def _brute_sii(model, X, background, target):
    """SII by its definition: every pair, every coalition of the others."""
    X = torch.as_tensor(X, dtype=torch.float64)
    bg = torch.as_tensor(background, dtype=torch.float64)
    n, g = X.shape

    def v(x, S):
        mask = torch.zeros(g, dtype=torch.bool)
        mask[list(S)] = True
        Z = torch.where(mask, x, bg)
        with torch.no_grad():
            return (
                model(
                    Z.float() if next(model.parameters()).dtype == torch.float32 else Z
                )[:, target]
                .double()
                .mean()
                .item()
            )

    out = np.zeros((n, g, g))
    for r in range(n):
        for i, j in itertools.combinations(range(g), 2):
            others = [k for k in range(g) if k not in (i, j)]
            total = 0.0
            for size in range(len(others) + 1):
                w = (
                    math.factorial(size)
                    * math.factorial(g - size - 2)
                    / math.factorial(g - 1)
                )
                for S in itertools.combinations(others, size):
                    total += w * (
                        v(X[r], S + (i, j))
                        - v(X[r], S + (i,))
                        - v(X[r], S + (j,))
                        + v(X[r], S)
                    )
            out[r, i, j] = out[r, j, i] = total
    return out


def _cube(attr, n, g):
    return attr.to_numpy().reshape(n, g, g)


@pytest.fixture(scope="module")
def mlp64():
    return MLP().double()


@pytest.fixture(scope="module")
def X64():
    return np.random.default_rng(0).normal(size=(4, 5))


@pytest.mark.parametrize("n_background", [1, 3])
def test_exact_sii_equals_brute_force(mlp64, X64, n_background):
    background = np.random.default_rng(1).normal(size=(n_background, 5))
    ex = ShapleyInteractions(baseline=background, target=2).fit(mlp64, X64)
    attr = ex.explain(X64)
    cube = _cube(attr, 4, 5)
    brute = _brute_sii(mlp64, X64, background, 2)
    off = ~np.eye(5, dtype=bool)
    np.testing.assert_allclose(2 * cube[:, off], brute[:, off], atol=1e-12)


def test_rows_sum_to_shapley_values_and_matrix_to_the_prediction(mlp64, X64):
    ex = ShapleyInteractions(baseline="zeros", target=1).fit(mlp64, X64)
    attr = ex.explain(X64)
    cube = _cube(attr, 4, 5)
    phi = ShapleyValues(baseline="zeros", target=1).fit(mlp64, X64).explain(X64)
    np.testing.assert_allclose(cube.sum(2), phi.to_numpy(), atol=1e-12)
    gap = cube.sum((1, 2)) - (attr.attrs["prediction"] - attr.attrs["base_values"])
    assert np.abs(gap).max() < 1e-12
    np.testing.assert_array_equal(cube, cube.transpose(0, 2, 1))  # symmetric
    assert attr.attrs["exact"] and (attr.attrs["std"].to_numpy() == 0).all()


def test_a_known_pairwise_term_and_pairs_that_do_not_interact():
    class Known(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer(
                "w", torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
            )

        def forward(self, x):  # x0 * x1 + a sum of separate effects
            return (2.0 * x[:, 0] * x[:, 1] + torch.sin(x[:, 2]) + x @ self.w)[:, None]

    X = pd.DataFrame(np.random.default_rng(2).normal(size=(6, 4)), columns=list("abcd"))
    attr = ShapleyInteractions(baseline="zeros").fit(Known(), X).explain(X)
    for row in X.index:
        m = attr.loc[row]
        assert m.loc["a", "b"] == pytest.approx(
            X.loc[row, "a"] * X.loc[row, "b"], abs=1e-12
        )
        for p, q in [("a", "c"), ("a", "d"), ("b", "c"), ("b", "d"), ("c", "d")]:
            assert abs(m.loc[p, q]) < 1e-12
        assert m.loc["c", "c"] == pytest.approx(
            np.sin(X.loc[row, "c"]) + 0.5 * X.loc[row, "c"]
        )
    imp = ShapleyInteractions(baseline="zeros").fit(Known(), X).importance(X)
    assert imp.index[0] == ("a", "b")
    assert imp.index.names == ["feature", "other"] and len(imp) == 6
    expected = np.abs(2 * X["a"] * X["b"]).mean()
    assert imp["importance"].iloc[0] == pytest.approx(expected)


def test_agrees_with_shapiq(mlp64, X64):
    shapiq = pytest.importorskip("shapiq")
    attr = ShapleyInteractions(baseline="zeros", target=0).fit(mlp64, X64)
    cube = _cube(attr.explain(X64), 4, 5)
    for r in range(2):
        x = torch.as_tensor(X64[r])

        def game(coalitions, x=x):
            Z = torch.where(torch.as_tensor(coalitions), x, 0.0)
            with torch.no_grad():
                return mlp64(Z)[:, 0].numpy()

        computer = shapiq.ExactComputer(game, n_players=5)
        sii = computer(index="SII", order=2)
        ksii = computer(index="k-SII", order=2)
        for i, j in itertools.combinations(range(5), 2):
            assert 2 * cube[r, i, j] == pytest.approx(sii[(i, j)], abs=1e-10)
        for i in range(5):  # the diagonal: k-SII's main effects
            assert cube[r, i, i] == pytest.approx(ksii[(i,)], abs=1e-10)


def test_groups_every_output_and_the_layout(X_frame):
    model = MLP()
    groups = {"ab": ["f0", "f1"], "cd": ["f2", "f3"]}
    ex = ShapleyInteractions(feature_groups=groups, target="all", baseline=0.0)
    attr = ex.fit(model, X_frame).explain(X_frame)
    assert list(attr.columns.get_level_values("feature").unique()) == ["ab", "cd", "f4"]
    assert attr.index.names == ["row", "feature"] and len(attr) == 12 * 3
    for k in range(3):
        one = ShapleyInteractions(feature_groups=groups, target=k, baseline=0.0)
        np.testing.assert_allclose(
            attr[k].to_numpy(),
            one.fit(model, X_frame).explain(X_frame).to_numpy(),
            atol=1e-12,
        )
    assert attr.attrs["base_values"].shape == (12, 3)
    assert attr.attrs["base_values"].index.equals(X_frame.index)
    assert attr.loc["r3"].shape == (3, 9)


def test_exact_mode_refuses_too_many_groups_and_names_the_sampled_mode(X_frame):
    ex = ShapleyInteractions(max_groups=4).fit(MLP(), X_frame)
    with pytest.raises(ValueError, match="n_samples"):
        ex.explain(X_frame)


@pytest.mark.parametrize("n_samples", [None, 20])
def test_model_rows_are_the_documented_cost(X_frame, n_samples):
    # 20 coalitions of 5 features: sampled, two pairs per feature (a design of
    # fewer may not determine the values, and is refused for some seeds)
    model = Counting(MLP())
    ex = ShapleyInteractions(
        n_samples=n_samples, baseline=X_frame.iloc[:2], target=0, random_state=0
    )
    ex.fit(model, X_frame)
    model.rows = 0
    ex.explain(X_frame)
    per_row = 2**5 if n_samples is None else n_samples + 2
    assert model.rows == 12 * per_row * 2


class _Products(nn.Module):
    """Interactions of orders 2 to 4 among 7 features (float64)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("c", torch.tensor([1.0, -0.5, 0.8], dtype=torch.float64))

    def forward(self, x):
        return (
            self.c[0] * x[:, 0] * x[:, 1]
            + self.c[1] * x[:, 2] * x[:, 3] * x[:, 4]
            + self.c[2] * x[:, 1] * x[:, 5] * x[:, 6] * x[:, 3]
            + x.sum(1)
        )[:, None]


def test_sampled_mode_is_exact_with_every_coalition_and_converges():
    X = np.random.default_rng(3).normal(size=(10, 7))
    model = _Products()
    exact = ShapleyInteractions(baseline="zeros").fit(model, X).explain(X).to_numpy()
    full = ShapleyInteractions(n_samples=126, baseline="zeros", random_state=0)
    np.testing.assert_allclose(
        full.fit(model, X).explain(X).to_numpy(), exact, atol=1e-12
    )

    def error(n_samples):
        out = []
        for seed in range(4):
            ex = ShapleyInteractions(
                n_samples=n_samples, baseline="zeros", random_state=seed
            )
            a = ex.fit(model, X).explain(X).to_numpy()
            out.append(((a - exact) ** 2).sum() / (exact**2).sum())
        return np.median(out)

    assert error(110) < error(50) < error(20)


def test_sampled_standard_errors_cover_the_exact_values():
    X = np.random.default_rng(4).normal(size=(16, 7))
    model = _Products()
    exact = ShapleyInteractions(baseline="zeros").fit(model, X).explain(X).to_numpy()
    inside = []
    for seed in range(6):
        ex = ShapleyInteractions(n_samples=70, baseline="zeros", random_state=seed)
        a = ex.fit(model, X).explain(X)
        assert (a.attrs["n_draws"] > 0).all()
        err = np.abs(a.to_numpy() - exact)
        inside.append(err <= a.attrs["ci95"].to_numpy() + 1e-12)
    assert np.mean(inside) >= 0.9
