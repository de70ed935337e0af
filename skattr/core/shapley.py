"""Shapley values: permutation sampling and the exact subset formula.

Both routines attribute ``f(x) - f(baseline)`` to the ``g`` feature groups.
The value of a coalition ``S`` of groups for row ``x`` and background row
``b`` is ``v(S) = f(x_S, b_rest)``: the groups in ``S`` take their values
from ``x``, the others from ``b``. With several background rows the
(interventional) Shapley values are averaged over them, which is the same as
averaging ``v(S)`` over them first, because the Shapley value is linear in
``v``.

The two coalitions that do not depend on the ordering, the empty one
(``f(b)``) and the full one (``f(x)``), are never evaluated here: callers
pass them in as ``fb`` and ``fx``, which they compute once per row anyway.
"""

from __future__ import annotations

import math

import torch

from skattr.core.forward import ScalarFunction, evaluate, split_index
from skattr.core.groups import n_groups, to_columns

#: draws (permutations, or antithetic pairs) in the first round when ``tol``
#: is set; every later round doubles the number of draws a row has
FIRST_ROUND = 4


def shapley_sampling(
    f: ScalarFunction,
    X: torch.Tensor,
    baseline: torch.Tensor,
    *,
    groups: torch.Tensor,
    fx: torch.Tensor,
    fb: torch.Tensor,
    n_samples: int,
    generator: torch.Generator,
    antithetic: bool = True,
    tol: float | None = None,
    batch_size: int,
    show_progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shapley values estimated from random permutations of the groups.

    For each row, a permutation of the ``g`` groups defines ``g + 1``
    states: state ``t`` has the first ``t`` groups of the permutation set to
    ``x`` and the others to the background row. The marginal contribution of
    the group at position ``t`` is ``v(state t+1) - v(state t)``; its mean
    over permutations estimates the Shapley value. The ``g - 1`` inner
    states of every (row, permutation, background row) are built chunk by
    chunk from each group's rank in the permutation and evaluated in calls
    of at most ``batch_size`` rows.

    Parameters
    ----------
    f : callable
        ``f(Z, rows) -> Tensor[m]``, see :mod:`skattr.core.forward`.
    X : Tensor of shape ``[n, p]``
        Rows to explain.
    baseline : Tensor of shape ``[B, p]``
        Background rows; the result is averaged over them.
    groups : Tensor of shape ``[p]``
        Group index of each column.
    fx : Tensor of shape ``[n]``
        ``f`` at the rows (the state with every group from ``x``).
    fb : Tensor of shape ``[n]``
        ``f`` at the baseline for each row's target, averaged over the
        background rows (the state with no group from ``x``).
    n_samples : int
        Permutations per row; rounded up to an even number when
        ``antithetic``. The cap when ``tol`` is set.
    generator : torch.Generator
        CPU generator for the permutations; they are drawn independently of
        ``batch_size`` and of the other rows' progress.
    antithetic : bool, default=True
        Draw permutations in pairs: a permutation and its reverse. A pair
        counts as one draw for the standard error (its two marginal
        contributions are averaged first).
    tol : float, optional
        Draw in rounds (``FIRST_ROUND`` draws, then doubling each row's
        draws) and stop a row once the standard error of every one of its
        groups is at most ``tol``, or at ``n_samples``.
    batch_size : int
        Most rows per call of ``f``.
    show_progress : bool, default=False
        Show a tqdm bar over the chunks.

    Returns
    -------
    values : Tensor of shape ``[n, g]``, float64
        Estimated Shapley values; each row sums to ``fx - fb`` (efficiency
        holds for every permutation, so up to float rounding).
    std : Tensor of shape ``[n, g]``, float64
        Standard errors: the standard deviation of the draws over the
        square root of their number; NaN for a row with a single draw.
    n_permutations : Tensor of shape ``[n]``, long
        Permutations used per row.

    Notes
    -----
    Cost: ``P * (g - 1) * B`` model rows for a row that uses ``P``
    permutations (``n * P * (g - 1) * B`` in all without ``tol``).
    """
    device = X.device
    n = X.shape[0]
    g = n_groups(groups)
    groups = groups.to(device)
    fx = fx.to(device, torch.float64)
    fb = fb.to(device, torch.float64)
    per_draw = 2 if antithetic else 1
    cap = -(-n_samples // per_draw)  # draws per row at most

    count = torch.zeros(n, dtype=torch.long, device=device)
    mean = torch.zeros(n, g, dtype=torch.float64, device=device)
    m2 = torch.zeros(n, g, dtype=torch.float64, device=device)
    active = torch.arange(n, device=device)
    done = 0  # draws every still-active row has had
    while done < cap and active.numel():
        size = cap if tol is None else min(cap - done, max(FIRST_ROUND, done))
        # drawn for every row, so that a row's permutations do not depend on
        # which other rows are still active
        rank = _draw_ranks(n, size, g, antithetic, generator).to(device)[active]
        draws = _marginals(
            f, X, baseline, groups, fx, fb, active, rank, per_draw,
            batch_size=batch_size, show_progress=show_progress,
        )  # fmt: skip
        _merge(count, mean, m2, active, draws)
        done += size
        if tol is not None:
            se = _standard_error(count[active], m2[active])
            precise = (se <= tol).all(-1)
            active = active[~precise]
    return mean, _standard_error(count, m2), count * per_draw


def _draw_ranks(
    n: int, draws: int, g: int, antithetic: bool, generator: torch.Generator
) -> torch.Tensor:
    """Rank of each group in each permutation: ``[n, draws * per_draw, g]``."""
    u = torch.rand(n, draws, g, generator=generator)
    rank = u.argsort(-1).argsort(-1)
    if antithetic:  # the reversed permutation: rank g-1-r
        rank = torch.stack([rank, g - 1 - rank], 2).reshape(n, 2 * draws, g)
    dtype = torch.int16 if g < 2**15 else torch.int32
    return rank.to(dtype)


def _marginals(f, X, baseline, groups, fx, fb, active, rank, per_draw, **kwargs):
    """Marginal contributions per draw ``[n_active, draws, g]``, float64."""
    na, Q, g = rank.shape
    B = baseline.shape[0]
    inner = g - 1

    def build(start: int, stop: int):
        i, q, t, b = split_index(start, stop, (na, Q, inner, B), X.device)
        # state t + 1: the groups of rank <= t come from x
        mask = to_columns(rank[i, q] <= t[:, None], groups)
        r = active[i]
        return torch.where(mask, X[r], baseline[b]), r

    n_total = na * Q * inner * B
    if n_total:
        values = evaluate(f, build, n_total, desc="ShapleyValueSampling", **kwargs)
        values = values.to(torch.float64).reshape(na, Q, inner, B).mean(-1)
    else:
        values = fx.new_zeros(na, Q, 0)
    states = torch.cat(
        [
            fb[active, None, None].expand(na, Q, 1),
            values,
            fx[active, None, None].expand(na, Q, 1),
        ],
        -1,
    )
    by_position = states.diff(dim=-1)  # [na, Q, g]: group at position t
    by_group = by_position.gather(-1, rank.long())
    return by_group.reshape(na, Q // per_draw, per_draw, g).mean(2)


def _merge(count, mean, m2, active, draws) -> None:
    """Fold a round's draws into the running count, mean and sum of squares."""
    k = draws.shape[1]
    n_old = count[active].to(torch.float64)[:, None]
    mean_k = draws.mean(1)
    m2_k = ((draws - mean_k[:, None]) ** 2).sum(1)
    delta = mean_k - mean[active]
    total = n_old + k
    mean[active] = mean[active] + delta * (k / total)
    m2[active] = m2[active] + m2_k + delta**2 * (n_old * k / total)
    count[active] += k


def _standard_error(count: torch.Tensor, m2: torch.Tensor) -> torch.Tensor:
    c = count.to(torch.float64)[:, None]
    se = (m2 / ((c - 1) * c)).sqrt()
    return torch.where(c > 1, se, torch.nan)


def shapley_exact(
    f: ScalarFunction,
    X: torch.Tensor,
    baseline: torch.Tensor,
    *,
    groups: torch.Tensor,
    fx: torch.Tensor,
    fb: torch.Tensor,
    batch_size: int,
    show_progress: bool = False,
) -> torch.Tensor:
    """Exact Shapley values from all ``2^g`` coalitions of the groups.

    Every coalition ``S`` (bit ``j`` of the integer ``S`` set when group
    ``j`` is in it) is evaluated once per (row, background row), except the
    empty and the full coalitions, which are ``fb`` and ``fx``. The values
    are averaged over the background rows in float64 and the Shapley weights
    are applied as one ``[n, 2^g] @ [2^g, g]`` matrix product in float64,
    whatever the model's dtype.

    Parameters
    ----------
    f : callable
        ``f(Z, rows) -> Tensor[m]``, see :mod:`skattr.core.forward`.
    X : Tensor of shape ``[n, p]``
        Rows to explain.
    baseline : Tensor of shape ``[B, p]``
        Background rows; the result is averaged over them.
    groups : Tensor of shape ``[p]``
        Group index of each column.
    fx, fb : Tensor of shape ``[n]``
        ``f`` at the rows and at the baseline (averaged over background rows).
    batch_size : int
        Most rows per call of ``f``.
    show_progress : bool, default=False
        Show a tqdm bar over the chunks.

    Returns
    -------
    Tensor of shape ``[n, g]``, float64

    Notes
    -----
    Cost: ``n * (2^g - 2) * B`` model rows; memory ``n * 2^g`` values of the
    model's dtype plus the same in float64, and ``2^g * g`` float64 weights.
    """
    device = X.device
    n = X.shape[0]
    B = baseline.shape[0]
    g = n_groups(groups)
    groups = groups.to(device)
    n_inner = 2**g - 2
    bits = 2 ** torch.arange(g, device=device)

    def build(start: int, stop: int):
        r, c, b = split_index(start, stop, (n, n_inner, B), device)
        mask = to_columns(((c[:, None] + 1) & bits) != 0, groups)
        return torch.where(mask, X[r], baseline[b]), r

    if n_inner:
        values = evaluate(
            f,
            build,
            n * n_inner * B,
            batch_size=batch_size,
            show_progress=show_progress,
            desc="ShapleyValues",
        )
        values = values.to(torch.float64).reshape(n, n_inner, B).mean(-1)
    else:
        values = torch.zeros(n, 0, dtype=torch.float64, device=device)
    fx = fx.to(device, torch.float64)[:, None]
    fb = fb.to(device, torch.float64)[:, None]
    coalition_values = torch.cat([fb, values, fx], 1)  # [n, 2^g]
    return coalition_values @ shapley_weights(g, device)


def shapley_weights(g: int, device: torch.device | None = None) -> torch.Tensor:
    """The ``[2^g, g]`` float64 matrix taking coalition values to Shapley values.

    Entry ``(S, j)`` is ``w(|S| - 1)`` when group ``j`` is in ``S`` and
    ``-w(|S|)`` when it is not, with ``w(s) = s! (g - s - 1)! / g!``.

    Examples
    --------
    >>> shapley_weights(2).tolist()
    [[-0.5, -0.5], [0.5, -0.5], [-0.5, 0.5], [0.5, 0.5]]
    """
    s = torch.arange(g, dtype=torch.float64)
    w = torch.exp(torch.lgamma(s + 1) + torch.lgamma(g - s) - math.lgamma(g + 1))
    w = w.to(device)
    bits = 2 ** torch.arange(g, device=device)
    member = (torch.arange(2**g, device=device)[:, None] & bits) != 0
    size = member.sum(1, keepdim=True)
    inside = w[(size - 1).clamp(min=0)]
    outside = w[size.clamp(max=g - 1)]
    return torch.where(member, inside, -outside)
