"""Feature ablation: replace one group at a time by the baseline."""

from __future__ import annotations

import torch

from skattr.core.forward import ScalarFunction, evaluate, split_index
from skattr.core.groups import n_groups


def feature_ablation(
    f: ScalarFunction,
    X: torch.Tensor,
    baseline: torch.Tensor,
    *,
    groups: torch.Tensor,
    fx: torch.Tensor,
    batch_size: int,
) -> torch.Tensor:
    """Attribution of each group: f(x) minus f(x with the group ablated).

    Every (row, group, background row) triple is one perturbed input, built
    on the fly chunk by chunk: ``n * g * B`` model rows in all, evaluated in
    chunks of ``batch_size``.

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
        ``f`` at the rows themselves.
    batch_size : int
        Most rows per call of ``f``.

    Returns
    -------
    Tensor of shape ``[n, g]``, float64
    """
    n, _ = X.shape
    B = baseline.shape[0]
    g = n_groups(groups)
    groups = groups.to(X.device)

    def build(start: int, stop: int):
        r, j, b = split_index(start, stop, (n, g, B), X.device)
        Z = torch.where(groups[None, :] == j[:, None], baseline[b], X[r])
        return Z, r

    fz = evaluate(
        f,
        build,
        n * g * B,
        batch_size=batch_size,
    )
    fz = fz.double().reshape(n, g, B).mean(-1)
    return fx.double()[:, None] - fz
