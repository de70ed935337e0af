"""The coalition value v(S): the one function every perturbation method uses.

A coalition ``S`` of the ``g`` feature groups of a row ``x`` stands, for a
background row ``b``, for the model input ``x_S b_rest``: the columns of the
groups in ``S`` from ``x``, the others from ``b``. Its value is

    v(S) = mean over background rows b of f(x_S b_rest)

(the interventional definition). Feature ablation, both Shapley methods,
Kernel SHAP and LIME differ only in the coalitions they ask for and in what
they do with the values, so they all call :func:`coalition_values`: it
evaluates ``f(x) = v(all groups)`` and ``f(b)`` (whose mean is
``v(no group)``) one way for every method, then every requested coalition of
every row, in chunks of at most ``batch_size`` model rows. The model
function ``f`` returns every output column ``[m, k]``; the output columns
each row needs (its targets) are picked from each chunk, after evaluation,
so that explaining every output costs what one costs.

The coalitions are described, not materialised: a :class:`Coalitions`
object gives the column masks of any slice of them, so that the
``n * Q * (g - 1)`` states of Shapley sampling never exist at once.
:func:`coalition_values` turns those masks into model inputs and model
outputs in one place, :func:`_evaluate`; a faster evaluator (for instance
one that updates a first affine layer incrementally between neighbouring
coalitions) replaces that function alone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from skattr.core.forward import ModelFunction, evaluate, split_index

#: ``targets(fx) -> Tensor[n, t]``: the output columns explained for each row,
#: picked from every output at the rows themselves, ``fx`` ``[n, k]``.
TargetPicker = Callable[[torch.Tensor], torch.Tensor]

#: ``observe(x, z, inputs) -> Tensor[m]``: a statistic of each perturbed
#: input (LIME's similarity), from the explained rows ``x`` ``[m, p]``, the
#: coalitions as floats ``z`` ``[m, g]`` and the model inputs ``[m, p]``.
Observer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------- coalitions


class Coalitions:
    """``size`` coalitions per row, described by their masks.

    Subclasses give the group masks of any (row, coalition) pairs and the
    column masks of whole rows; :func:`coalition_values` asks for no more
    than one chunk's worth at a time.
    """

    #: coalitions per row
    size: int
    #: whether every row has the same coalitions
    shared: bool

    def group_masks(self, r: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Coalition ``j[i]`` of row ``r[i]`` over the groups, ``[m, g]`` bool."""
        raise NotImplementedError

    def column_masks(self, r: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """The same over the model's input columns, ``[m, p]`` bool."""
        return self.group_masks(r, j)[:, self.groups]

    def rows_weights(self, a: int, z: int, dtype: torch.dtype) -> torch.Tensor:
        """Every coalition of rows ``a..z-1`` over the columns, ``[z - a | 1, s, p]``.

        As exact 0/1 weights of ``dtype``, for ``torch.lerp(b, x, w)``, which
        returns its end points exactly (and is faster than ``where`` there).
        """
        raise NotImplementedError


class MaskTable(Coalitions):
    """Coalitions listed as a bool table: ``[s, g]`` shared, or ``[n, s, g]`` per row.

    Examples
    --------
    >>> table = torch.tensor([[True, False], [False, True]])
    >>> c = MaskTable(table, groups=torch.tensor([0, 0, 1]))
    >>> c.rows_weights(0, 1, torch.float32).tolist()
    [[[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]]
    """

    def __init__(self, table: torch.Tensor, *, groups: torch.Tensor):
        self.table = table.bool().to(groups.device)
        self.groups = groups
        self.shared = table.dim() == 2
        self.size = int(table.shape[-2])
        self._identity = bool(
            (groups == torch.arange(groups.numel(), device=groups.device)).all()
        )
        self._shared_weights = None

    def group_masks(self, r, j):
        return self.table[j] if self.shared else self.table[r, j]

    def column_masks(self, r, j):
        z = self.group_masks(r, j)
        return z if self._identity else z[:, self.groups]

    def rows_weights(self, a, z, dtype):
        if self.shared:
            if self._shared_weights is None or self._shared_weights.dtype != dtype:
                self._shared_weights = self.rows_mask(None)[None].to(dtype)
            return self._shared_weights
        return self.rows_mask(slice(a, z)).to(dtype)

    def rows_mask(self, rows):
        block = self.table if rows is None else self.table[rows]
        return block if self._identity else block[..., self.groups]


class PermutationStates(Coalitions):
    """The inner states of random permutations of the groups.

    ``rank[r, q, c]`` is the position of group ``c`` in permutation ``q`` of
    row ``r``. State ``t`` (``1..g-1``) of a permutation holds the groups of
    rank below ``t``; coalition ``j`` of a row is state ``j % (g - 1) + 1``
    of permutation ``j // (g - 1)``. The empty and the full coalition, the
    same for every permutation, are not among them: they are ``f(b)`` and
    ``f(x)``.
    """

    shared = False

    def __init__(self, rank: torch.Tensor, *, groups: torch.Tensor):
        n, Q, g = rank.shape
        self.rank = rank
        self.groups = groups
        self.inner = g - 1
        self.size = Q * self.inner
        #: rank of each column's group, ``[n, Q, p]``
        self.col_rank = rank[..., groups]
        self._steps = torch.arange(1, g, device=rank.device)
        self._float_rank = {}

    def group_masks(self, r, j):
        q, t = j // self.inner, j % self.inner + 1
        return self.rank[r, q] < t[:, None].to(self.rank.dtype)

    def column_masks(self, r, j):
        q, t = j // self.inner, j % self.inner + 1
        return self.col_rank[r, q] < t[:, None].to(self.rank.dtype)

    def rows_weights(self, a, z, dtype):
        # state t takes the columns of rank < t from x: clamp(t - rank, 0, 1)
        # is exactly 1 there and 0 elsewhere
        if dtype not in self._float_rank:
            self._float_rank[dtype] = self.col_rank.to(dtype)
        rank = self._float_rank[dtype][a:z, :, None, :]
        steps = self._steps.to(dtype)[None, None, :, None]
        return (steps - rank).clamp_(0, 1).reshape(z - a, self.size, -1)


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class CoalitionValues:
    """What :func:`coalition_values` returns, every value in float64."""

    values: torch.Tensor  #: ``[n, s, t]``: v of each coalition, at each target
    fx: torch.Tensor | None  #: ``[n, t]``: ``f(x)``, v(all groups)
    fb: torch.Tensor | None  #: ``[n, t]``: mean ``f(b)``, v(no group)
    targets: torch.Tensor  #: ``[n, t]`` long: the output columns kept per row
    outputs: torch.Tensor | None  #: ``[n, k]``: every output at the rows
    observed: torch.Tensor | None  #: ``[n, s]``: ``observe`` per coalition


def coalition_values(
    f: ModelFunction,
    X: torch.Tensor,
    baseline: torch.Tensor,
    coalitions: Coalitions,
    *,
    targets: torch.Tensor | TargetPicker,
    batch_size: int,
    ends: bool = True,
    rows: torch.Tensor | None = None,
    observe: Observer | None = None,
) -> CoalitionValues:
    """v(S) of every coalition of every row, at the rows' target outputs.

    Parameters
    ----------
    f : callable
        ``f(Z, rows) -> Tensor[m, k]``, every model output.
    X : Tensor of shape ``[n, p]``
        Rows to explain.
    baseline : Tensor of shape ``[B, p]``
        Background rows; a coalition's value is the mean over them.
    coalitions : Coalitions
        ``s`` coalitions per row.
    targets : Tensor of shape ``[n, t]`` or callable
        Output columns kept for each row, or ``targets(fx)`` that picks them
        from every output at the rows (needs ``ends``).
    batch_size : int
        Most model rows per call of ``f``.
    ends : bool, default=True
        Evaluate ``f(x)`` at the ``n`` rows and ``f(b)`` at the ``B``
        background rows first, in one chunked pass (``n + B`` model rows):
        ``v(all groups)`` and ``v(no group)``. ``False`` when the caller has
        them from an earlier call (a later round of sampling).
    rows : Tensor of shape ``[n]``, optional
        The explained row each row of ``X`` is (default ``0..n-1``), for ``f``.
    observe : callable, optional
        ``observe(x, z, inputs) -> Tensor[m]``, averaged over the background
        rows like the values.

    Returns
    -------
    CoalitionValues

    Notes
    -----
    Cost: ``n + B`` model rows for the ends, then ``n * s * B``.
    """
    n, p = X.shape
    B = baseline.shape[0]
    device = X.device
    own = torch.arange(n, device=device) if rows is None else rows.to(device)
    fx = fb = outputs = None
    if ends:
        both = torch.cat([X, baseline])
        labels = torch.cat([own, own.new_full((B,), -1)])
        out = evaluate(
            f,
            lambda a, z: (both[a:z], labels[a:z]),
            n + B,
            batch_size=batch_size,
        )
        outputs, background = out[:n], out[n:].double().mean(0)
    if callable(targets):
        targets = targets(outputs)
    targets = targets.to(device)
    if ends:
        fx = outputs.gather(1, targets).double()
        fb = background[targets]
    values, observed = _evaluate(
        f, X, baseline, coalitions, own, targets, batch_size, observe
    )
    return CoalitionValues(values, fx, fb, targets, outputs, observed)


def _evaluate(f, X, baseline, coalitions, own, targets, batch_size, observe):
    """Model values ``[n, s, t]`` (and observations ``[n, s]``) of the coalitions.

    The one place where coalitions become model inputs: chunks of whole rows
    (every coalition of a row, broadcast, no gathers) when a row's
    ``s * B`` inputs fit in ``batch_size``, else (row, coalition, background
    row) triples gathered chunk by chunk.
    """
    n, p = X.shape
    B = baseline.shape[0]
    s = coalitions.size
    t = targets.shape[1]
    device = X.device
    per_row = s * B
    if n * per_row == 0:
        empty = torch.zeros(n, s, t, dtype=torch.float64, device=device)
        return empty, (None if observe is None else empty[..., 0])
    seen: dict[str, torch.Tensor] = {}  # the chunk's rows and coalitions, for observe

    if per_row <= batch_size:  # chunks of whole rows
        step = batch_size // per_row * per_row

        def build(start: int, stop: int):
            a, z = start // per_row, stop // per_row
            w = coalitions.rows_weights(a, z, X.dtype)  # [m|1, s, p]
            if B == 1:
                Z = torch.lerp(baseline[0], X[a:z, None, :], w)
            else:
                Z = torch.lerp(
                    baseline[None, None], X[a:z, None, None, :], w[:, :, None]
                )
            r = own[a:z, None].expand(z - a, per_row).reshape(-1)
            if observe is not None:
                seen["x"] = X[a:z, None, None, :].expand(-1, s, B, p).reshape(-1, p)
                j = torch.arange(s, device=device)
                zz = coalitions.group_masks(
                    torch.arange(a, z, device=device).repeat_interleave(s),
                    j.repeat(z - a),
                )
                seen["z"] = zz.reshape(z - a, s, 1, -1).expand(-1, -1, B, -1)
            seen["t"] = targets[a:z, None, :].expand(z - a, per_row, t).reshape(-1, t)
            return Z.reshape(-1, p), r

    else:
        step = batch_size

        def build(start: int, stop: int):
            r, j, b = split_index(start, stop, (n, s, B), device)
            mask = coalitions.column_masks(r, j)
            x = X[r]
            Z = torch.where(mask, x, baseline[0] if B == 1 else baseline[b])
            if observe is not None:
                seen["x"], seen["z"] = x, coalitions.group_masks(r, j)
            seen["t"] = targets[r]
            return Z, own[r]

    def value(Z: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        out = f(Z, r).gather(1, seen["t"]).double()
        if observe is None:
            return out
        z = seen["z"].reshape(Z.shape[0], -1).to(X.dtype)
        obs = torch.as_tensor(observe(seen["x"], z, Z)).reshape(-1, 1)
        return torch.cat([out, obs.to(out.device).double()], 1)

    out = evaluate(value, build, n * per_row, batch_size=step)
    out = out.reshape(n, s, B, -1).mean(2)
    if observe is None:
        return out, None
    return out[..., :t], out[..., t]
