"""Feature ablation: replace one group at a time by the baseline."""

from __future__ import annotations

import torch

from skattr.core.coalitions import (
    CoalitionValues,
    MaskTable,
    ModelFunction,
    TargetPicker,
    coalition_values,
)
from skattr.core.groups import n_groups


def feature_ablation(
    f: ModelFunction,
    X: torch.Tensor,
    baseline: torch.Tensor,
    *,
    groups: torch.Tensor,
    targets: torch.Tensor | TargetPicker,
    batch_size: int,
) -> tuple[torch.Tensor, CoalitionValues]:
    """Attribution of each group: f(x) minus f(x with the group ablated).

    The coalitions are "every group but one", shared by all rows: ``g`` per
    row, each evaluated with every background row by
    :func:`~skattr.core.coalitions.coalition_values`.

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
    values : Tensor of shape ``[n, g, t]``, float64
    coalitions : CoalitionValues
        With ``f(x)``, ``f(baseline)`` and the targets.

    Notes
    -----
    Cost: ``n * (g + 2) * B`` model rows (``f(x)`` and ``f(b)`` with the
    others), plus ``n`` when ``targets`` is a picker.
    """
    g = n_groups(groups)
    groups = groups.to(X.device)
    all_but_one = ~torch.eye(g, dtype=torch.bool, device=X.device)
    cv = coalition_values(
        f,
        X,
        baseline,
        MaskTable(all_but_one, groups=groups),
        targets=targets,
        batch_size=batch_size,
    )
    return cv.fx[:, None, :] - cv.values, cv
