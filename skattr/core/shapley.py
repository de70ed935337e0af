"""Shapley values: permutation sampling and the exact subset formula.

Both routines attribute ``f(x) - f(baseline)`` to the ``g`` feature groups.
The value of a coalition ``S`` of groups for row ``x`` and background row
``b`` is ``v(S) = f(x_S, b_rest)``: the groups in ``S`` take their values
from ``x``, the others from ``b``. With several background rows the
(interventional) Shapley values are averaged over them, which is the same as
averaging ``v(S)`` over them first, because the Shapley value is linear in
``v``.

Marginal contributions are always differences of two model outputs
computed the same way (inside the chunked evaluation), so a group the model
ignores gets exactly 0, not a rounding residue: the empty and the full
coalition are evaluated once per (row, background row) with the others,
rather than taken from a separate forward call whose rounding may differ
with the batch shape.
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
    n_samples: int,
    generator: torch.Generator,
    antithetic: bool = True,
    tol: float | None = None,
    batch_size: int,
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
    n_samples : int
        Permutations per row; rounded up to an even number when
        ``antithetic``. The cap when ``tol`` is set.
    generator : torch.Generator
        Generator of the permutations (on the device of ``X``); they are drawn
        independently of
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

    Returns
    -------
    values : Tensor of shape ``[n, g]``, float64
        Estimated Shapley values; each row sums to ``f(x) - f(baseline)``
        (efficiency holds for every permutation, so up to float rounding).
    std : Tensor of shape ``[n, g]``, float64
        Standard errors: the standard deviation of the draws over the
        square root of their number; NaN for a row with a single draw.
    n_permutations : Tensor of shape ``[n]``, long
        Permutations used per row.

    Notes
    -----
    Cost: ``(2 + P * (g - 1)) * B`` model rows for a row that uses ``P``
    permutations: the all-baseline and all-``x`` states once per (row,
    background row), as they are the same for every permutation, and the
    ``g - 1`` inner states of every permutation.
    """
    device = X.device
    n = X.shape[0]
    g = n_groups(groups)
    groups = groups.to(device)
    fb, fx = _end_states(f, X, baseline, batch_size)
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
            batch_size=batch_size,
        )  # fmt: skip
        _merge(count, mean, m2, active, draws)
        done += size
        if tol is not None:
            se = _standard_error(count[active], m2[active])
            precise = (se <= tol).all(-1)
            active = active[~precise]
    return mean, _standard_error(count, m2), count * per_draw


def _end_states(f, X, baseline, batch_size):
    """``f`` at the baseline and at ``x`` per row, averaged over background rows."""
    n, B = X.shape[0], baseline.shape[0]

    def build(start: int, stop: int):
        r, e, b = split_index(start, stop, (n, 2, B), X.device)
        return torch.where(e[:, None] == 1, X[r], baseline[b]), r

    values = evaluate(
        f,
        build,
        n * 2 * B,
        batch_size=batch_size,
    )
    values = values.to(torch.float64).reshape(n, 2, B).mean(-1)
    return values[:, 0], values[:, 1]


def _draw_ranks(
    n: int, draws: int, g: int, antithetic: bool, generator: torch.Generator
) -> torch.Tensor:
    """Rank of each group in each permutation: ``[n, draws * per_draw, g]``."""
    u = torch.rand(n, draws, g, generator=generator, device=generator.device)
    perm = u.argsort(-1)
    order = torch.arange(g, device=perm.device).expand_as(perm)
    rank = torch.empty_like(perm).scatter_(-1, perm, order)
    if antithetic:  # the reversed permutation: rank g-1-r
        rank = torch.stack([rank, g - 1 - rank], 2).reshape(n, 2 * draws, g)
    dtype = torch.int16 if g < 2**15 else torch.int32
    return rank.to(dtype)


def _marginals(f, X, baseline, groups, fx, fb, active, rank, per_draw, **kwargs):
    """Marginal contributions per draw ``[n_active, draws, g]``, float64."""
    na, Q, g = rank.shape
    B, p = baseline.shape
    inner = g - 1
    per_perm = inner * B  # model rows of one permutation
    # rank of each column in each permutation, as X's dtype for the weights
    col_rank = to_columns(rank, groups).reshape(na * Q, p).to(X.dtype)
    rows = active.repeat_interleave(Q)  # explained row of each permutation
    # state t (1..g-1) takes the columns of rank < t from x: the weight
    # clamp(t - rank, 0, 1) is exactly 1 there and 0 elsewhere, and lerp
    # returns its end points exactly, so inputs are x or b bit for bit
    steps = torch.arange(1, inner + 1, device=X.device, dtype=X.dtype)

    def build_whole(start: int, stop: int):
        # whole permutations: every state by broadcasting, no per-row gathers
        a, z = start // per_perm, stop // per_perm
        w = (steps[None, :, None, None] - col_rank[a:z, None, None, :]).clamp_(0, 1)
        Z = torch.lerp(baseline[None, None], X[rows[a:z], None, None, :], w)
        return Z.reshape(-1, p), rows[a:z, None].expand(z - a, per_perm).reshape(-1)

    def build(start: int, stop: int):
        iq, t, b = split_index(start, stop, (na * Q, inner, B), X.device)
        w = (steps[t, None] - col_rank[iq]).clamp_(0, 1)
        return torch.lerp(baseline[b], X[rows[iq]], w), rows[iq]

    batch_size = kwargs.pop("batch_size")
    if per_perm <= batch_size:  # chunks of whole permutations, at most batch_size
        build, batch_size = build_whole, batch_size // per_perm * per_perm
    kwargs["batch_size"] = batch_size
    n_total = na * Q * inner * B
    if n_total:
        values = evaluate(f, build, n_total, **kwargs)
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
    batch_size: int,
) -> torch.Tensor:
    """Exact Shapley values from all ``2^g`` coalitions of the groups.

    Every coalition ``S`` (bit ``j`` of the integer ``S`` set when group
    ``j`` is in it) is evaluated once per (row, background row) and averaged
    over the background rows in float64, whatever the model's dtype. For
    each group ``j`` the ``2^(g-1)`` marginal contributions
    ``v(S + j) - v(S)`` are gathered as one tensor ``[n, g, 2^(g-1)]`` and
    the Shapley weights, which depend only on ``|S|``, are applied to it as
    one matrix product in float64 (in chunks of rows, to bound memory).

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
    batch_size : int
        Most rows per call of ``f``.

    Returns
    -------
    Tensor of shape ``[n, g]``, float64

    Notes
    -----
    Cost: ``n * 2^g * B`` model rows. Memory: ``n * 2^g`` values of the
    model's dtype and as many float64, plus ``g * 2^g`` long indices.
    """
    device = X.device
    n = X.shape[0]
    B = baseline.shape[0]
    g = n_groups(groups)
    groups = groups.to(device)
    bits = 2 ** torch.arange(g, device=device)

    def build(start: int, stop: int):
        r, S, b = split_index(start, stop, (n, 2**g, B), device)
        mask = to_columns((S[:, None] & bits) != 0, groups)
        return torch.where(mask, X[r], baseline[b]), r

    per_row = 2**g * B
    if per_row <= batch_size:  # chunks of whole rows: every coalition at once
        coalitions = (torch.arange(2**g, device=device)[:, None] & bits) != 0
        weight = to_columns(coalitions, groups).to(X.dtype)  # exactly 0 or 1
        rows = torch.arange(n, device=device)

        def build(start: int, stop: int):  # noqa: F811
            a, z = start // per_row, stop // per_row
            Z = torch.lerp(
                baseline[None, None], X[a:z, None, None, :], weight[None, :, None, :]
            )
            p = X.shape[1]
            return Z.reshape(-1, p), rows[a:z, None].expand(z - a, per_row).reshape(-1)

        batch_size = batch_size // per_row * per_row

    values = evaluate(
        f,
        build,
        n * 2**g * B,
        batch_size=batch_size,
    )
    values = values.to(torch.float64).reshape(n, 2**g, B).mean(-1)
    without, weights = _coalitions_without(g, device)
    with_j = without | bits[:, None]
    out = values.new_empty(n, g)
    step = max(1, _CHUNK_ELEMENTS // (g * 2 ** (g - 1)))
    for start in range(0, n, step):  # chunks of rows bound the memory
        v = values[start : start + step]
        marginal = v[:, with_j] - v[:, without]  # [rows, g, 2^(g-1)]
        out[start : start + step] = marginal @ weights
    return out


#: most float64 marginal contributions held at once by :func:`shapley_exact`
_CHUNK_ELEMENTS = 2**24


def _coalitions_without(g: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Coalitions without each group, ``[g, 2^(g-1)]``, and their weights.

    Row ``j`` lists the coalitions ``S`` not containing group ``j``, in the
    order of the ``g - 1`` other groups' bits, so that the weight of the
    ``k``-th one, ``w(|S|)``, is the same for every ``j``: a vector
    ``[2^(g-1)]`` of float64 with ``w(s) = s! (g - s - 1)! / g!``.

    Examples
    --------
    >>> without, weights = _coalitions_without(2, "cpu")
    >>> without.tolist(), weights.tolist()
    ([[0, 2], [0, 1]], [0.5, 0.5])
    """
    k = torch.arange(2 ** (g - 1), device=device)
    j = torch.arange(g, device=device)[:, None]
    low = k & ((1 << j) - 1)  # bits below j stay, the others move up one
    without = ((k - low) << 1) | low
    size = ((k[:, None] >> torch.arange(g - 1, device=device)) & 1).sum(1)
    return without, shapley_weight(g, size.to(torch.float64))


def shapley_weight(g: int, size: torch.Tensor) -> torch.Tensor:
    """``s! (g - s - 1)! / g!``: the weight of a coalition of size ``s``.

    Examples
    --------
    >>> [round(w, 12) for w in shapley_weight(3, torch.tensor([0.0, 1.0, 2.0])).tolist()]
    [0.333333333333, 0.166666666667, 0.333333333333]
    """
    size = size.to(torch.float64)
    return torch.exp(
        torch.lgamma(size + 1) + torch.lgamma(g - size) - math.lgamma(g + 1)
    )
