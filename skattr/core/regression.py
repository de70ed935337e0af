"""The Shapley regression on coalition pairs, with third-order terms.

Write a coalition as ``z in {0, 1}^g`` and its signs ``s = 2 z - 1``. The
Shapley value of a game depends only on its odd part
``o(z) = (v(z) - v(1 - z)) / 2``, which a pair ``(S, N \\ S)`` measures
exactly, and in the Walsh basis ``chi_T(z) = prod_{i in T} s_i`` the odd
part holds the terms of odd order ``|T|``. A term ``chi_T`` gives each of
its ``|T|`` groups ``2 / |T|`` (it is symmetric in them and moves from
``-1`` to ``+1``). Kernel SHAP fits the first-order terms by least squares
weighted by the Shapley kernel, under efficiency; it is exact for every game
whose odd part is of order one (every game with at most pairwise
interactions) and exact for any game once every coalition is in the fit.

:func:`odd_regression` adds the third-order terms, ridge-penalised, in
their dual (kernel) form: the kernel of the ``C(g, 3)`` terms between two
coalitions depends only on how many signs they share, so the fit costs
``O(m^3)`` for ``m`` pairs whatever ``g``. The first-order terms are not
penalised, so the estimate stays exact whenever every coalition is used;
the penalty is chosen per row from a grid by leave-one-pair-out error,
which a linear smoother gives in closed form (from one eigendecomposition
shared by every row and penalty), and a large penalty recovers plain Kernel
SHAP, so the fit falls back to it where the third-order terms do not
predict. Efficiency is an exact constraint (the pair of the full and the
empty coalition, fitted without error).

The same algebra gives each sampled pair's deletion effect on the estimate,
from which :func:`odd_regression` returns the stratified jackknife variance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

#: penalties tried for the third-order terms (the kernel is scaled to one on
#: its diagonal and the weights to a mean of one)
PENALTIES = tuple(10.0**e for e in (-3, -2, -1.5, -1, -0.5, 0, 1, 4))


def _e3(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Third elementary symmetric polynomial of ``a`` ones and ``b`` minus ones."""
    return (
        a * (a - 1) * (a - 2) / 6
        - a * (a - 1) / 2 * b
        + a * b * (b - 1) / 2
        - b * (b - 1) * (b - 2) / 6
    )


def cubic_kernel(P: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """``sum_{|T| = 3} chi_T(p) chi_T(q) / C(g, 3)`` for sign rows ``P`` ``[m, g]``, ``Q`` ``[r, g]``.

    ``_e3(a, g - a)`` is a cubic in ``a``, the number of signs shared:
    evaluated by Horner's rule in place, it holds two ``[m, r]`` tensors
    where the formula would hold six.
    """
    g = P.shape[1]
    agree = P @ Q.T
    agree.add_(g).div_(2)
    # the cubic's coefficients, from its exact values at a = 0, 1, 2, 3
    points = torch.arange(4, dtype=torch.float64)
    exact = _e3(points, g - points) / math.comb(g, 3)
    c = torch.linalg.solve(torch.vander(points, 4), exact).tolist()  # highest first
    out = agree * c[0]
    out.add_(c[1]).mul_(agree)
    out.add_(c[2]).mul_(agree)
    return out.add_(c[3])


def quadratic_kernel(P: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """``sum_{|T| = 2} chi_T(p) chi_T(q) / C(g, 2)`` for sign rows ``P`` and ``Q``."""
    g = P.shape[1]
    a = (P @ Q.T + g) / 2  # signs shared
    b = g - a
    return (a * (a - 1) / 2 - a * b + b * (b - 1) / 2) / math.comb(g, 2)


@dataclass(frozen=True)
class EvenFit:
    """What :func:`even_regression` returns (float64)."""

    sii: torch.Tensor  #: ``[n, g, g]`` the fitted game's pairwise interactions
    residual: torch.Tensor  #: ``[n, m]`` each pair's even value minus the fit's
    loo: torch.Tensor  #: ``[n, m]`` the same with the pair left out of the fit


def even_regression(
    S: torch.Tensor, weights: torch.Tensor, even: torch.Tensor, even_full: torch.Tensor
) -> EvenFit:
    r"""The second-order part of a game from the even values of coalition pairs.

    The even part ``(v(S) + v(N \ S)) / 2`` holds the Walsh terms of even
    order; a term ``chi_T`` of order two adds ``4`` to the interaction index
    (SII) of its pair and nothing to any other pair, the Shapley values or a
    Walsh term of odd order, so an order-two fit's interactions are read off
    its coefficients: ``SII_ij = 4 a_ij``. The fit is the kernel ridge of
    :func:`_ridge_path` with an unpenalised intercept, the ``C(g, 2)``
    order-two terms penalised (dual form) and the full coalition's even value
    fitted exactly; ``ShapleyInteractions`` corrects its interactions by a
    stratified sum of what it leaves, so that the estimate is exact once
    every coalition is in the design.

    Parameters
    ----------
    S : Tensor of shape ``[m, g]``, bool
    weights : Tensor of shape ``[m]``
    even : Tensor of shape ``[n, m]``
    even_full : Tensor of shape ``[n]``
        ``(v(N) + v(empty)) / 2``.
    """
    m, g = S.shape
    f64 = torch.float64
    dev = even.device
    P = S.to(f64) * 2 - 1
    ones = torch.ones(1, g, dtype=f64, device=dev)
    kernel = (
        quadratic_kernel(P, P),
        quadratic_kernel(P, ones)[:, 0],
        quadratic_kernel(ones, ones),
    )
    intercept = torch.ones(m, 1, dtype=f64, device=dev)
    path = _ridge_path(
        kernel,
        intercept,
        torch.ones(1, dtype=f64, device=dev),
        weights,
        even,
        even_full,
        residuals=True,
    )
    alpha = path.alpha.T  # [n, m]
    alpha_1 = path.theta[0]  # [n]
    scale = 4.0 / math.comb(g, 2)
    sii = scale * (torch.einsum("nm,mi,mj->nij", alpha, P, P) + alpha_1[:, None, None])
    eye = torch.eye(g, dtype=torch.bool, device=dev)
    sii = torch.where(eye, 0.0, sii)
    return EvenFit(sii, path.residual.T, path.loo.T)


def cubic_shapley(P: torch.Tensor) -> torch.Tensor:
    """``[m, g]``: the Shapley values of each function ``cubic_kernel(., p)``.

    ``chi_T`` gives ``2 / 3`` to each of its groups, so group ``i`` gets
    ``2 / 3 * s_i * e_2(s without i) / C(g, 3)``.
    """
    g = P.shape[1]
    plus = (P > 0).to(P.dtype)
    a = plus.sum(1, keepdim=True) - plus  # ones among the other groups
    b = (g - 1) - a
    e2 = a * (a - 1) / 2 - a * b + b * (b - 1) / 2
    return P * (2.0 / 3.0) * e2 / math.comb(g, 3)


@dataclass(frozen=True)
class OddFit:
    """What :func:`odd_regression` returns (float64)."""

    values: torch.Tensor  #: ``[n, g]`` Shapley value estimates
    variance: torch.Tensor | None  #: ``[n, g]`` jackknife variance (sampled pairs)
    df: int  #: degrees of freedom of the variance (sampled pairs minus groups)
    penalty: torch.Tensor  #: ``[n]`` the penalty chosen per row (``inf``: linear)
    residual: torch.Tensor | None  #: ``[n, m]`` each pair's odd value minus the fit's
    loo: torch.Tensor | None  #: ``[n, m]`` the same with the pair left out of the fit


def odd_regression(
    S: torch.Tensor,
    weights: torch.Tensor,
    odd: torch.Tensor,
    delta: torch.Tensor,
    *,
    cubic: bool,
    groups: list[torch.Tensor] | None = None,
    fpc: list[float] | None = None,
    memo: dict | None = None,
    residuals: bool = False,
) -> OddFit:
    """Shapley values from the odd values of coalition pairs, every row at once.

    Parameters
    ----------
    S : Tensor of shape ``[m, g]``, bool
        One coalition of each pair, shared by every row.
    weights : Tensor of shape ``[m]``
        Kernel weight of each pair.
    odd : Tensor of shape ``[n, m]``
        ``(v(S) - v(N \\ S)) / 2`` per row and pair.
    delta : Tensor of shape ``[n]``
        ``v(N) - v(empty)``: the values sum to it exactly.
    cubic : bool
        Add the penalised third-order terms (needs ``g >= 3``); else plain
        Kernel SHAP.
    groups : list of Tensor, optional
        Index tensors of the sampled pairs, one per variance group (pairs
        drawn from the same strata); ``None`` or empty: no variance.
    fpc : list of float, optional
        ``1 - sampled fraction`` of each group (finite population).
    memo : dict, optional
        Shared by the calls on chunks of the rows of one explanation: the
        part of the fit that depends on the pairs alone (the kernel, its
        eigendecomposition, the influence of each pair) is computed once per
        design and kept there (the latest design only).
    residuals : bool, default=False
        Also return each pair's residual and leave-one-out residual
        (``OddFit.residual`` and ``OddFit.loo``, ``[n, m]``); otherwise they
        are ``None``.

    Returns
    -------
    OddFit
    """
    m, g = S.shape
    n = odd.shape[0]
    dev = odd.device
    f64 = torch.float64
    P = S.to(f64) * 2 - 1
    delta = delta.to(f64)
    # the third-order terms need pairs to choose their penalty from: with
    # fewer than 1.5 g the leave-one-out error is dominated by pivotal pairs
    cubic = bool(cubic) and g >= 3 and 2 * m >= 3 * g
    ones = torch.ones(1, g, dtype=f64, device=dev)
    key = (bytes(S.cpu().numpy().tobytes()), weights.cpu().numpy().tobytes(), cubic)
    shared = None if memo is None else memo.get(key)
    if shared is None:
        if cubic:
            phi_S, phi_1 = cubic_shapley(P), cubic_shapley(ones)[0]
        else:
            phi_S = torch.zeros(m, g, dtype=f64, device=dev)
            phi_1 = torch.zeros(g, dtype=f64, device=dev)
        # the first-order terms are the unpenalised part; each is 1 at the
        # full coalition; the kernel is built in the call, so that it is freed
        setup = _ridge_setup(
            (cubic_kernel(P, P), cubic_kernel(P, ones)[:, 0], cubic_kernel(ones, ones))
            if cubic
            else None,
            P,
            ones[0],
            weights,
        )
        shared = (phi_S, phi_1, setup, {})
        if memo is not None:
            memo.clear()  # the latest design only
            memo[key] = shared
    phi_S, phi_1, setup, influence = shared
    path = _ridge_rows(setup, odd, delta / 2, residuals=residuals)
    # the values are linear in each row's fit: read from the chosen one
    theta, alpha, chosen = path.theta, path.alpha, path.chosen
    values = (2 * theta[1:] + phi_S.T @ alpha + phi_1[:, None] * theta[:1]).T
    # efficiency to the last bit (the constraint holds to solver precision)
    values = values + ((delta - values.sum(1)) / g)[:, None]
    penalty = (
        setup.penalties[chosen]
        if cubic
        else torch.full((n,), math.inf, dtype=f64, device=dev)
    )
    residual = None if path.residual is None else path.residual.T  # [n, m]
    loo_fit = None if path.loo is None else path.loo.T
    if not groups:
        return OddFit(values, None, 0, penalty, residual, loo_fit)
    # stratified jackknife: pair p's deletion moves the estimate by
    # -H[:, p] * loo_p; within each variance group the spread of those moves,
    # times (k - 1) / k and the finite-population factor, adds up
    # variance = sum_p s_p x_p^2 - sum_G s_G / k_G (sum_{p in G} x_p)^2 with
    # x_p = H[:, p] loo_p and s_G = fpc (k - 1) / k: one product for the
    # squares, one per group for the sums (a padded batch of the groups held
    # groups x widest group x rows values, several times the pairs)
    sizes = [int(mem.numel()) for mem in groups]
    scale = [
        f * (k - 1) / k if k >= 2 else 0.0
        for k, f in zip(sizes, fpc or [1.0] * len(groups))
    ]
    s_pair = torch.zeros(m, dtype=f64, device=dev)
    for j, members in enumerate(groups):
        s_pair[members] = scale[j]
    variance = torch.zeros(n, g, dtype=f64, device=dev)
    for index, rows in _by_choice(chosen):
        r, Sinv, _, vote = setup.fits[index]
        if index not in influence:  # [g, m], the same for every chunk of rows
            influence[index] = _influence(r, Sinv, setup, phi_S, phi_1)
        H = influence[index]
        loo = _leave_one_out(setup.fits[index], alpha[:, rows])  # [m, rows]
        part = (loo**2 * s_pair[:, None]).T @ (H**2).T  # [rows, g]
        for members, k, c in zip(groups, sizes, scale):
            if c:
                within = loo[members].T @ H[:, members].T  # [rows, g]
                part -= within.square_().mul_(c / k)
        variance[rows] = part
        if not bool(vote[s_pair > 0].all()):
            # a drawn pair the fit cannot do without: deleting it leaves the
            # estimate undetermined, so the spread says nothing
            variance[rows] = torch.nan
    # degrees of freedom: the drawn pairs beyond their groups' means, and no
    # more than the pairs beyond the g - 1 free coefficients of the fit
    df = sum(max(int(mem.numel()) - 1, 0) for mem in groups)
    df = min(df, m - (g - 1))
    if not separable(S):  # two groups the coalitions never tell apart
        variance[:] = torch.nan
    return OddFit(values, variance, df, penalty, residual, loo_fit)


def separable(S: torch.Tensor) -> bool:
    """Whether every two groups are told apart by some pair of the design.

    Two groups ``i, j`` that are together (or exactly opposite) in every
    coalition of the design have sign columns equal up to sign: the pairs'
    odd values cannot say how their total splits between them, so no
    estimate of either is determined by the data.
    """
    P = S.to(torch.float64) * 2 - 1  # [m, g]
    if P.shape[0] == 0:
        return P.shape[1] <= 1
    canonical = P * P[:1]  # flip each column so that its first sign is +1
    return torch.unique(canonical.T, dim=0).shape[0] == P.shape[1]


@dataclass
class _Path:
    """The fit :func:`_ridge_path` chose for each row (one penalty per row)."""

    chosen: torch.Tensor  #: ``[n]`` index of the penalty each row chose
    theta: (
        torch.Tensor
    )  #: ``[q + 1, n]``: the full coalition's dual, then the unpenalised
    alpha: torch.Tensor  #: ``[m, n]``: the pairs' duals
    residual: torch.Tensor | None  #: ``[m, n]``: each pair's value minus the fit's
    loo: torch.Tensor | None  #: ``[m, n]``: the same, the pair left out of the fit


def _ridge_path(kernel, L, L1, weights, y, y1, *, residuals=False) -> _Path:
    """Kernel ridge on pairs with an unpenalised part and an exact full coalition.

    Fits ``y_p ~ L_p . beta + h(z_p)``, ``h`` in the kernel's span
    (penalised, noise ``lambda / w_p``), with the full coalition's value
    ``y1`` fitted exactly (``L1 . beta + h(1) = y1``), for every penalty of
    :data:`PENALTIES` (``kernel=None``: no ``h``, one fit), and picks a
    penalty per row by leave-one-pair-out error: the largest whose error is
    within a part in a thousand of the best, so that near ties go to the
    simpler fit and rounding in the values does not flip the choice.

    ``kernel`` is ``(K [m, m], k_1 [m], k_11)``; ``L`` ``[m, q]``, ``L1``
    ``[q]``, ``y`` ``[n, m]``, ``y1`` ``[n]``. One eigendecomposition of the
    weighted kernel serves every row and penalty (:func:`_ridge_setup`); the
    parametric block is a ``(q + 1)``-sized Schur complement.
    """
    return _ridge_rows(_ridge_setup(kernel, L, L1, weights), y, y1, residuals=residuals)


@dataclass
class _Setup:
    """What the ridge path shares by all rows: it depends on the pairs alone.

    Of the ``m x m`` matrices only the eigenvectors ``V`` are kept:
    ``V^T D^1/2 x`` is computed as ``V^T (D^1/2 x)`` and the diagonals that
    need ``V ** 2`` are taken once for every penalty, so that the memory the
    design keeps is one ``m x m`` matrix (about four during the
    decomposition: the kernel, the eigenvectors and the solver's workspace).
    """

    penalties: torch.Tensor
    V: object  #: eigenvectors of the weighted kernel (``_Diagonal`` when linear)
    Ct: torch.Tensor  #: ``V^T D^1/2 [k_1, L]``
    sq: torch.Tensor  #: ``D^1/2``
    wn: torch.Tensor  #: the weights, mean one
    q: int
    fits: list  #: per penalty: (r, Sinv, diag, vote)

    def vd(self, x: torch.Tensor) -> torch.Tensor:
        """``V^T D^1/2 x`` for ``x`` ``[m, k]``."""
        return self.V.T @ (self.sq[:, None] * x)

    def dv(self, x: torch.Tensor) -> torch.Tensor:
        """``x V^T D^1/2`` for ``x`` ``[k, m]``."""
        return (x @ self.V.T) * self.sq[None, :]


def _ridge_setup(kernel, L, L1, weights) -> _Setup:
    """The row-free part of :func:`_ridge_path` (the kernel is consumed)."""
    m, q = L.shape
    dev = L.device
    f64 = torch.float64
    w = weights.to(f64)
    wn = w / w.mean()
    sq = wn.sqrt()
    if kernel is not None:
        K, k1, k11 = kernel
        sigma, V = torch.linalg.eigh(K.mul_(sq[:, None]).mul_(sq[None, :]))
        del K, kernel  # scaled in place, decomposed: its m x m values are done
        sigma = sigma.clamp_min(0)
        penalties = torch.tensor(PENALTIES, dtype=f64, device=dev)
        k11 = float(k11)
    else:  # no kernel: V is the identity, held as its diagonal (no m x m)
        k1 = torch.zeros(m, dtype=f64, device=dev)
        k11 = 0.0
        sigma = torch.zeros(m, dtype=f64, device=dev)
        V = _Diagonal(torch.ones(m, dtype=f64, device=dev))
        penalties = torch.ones(1, dtype=f64, device=dev)
    C = torch.cat([k1[:, None], L.to(f64)], 1)  # [m, q + 1]
    B0 = torch.zeros(q + 1, q + 1, dtype=f64, device=dev)
    B0[0, 0] = k11
    B0[0, 1:] = L1
    B0[1:, 0] = L1
    Ct = V.T @ (sq[:, None] * C)  # [m, q + 1]
    R = 1.0 / (sigma[:, None] + penalties[None, :])  # [m, L]: r of each penalty
    V2R = (V**2) @ R  # [m, L]; V ** 2 is freed at once
    fits = []
    for i in range(len(penalties)):
        r = R[:, i].contiguous()
        Sinv = _inverse(B0 - Ct.T @ (r[:, None] * Ct))
        # the diagonal of the system's inverse, over the pairs:
        # M^-1 + E S^-1 E^T with M^-1 = D^1/2 V diag(r) V^T D^1/2, E = M^-1 C
        E = sq[:, None] * (V @ (r[:, None] * Ct))
        diag = wn * V2R[:, i] + ((E @ Sinv) * E).sum(1)
        # leave one pair out: residual alpha_i / (A^-1)_ii; a pivotal pair
        # (the fit cannot do without it) has none: it does not vote
        vote = diag > 1e-9 * diag.abs().max()
        fits.append((r, Sinv, diag, vote))
    return _Setup(penalties, V, Ct, sq, wn, q, fits)


def _ridge_rows(setup: _Setup, y, y1, *, residuals: bool = False) -> _Path:
    """Each row's fit at the penalty it chooses.

    Two passes, so that no ``[m, n]`` array is kept per penalty: the first
    fits every penalty and keeps each row's leave-one-out score; the second
    refits each row at its chosen penalty, whose dual (``theta``, ``alpha``)
    and leave-one-out residuals are the row's (one more product in all, as
    every row is refitted once).
    """
    n = y.shape[0]
    dev = y.device
    f64 = torch.float64
    penalties, V, Ct, sq, wn = (
        setup.penalties, setup.V, setup.Ct, setup.sq, setup.wn,
    )  # fmt: skip
    rhs_p = torch.zeros(setup.q + 1, n, dtype=f64, device=dev)
    rhs_p[0] = y1.to(f64)
    yt = setup.vd(y.to(f64).T)  # [m, n]

    def fit(i: int, cols):
        r, Sinv, _, _ = setup.fits[i]
        y_i = yt if cols is None else yt[:, cols]
        rhs = rhs_p if cols is None else rhs_p[:, cols]
        theta = Sinv @ (rhs - Ct.T @ (r[:, None] * y_i))  # [q + 1, n]
        alpha = sq[:, None] * (V @ (r[:, None] * (y_i - Ct @ theta)))  # [m, n]
        return theta, alpha

    count = len(penalties)
    loo_all = None
    if count == 1:
        chosen = torch.zeros(n, dtype=torch.long, device=dev)
        theta, alpha = fit(0, None)
        if residuals:
            loo_all = _leave_one_out(setup.fits[0], alpha)
    else:
        scores = []
        for i, (_, _, _, vote) in enumerate(setup.fits):
            loo = _leave_one_out(setup.fits[i], fit(i, None)[1])
            scores.append((torch.where(vote, wn, 0.0)[:, None] * loo**2).sum(0))
            del loo
        score = torch.stack(scores)  # [L, n]
        ok = score <= score.min(0).values * (1 + 1e-3)
        chosen = (count - 1 - ok.flip(0).to(torch.int8).argmax(0)).long()
        theta = rhs_p.new_empty(rhs_p.shape)
        alpha = yt.new_empty(yt.shape)
        if residuals:
            loo_all = torch.empty_like(alpha)
        for i, cols in _by_choice(chosen):  # each row refitted at its choice
            theta[:, cols], alpha[:, cols] = fit(i, cols)
            if residuals:
                loo_all[:, cols] = _leave_one_out(setup.fits[i], alpha[:, cols])
    residual = None
    if residuals:
        residual = alpha * (penalties[chosen][None, :] / wn[:, None])
    return _Path(chosen, theta, alpha, residual, loo_all)


def _by_choice(chosen: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """``(fit, rows)``: the rows that chose each fit of the path."""
    return [
        (i, torch.nonzero(chosen == i).flatten()) for i in torch.unique(chosen).tolist()
    ]


def _leave_one_out(fit: tuple, alpha: torch.Tensor) -> torch.Tensor:
    """Each pair's leave-one-out residual ``alpha_i / (A^-1)_ii`` ``[m, rows]``
    under ``fit`` (its ``(r, Sinv, diag, vote)``); 0 for a pivotal pair (the
    fit cannot do without it), which does not vote."""
    _, _, diag, vote = fit
    return torch.where(
        vote[:, None], alpha / torch.where(vote, diag, 1.0)[:, None], 0.0
    )


class _Diagonal:
    """A diagonal ``m x m`` matrix held as its diagonal ``d`` ``[m]``: the
    linear fit's eigenvectors (the identity), which would otherwise take
    ``m^2`` values for nothing."""

    def __init__(self, d: torch.Tensor):
        self.d = d

    def __matmul__(self, x: torch.Tensor) -> torch.Tensor:  # diag(d) @ x
        return self.d.reshape(-1, *([1] * (x.dim() - 1))) * x

    def __rmatmul__(self, x: torch.Tensor) -> torch.Tensor:  # x @ diag(d)
        return x * self.d

    def __pow__(self, k) -> _Diagonal:
        return _Diagonal(self.d**k)

    @property
    def T(self) -> _Diagonal:
        return self


def _inverse(A: torch.Tensor) -> torch.Tensor:
    """Inverse of a small symmetric system, the pseudo-inverse where it is singular."""
    inv, info = torch.linalg.inv_ex(A)
    if int(info) == 0 and bool(torch.isfinite(inv).all()):
        return inv
    return torch.linalg.pinv(A, hermitian=True)


def _influence(r, Sinv, setup: _Setup, phi_S, phi_1) -> torch.Tensor:
    """``[g, m]``: the derivative of the estimate with respect to each pair's odd value."""
    Ct, sq, V = setup.Ct, setup.sq, setup.V
    dtheta = -Sinv @ setup.dv(Ct.T * r[None, :])  # [g + 1, m]
    # d alpha / dy = D^1/2 V diag(r) (V^T D^1/2 - Ct dtheta)
    F = (phi_S.T * sq[None, :]) @ V  # [g, m]
    Fr = F * r[None, :]
    dphi = setup.dv(Fr) - (Fr @ Ct) @ dtheta
    return 2 * dtheta[1:] + dphi + phi_1[:, None] * dtheta[:1]
