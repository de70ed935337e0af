"""The pair regression against a brute-force primal reference.

``odd_regression`` fits in dual form, reads every penalty's leave-one-pair-out
residuals from one eigendecomposition and keeps only each row's chosen fit.
Here the same fits are solved in primal form, every pair is left out by an
explicit refit, and the penalty is chosen by the documented rule: the values,
residuals, leave-one-out residuals and choices must agree.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from skattr.core.designs import PairedDesign
from skattr.core.regression import PENALTIES, odd_regression


def _primal(S, w, y, y1, lam, cubic, leave=None):
    """Constrained weighted ridge: ``min sum wn (y - X u)^2 + lam |gamma|^2``
    with ``X = [signs, cubic features]`` and the full coalition fitted
    exactly. Returns the coefficients ``(beta, gamma)``."""
    m, g = S.shape
    P = S.astype(float) * 2 - 1
    triples = list(itertools.combinations(range(g), 3)) if cubic else []
    scale = math.sqrt(math.comb(g, 3)) if cubic else 1.0

    def feats(Q):
        if not triples:
            return np.zeros((Q.shape[0], 0))
        return np.stack([Q[:, list(T)].prod(1) / scale for T in triples], 1)

    X = np.hstack([P, feats(P)])
    x1 = np.hstack([np.ones(g), feats(np.ones((1, g)))[0]])
    wn = w / w.mean()
    keep = np.ones(m, bool) if leave is None else np.arange(m) != leave
    Xk, wk, yk = X[keep], wn[keep], y[keep]
    k = X.shape[1]
    E = np.diag([0.0] * g + [1.0] * (k - g))
    A = np.zeros((k + 1, k + 1))
    A[:k, :k] = 2 * Xk.T @ (wk[:, None] * Xk) + 2 * lam * E
    A[:k, k] = A[k, :k] = x1
    rhs = np.hstack([2 * Xk.T @ (wk * yk), y1])
    u = np.linalg.lstsq(A, rhs, rcond=None)[0][:k]
    return X, u, triples, scale


def _reference(S, w, y, y1, cubic):
    """Values, residuals, leave-one-out residuals, the chosen penalty's index
    and how many penalties were within the tie margin, by explicit refits."""
    m, g = S.shape
    wn = w / w.mean()
    lams = PENALTIES if cubic else (1.0,)
    fits = []
    for lam in lams:
        X, u, triples, scale = _primal(S, w, y, y1, lam, cubic)
        loo = np.empty(m)
        for p in range(m):
            Xp, up, _, _ = _primal(S, w, y, y1, lam, cubic, leave=p)
            loo[p] = y[p] - Xp[p] @ up
        values = 2 * u[:g].copy()
        for c, T in zip(u[g:], triples):  # chi_T gives 2/3 to each member
            values[list(T)] += 2 / 3 * c / scale
        fits.append((values, y - X @ u, loo, float((wn * loo**2).sum())))
    scores = np.array([f[3] for f in fits])
    ok = scores <= scores.min() * (1 + 1e-3)
    chosen = int(np.nonzero(ok)[0].max())
    return fits[chosen][:3] + (chosen, int(ok.sum()))


@pytest.mark.parametrize("cubic", [True, False])
def test_odd_regression_equals_explicit_refits(cubic):
    g, m, n = 6, 14, 6
    design = PairedDesign(g, "leverage", torch.Generator().manual_seed(4))
    design.grow(m)
    S, w = design.S, design.weights()
    rng, tie = np.random.default_rng(0), np.random.default_rng(0)
    # rows of every kind: a third-order game (the cubic terms pay), noise
    # (the plain fit wins), and mixes, so that rows choose different penalties
    P = S.double().numpy() * 2 - 1
    cube = P[:, 0] * P[:, 1] * P[:, 2]
    y = np.stack(
        [
            P @ rng.normal(size=g) + 3 * cube,
            rng.normal(size=m),
            P @ rng.normal(size=g) + 0.01 * rng.normal(size=m),
            P @ rng.normal(size=g) + cube + 0.3 * rng.normal(size=m),
            P @ rng.normal(size=g) - 2 * P[:, 3] * P[:, 4] * P[:, 5],
            # a weak third-order term: two penalties tie within the margin
            P @ tie.normal(size=g) + 0.1 * cube + 0.1 * tie.normal(size=m),
        ]
    )
    delta = rng.normal(size=n)
    delta[-1] = 0.0  # the tie row's full coalition
    fit = odd_regression(
        S, w, torch.as_tensor(y), torch.as_tensor(delta), cubic=cubic, residuals=True
    )
    chosen, ties = [], []
    for r in range(n):
        values, residual, loo, index, within = _reference(
            S.numpy(), w.double().numpy(), y[r], delta[r] / 2, cubic
        )
        chosen.append(index)
        ties.append(within)
        np.testing.assert_allclose(fit.values[r].numpy(), values, atol=1e-8)
        np.testing.assert_allclose(fit.residual[r].numpy(), residual, atol=1e-8)
        np.testing.assert_allclose(fit.loo[r].numpy(), loo, atol=1e-7)
        expected = PENALTIES[index] if cubic else math.inf
        assert float(fit.penalty[r]) == expected
    if cubic:  # rows chose differently, and a near tie went to the larger penalty
        assert len(set(chosen)) > 1 and max(ties) > 1


def test_residuals_are_left_out_unless_asked_for():
    design = PairedDesign(6, "leverage", torch.Generator().manual_seed(4))
    design.grow(14)
    y = torch.randn(
        3, 14, dtype=torch.float64, generator=torch.Generator().manual_seed(1)
    )
    delta = torch.zeros(3, dtype=torch.float64)
    plain = odd_regression(design.S, design.weights(), y, delta, cubic=True)
    full = odd_regression(
        design.S, design.weights(), y, delta, cubic=True, residuals=True
    )
    assert plain.residual is None and plain.loo is None
    torch.testing.assert_close(plain.values, full.values, rtol=0, atol=0)
