"""Feature permutation: shuffle one group's columns across the rows of a batch."""

from __future__ import annotations

import torch

from skattr.core.forward import evaluate, evaluate_rows, split_index
from skattr.core.groups import n_groups
from skattr.core.incremental import head_row_outputs, permuted_values


def random_permutations(
    n: int,
    count: int,
    *,
    generator: torch.Generator,
    avoid_identity: bool = False,
) -> torch.Tensor:
    """``count`` independent uniform permutations of ``0..n-1``.

    Parameters
    ----------
    n : int
        Length of each permutation (the number of rows).
    count : int
        Number of permutations.
    generator : torch.Generator
        Generator of the draw, which happens on its device and depends on
        nothing else.
    avoid_identity : bool, default=False
        Redraw any permutation that leaves every row in place, as Captum's
        ``FeaturePermutation`` does (only likely for a handful of rows).
        Needs ``n >= 2``.

    Returns
    -------
    Tensor of shape ``[count, n]``, dtype long, on the generator's device

    Examples
    --------
    >>> g = torch.Generator().manual_seed(0)
    >>> perms = random_permutations(4, 3, generator=g)
    >>> perms.shape, sorted(perms[0].tolist())
    (torch.Size([3, 4]), [0, 1, 2, 3])
    """
    device = generator.device
    perms = torch.rand(count, n, generator=generator, device=device).argsort(dim=1)
    if avoid_identity and n >= 2:
        ident = torch.arange(n, device=device)
        stuck = (perms == ident).all(dim=1)
        while bool(stuck.any()):  # rounds of redraws, not a loop over rows
            k = int(stuck.sum())
            redraw = torch.rand(k, n, generator=generator, device=device)
            perms[stuck] = redraw.argsort(dim=1)
            stuck = (perms == ident).all(dim=1)
    return perms


def permuted_outputs(
    f,
    X: torch.Tensor,
    perms: torch.Tensor,
    *,
    groups: torch.Tensor,
    batch_size: int,
    targets: torch.Tensor | None = None,
) -> torch.Tensor:
    """``f`` on every copy of ``X`` with one group's columns shuffled across rows.

    The virtual input has ``g * R * n`` rows in C order ``(group, repeat,
    row)``: row ``i`` of copy ``(j, r)`` is ``X[i]`` with the columns of group
    ``j`` taken from row ``perms[j, r, i]`` (the same row for every column of
    the group). It is built chunk by chunk and evaluated in calls of at most
    ``batch_size`` rows.

    Parameters
    ----------
    f : callable
        ``f(Z, rows) -> Tensor[m, k]``, see :mod:`skattr.core.coalitions`;
        ``rows`` is the row of ``X`` each input stands for.
    X : Tensor of shape ``[n, p]``
        The batch.
    perms : Tensor of shape ``[g, R, n]``, long
        Row permutation of each group and repeat.
    groups : Tensor of shape ``[p]``
        Group index of each column.
    batch_size : int
        Most rows per call of ``f``.
    targets : Tensor of shape ``[n, t]``, optional
        Keep only these output columns of each row (picked chunk by chunk).

    Returns
    -------
    Tensor of shape ``[g, R, n, k]`` (``[g, R, n, t]`` with ``targets``)
        The values of ``f``, in its dtype.
    """
    n, _ = X.shape
    g = n_groups(groups)
    if perms.shape[0] != g or perms.shape[2] != n:
        raise ValueError(
            f"perms must have shape [{g}, n_repeats, {n}]; got {tuple(perms.shape)}."
        )
    R = perms.shape[1]
    perms = perms.to(X.device)
    values = permuted_values(f, X, perms, groups.to(X.device), batch_size, targets)
    if values is not None:  # a model with an affine head: pre-activation updates
        return values
    columns = _group_columns(groups.to(X.device))  # [g, s]

    def build(start: int, stop: int):
        j, r, i = split_index(start, stop, (g, R, n), X.device)
        source = perms[j, r, i]
        # copy the rows, then overwrite only the permuted group's columns
        Z = X[i]
        cols = columns[j]
        Z[torch.arange(stop - start, device=X.device)[:, None], cols] = X[
            source[:, None], cols
        ]
        return Z, i

    def value(Z: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        out = f(Z, rows)
        return out if targets is None else out.gather(1, targets[rows])

    out = evaluate(value, build, g * R * n, batch_size=batch_size)
    return out.reshape(g, R, n, *out.shape[1:])


def row_outputs(f, X: torch.Tensor, *, batch_size: int) -> torch.Tensor:
    """Every output at the rows themselves ``[n, k]``, computed the way the
    permuted copies are (from the first layer's pre-activations where the
    model has an affine head), so that shuffling a group the model ignores
    changes no output, to the bit."""
    outputs = head_row_outputs(f, X, batch_size)
    return evaluate_rows(f, X, batch_size=batch_size) if outputs is None else outputs


def _group_columns(groups: torch.Tensor) -> torch.Tensor:
    """The columns of each group as a ``[g, s]`` table, ``s`` the largest size.

    Short rows are padded with the group's first column: writing a column
    twice with the same value is harmless.

    Examples
    --------
    >>> _group_columns(torch.tensor([0, 1, 0, 2, 0])).tolist()
    [[0, 2, 4], [1, 1, 1], [3, 3, 3]]
    """
    g = n_groups(groups)
    order = torch.argsort(groups, stable=True)  # columns sorted by group
    sizes = torch.bincount(groups, minlength=g)
    starts = torch.cumsum(sizes, 0) - sizes
    sorted_groups = groups[order]
    position = (
        torch.arange(groups.numel(), device=groups.device) - starts[sorted_groups]
    )
    table = order[starts][:, None].repeat(1, int(sizes.max()))
    table[sorted_groups, position] = order
    return table


def feature_permutation(
    f,
    X: torch.Tensor,
    perms: torch.Tensor,
    *,
    groups: torch.Tensor,
    targets,
    batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Local permutation attribution: f(x) minus f(x with the group permuted).

    Parameters
    ----------
    f : callable
        ``f(Z, rows) -> Tensor[m, k]``, every model output.
    X : Tensor of shape ``[n, p]``
        The batch; rows lend each other their values.
    perms : Tensor of shape ``[g, R, n]``, long
        Row permutation of each group and repeat (see
        :func:`random_permutations`).
    groups : Tensor of shape ``[p]``
        Group index of each column.
    targets : Tensor of shape ``[n, t]`` or callable
        Output columns explained per row, or ``targets(fx)`` that picks them
        from every output at the rows.
    batch_size : int
        Most rows per call of ``f``.

    Returns
    -------
    mean : Tensor of shape ``[n, g, t]``, float64
        The attribution averaged over the ``R`` repeats.
    std : Tensor of shape ``[n, g, t]``, float64
        Its standard deviation over the repeats (``ddof=0``).
    targets : Tensor of shape ``[n, t]``, long
    outputs : Tensor of shape ``[n, k]``
        Every output at the rows.

    Notes
    -----
    Cost: ``n + n * g * R`` model rows.
    """
    outputs = row_outputs(f, X, batch_size=batch_size)
    if callable(targets):
        targets = targets(outputs)
    targets = targets.to(X.device)
    fx = outputs.gather(1, targets).double()  # [n, t]
    fz = permuted_outputs(
        f, X, perms, groups=groups, batch_size=batch_size, targets=targets
    )
    diff = fx[None, None] - fz.double()  # [g, R, n, t]
    mean = diff.mean(1).permute(1, 0, 2)
    std = diff.std(1, correction=0).permute(1, 0, 2)
    return mean, std, targets, outputs
