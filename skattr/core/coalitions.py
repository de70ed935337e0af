"""The coalition value v(S): the one function every perturbation method uses.

A coalition ``S`` of the ``g`` feature groups of a row ``x`` stands, for a
background row ``b``, for the model input ``x_S b_rest``: the columns of the
groups in ``S`` from ``x``, the others from ``b``. Its value is

    v(S) = mean over background rows b of f(x_S b_rest)

(the interventional definition). Feature ablation, both Shapley methods,
Kernel SHAP and LIME differ only in the coalitions they ask for and in what
they do with the values, so they all call :func:`coalition_values`: it
evaluates every requested coalition of every row together with the full one,
``f(x) = v(all groups)``, and the empty one, ``v(no group)`` (the mean of
``f(b)``), one way for every method: in the same chunked pass, so that a
marginal contribution is a difference of two outputs computed alike. The
model
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

from skattr.core.forward import (
    ModelFunction,
    evaluate,
    pick,
    shared_columns,
    split_index,
)
from skattr.core.incremental import incremental_values

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
    #: ``[p]`` long: the group of each column
    groups: torch.Tensor

    def group_masks(self, r: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Coalition ``j[i]`` of row ``r[i]`` over the groups, ``[m, g]`` bool."""
        raise NotImplementedError

    def column_masks(self, r: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """The same over the model's input columns, ``[m, p]`` bool."""
        return self.group_masks(r, j)[:, self.groups]

    def rows_groups(self, a: int, z: int) -> torch.Tensor:
        """Every coalition of rows ``a..z-1`` over the groups, ``[z - a | 1, s, g]``."""
        raise NotImplementedError

    def rows_weights(
        self, a: int, z: int, dtype: torch.dtype, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Every coalition of rows ``a..z-1`` over the columns, ``[z - a | 1, s, p]``.

        As exact 0/1 weights of ``dtype``, for ``torch.lerp(b, x, w)``, which
        returns its end points exactly (and is faster than ``where`` there).
        ``out`` (``[z - a, s, p]`` of ``dtype``, optional) is where per-row
        weights are written, so that a caller reuses one buffer for every
        chunk; shared weights are returned as they are.
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

    def rows_groups(self, a, z):
        return self.table[None] if self.shared else self.table[a:z]

    def rows_weights(self, a, z, dtype, out=None):
        if self.shared:
            if self._shared_weights is None or self._shared_weights.dtype != dtype:
                self._shared_weights = self.rows_mask(None)[None].to(dtype)
            return self._shared_weights
        mask = self.rows_mask(slice(a, z))
        return mask.to(dtype) if out is None else out.copy_(mask)

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

    def rows_groups(self, a, z):
        steps = self._steps.to(self.rank.dtype)[None, None, :, None]
        block = self.rank[a:z, :, None, :] < steps  # [m, Q, g-1, g]
        return block.reshape(z - a, self.size, -1)

    def rows_weights(self, a, z, dtype, out=None):
        m, Q, inner = z - a, self.rank.shape[1], self.inner
        if dtype not in (torch.float32, torch.float64):
            # half precision cannot hold every rank exactly: compare integers
            steps = self._steps.to(self.rank.dtype)[None, None, :, None]
            block = (self.col_rank[a:z, :, None, :] < steps).reshape(m, self.size, -1)
            return block.to(dtype) if out is None else out.copy_(block)
        # state t takes the columns of rank < t from x: clamp(t - rank, 0, 1)
        # is exactly 1 there and 0 elsewhere (ranks are exact below 2**24)
        if dtype not in self._float_rank:
            self._float_rank[dtype] = self.col_rank.to(dtype)
        rank = self._float_rank[dtype][a:z, :, None, :]
        steps = self._steps.to(dtype)[None, None, :, None]
        if out is None:
            return (steps - rank).clamp_(0, 1).reshape(m, self.size, -1)
        torch.sub(steps, rank, out=out.view(m, Q, inner, -1))
        return out.clamp_(0, 1)


def proper_coalitions(g: int, device=None) -> torch.Tensor:
    """All ``2**g - 2`` coalitions but the empty and the full one, ``[m, g]`` bool.

    Coalition ``i`` is the integer ``i + 1``: bit ``j`` set when group ``j``
    is in it.

    Examples
    --------
    >>> proper_coalitions(2).tolist()
    [[True, False], [False, True]]
    """
    codes = torch.arange(1, 2**g - 1, device=device)
    bits = 2 ** torch.arange(g, device=device)
    return (codes[:, None] & bits[None, :]) != 0


# ---------------------------------------------------------------- values


@dataclass(frozen=True)
class CoalitionValues:
    """What :func:`coalition_values` returns, every value in float64."""

    values: torch.Tensor  #: ``[n, s, t]``: v of each coalition, at each target
    fx: torch.Tensor | None  #: ``[n, t]``: ``f(x)``, v(all groups)
    fb: torch.Tensor | None  #: ``[n, t]``: mean ``f(b)``, v(no group)
    targets: torch.Tensor  #: ``[n, t]`` long: the output columns kept per row
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
        Output columns kept for each row, or ``targets(outputs)`` that picks
        them from every output at the rows (then evaluated first, ``n``
        model rows).
    batch_size : int
        Most model rows per call of ``f``.
    ends : bool, default=True
        Also evaluate, in the same pass and the same way as the others, the
        full coalition (``f(x)``) and the empty one (``f(b)``) of every row
        and background row: ``2 * B`` model rows per row. Every marginal
        contribution is then a difference of two outputs computed alike, so
        a group the model ignores gets exactly 0 (a separate forward call,
        of another batch shape, may round differently). ``False`` when the
        caller has them from an earlier call (a later round of sampling).
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
    Cost: ``n * (s + 2) * B`` model rows (``n * s * B`` without ``ends``),
    plus ``n`` when ``targets`` is a picker.
    """
    n, p = X.shape
    device = X.device
    own = torch.arange(n, device=device) if rows is None else rows.to(device)
    outputs = None
    if callable(targets):
        outputs = evaluate(f, lambda a, z: (X[a:z], own[a:z]), n, batch_size=batch_size)
        targets = targets(outputs)
    targets = targets.to(device)
    values, observed = _evaluate(
        f, X, baseline, coalitions, own, targets, batch_size, observe, ends
    )
    fx = fb = None
    if ends:  # coalition 0 is the empty one, coalition s + 1 the full one
        fb, values, fx = values[:, 0], values[:, 1:-1], values[:, -1]
        observed = None if observed is None else observed[:, 1:-1]
    return CoalitionValues(values, fx, fb, targets, observed)


def _evaluate(f, X, baseline, coalitions, own, targets, batch_size, observe, ends):
    """Model values ``[n, s', t]`` (and observations ``[n, s']``) of the coalitions.

    The one place where coalitions become model inputs; ``s' = s + 2`` with
    ``ends`` (the empty coalition first, the full one last). Chunks of whole
    rows (every coalition of a row, broadcast, no gathers) when a row's
    ``s' * B`` inputs fit in ``batch_size``, else (row, coalition,
    background row) triples gathered chunk by chunk.
    """
    n, p = X.shape
    B = baseline.shape[0]
    s = coalitions.size
    size = s + 2 if ends else s
    t = targets.shape[1]
    device = X.device
    per_row = size * B
    if n * per_row == 0:
        empty = torch.zeros(n, size, t, dtype=torch.float64, device=device)
        return empty, (None if observe is None else empty[..., 0])
    if observe is None:  # a model with an affine head: sums of pre-activations
        values = incremental_values(
            f, X, baseline, coalitions, own, targets, batch_size, ends
        )
        if values is not None:
            return values, None
    # what build knows of its chunk (targets, observations) for value, which
    # forward.evaluate calls on that chunk right after building it
    seen: dict[str, torch.Tensor] = {}
    cols = shared_columns(targets)  # None: each input's own, in seen["t"]

    def group_masks(r: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        if not ends:
            return coalitions.group_masks(r, j)
        inner = j - 1
        g = int(coalitions.groups.max()) + 1
        out = torch.zeros(j.shape[0], g, dtype=torch.bool, device=device)
        middle = (inner >= 0) & (inner < s)
        if s and bool(middle.any()):
            out[middle] = coalitions.group_masks(r[middle], inner[middle])
        out[inner >= s] = True
        return out

    def column_masks(r: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        if not ends:
            return coalitions.column_masks(r, j)
        return group_masks(r, j)[:, coalitions.groups]

    if per_row <= batch_size:  # chunks of whole rows
        most = min(n, batch_size // per_row)
        step = most * per_row
        # One buffer each for the inputs, the weights and the rows, written
        # in place chunk after chunk: the chunks then reuse the same memory,
        # as the model's activations do (buffers allocated afresh per chunk
        # had the allocator hand pages back and fault them in again).
        Z_all = X.new_empty(most, size, B, p)
        r_all = own.new_empty(most, size, B)
        w_all = None if coalitions.shared or not s else X.new_empty(most, s, p)
        if ends:  # the empty coalition: the background rows, for no explained row
            Z_all[:, 0] = baseline
            r_all[:, 0] = -1
        own_part = slice(1, None) if ends else slice(None)

        def build(start: int, stop: int):
            a, z = start // per_row, stop // per_row
            m = z - a
            x = X[a:z, None, None, :]
            Z = Z_all[:m]
            inner = Z[:, 1:-1] if ends else Z
            if s:
                out = None if w_all is None else w_all[:m]
                w = coalitions.rows_weights(a, z, X.dtype, out=out)[:, :, None, :]
                torch.lerp(baseline[None, None], x, w.expand(m, s, 1, p), out=inner)
            if ends:
                Z[:, -1] = X[a:z, None, :]
            r = r_all[:m]
            r[:, own_part] = own[a:z, None, None]
            r = r.reshape(-1)
            if observe is not None:  # at the coalitions asked for, not the ends
                zin = coalitions.rows_groups(a, z)[:, :, None, :]
                zin = zin.expand(m, s, B, zin.shape[-1]).reshape(m * s * B, -1)
                got = observe(
                    x.expand(m, s, B, p).reshape(-1, p),
                    zin.to(X.dtype),
                    inner.reshape(-1, p),
                )
                obs = X.new_zeros(m, size, B, dtype=torch.float64)
                target = obs[:, 1:-1] if ends else obs
                target[:] = torch.as_tensor(got).reshape(m, s, B).to(obs)
                seen["obs"] = obs.reshape(-1, 1)
            if cols is None:
                seen["t"] = targets[a:z, None, :].expand(m, per_row, t).reshape(-1, t)
            return Z.reshape(-1, p), r

    else:
        # chunks of whole (row, coalition) pairs, averaged over B as they come
        step = batch_size // B * B if batch_size >= B else batch_size

        def build(start: int, stop: int):
            r, j, b = split_index(start, stop, (n, size, B), device)
            mask = column_masks(r, j)
            x = X[r]
            Z = torch.where(mask, x, baseline[0] if B == 1 else baseline[b])
            if observe is not None:
                seen["x"], seen["z"], seen["j"] = x, group_masks(r, j), j
            if cols is None:
                seen["t"] = targets[r]
            who = own[r]
            if ends:  # the empty coalition stands for no explained row
                who = torch.where(j == 0, -1, who)
            return Z, who

    def value(Z: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        # a copy of the picked outputs: the next chunk overwrites Z
        out = pick(f(Z, r), cols, seen.get("t"))
        if observe is None:
            return out
        if "obs" in seen:  # observed while building
            return torch.cat([out, seen["obs"].to(out.device)], 1)
        z = seen["z"].reshape(Z.shape[0], -1).to(X.dtype)
        x = seen["x"]
        obs = out.new_zeros(Z.shape[0], 1)
        # observed at the coalitions asked for only, not at the ends
        keep = (seen["j"] > 0) & (seen["j"] < size - 1) if ends else None
        if keep is None:
            obs[:, 0] = torch.as_tensor(observe(x, z, Z)).reshape(-1).to(obs)
        elif bool(keep.any()):
            got = observe(x[keep], z[keep], Z[keep])
            obs[keep, 0] = torch.as_tensor(got).reshape(-1).to(obs)
        return torch.cat([out, obs], 1)

    mean_over = B if step % B == 0 else 1
    out = evaluate(value, build, n * per_row, batch_size=step, mean_over=mean_over)
    out = out.reshape(n, size, B // mean_over, -1).mean(2)
    if observe is None:
        return out, None
    return out[..., :t], out[..., t]
