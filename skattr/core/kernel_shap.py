"""Kernel SHAP for every row at once: a paired, stratified design and one regression.

The coalitions come from a :class:`~skattr.core.designs.PairedDesign`
(shared by every row: complement pairs, strata by size enumerated where the
budget covers them, the rest drawn without replacement), their values from
:func:`~skattr.core.coalitions.coalition_values`, and the Shapley values
from :func:`~skattr.core.regression.odd_regression` (Kernel SHAP's
regression on the pairs, by default with penalised third-order terms), with
a jackknife standard error over the drawn pairs. With ``tol`` the design
grows in rounds and each row stops once its standard errors are small
enough.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from skattr.core.coalitions import MaskTable, TargetPicker, coalition_values
from skattr.core.designs import PairedDesign
from skattr.core.forward import ModelFunction
from skattr.core.groups import n_groups
from skattr.core.regression import odd_regression
from skattr.core.shapley import every_coalition, shapley_from_table

#: how the coefficients are fitted: plain Kernel SHAP, or with third-order terms
REGRESSIONS = ("cubic", "linear")

#: drawn pairs beyond the enumerated strata in the first round when ``tol``
#: is set; every later round doubles the design
FIRST_ROUND = 8

#: draws of a design's last pairs before one that leaves values undetermined
#: is refused (:func:`grow_determined`): at most about a third of the
#: designs of ``g`` pairs are (0.34 for 8 groups, measured over 300 seeds),
#: so that 16 undetermined draws come about once in 30 million calls
REDRAWS = 16


def kernel_shap_size(g: int, n_samples: int | None) -> tuple[int, bool]:
    """Coalitions Kernel SHAP evaluates per row (at most), and whether they are all.

    ``n_samples=None`` is ``2 * g + 2048``; pairs are whole, so an odd
    number is rounded down. All ``2**g - 2`` proper coalitions are
    enumerated when they fit; a single group needs none.

    Examples
    --------
    >>> kernel_shap_size(3, None), kernel_shap_size(30, 101)
    ((6, True), (100, False))
    """
    n_samples = 2 * g + 2048 if n_samples is None else int(n_samples)
    if g == 1:
        return 0, True
    if 2**g - 2 <= n_samples:
        return 2**g - 2, True
    return n_samples - n_samples % 2, False


@dataclass(frozen=True)
class KernelShapResult:
    """What :func:`kernel_shap` returns (float64 unless said)."""

    values: torch.Tensor  #: ``[n, g, t]``
    std: torch.Tensor  #: ``[n, g, t]`` jackknife standard errors (0 when exact)
    df: torch.Tensor  #: ``[n]`` long: degrees of freedom of ``std``
    n_draws: torch.Tensor  #: ``[n]`` long: drawn (not enumerated) pairs per row
    n_coalitions: torch.Tensor  #: ``[n]`` long: coalitions evaluated per row
    exact: bool  #: every proper coalition was evaluated (for every row)
    fx: torch.Tensor  #: ``[n, t]``
    fb: torch.Tensor  #: ``[n, t]``
    targets: torch.Tensor  #: ``[n, t]`` long


def kernel_shap(
    f: ModelFunction,
    X: torch.Tensor,
    baseline: torch.Tensor,
    *,
    groups: torch.Tensor,
    targets: torch.Tensor | TargetPicker,
    n_samples: int,
    batch_size: int,
    generator: torch.Generator,
    allocation: str = "leverage",
    regression: str = "cubic",
    tol: float | None = None,
    memo: dict | None = None,
) -> KernelShapResult:
    """Kernel SHAP values of every row, efficiency exact, with standard errors.

    Parameters
    ----------
    f : callable
        ``f(Z, rows) -> Tensor[m, k]``, see :mod:`skattr.core.coalitions`.
    X : Tensor of shape ``[n, p]``
        Rows to explain.
    baseline : Tensor of shape ``[B, p]``
        Background rows; a coalition's value is the mean over them.
    groups : Tensor of shape ``[p]``
        Group index of each column.
    targets : Tensor of shape ``[n, t]`` or callable
        Output columns explained per row, or a picker from ``f(x)``.
    n_samples : int
        Coalitions per row at most (the empty and full ones are not counted;
        see :func:`kernel_shap_size`).
    batch_size : int
        Most rows per call of ``f``.
    generator : torch.Generator
        Source of the drawn pairs, on the device of ``X``.
    allocation : {"leverage", "kernel"}, default="leverage"
        How the budget is shared among the pair strata
        (:class:`~skattr.core.designs.PairedDesign`).
    regression : {"cubic", "linear"}, default="cubic"
        The regression on the pairs (:func:`~skattr.core.regression.odd_regression`).
    tol : float, optional
        Grow the design in rounds (as many pairs as strata plus
        ``FIRST_ROUND``, then doubling) and stop a row once the standard error of
        every one of its groups, at every target, is at most ``tol``, or at
        ``n_samples``.
    memo : dict, optional
        Shared by the calls on chunks of the rows of one explanation, which
        draw the same pairs: the regression's part that depends on the pairs
        alone is computed once (:func:`~skattr.core.regression.odd_regression`).

    Returns
    -------
    KernelShapResult
        Each row's values sum to ``f(x) - f(baseline)``.

    Notes
    -----
    Cost: ``(2 + s) * B`` model rows for a row that uses ``s`` coalitions
    (``s <= n_samples``), plus ``n`` when ``targets`` is a picker.
    """
    device = X.device
    n = X.shape[0]
    g = n_groups(groups)
    groups = groups.to(device)
    size, exact_all = kernel_shap_size(g, n_samples)
    design = PairedDesign(g, allocation, generator)
    cap = size // 2
    if g == 1 or (cap == 0 and not exact_all):
        cv = coalition_values(
            f, X, baseline, MaskTable(torch.zeros(0, g, dtype=torch.bool), groups=groups),
            targets=targets, batch_size=batch_size,
        )  # fmt: skip
        delta = cv.fx - cv.fb
        values = torch.zeros(n, g, delta.shape[1], dtype=torch.float64, device=device)
        if g == 1:
            values[:, 0] = delta
        else:  # no pair fits: the difference shared equally
            values[:] = (delta / g)[:, None, :]
        zeros = torch.zeros(n, dtype=torch.long, device=device)
        return KernelShapResult(
            values, torch.zeros_like(values), zeros, zeros, zeros, g == 1,
            cv.fx, cv.fb, cv.targets,
        )  # fmt: skip
    if exact_all:  # every coalition: the Shapley formula itself, exact zeros included
        table, cv = every_coalition(
            f, X, baseline, groups=groups, targets=targets, batch_size=batch_size
        )
        values = shapley_from_table(table, g)
        zeros = torch.zeros(n, dtype=torch.long, device=device)
        return KernelShapResult(
            values, torch.zeros_like(values), zeros, zeros, zeros + 2**g - 2, True,
            cv.fx, cv.fb, cv.targets,
        )  # fmt: skip
    rounds = [cap] if tol is None else _rounds(design, cap)
    active = torch.arange(n, device=device)
    active_index = active  # rows of the previous round's active set kept
    odd: torch.Tensor | None = None
    fx = fb = chosen = values = std = None
    df = torch.zeros(n, dtype=torch.long, device=device)
    draws = torch.zeros(n, dtype=torch.long, device=device)
    used = torch.zeros(n, dtype=torch.long, device=device)
    for pairs in rounds:
        if pairs >= g:  # from g pairs on, a design must determine the values
            new = grow_determined(design, pairs, refuse=pairs == rounds[-1])
        else:  # fewer pairs cannot: NaN error bars keep every row going
            new = design.grow(pairs)
        cv = coalition_values(
            f,
            X[active],
            baseline,
            MaskTable(design.coalitions(new), groups=groups),
            targets=targets if chosen is None else chosen[active],
            batch_size=batch_size,
            ends=fx is None,
            rows=active,
        )
        part = (cv.values[:, 0::2] - cv.values[:, 1::2]) / 2  # [na, new, t]
        if fx is None:  # the first round: every row is active
            fx, fb, chosen = cv.fx, cv.fb, cv.targets
            t = chosen.shape[1]
            odd = part
            values = torch.zeros(n, g, t, dtype=torch.float64, device=device)
            std = torch.zeros_like(values)
        else:
            odd = torch.cat([odd[active_index], part], 1)
        fit = fit_pairs(design, odd, (fx - fb)[active], regression, memo)
        values[active] = fit[0]
        std[active] = fit[1]
        df[active] = fit[2]
        draws[active] = int(design.sampled.sum())
        used[active] = 2 * design.n_pairs
        if tol is None or pairs == rounds[-1]:
            break
        precise = (std[active] <= tol).flatten(1).all(-1) & (
            draws[active] >= FIRST_ROUND
        )
        keep = ~precise
        active, active_index = active[keep], torch.nonzero(keep).flatten()
        if not active.numel():
            break
    return KernelShapResult(values, std, df, draws, used, False, fx, fb, chosen)


def grow_determined(design: PairedDesign, n_pairs: int, refuse: bool = True) -> slice:
    """Grow ``design`` to ``n_pairs`` pairs that determine every value; the new slice.

    The odd values of ``m`` pairs and the efficiency constraint determine
    the ``g`` values only when the pairs' signs ``2 S - 1`` and a row of ones
    have rank ``g``. A few pairs per group may not (about a third of the
    designs of ``g`` pairs for 6 to 12 groups): some groups are then never
    told apart, and the regression's values for them would be arbitrary.
    Such a design's new pairs are drawn again from the same generator (the
    earlier rounds' pairs of ``tol``, evaluated already, are kept), up to
    :data:`REDRAWS` times, before its model evaluations. With ``tol`` every
    round from ``g`` pairs on is drawn so (the rank never falls as pairs
    are added, so that a determined round keeps the later ones determined);
    a design still undetermined after the draws is refused with
    ``ValueError`` when ``refuse`` (the last round), else kept (its NaN
    error bars keep every row going). The rank is checked below ``2 g``
    pairs only, where such designs were seen: an SVD of ``m + 1`` by ``g``
    values.
    """
    before = design.snapshot()
    for attempt in range(REDRAWS):
        new = design.grow(n_pairs)
        rank = _rank(design)
        if rank is None or (not refuse and attempt == REDRAWS - 1):
            return new
        design.restore(before)
    m, g = n_pairs, design.g
    raise ValueError(
        f"{REDRAWS} draws of {m} coalition pairs ({2 * m} coalitions) left the "
        f"values of {g} features (groups) undetermined (their signs had rank "
        f"{rank} at the last, below {g}): some features were never told apart "
        f"and their values would be arbitrary. Raise n_samples (from {4 * g} "
        "on, such designs were not seen)."
    )


def _rank(design: PairedDesign) -> int | None:
    """The rank of the design's signs and a row of ones where it is below ``g``."""
    m, g = design.S.shape
    if design.exact or m >= 2 * g:
        return None
    signs = design.S.to(torch.float64) * 2 - 1
    ones = torch.ones(1, g, dtype=torch.float64, device=signs.device)
    rank = int(torch.linalg.matrix_rank(torch.cat([signs, ones])))
    return None if rank == g else rank


def _rounds(design: PairedDesign, cap: int) -> list[int]:
    """Pairs in all after each round of ``tol``: as many as there are strata
    plus ``FIRST_ROUND``, then doubling, up to ``cap``."""
    units = design.strata.units()
    first = min(cap, len(units) + FIRST_ROUND)
    out = [first]
    while out[-1] < cap:
        out.append(min(cap, 2 * out[-1]))
    return out


def fit_pairs(
    design: PairedDesign,
    odd: torch.Tensor,
    delta: torch.Tensor,
    regression: str,
    memo: dict | None = None,
    residuals: bool = False,
):
    """Values ``[n, g, t]``, standard errors, degrees of freedom and, with
    ``residuals``, the pairs' odd residuals ``[n, m, t]`` (their odd values
    minus the fit's, as fitted and with each pair left out; else ``None``)."""
    n, m, t = odd.shape
    g = design.g
    y = odd.permute(0, 2, 1).reshape(n * t, m)
    groups, fpc = variance_groups(design)
    fit = odd_regression(
        design.S,
        design.weights(),
        y,
        delta.reshape(n * t),
        cubic=regression == "cubic",
        groups=groups,
        fpc=fpc,
        memo=memo,
        residuals=residuals,
    )
    values = fit.values.reshape(n, t, g).permute(0, 2, 1)
    if fit.variance is None:  # nothing drawn: exact, or no error bar at all
        std = torch.zeros_like(values) if design.exact else values * torch.nan
    else:
        std = fit.variance.clamp(min=0).sqrt().reshape(n, t, g).permute(0, 2, 1)
        if fit.df < 1:  # drawn pairs but no spread to measure: no error bar
            std = torch.full_like(values, torch.nan)
    if not residuals:
        return values, std, fit.df, None
    residual = fit.residual.reshape(n, t, m).permute(0, 2, 1)
    loo = fit.loo.reshape(n, t, m).permute(0, 2, 1)
    return values, std, fit.df, (residual, loo)


def variance_groups(design: PairedDesign):
    """The drawn pairs in groups for the jackknife: each incomplete stratum,
    merged with the next ones until a group holds two pairs or more."""
    complete = design.complete
    all_units = design.strata.units()
    groups, sizes = [], []  # members, and (drawn, units) of each group
    members: list[torch.Tensor] = []
    drawn = units = 0
    for h, done in enumerate(complete):
        if done or design.counts[h] == 0:
            continue
        members.append(torch.nonzero(design.stratum == h).flatten())
        drawn += design.counts[h]
        units += all_units[h]
        if drawn >= 2:
            groups.append(torch.cat(members))
            sizes.append((drawn, units))
            members, drawn, units = [], 0, 0
    if members:  # a last stratum with a single pair joins the group before it
        if groups:
            groups[-1] = torch.cat([groups[-1], *members])
            d, u = sizes[-1]
            sizes[-1] = (d + drawn, u + units)
        else:
            groups.append(torch.cat(members))
            sizes.append((drawn, units))
    fpc = [1.0 - d / u for d, u in sizes]
    return groups, fpc
