"""Coalition values without recomputing what a coalition did not change.

When the model starts with an affine layer ``h = W z + c`` (and the model
function says so: ``f.affine = (W, c)``, ``f.rest(H, rows)``), the
pre-activation of a coalition ``S`` of row ``x`` with background row ``b``
is

    h(S) = h(b) + sum_{j in S} D_j,    D_j = W[:, cols_j] (x - b)[cols_j],

so the first layer of every perturbed row is a sum of per-group
contributions computed once per (row, background row), and the rest of the
network runs on those sums. For the coalitions the methods ask for, the sums
are cheaper still:

- every group but one (feature ablation): ``h(x) - D_j``;
- every coalition (exact Shapley values and interactions): a doubling table,
  ``h(S + j) = h(S) + D_j``, ``2^g`` additions of ``h`` values;
- the states of a permutation (Shapley sampling): cumulative sums of the
  contributions in the permutation's order from ``h(b)``, whole
  permutations per call, or segments of one whose running sum is carried
  from call to call when it is longer than a batch; a zero
  contribution repeats the previous sum exactly, and after the last non-zero
  step every state is ``h(x)`` itself, so that a group the model ignores
  adds exactly nothing, also at the end;
- one group's columns from another row (feature permutation): the row's
  ``h(x)`` plus the changed columns times their weights;
- any other table of coalitions: a product of the 0/1 table with the
  contributions.

A row's coalitions (or a permutation's states) that exceed a chunk are cut
into segments of about equal length, one call each, a row at a time.

Sums are formed in float64 and rounded to the model's dtype once. The ends
(``f(b)``, ``f(x)``) are evaluated in the same chunk as the coalitions of
their row, as on the plain path, so a group the model ignores still gets
exactly 0. :func:`incremental_values` returns ``None`` where it does not
apply (no affine head, per-chunk observations, or more background rows
than a chunk holds: with a permutation's two ends, for Shapley sampling),
and :func:`~skattr.core.coalitions.coalition_values`
then takes the plain path.
"""

from __future__ import annotations

import torch

from skattr.core.forward import pick, shared_columns, split_index
from skattr.core.groups import group_members


def contributions(
    X: torch.Tensor,
    baseline: torch.Tensor,
    W: torch.Tensor,
    groups: torch.Tensor,
    g: int,
) -> torch.Tensor:
    """``D`` ``[m, B, g, h]`` float64: each group's share of ``W (x - b)``."""
    diff = (X[:, None, :] - baseline[None]).double()  # [m, B, p]
    Wd = W.double()
    m, B, p = diff.shape
    if g == p and bool((groups == torch.arange(p, device=groups.device)).all()):
        return diff[..., None] * Wd.T[None, None]  # one column per group
    per_column = diff[..., None] * Wd.T[None, None]  # [m, B, p, h]
    out = per_column.new_zeros(m, B, g, Wd.shape[0])
    return out.index_add_(2, groups, per_column)


def incremental_values(f, X, baseline, coalitions, own, targets, batch_size, ends):
    """Model values ``[n, s', t]`` of the coalitions from pre-activations, or ``None``.

    The same contract as the plain evaluation of
    :func:`~skattr.core.coalitions.coalition_values` (``s' = s + 2`` with
    ``ends``: the empty coalition first, the full one last), the same model
    rows counted.
    """
    affine = getattr(f, "affine", None)
    if affine is None:
        return None
    W, c = affine
    n, p = X.shape
    if W.shape[1] != p or W.device != X.device:
        return None
    B = baseline.shape[0]
    groups = coalitions.groups
    g = int(groups.max()) + 1 if groups.numel() else 0
    h_b = baseline.double() @ W.double().T
    if c is not None:
        h_b = h_b + c.double()
    context = (f, X, baseline, groups, g, W, h_b, own, targets, batch_size, ends)
    h = W.shape[0]
    if hasattr(coalitions, "rank"):  # the states of permutations
        if not pays(p, h, PASSES["permutations"]):
            return None
        return _permutations(coalitions, *context)
    if hasattr(coalitions, "table"):  # a table of coalitions
        size = coalitions.size + (2 if ends else 0)
        kind = _table_kind(coalitions, g)
        long = size * B > batch_size  # a row's coalitions take several calls
        if long and kind == "all":  # no doubling table: sums of its rows' masks
            kind = "table"
        passes = PASSES[kind] + (0.02 * g if kind == "table" else 0.0)
        if not pays(p, h, passes):
            return None
        return (_long_tables if long else _tables)(coalitions, *context)
    return None


#: passes over each state's ``h`` pre-activations (float64) the incremental
#: sums make, by kind of coalitions (measured on CPU: a pass costs about
#: what building one input column and multiplying it by ``h`` weights costs
#: ``1 / (1 + 0.02 h)`` times over)
PASSES = {
    "permutations": 6.0,
    "all": 3.0,
    "all_but_one": 3.0,
    "table": 2.0,
    "permuted": 4.0,
}


def pays(p: int, h: int, passes: float) -> bool:
    """Whether the incremental sums beat the plain first layer, with a margin.

    The plain path builds each perturbed row's ``p`` inputs and multiplies
    them by the ``h x p`` weights: about ``p (1 + 0.02 h)`` units of work per
    row; the sums pass ``passes`` times over ``h`` float64 values. Measured
    on two CPU cores: a wide table (``p = 500``, ``h = 64``) gains 2 to 2.3
    times, W2 (``p = 100``, ``h = 256``) and W1 (``p = 30``, ``h = 64``)
    would lose, so they keep the plain path.
    """
    return p * (1 + 0.02 * h) > 1.5 * passes * h


def _run(f, H, rows, dtype, shared, t_rows):
    """The rest of the model on pre-activations ``H`` ``[m, h]``: target
    values ``[m, t]`` (the columns ``shared`` by every row, else ``t_rows``)."""
    return pick(f.rest(H.to(dtype), rows), shared, t_rows)


def _tables(
    coalitions, f, X, baseline, groups, g, W, h_b, own, targets, batch_size, ends
):
    """A ``MaskTable``: chunks of whole rows, their coalitions' sums built at once."""
    n = X.shape[0]
    B = baseline.shape[0]
    s = coalitions.size
    size = s + 2 if ends else s
    t = targets.shape[1]
    step = max(1, batch_size // (size * B))
    kind = _table_kind(coalitions, g)
    shared = shared_columns(targets)
    out = torch.empty(n, size, t, dtype=torch.float64, device=X.device)
    for a in range(0, n, step):
        z = min(n, a + step)
        m = z - a
        D = contributions(X[a:z], baseline, W, groups, g)  # [m, B, g, h]
        if kind == "all":  # every coalition, in the order of its code
            H = _doubling(D, h_b)  # [m, 2^g, B, h]
            H = H if ends else H[:, 1:-1]
        elif kind == "all_but_one":
            h_x = h_b + D.sum(2)  # [m, B, h]
            H = h_x[:, None] - D.transpose(1, 2)  # [m, g, B, h]
            if ends:
                H = torch.cat([h_b.expand(m, 1, *h_b.shape), H, h_x[:, None]], 1)
        else:
            masks = _masks(coalitions, a, z, g, ends)  # [1 | m, s', g]
            pattern = "rsg,mbgh->msbh" if masks.shape[0] == 1 else "msg,mbgh->msbh"
            H = h_b + torch.einsum(pattern, masks, D)
        rows = own[a:z, None, None].expand(m, size, B).clone()
        if ends:
            rows[:, 0] = -1
        t_rows = None
        if shared is None:
            t_rows = targets[a:z, None, None, :].expand(m, size, B, t).reshape(-1, t)
        H = H.reshape(m * size * B, -1)
        values = _run(f, H, rows.reshape(-1), X.dtype, shared, t_rows)
        out[a:z] = values.reshape(m, size, B, t).mean(2)
    return out


def _long_tables(
    coalitions, f, X, baseline, groups, g, W, h_b, own, targets, batch_size, ends
):
    """A ``MaskTable`` whose coalitions times the background rows exceed a
    batch: a row at a time, its coalitions in segments of about equal
    length, one call each (each row needs several calls anyway).

    The sums of every group but one are those of :func:`_tables`; every
    coalition's and a table's are the 0/1 masks times the contributions
    (for every coalition no doubling table, which would hold ``2^g`` sums
    at once), equal to rounding.
    """
    n = X.shape[0]
    B = baseline.shape[0]
    most = batch_size // B  # coalitions per call
    if most < 1:
        return None
    s = coalitions.size
    size = s + 2 if ends else s
    t = targets.shape[1]
    device = X.device
    kind = _table_kind(coalitions, g)
    shared = shared_columns(targets)
    lead = 1 if ends else 0  # the empty coalition first
    bits = 2 ** torch.arange(g, device=device)
    out = torch.empty(n, size, t, dtype=torch.float64, device=device)
    masks = None  # a table's 0/1 masks: once when every row shares them
    if kind == "table" and coalitions.shared:
        masks = _masks(coalitions, 0, 1, g, ends)
    for i in range(n):
        D = contributions(X[i : i + 1], baseline, W, groups, g)  # [1, B, g, h]
        h_x = h_b + D.sum(2)  # [1, B, h]
        if kind == "table" and not coalitions.shared:
            masks = _masks(coalitions, i, i + 1, g, ends)  # [1, s', g]
        t_row = None if shared is not None else targets[i : i + 1]
        for lo, hi in _segments(size, most):
            k = hi - lo
            if kind == "all_but_one":  # h(x) - D_j, h(b) and h(x) at the ends
                j = torch.arange(lo - lead, hi - lead, device=device)
                H = h_x[:, None].repeat(1, k, 1, 1)  # [1, k, B, h]
                inner = (j >= 0) & (j < g)
                H[:, inner] = h_x[:, None] - D[:, :, j[inner]].transpose(1, 2)
                H[:, j < 0] = h_b
            else:
                if kind == "all":  # coalition codes lo.. (1.. without the ends)
                    codes = torch.arange(lo + 1 - lead, hi + 1 - lead, device=device)
                    part = ((codes[:, None] & bits) != 0).double()[None]
                else:
                    part = masks[:, lo:hi]
                H = h_b + torch.einsum("msg,mbgh->msbh", part, D)
            rows = own[i].repeat(k * B)
            if ends and lo == 0:
                rows[:B] = -1  # the empty coalition: no explained row
            t_rows = None if t_row is None else t_row.expand(k * B, t)
            values = _run(f, H.reshape(k * B, -1), rows, X.dtype, shared, t_rows)
            out[i, lo:hi] = values.view(k, B, t).mean(1)
    return out


def _masks(coalitions, a: int, z: int, g: int, ends: bool) -> torch.Tensor:
    """The 0/1 masks ``[1 | z - a, s', g]`` (float64) of rows ``a..z`` of a
    table, with the empty and the full coalition first and last when
    ``ends`` (the same sums as the others, to the bit)."""
    masks = coalitions.rows_groups(a, z).double()
    if not ends:
        return masks
    zeros = masks.new_zeros(masks.shape[0], 1, g)
    return torch.cat([zeros, masks, torch.ones_like(zeros)], 1)


def _segments(total: int, most: int) -> list[tuple[int, int]]:
    """``[lo, hi)`` spans of about equal length, at most ``most`` each,
    covering ``0..total``: the calls a row's coalitions or a permutation's
    states are cut into (499 states of 10 rows in batches of 4,096 make two
    calls of 2,500 rows, not one of 4,070 and one of 920).

    Examples
    --------
    >>> _segments(499, 407)
    [(0, 250), (250, 499)]
    """
    count = -(-total // most)
    length = -(-total // count)
    return [(lo, min(total, lo + length)) for lo in range(0, total, length)]


def _table_kind(coalitions, g: int) -> str:
    """``"all_but_one"``, ``"all"`` (every proper coalition in code order) or ``"table"``."""
    table = coalitions.table
    if not coalitions.shared:
        return "table"
    eye = torch.eye(g, dtype=torch.bool, device=table.device)
    if table.shape == (g, g) and bool((table == ~eye).all()):
        return "all_but_one"
    if g <= 24 and table.shape[0] == 2**g - 2:
        codes = torch.arange(1, 2**g - 1, device=table.device)
        bits = 2 ** torch.arange(g, device=table.device)
        if bool((table == ((codes[:, None] & bits) != 0)).all()):
            return "all"
    return "table"


def _positions(g: int, device, like: torch.Tensor) -> torch.Tensor:
    """``0..g-1`` along the last axis of ``like``, to invert ranks by scatter."""
    return torch.arange(g, device=device).expand_as(like)


def _doubling(D: torch.Tensor, h_b: torch.Tensor) -> torch.Tensor:
    """Every coalition's sum ``[m, 2^g, B, h]``: ``T[S + j] = T[S] + D_j``."""
    m, B, g, h = D.shape
    table = D.new_empty(m, 2**g, B, h)
    table[:, 0] = h_b
    for j in range(g):
        width = 2**j
        table[:, width : 2 * width] = table[:, :width] + D[:, None, :, j]
    return table


def _permutations(
    coalitions, f, X, baseline, groups, g, W, h_b, own, targets, batch_size, ends
):
    """``PermutationStates``: chunks of whole permutations, states by two-ended sums."""
    n = X.shape[0]
    B = baseline.shape[0]
    Q = coalitions.rank.shape[1]
    inner = g - 1
    size = Q * inner + (2 if ends else 0)
    t = targets.shape[1]
    device = X.device
    per_perm = inner * B
    if g < 2:
        return None
    out = torch.empty(n, size, t, dtype=torch.float64, device=device)
    shared = shared_columns(targets)
    # decided alike for every round of tol (the first has the ends, the later
    # ones not), so that all of a call's states take the same path
    if per_perm + 2 * B > batch_size:  # a permutation takes several calls
        most = batch_size // B - 2  # states per call, with room for the ends
        if most < 1:
            return None
        context = (f, X, baseline, groups, g, W, h_b, own, targets, ends, shared)
        return _long_permutations(coalitions, out, most, *context)
    units = n * Q  # (row, permutation), C order
    per_chunk = max(1, _units_per_chunk(per_perm, Q, 2 * B if ends else 0, batch_size))
    start = 0
    while start < units:
        stop = min(units, start + per_chunk)
        r0, r1 = start // Q, (stop - 1) // Q + 1
        D = contributions(X[r0:r1], baseline, W, groups, g)  # [rows, B, g, h]
        h_x = h_b + D.sum(2)  # [rows, B, h]
        width = D.shape[-1]
        flat = D.permute(0, 2, 1, 3).reshape((r1 - r0) * g, B * width)
        zero = ~D.ne(0).any(-1).transpose(1, 2).reshape(-1, B)  # [(rows g), B]
        unit = torch.arange(start, stop, device=device)
        r, q = unit // Q, unit % Q
        rank = coalitions.rank[r, q].long()
        order = torch.empty_like(rank).scatter_(1, rank, _positions(g, device, rank))
        k = stop - start
        index = ((r - r0)[:, None] * g + order).reshape(-1)
        # each unit's contributions in its permutation's order, rows of B * h
        steps = flat.index_select(0, index).view(k, g, B, width)
        # after a unit's last non-zero step every state is h(x) itself, so
        # that zero steps at the end add exactly 0 up to f(x) (before it, a
        # zero step repeats the previous sum exactly)
        position = torch.arange(g, device=device)[None, :, None]
        nonzero = ~zero.index_select(0, index).view(k, g, B)
        last = torch.where(nonzero, position, -1).amax(1)  # [k, B]
        done = position[:, 1:] > last[:, None, :]  # states 1..g-1 after the last
        firsts = torch.nonzero(q == 0).flatten() if ends else q[:0]
        n_ends = 2 * B * firsts.numel()
        buffer = torch.empty(k * per_perm + n_ends, width, dtype=X.dtype, device=device)
        states = buffer[: k * per_perm].view(k, inner, B, width)
        states.copy_(
            torch.where(
                done[..., None], h_x[r - r0][:, None], h_b + steps[:, :-1].cumsum(1)
            )
        )  # state i holds positions < i
        rows = own[r].repeat_interleave(per_perm)
        t_rows = (
            None if shared is not None else targets[r].repeat_interleave(per_perm, 0)
        )
        if n_ends:  # the ends of the rows that start in this chunk, same call
            fr = r[firsts]
            ends_H = buffer[k * per_perm :].view(-1, 2, B, width)
            ends_H[:, 0] = h_b
            ends_H[:, 1] = h_x[fr - r0]
            e_rows = own[fr, None, None].expand(-1, 2, B).clone()
            e_rows[:, 0] = -1
            rows = torch.cat([rows, e_rows.reshape(-1)])
            if shared is None:
                e_t = targets[fr][:, None, None, :].expand(-1, 2, B, t).reshape(-1, t)
                t_rows = torch.cat([t_rows, e_t])
        values = _run(f, buffer, rows, X.dtype, shared, t_rows)
        body = values[: k * per_perm].reshape(k, inner, B, t).mean(2)
        offset = 1 if ends else 0
        cols = offset + q[:, None] * inner + torch.arange(inner, device=device)[None]
        out[r[:, None], cols] = body
        if n_ends:
            tail = values[k * per_perm :].reshape(-1, 2, B, t).mean(2)
            out[r[firsts], 0] = tail[:, 0]
            out[r[firsts], -1] = tail[:, 1]
        start = stop
    return out


def _units_per_chunk(per_perm: int, Q: int, per_row: int, batch_size: int) -> int:
    """Most (row, permutation) units a chunk holds: ``k`` units of
    ``per_perm`` rows, plus ``per_row`` rows (the ends) for each of the at
    most ``ceil(k / Q)`` rows that start in it, within ``batch_size``.

    Examples
    --------
    >>> _units_per_chunk(119, 6, 6, 4096)  # 5 whole rows (3,600), 4 units more
    34
    >>> _units_per_chunk(357, 6, 6, 362)
    0
    """
    whole = batch_size // (Q * per_perm + per_row)  # rows of Q units each
    left = batch_size - whole * (Q * per_perm + per_row)
    more = min(Q - 1, (left - per_row) // per_perm) if left >= per_row else 0
    return whole * Q + max(0, more)


def _long_permutations(
    coalitions, out, most, f, X, baseline, groups, g, W, h_b, own, targets, ends, shared
):
    """Permutations whose states exceed a batch: segments of at most ``most``
    states per call, the running sum carried from one segment to the next.

    The carried sum starts the next segment's cumulative sum, so the
    additions run in the order of one cumulative sum over the whole
    permutation: the sums, and the exact zeros of a group the model ignores,
    are those of :func:`_permutations`' whole-permutation chunks. A row at a
    time: each of its permutations takes one call or more anyway. A row's
    ends ride in the call of its first segment, as they ride with the row's
    first permutation there.
    """
    n = X.shape[0]
    B = baseline.shape[0]
    Q = coalitions.rank.shape[1]
    inner = g - 1
    t = targets.shape[1]
    device = X.device
    offset = 1 if ends else 0
    position = torch.arange(g, device=device)
    for i in range(n):
        D = contributions(X[i : i + 1], baseline, W, groups, g)  # [1, B, g, h]
        h_x = h_b + D.sum(2)  # [1, B, h]
        width = D.shape[-1]
        flat = D[0].transpose(0, 1).reshape(g, B * width)
        zero = ~D[0].ne(0).any(-1).T  # [g, B]
        t_row = None if shared is not None else targets[i : i + 1]
        for q in range(Q):
            rank = coalitions.rank[i, q].long()
            order = torch.empty_like(rank).scatter_(0, rank, position)
            nonzero = ~zero.index_select(0, order)
            last = torch.where(nonzero, position[:, None], -1).amax(0)  # [B]
            carry = None
            for lo, hi in _segments(inner, most):
                k = hi - lo
                steps = flat.index_select(0, order[lo:hi]).view(k, B, width)
                if carry is None:
                    sums = steps.cumsum(0)
                else:
                    sums = torch.cat([carry[None], steps]).cumsum(0)[1:]
                carry = sums[-1]
                done = position[lo + 1 : hi + 1, None] > last  # [k, B]
                first = ends and q == 0 and lo == 0
                m = k * B + (2 * B if first else 0)
                buffer = torch.empty(m, width, dtype=X.dtype, device=device)
                body = buffer[: k * B].view(k, B, width)
                body.copy_(torch.where(done[..., None], h_x, h_b + sums))
                rows = own[i].repeat(m)
                if first:
                    buffer[k * B : (k + 1) * B] = h_b
                    buffer[(k + 1) * B :] = h_x[0]
                    rows[k * B : (k + 1) * B] = -1
                t_rows = None if t_row is None else t_row.expand(m, t)
                values = _run(f, buffer, rows, X.dtype, shared, t_rows)
                a = offset + q * inner
                out[i, a + lo : a + hi] = values[: k * B].view(k, B, t).mean(1)
                if first:
                    tail = values[k * B :].view(2, B, t).mean(1)
                    out[i, 0], out[i, -1] = tail[0], tail[1]
    return out


def head_row_outputs(f, X: torch.Tensor, batch_size: int) -> torch.Tensor | None:
    """Every output at the rows themselves ``[n, k]`` from their pre-activations,
    where permuted copies will be (so that a group the model ignores changes
    nothing to the bit), or ``None``."""
    affine = getattr(f, "affine", None)
    if affine is None or not _affine_fits(affine, X, PASSES["permuted"]):
        return None
    W, c = affine
    own = torch.arange(X.shape[0], device=X.device)
    parts = []
    for a in range(0, X.shape[0], batch_size):
        h = _pre(X[a : a + batch_size], W, c)
        parts.append(f.rest(h.to(X.dtype), own[a : a + batch_size]))
    return torch.cat(parts)


def permuted_values(f, X, perms, groups, batch_size, targets):
    """``f`` on the copies of ``X`` with one group's columns shuffled, from
    pre-activations: row ``i`` of copy ``(j, r)`` is ``h(x_i) + W[:, cols_j]
    (x_source - x_i)[cols_j]``. The contract of
    :func:`~skattr.core.permutation.permuted_outputs`; ``None`` where the
    plain path applies."""
    affine = getattr(f, "affine", None)
    if affine is None or not _affine_fits(affine, X, PASSES["permuted"]):
        return None
    W, c = affine
    n, p = X.shape
    g, R = perms.shape[0], perms.shape[1]
    h_x = _pre(X, W, c)  # [n, h] float64
    Wt = W.double().T  # [p, h]
    # each group's columns, once; a group's copies are the contiguous block
    # j * R * n .. (j + 1) * R * n of the flat order (group, repeat, row)
    members = group_members(groups, g)
    block = R * n
    out = None
    total = g * block
    for start in range(0, total, batch_size):
        stop = min(total, start + batch_size)
        j, r, i = split_index(start, stop, (g, R, n), X.device)
        source = perms[j, r, i]
        H = h_x[i].clone()
        # each group of the chunk: its columns' change times their weights
        # (a product over the group's own columns only)
        for group in range(start // block, (stop - 1) // block + 1):
            a = max(start, group * block) - start
            b = min(stop, (group + 1) * block) - start
            cols = members[group]
            change = X[source[a:b, None], cols] - X[i[a:b, None], cols]
            H[a:b] += change.double() @ Wt[cols]
        values = f.rest(H.to(X.dtype), i)
        if targets is not None:
            values = values.gather(1, targets[i])
        if out is None:
            out = values.new_empty(total, values.shape[1])
        out[start:stop] = values
    return out.reshape(g, R, n, -1)


def _pre(X: torch.Tensor, W: torch.Tensor, c) -> torch.Tensor:
    h = X.double() @ W.double().T
    return h if c is None else h + c.double()


def _affine_fits(affine, X: torch.Tensor, passes: float) -> bool:
    W, _ = affine
    return (
        W.shape[1] == X.shape[1]
        and W.device == X.device
        and pays(X.shape[1], W.shape[0], passes)
    )
