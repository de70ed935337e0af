"""Pairwise Shapley interaction values (SII) for every row at once.

The Shapley interaction index of the pair ``{i, j}`` (Grabisch and Roubens
1999) is the average, over the coalitions ``S`` of the other groups weighted
by ``|S|! (g - |S| - 2)! / (g - 1)!``, of the second difference

    v(S + i + j) - v(S + i) - v(S + j) + v(S).

SHAP's TreeExplainer reports it as a ``g x g`` matrix per row, the order-2
decomposition of the Shapley values: half of each pair's interaction in each
of its two off-diagonal cells and the main effect ``phi_i - sum_j SII_ij / 2``
on the diagonal, so that each matrix row sums to that group's Shapley value
and the matrix to ``f(x) - f(baseline)``. Both routines here return that
matrix, ``[n, g, g, t]``.

- :func:`interactions_exact` evaluates every coalition (as exact Shapley
  values do) and reads the interactions off the Möbius transform of the
  values: with the dividends ``m(T)`` (the inclusion-exclusion differences),
  ``SII_ij = sum_{T >= {i, j}} m(T) / (|T| - 1)`` and
  ``phi_i = sum_{T >= {i}} m(T) / |T|``; both are superset sums, so two
  butterfly passes over the ``2^g`` values of all rows give every pair.
- :func:`interactions_sampled` evaluates the paired, size-stratified design
  of Kernel SHAP (:class:`~skattr.core.designs.PairedDesign`), takes the
  Shapley values from Kernel SHAP's regression on the pairs' odd values and
  the interactions from an order-two fit of their even values, and corrects
  the latter by the stratified (Horvitz-Thompson) sum, over the design, of
  what the two fits leave (each interaction is a linear functional of the
  values). Strata the budget covers are summed exactly; the standard errors
  come from the spread within the drawn strata. With every coalition in the
  design the result is exact; below that the fits, made on the same
  coalitions, leave a small bias (measured: up to a few standard errors at
  ``n_samples = 5g``, shrinking as the budget grows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from skattr.core.coalitions import MaskTable, TargetPicker, coalition_values
from skattr.core.designs import PairedDesign
from skattr.core.forward import ModelFunction
from skattr.core.groups import n_groups
from skattr.core.kernel_shap import fit_pairs, grow_determined, variance_groups
from skattr.core.regression import even_regression, separable
from skattr.core.shapley import every_coalition, shapley_from_table


@dataclass(frozen=True)
class InteractionResult:
    """What the interaction routines return (float64 unless said)."""

    values: (
        torch.Tensor
    )  #: ``[n, g, g, t]``: SHAP's interaction matrix per row and target
    fx: torch.Tensor  #: ``[n, t]``
    fb: torch.Tensor  #: ``[n, t]``
    targets: torch.Tensor  #: ``[n, t]`` long
    std: torch.Tensor | None = None  #: ``[n, g, g, t]`` standard errors (sampled)
    df: int = 0  #: degrees of freedom of ``std``
    n_draws: int = 0  #: drawn (not enumerated) pairs of coalitions


def sii_weights(g: int, size: torch.Tensor) -> torch.Tensor:
    """``s! (g - s - 2)! / (g - 1)!``: the SII weight of a coalition of size ``s``.

    Examples
    --------
    >>> [round(w, 12) for w in sii_weights(3, torch.tensor([0.0, 1.0])).tolist()]
    [0.5, 0.5]
    """
    size = size.to(torch.float64)
    return torch.exp(
        torch.lgamma(size + 1) + torch.lgamma(g - size - 1) - math.lgamma(g)
    )


def matrix(phi: torch.Tensor, sii: torch.Tensor) -> torch.Tensor:
    """SHAP's layout ``[n, g, g, t]`` from Shapley values ``[n, g, t]`` and
    pairwise interactions ``[n, g, g, t]`` (symmetric, any diagonal)."""
    g = phi.shape[1]
    eye = torch.eye(g, dtype=torch.bool, device=phi.device)[None, :, :, None]
    half = torch.where(eye, 0.0, sii / 2)
    main = phi - half.sum(2)
    return torch.where(eye, main[:, :, None, :], half)


def _butterflies(table: torch.Tensor, g: int, *, inverse_subsets: bool) -> None:
    """In place over ``[n, 2^g, t]``: the Möbius transform (``inverse_subsets``:
    ``m(T) = sum_{S <= T} (-1)^{|T - S|} v(S)``) or the superset sum
    (``F(U) = sum_{T >= U} m(T)``), one pass per group."""
    n, size, t = table.shape
    for j in range(g):
        view = table.view(n, size // 2 ** (j + 1), 2, 2**j, t)
        if inverse_subsets:
            view[:, :, 1] -= view[:, :, 0]
        else:
            view[:, :, 0] += view[:, :, 1]


def interactions_from_table(values: torch.Tensor, g: int) -> torch.Tensor:
    """Pairwise SII ``[n, g, g, t]`` (zero diagonal) from every coalition's value.

    ``values`` ``[n, 2^g, t]`` holds ``v(S)`` at index ``S`` (bit ``j`` for
    group ``j``). The Möbius transform, then each dividend over ``|T| - 1``,
    then the superset sum, read at the codes of the pairs.
    """
    table = values.double().clone()
    device = table.device
    _butterflies(table, g, inverse_subsets=True)
    codes = torch.arange(2**g, device=device)
    size = ((codes[:, None] >> torch.arange(g, device=device)) & 1).sum(1)
    scale = torch.where(size >= 2, 1.0 / (size - 1).clamp_min(1).double(), 0.0)
    table *= scale[None, :, None]
    _butterflies(table, g, inverse_subsets=False)
    bits = 2 ** torch.arange(g, device=device)
    pair = bits[:, None] | bits[None, :]  # [g, g]; the diagonal is a single bit
    sii = table[:, pair.reshape(-1)].reshape(table.shape[0], g, g, -1)
    eye = torch.eye(g, dtype=torch.bool, device=device)[None, :, :, None]
    return torch.where(eye, 0.0, sii)


#: rows of the value table held at once by :func:`interactions_exact`
_CHUNK_ELEMENTS = 2**25


def interactions_exact(
    f: ModelFunction,
    X: torch.Tensor,
    baseline: torch.Tensor,
    *,
    groups: torch.Tensor,
    targets: torch.Tensor | TargetPicker,
    batch_size: int,
) -> InteractionResult:
    """Exact pairwise interactions from all ``2^g`` coalitions of every row.

    Notes
    -----
    Cost: ``n * 2^g * B`` model rows (those of exact Shapley values), plus
    ``n`` when ``targets`` is a picker; two butterfly passes of ``g`` steps
    over the ``[n, 2^g, t]`` values.
    """
    device = X.device
    g = n_groups(groups)
    table, cv = every_coalition(
        f, X, baseline, groups=groups, targets=targets, batch_size=batch_size
    )
    n, _, t = table.shape
    out = torch.empty(n, g, g, t, dtype=torch.float64, device=device)
    step = max(1, _CHUNK_ELEMENTS // (2**g * t))
    for start in range(0, n, step):  # chunks of rows bound the memory
        part = table[start : start + step]
        out[start : start + step] = matrix(
            shapley_from_table(part, g), interactions_from_table(part, g)
        )
    return InteractionResult(out, cv.fx, cv.fb, cv.targets)


def interactions_sampled(
    f: ModelFunction,
    X: torch.Tensor,
    baseline: torch.Tensor,
    *,
    groups: torch.Tensor,
    targets: torch.Tensor | TargetPicker,
    n_samples: int,
    batch_size: int,
    generator: torch.Generator,
) -> InteractionResult:
    """Pairwise interactions from ``n_samples`` coalitions per row, with standard errors.

    The coalitions are Kernel SHAP's paired design (shared by all rows,
    leverage shares, sizes the budget covers enumerated); the Shapley values
    come from Kernel SHAP's regression on them, and each interaction from
    its stratified sum on the residual game (see the module docstring).

    Notes
    -----
    Cost: ``n * (2 + n_samples) * B`` model rows (``n_samples`` rounded down
    to whole pairs), plus ``n`` when ``targets`` is a picker.
    """
    device = X.device
    g = n_groups(groups)
    groups = groups.to(device)
    design = PairedDesign(g, "leverage", generator)
    grow_determined(design, n_samples // 2)
    cv = coalition_values(
        f,
        X,
        baseline,
        MaskTable(design.coalitions(), groups=groups),
        targets=targets,
        batch_size=batch_size,
    )
    vS, vC = cv.values[:, 0::2], cv.values[:, 1::2]  # [n, m, t]
    n, m, t = vS.shape
    delta = cv.fx - cv.fb
    # the odd part: Kernel SHAP's fit (Shapley values; its interactions are 0)
    phi, phi_std, _, (odd_left, odd_loo) = fit_pairs(
        design, (vS - vC) / 2, delta, "cubic", residuals=True
    )
    # the even part: an order-two fit, whose interactions are its coefficients
    flat = lambda r: r.permute(0, 2, 1).reshape(n * t, m)  # noqa: E731
    even = even_regression(
        design.S,
        design.weights(),
        flat((vS + vC) / 2),
        ((cv.fx + cv.fb) / 2).reshape(-1),
    )
    even_left = even.residual.reshape(n, t, m).permute(0, 2, 1)
    even_loo = even.loo.reshape(n, t, m).permute(0, 2, 1)
    # what both fits leave, at each coalition of a pair: its interactions are
    # estimated by their stratified (Horvitz-Thompson) sum over the design
    rS, rC = even_left + odd_left, even_left - odd_left
    coef_S, coef_C, scale = _pair_coefficients(design)  # [m, g, g] each, [m]
    A = (coef_S * scale[:, None, None]).reshape(m, g * g)
    C = (coef_C * scale[:, None, None]).reshape(m, g * g)
    left = (flat(rS) @ A + flat(rC) @ C).reshape(n * t, g, g)
    sii = (even.sii + (left + left.transpose(1, 2)) / 2).reshape(n, t, g, g)
    sii = sii.permute(0, 2, 3, 1)
    eye = torch.eye(g, dtype=torch.bool, device=device)[None, :, :, None]
    sii = torch.where(eye, 0.0, sii)
    values = matrix(phi, sii)
    groups_, fpc = variance_groups(design)
    # the spread of what the fits leave, each pair left out of them (the fits
    # shrink their own residuals: their spread would understate the error)
    lS, lC = even_loo + odd_loo, even_loo - odd_loo
    var_pairs, var_rows = _ht_variance(flat(lS), flat(lC), A, C, groups_, fpc, g)
    var_pairs = var_pairs.reshape(n, t, g, g).permute(0, 2, 3, 1)
    var_rows = var_rows.reshape(n, t, g).permute(0, 2, 1)  # var of sum_j SII_ij
    std = torch.where(eye, 0.0, var_pairs.clamp_min(0).sqrt() / 2)
    diag = (phi_std**2 + var_rows.clamp_min(0) / 4).sqrt()
    std = torch.where(eye, diag[:, :, None, :], std)
    df = sum(max(int(mem.numel()) - 1, 0) for mem in groups_)
    if df < 1 or not separable(design.S):  # no spread to measure, or no split
        std = torch.full_like(std, torch.nan)
    drawn = int(design.sampled.sum())
    return InteractionResult(values, cv.fx, cv.fb, cv.targets, std, df, drawn)


def _pair_coefficients(design: PairedDesign):
    """The SII functional on each pair of the design.

    ``SII_ij = sum_T c(|T|, |T & {i, j}|) v(T)`` with ``c(t, 2) = w(t - 2)``,
    ``c(t, 1) = -w(t - 1)``, ``c(t, 0) = w(t)`` (``w`` the SII weights).
    Returns the coefficients of each pair's coalition and of its complement,
    ``[m, g, g]``, and each pair's Horvitz-Thompson factor ``N_h / c_h``
    (pairs in its stratum over pairs drawn of it, 1 when enumerated).
    """
    g = design.g
    dev = design.S.device
    S = design.S.long()
    k = S[:, :, None] + S[:, None, :]  # [m, g, g]: |T & {i, j}| of S
    t = S.sum(1)

    def c(size, inside):
        s = (size[:, None, None] - inside).to(
            torch.float64
        )  # |T| minus the pair's part
        w = sii_weights(g, s.clamp(0, g - 2))
        sign = torch.where(inside == 1, -1.0, 1.0)
        ok = (s >= 0) & (s <= g - 2)
        return torch.where(ok, sign * w, 0.0)

    off = ~torch.eye(g, dtype=torch.bool, device=dev)[None]
    coef_S = torch.where(off, c(t, k), 0.0)
    coef_C = torch.where(off, c(g - t, 2 - k), 0.0)
    units = torch.tensor(design.strata.units(), dtype=torch.float64, device=dev)
    counts = torch.tensor(design.counts, dtype=torch.float64, device=dev)
    scale = (units / counts.clamp_min(1))[design.stratum]
    return coef_S, coef_C, scale


def _ht_variance(rS, rC, A, C, groups, fpc, g):
    """Variance of the stratified sums, ``[n t, g g]``, and of their row sums ``[n t, g]``.

    Within each group of drawn strata the pairs' contributions
    ``z_u = rS_u A_u + rC_u C_u`` are a sample: the group's total varies by
    ``(1 - f) k s^2`` (``k`` pairs, ``s^2`` their sample variance).
    """
    nt = rS.shape[0]
    var = rS.new_zeros(nt, g * g)
    var_rows = rS.new_zeros(nt, g)
    for members, f in zip(groups, fpc):
        k = members.numel()
        if k < 2:
            continue
        a, c = A[members], C[members]  # [k, g g]
        s, r = rS[:, members], rC[:, members]  # [nt, k]
        total = s @ a + r @ c
        squares = (s**2) @ (a**2) + 2 * (s * r) @ (a * c) + (r**2) @ (c**2)
        var += f * k / (k - 1) * (squares - total**2 / k)
        a_row = a.reshape(k, g, g).sum(2)
        c_row = c.reshape(k, g, g).sum(2)
        total_r = s @ a_row + r @ c_row
        squares_r = (
            (s**2) @ (a_row**2) + 2 * (s * r) @ (a_row * c_row) + (r**2) @ (c_row**2)
        )
        var_rows += f * k / (k - 1) * (squares_r - total_r**2 / k)
    return var, var_rows
