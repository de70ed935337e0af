"""Shapley values: permutation sampling and the exact subset formula.

Both routines attribute ``f(x) - f(baseline)`` to the ``g`` feature groups,
from the coalition values ``v(S)`` of :mod:`skattr.core.coalitions` (with
several background rows, the interventional Shapley values averaged over
them). Marginal contributions are differences of two values computed the
same way, so a group the model ignores gets exactly 0. Both return the
values at every target column a row keeps, ``[n, g, t]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from skattr.core.coalitions import (
    MaskTable,
    PermutationStates,
    TargetPicker,
    coalition_values,
    proper_coalitions,
)
from skattr.core.forward import ModelFunction
from skattr.core.groups import n_groups

#: draws (permutations, or antithetic pairs) in the first round when ``tol``
#: is set; every later round doubles the number of draws a row has
FIRST_ROUND = 4

#: draws that share one random cyclic order in ``sampling="stratified"``
BLOCK = 3

#: how permutations are drawn
SAMPLINGS = ("stratified", "independent")


@dataclass(frozen=True)
class ShapleyResult:
    """What the Shapley routines return (float64 unless said)."""

    values: torch.Tensor  #: ``[n, g, t]`` Shapley values at each target
    fx: torch.Tensor  #: ``[n, t]`` ``f(x)``
    fb: torch.Tensor  #: ``[n, t]`` ``f(baseline)`` (mean over background rows)
    targets: torch.Tensor  #: ``[n, t]`` long
    std: torch.Tensor | None = None  #: ``[n, g, t]`` standard errors (sampling)
    n_permutations: torch.Tensor | None = None  #: ``[n]`` long (sampling)


def shapley_sampling(
    f: ModelFunction,
    X: torch.Tensor,
    baseline: torch.Tensor,
    *,
    groups: torch.Tensor,
    targets: torch.Tensor | TargetPicker,
    n_samples: int,
    generator: torch.Generator,
    antithetic: bool = True,
    sampling: str = "stratified",
    tol: float | None = None,
    batch_size: int,
) -> ShapleyResult:
    """Shapley values estimated from random permutations of the groups.

    For each row, a permutation of the ``g`` groups defines ``g + 1``
    states: state ``t`` has the first ``t`` groups of the permutation set to
    ``x`` and the others to the background row. The marginal contribution of
    the group at position ``t`` is ``v(state t+1) - v(state t)``; its mean
    over permutations estimates the Shapley value. The ``g - 1`` inner
    states of every permutation are the coalitions handed to
    :func:`~skattr.core.coalitions.coalition_values`; the empty and the full
    state are ``f(b)`` and ``f(x)``, evaluated once per (row, background
    row) in the same pass.

    Parameters
    ----------
    f : callable
        ``f(Z, rows) -> Tensor[m, k]``, see :mod:`skattr.core.coalitions`.
    X : Tensor of shape ``[n, p]``
        Rows to explain.
    baseline : Tensor of shape ``[B, p]``
        Background rows; the result is averaged over them.
    groups : Tensor of shape ``[p]``
        Group index of each column.
    targets : Tensor of shape ``[n, t]`` or callable
        Output columns explained per row, or a picker from ``f(x)``.
    n_samples : int
        Permutations per row; rounded up to an even number when
        ``antithetic``. The cap when ``tol`` is set.
    generator : torch.Generator
        Generator of the permutations (on the device of ``X``); they are drawn
        independently of ``batch_size`` and of the other rows' progress.
    antithetic : bool, default=True
        Draw permutations in pairs: a permutation and its reverse. A pair
        counts as one draw for the standard error (its two marginal
        contributions are averaged first).
    sampling : {"stratified", "independent"}, default="stratified"
        ``"stratified"``: the draws come in blocks of ``BLOCK``, the
        rotations of one random cyclic order by evenly spaced shifts, so
        that within a block each group takes evenly spread positions (a
        stratification by position; the blocks are independent). The
        standard error treats the draws as independent, which overstates it
        where the stratification pays. ``"independent"``: every permutation
        drawn at random.
    tol : float, optional
        Draw in rounds (``FIRST_ROUND`` draws, then doubling each row's
        draws) and stop a row once the standard error of every one of its
        groups, at every target, is at most ``tol``, or at ``n_samples``.
    batch_size : int
        Most rows per call of ``f``.

    Returns
    -------
    ShapleyResult
        With ``std`` (the standard deviation of the draws over the square
        root of their number; NaN for a row with a single draw) and
        ``n_permutations``. Each row's values sum to ``f(x) - f(baseline)``.

    Notes
    -----
    Cost: ``(2 + P * (g - 1)) * B`` model rows for a row that uses ``P``
    permutations (``f(x)`` and ``f(b)`` once), plus ``n`` when ``targets``
    is a picker.
    """
    device = X.device
    n = X.shape[0]
    g = n_groups(groups)
    groups = groups.to(device)
    per_draw = 2 if antithetic else 1
    cap = -(-n_samples // per_draw)  # draws per row at most
    count = torch.zeros(n, dtype=torch.long, device=device)
    active = torch.arange(n, device=device)
    done = 0  # draws every still-active row has had
    fx = fb = chosen = mean = m2 = None
    while done < cap and active.numel():
        size = cap if tol is None else min(cap - done, max(FIRST_ROUND, done))
        # drawn for every row, so that a row's permutations do not depend on
        # which other rows are still active
        rank = _draw_ranks(n, size, g, antithetic, sampling, generator).to(device)
        first = fx is None  # the first round: every row is active
        if not first:
            rank = rank[active]
        cv = coalition_values(
            f,
            X if first else X[active],
            baseline,
            PermutationStates(rank, groups=groups),
            targets=targets if chosen is None else chosen[active],
            batch_size=batch_size,
            ends=first,
            rows=active,
        )
        if first:  # nothing to merge with: the round's own mean and squares
            fx, fb, chosen = cv.fx, cv.fb, cv.targets
            draws = _marginals(cv.values, fx, fb, rank, per_draw)
            mean, m2 = _moments(draws)
            count += draws.shape[1]
        else:
            draws = _marginals(cv.values, fx[active], fb[active], rank, per_draw)
            _merge(count, mean, m2, active, draws)
        done += size
        if tol is not None:
            se = _standard_error(count[active], m2[active])
            precise = (se <= tol).flatten(1).all(-1)
            active = active[~precise]
    if fx is None:  # the loop did not run: nothing to draw
        raise ValueError("shapley_sampling needs at least one row and one permutation.")
    return ShapleyResult(
        mean, fx, fb, chosen, _standard_error(count, m2), count * per_draw
    )


def _draw_ranks(
    n: int,
    draws: int,
    g: int,
    antithetic: bool,
    sampling: str,
    generator: torch.Generator,
) -> torch.Tensor:
    """Rank of each group in each permutation: ``[n, draws * per_draw, g]``.

    ``"stratified"``: each block of ``BLOCK`` draws rotates one random
    order: group ``c`` at rank ``(r_c + shift_j) mod g`` in draw ``j``, the
    shifts evenly spaced from a random start.
    """
    device = generator.device
    blocks = -(-draws // BLOCK) if sampling == "stratified" else draws
    dtype = torch.int16 if g < 2**15 else torch.int32  # ranks < g
    # the shifted ranks, before they wrap, are below 2g
    work = torch.int16 if 2 * g <= 2**15 else torch.int32
    u = torch.rand(n, blocks, g, generator=generator, device=device)
    perm = u.argsort(-1)
    order = torch.arange(g, device=perm.device, dtype=work).expand_as(perm)
    rank = torch.empty_like(perm, dtype=work).scatter_(-1, perm, order)
    if sampling == "stratified":
        start = torch.randint(g, (n, blocks, 1), generator=generator, device=device)
        j = torch.arange(BLOCK, device=device)
        shifts = (start + (j * g // BLOCK)[None, None, :]) % g  # [n, blocks, BLOCK]
        # subtract g where rank + shift reaches g (no division)
        rank = rank[:, :, None, :] + shifts.to(work)[..., None]
        rank = rank.sub_((rank >= g).to(work) * g)
        rank = rank.reshape(n, blocks * BLOCK, g)[:, :draws]
    if antithetic:  # the reversed permutation: rank g-1-r
        rank = torch.stack([rank, g - 1 - rank], 2).reshape(n, 2 * draws, g)
    return rank.to(dtype)


def _marginals(values, fx, fb, rank, per_draw):
    """Marginal contributions per draw ``[n_active, draws, g, t]``, float64.

    ``values`` ``[na, Q * (g - 1), t]`` are the inner states of every
    permutation; with the end states they give ``g + 1`` states per
    permutation, whose differences are the contributions by position.
    """
    na, Q, g = rank.shape
    t = values.shape[-1]
    inner = values.reshape(na, Q, g - 1, t)
    states = torch.cat(
        [
            fb[:, None, None, :].expand(na, Q, 1, t),
            inner,
            fx[:, None, None, :].expand(na, Q, 1, t),
        ],
        2,
    )
    by_position = states.diff(dim=2)  # [na, Q, g, t]: group at position i
    index = rank.long()[..., None].expand(na, Q, g, t)
    by_group = by_position.gather(2, index)
    return by_group.reshape(na, Q // per_draw, per_draw, g, t).mean(2)


def _moments(draws: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A round's mean and sum of squared deviations over its draws (axis 1)."""
    mean = draws.mean(1)
    return mean, ((draws - mean[:, None]) ** 2).sum(1)


def _merge(count, mean, m2, active, draws) -> None:
    """Fold a round's draws into the running count, mean and sum of squares."""
    k = draws.shape[1]
    n_old = count[active].to(torch.float64)[:, None, None]
    mean_k, m2_k = _moments(draws)
    delta = mean_k - mean[active]
    total = n_old + k
    mean[active] = mean[active] + delta * (k / total)
    m2[active] = m2[active] + m2_k + delta**2 * (n_old * k / total)
    count[active] += k


def _standard_error(count: torch.Tensor, m2: torch.Tensor) -> torch.Tensor:
    c = count.to(torch.float64)[:, None, None]
    se = (m2 / ((c - 1) * c)).sqrt()
    return torch.where(c > 1, se, torch.nan)


def shapley_exact(
    f: ModelFunction,
    X: torch.Tensor,
    baseline: torch.Tensor,
    *,
    groups: torch.Tensor,
    targets: torch.Tensor | TargetPicker,
    batch_size: int,
) -> ShapleyResult:
    """Exact Shapley values from all ``2^g`` coalitions of the groups.

    Every proper coalition ``S`` (bit ``j`` of the integer ``S`` set when
    group ``j`` is in it) is evaluated by
    :func:`~skattr.core.coalitions.coalition_values`, the empty and the full
    one are ``f(b)`` and ``f(x)``. For each group ``j`` the ``2^(g-1)``
    marginal contributions ``v(S + j) - v(S)`` are gathered as one tensor
    and the Shapley weights, which depend only on ``|S|``, are applied to it
    as one matrix product in float64 (in chunks of rows, to bound memory).

    Parameters
    ----------
    f : callable
        ``f(Z, rows) -> Tensor[m, k]``, see :mod:`skattr.core.coalitions`.
    X : Tensor of shape ``[n, p]``
        Rows to explain.
    baseline : Tensor of shape ``[B, p]``
        Background rows; the result is averaged over them.
    groups : Tensor of shape ``[p]``
        Group index of each column.
    targets : Tensor of shape ``[n, t]`` or callable
        Output columns explained per row, or a picker from ``f(x)``.
    batch_size : int
        Most rows per call of ``f``.

    Returns
    -------
    ShapleyResult

    Notes
    -----
    Cost: ``n * 2^g * B`` model rows, plus ``n`` when ``targets`` is a
    picker. Memory: ``n * 2^g * t``
    float64 values, plus ``g * 2^g`` long indices.
    """
    g = n_groups(groups)
    table, cv = every_coalition(
        f, X, baseline, groups=groups, targets=targets, batch_size=batch_size
    )
    return ShapleyResult(shapley_from_table(table, g), cv.fx, cv.fb, cv.targets)


def every_coalition(
    f: ModelFunction,
    X: torch.Tensor,
    baseline: torch.Tensor,
    *,
    groups: torch.Tensor,
    targets: torch.Tensor | TargetPicker,
    batch_size: int,
):
    """The value of every coalition of every row: ``([n, 2^g, t], CoalitionValues)``.

    The table holds ``v(S)`` at index ``S`` (bit ``j`` for group ``j``):
    the empty coalition first (``f(b)``), the full one last (``f(x)``); the
    exact methods (Shapley values, Kernel SHAP with every coalition,
    interactions) all read it.
    """
    device = X.device
    g = n_groups(groups)
    cv = coalition_values(
        f,
        X,
        baseline,
        MaskTable(proper_coalitions(g, device), groups=groups.to(device)),
        targets=targets,
        batch_size=batch_size,
    )
    table = torch.cat([cv.fb[:, None, :], cv.values, cv.fx[:, None, :]], 1)
    return table, cv


def shapley_from_table(values: torch.Tensor, g: int) -> torch.Tensor:
    """Exact Shapley values ``[n, g, t]`` from every coalition's value.

    ``values`` ``[n, 2^g, t]`` holds ``v(S)`` at index ``S`` (bit ``j`` set
    when group ``j`` is in ``S``). For each group ``j`` the ``2^(g-1)``
    marginal contributions ``v(S + j) - v(S)`` are gathered as one tensor and
    the Shapley weights, which depend only on ``|S|``, applied as one matrix
    product in float64, in chunks of rows to bound memory. A group that
    changes no value gets exactly 0.
    """
    n, _, t = values.shape
    device = values.device
    values = values.double()
    bits = 2 ** torch.arange(g, device=device)
    without, weights = _coalitions_without(g, device)
    with_j = without | bits[:, None]
    out = values.new_empty(n, g, t)
    step = max(1, _CHUNK_ELEMENTS // (g * 2 ** (g - 1) * t))
    for start in range(0, n, step):  # chunks of rows bound the memory
        v = values[start : start + step]
        marginal = v[:, with_j] - v[:, without]  # [rows, g, 2^(g-1), t]
        out[start : start + step] = torch.einsum("rgst,s->rgt", marginal, weights)
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
