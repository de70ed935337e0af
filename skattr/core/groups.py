"""Feature groups as an index tensor.

A grouping of ``p`` model-input columns into ``g`` groups is a long tensor
``groups`` of shape ``[p]`` with values in ``0..g-1``: column ``c`` belongs to
group ``groups[c]``. Groups are numbered in the order the user gave them
(:func:`make_groups`). A mask over groups ``M[..., g]`` becomes a mask over
columns with ``M[..., groups]``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def make_groups(
    feature_groups: object,
    columns: Sequence[str],
) -> tuple[torch.Tensor, list[str]]:
    """Resolve ``feature_groups`` against the column names.

    Parameters
    ----------
    feature_groups : None, dict or sequence of int
        ``None``: every column is its own group. A dict ``{name: [columns]}``
        (columns by name or position): those columns form the group ``name``,
        every column not named forms a group of its own. An integer sequence
        of length ``p`` (Captum's ``feature_mask``): columns with the same
        value form one group, named by its columns joined with ``"+"``.
    columns : sequence of str
        The column names, in order.

    Returns
    -------
    groups : Tensor of shape ``[p]``, dtype long
    names : list of str
        The name of each group, in group order: a dict's groups in the
        order of its keys, then the columns it does not name, in the order
        of ``columns``; a mask's groups in increasing order of their ids
        (ids with gaps keep their order), so that group ``k`` of a mask with
        ids ``0..g-1`` is id ``k``.

    Examples
    --------
    >>> groups, names = make_groups({"size": ["h", "w"]}, ["h", "age", "w"])
    >>> groups.tolist(), names
    ([0, 1, 0], ['size', 'age'])
    >>> make_groups({"b": ["b"], "a": ["a"]}, ["a", "b", "c"])[1]
    ['b', 'a', 'c']
    >>> make_groups([1, 1, 0], ["a", "b", "c"])
    (tensor([1, 1, 0]), ['c', 'a+b'])
    """
    columns = [str(c) for c in columns]
    p = len(columns)
    if feature_groups is None:
        return torch.arange(p), list(columns)
    if isinstance(feature_groups, Mapping):
        return _groups_from_dict(feature_groups, columns)
    ids = _labels_from_mask(feature_groups, p)
    if min(ids) < 0:
        raise ValueError(
            "feature_groups as an integer mask must hold group ids >= 0 (columns "
            f"with the same id form a group); got {min(ids)}."
        )
    order = sorted(set(ids))
    number = {label: k for k, label in enumerate(order)}
    groups = torch.tensor([number[label] for label in ids], dtype=torch.long)
    members: list[list[str]] = [[] for _ in order]
    for c, k in enumerate(groups.tolist()):
        members[k].append(columns[c])
    return groups, ["+".join(m) for m in members]


def _groups_from_dict(
    feature_groups: Mapping, columns: list[str]
) -> tuple[torch.Tensor, list[str]]:
    position = {c: i for i, c in enumerate(columns)}
    owner: dict[int, int] = {}  # column -> group number (the key's rank)
    names = [str(name) for name in feature_groups]
    if len(set(names)) < len(names):
        same = next(n for n in names if names.count(n) > 1)
        keys = [k for k in feature_groups if str(k) == same]
        raise ValueError(
            f"feature_groups names {keys[0]!r} and {keys[1]!r} are both the result "
            f"column {same!r}; give the groups names that differ as strings."
        )
    for k, (name, members) in enumerate(feature_groups.items()):
        if isinstance(members, (str, int)):
            members = [members]
        members = list(members)
        if not members:
            raise ValueError(
                f"feature_groups[{name!r}] is empty; a group needs columns."
            )
        for m in members:
            i = _position(m, position, name)
            if i in owner:
                raise ValueError(
                    f"Column {columns[i]!r} is in two feature groups: "
                    f"{names[owner[i]]!r} and {str(name)!r}."
                )
            owner[i] = k
    ungrouped = [c for c in range(len(columns)) if c not in owner]
    clash = sorted(set(names) & {columns[c] for c in ungrouped})
    if clash:
        raise ValueError(
            f"feature_groups name {clash[0]!r} is also the name of a column that is "
            "in no group; rename the group or put that column in it."
        )
    for k, c in enumerate(ungrouped, start=len(names)):
        owner[c] = k
    groups = torch.tensor([owner[c] for c in range(len(columns))], dtype=torch.long)
    return groups, names + [columns[c] for c in ungrouped]


def _position(member: object, position: dict[str, int], group: object) -> int:
    if isinstance(member, str):
        if member not in position:
            raise ValueError(
                f"feature_groups[{group!r}] names column {member!r}, which is not "
                f"in X. Columns are: {list(position)}."
            )
        return position[member]
    try:
        i = int(member)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        raise TypeError(
            f"feature_groups[{group!r}] must list column names or positions; "
            f"got {member!r}."
        ) from None
    if not 0 <= i < len(position):
        raise ValueError(
            f"feature_groups[{group!r}] names column position {i}, but X has "
            f"{len(position)} columns."
        )
    return i


def _labels_from_mask(mask: object, p: int) -> list:
    t = (
        torch.as_tensor(mask).reshape(-1)
        if not isinstance(mask, torch.Tensor)
        else mask
    )
    if t.dim() != 1 and t.numel() == p:
        t = t.reshape(-1)
    if t.is_floating_point() or t.dtype == torch.bool:
        if t.is_floating_point() and bool((t == t.round()).all()):
            t = t.long()
        else:
            raise TypeError(
                "feature_groups as an array must hold integer group ids, one per "
                f"column; got dtype {t.dtype}."
            )
    if t.numel() != p:
        raise ValueError(
            f"feature_groups as an integer mask must have one entry per column "
            f"({p}); got {t.numel()}."
        )
    return t.cpu().tolist()


def needs_names(feature_groups: object) -> bool:
    """Whether ``feature_groups`` is a dict that names a column by its name."""
    if not isinstance(feature_groups, Mapping):
        return False
    for members in feature_groups.values():
        if isinstance(members, (str, int)):
            members = [members]
        if any(isinstance(m, str) for m in list(members)):
            return True
    return False


def n_groups(groups: torch.Tensor) -> int:
    """Number of groups in an index tensor."""
    return int(groups.max()) + 1 if groups.numel() else 0


def group_members(groups: torch.Tensor, g: int | None = None) -> list[torch.Tensor]:
    """The columns of each of the ``g`` groups, in column order.

    Examples
    --------
    >>> [m.tolist() for m in group_members(torch.tensor([0, 1, 0, 2, 0]))]
    [[0, 2, 4], [1], [3]]
    """
    g = n_groups(groups) if g is None else g
    order = torch.argsort(groups, stable=True)
    return list(order.split(torch.bincount(groups, minlength=g).tolist()))


def group_matrix(groups: torch.Tensor, dtype: torch.dtype = torch.bool) -> torch.Tensor:
    """One-hot ``[g, p]`` matrix: entry ``(j, c)`` is 1 when column ``c`` is in group ``j``."""
    g = n_groups(groups)
    ar = torch.arange(g, device=groups.device)
    return (ar[:, None] == groups[None, :]).to(dtype)


def sum_over_groups(
    values: torch.Tensor, groups: torch.Tensor, dim: int = -1
) -> torch.Tensor:
    """Sum per-column values (``p`` along ``dim``) within each group (``g`` there).

    Examples
    --------
    >>> sum_over_groups(torch.tensor([[1.0, 2.0, 4.0]]), torch.tensor([0, 1, 0]))
    tensor([[5., 2.]])
    """
    shape = list(values.shape)
    shape[dim] = n_groups(groups)
    out = values.new_zeros(shape)
    return out.index_add_(dim, groups.to(values.device), values)
