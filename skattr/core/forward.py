"""Chunked evaluation of the model over perturbation batches.

Perturbation methods describe their model inputs as a virtual tensor of
``n_total`` rows that is never materialised whole: ``build(start, stop)``
returns rows ``start:stop`` of it, together with the index of the explained
row that each perturbed row belongs to (so that ``f`` can note, per row,
outputs that are not finite). :func:`evaluate` walks that tensor in chunks
of at most ``batch_size`` rows, one forward call per chunk.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

#: ``f(Z, rows) -> Tensor[m, k]``: every model output for the ``m`` inputs
#: ``Z`` of shape ``[m, p]``; ``rows[i]`` is the explained row input ``i``
#: stands for (``-1``: a background row, for no explained row). The caller's
#: ``f`` is where model evaluations are counted and watched for non-finite
#: outputs; the core only says which row each input belongs to.
ModelFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

#: ``build(start, stop) -> (Z, rows)``: rows ``start:stop`` of the virtual
#: perturbation tensor and the explained row each one belongs to.
Builder = Callable[[int, int], tuple[torch.Tensor, torch.Tensor]]


def evaluate(
    f: ModelFunction,
    build: Builder,
    n_total: int,
    *,
    batch_size: int,
    mean_over: int = 1,
) -> torch.Tensor:
    """Evaluate ``f`` on ``n_total`` perturbed rows, ``batch_size`` at a time.

    Parameters
    ----------
    f : callable
        ``f(Z, rows) -> Tensor[m, ...]``: the model, or a function of it.
    build : callable
        ``build(start, stop) -> (Z, rows)`` with ``Z`` of shape
        ``[stop - start, p]`` and ``rows`` of shape ``[stop - start]``.
    n_total : int
        Number of perturbed rows.
    batch_size : int
        Most rows in one call of ``f``.
    mean_over : int, default=1
        Average every ``mean_over`` consecutive values (in float64) as each
        chunk comes back, so that only the means are kept: for the values of
        one input with each of ``B`` background rows. ``batch_size`` and
        ``n_total`` must be multiples of it.

    Returns
    -------
    Tensor of shape ``[n_total // mean_over, ...]``
        The values of ``f``, in its dtype (float64 with ``mean_over > 1``).
    """
    if batch_size % mean_over or n_total % mean_over:
        raise ValueError("batch_size and n_total must be multiples of mean_over.")
    out: torch.Tensor | None = None
    with torch.no_grad():
        for start in range(0, n_total, batch_size):
            stop = min(start + batch_size, n_total)
            Z, rows = build(start, stop)
            values = f(Z, rows)
            if mean_over > 1:
                values = values.double().reshape(-1, mean_over, *values.shape[1:])
                values = values.mean(1)
            if out is None:
                out = torch.empty(
                    (n_total // mean_over, *values.shape[1:]),
                    dtype=values.dtype,
                    device=values.device,
                )
            out[start // mean_over : stop // mean_over] = values
            # the chunk's tensors go before the next is built, so that the
            # allocator can hand their memory to it
            del Z, rows, values
    if out is None:  # n_total == 0
        return torch.empty(0)
    return out


def shared_columns(targets: torch.Tensor) -> torch.Tensor | None:
    """The output columns ``[t]`` every row keeps, when all rows of
    ``targets`` ``[n, t]`` keep the same ones (a fixed target, every output),
    else ``None``.

    Shared columns are picked from a chunk's outputs by one index
    (:func:`pick`), with no per-input index to build.

    Examples
    --------
    >>> shared_columns(torch.tensor([[1], [1]])).tolist()
    [1]
    >>> shared_columns(torch.tensor([[1], [0]])) is None
    True
    """
    if not targets.shape[0] or not bool((targets == targets[:1]).all()):
        return None
    return targets[0]


def pick(
    out: torch.Tensor, shared: torch.Tensor | None, index: torch.Tensor | None
) -> torch.Tensor:
    """Each input's target outputs ``[m, t]``, float64, as a copy of ``out``.

    ``shared``: the columns every input keeps (:func:`shared_columns`), else
    ``index`` ``[m, t]``: each input's own.
    """
    chosen = out[:, shared] if shared is not None else out.gather(1, index)
    return chosen.double()


def evaluate_rows(
    f: ModelFunction,
    X: torch.Tensor,
    *,
    batch_size: int,
) -> torch.Tensor:
    """Evaluate ``f`` on the rows of ``X`` themselves (row ``i`` explains ``i``)."""
    rows = torch.arange(X.shape[0], device=X.device)
    return evaluate(
        f,
        lambda start, stop: (X[start:stop], rows[start:stop]),
        X.shape[0],
        batch_size=batch_size,
    )


def split_index(
    start: int, stop: int, sizes: tuple[int, ...], device: torch.device
) -> tuple[torch.Tensor, ...]:
    """Unravel flat indices ``start:stop`` of a C-ordered grid of ``sizes``.

    Builders use it to turn a chunk of the virtual perturbation tensor into
    the (row, perturbation, ...) coordinates of each of its rows.

    Examples
    --------
    >>> import torch
    >>> r, j = split_index(2, 6, (3, 2), torch.device("cpu"))
    >>> r.tolist(), j.tolist()
    ([1, 1, 2, 2], [0, 1, 0, 1])
    """
    # by division, not torch.unravel_index, whose first call imports torch.fx
    # and sympy (about 40 MiB and a third of a second)
    flat = torch.arange(start, stop, device=device)
    out = []
    for size in reversed(sizes[1:]):
        out.append(flat % size)
        flat = flat // size
    out.append(flat)
    return tuple(reversed(out))
