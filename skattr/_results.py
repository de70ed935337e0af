"""Functions on result frames: joining the results of chunks of rows."""

from __future__ import annotations

import numpy as np
import pandas as pd

from skattr._data import interaction_rows, rows_of, same_value, whole_interactions


def concat(results) -> pd.DataFrame:
    """The results of one explainer on chunks of rows, as one result.

    ``explain`` is a function of its rows, so a large table can be
    explained chunk by chunk; ``pandas.concat`` cannot join the results,
    though: it compares the frames' ``attrs`` to decide whether to keep
    them, and the per-row entries (Series) cannot be compared that way, so
    it raises. ``concat`` joins the frames and their extras: each per-row
    or per-cell entry is joined like the frames (the rows of each frame
    taken from its own entry, also for a slice of a result, which carries
    every row's extras), and each per-call entry is kept when the results
    agree on it.

    A sampling method with an int ``random_state`` draws the same
    permutations, coalitions or points for every chunk (the same output on
    every call), so the chunks' sampling errors are alike rather than
    independent, and the joined result differs from one call on all the
    rows by that sampling error. For independent draws per chunk, give each
    chunk's call its own seed (``set_params(random_state=seed + i)``) or a
    ``numpy.random.Generator``, which is drawn from at each call; a Dask
    ``explain`` gives each partition a stream of its own.

    Parameters
    ----------
    results : iterable of DataFrame
        Results of ``explain`` (or rows of them) with the same columns and
        ``attrs`` keys: one explainer's, or explainers of the same
        parameters.

    Returns
    -------
    DataFrame
        The frames one after the other, with their joined ``attrs``.

    Examples
    --------
    >>> import pandas as pd
    >>> import torch
    >>> import skattr
    >>> X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    >>> ex = skattr.ShapleyValues(baseline=0.0).fit(torch.nn.Linear(2, 1), X)
    >>> whole = skattr.concat([ex.explain(X.iloc[:3]), ex.explain(X.iloc[3:])])
    >>> whole.shape, list(whole.attrs["base_values"].index)
    ((4, 2), [0, 1, 2, 3])
    """
    results = list(results)
    if not results:
        raise ValueError("concat needs at least one result to join.")
    first = results[0]
    for i, result in enumerate(results):
        if not isinstance(result, pd.DataFrame):
            raise TypeError(
                f"results[{i}] is a {type(result).__name__}; concat joins the "
                "DataFrames that explain returns."
            )
        if not result.columns.equals(first.columns):
            raise ValueError(
                f"results[{i}] has other columns than results[0]: concat joins "
                "the results of one explainer on chunks of the same columns."
            )
        if set(result.attrs) != set(first.attrs):
            raise ValueError(
                f"results[{i}] has other attrs entries ({sorted(result.attrs)}) "
                f"than results[0] ({sorted(first.attrs)}): they come from "
                "different methods or settings."
            )
    # an interactions result joins as whole matrices (a row cut is refused)
    results = [
        result if interaction_rows(result) is None else whole_interactions(result)
        for result in results
    ]
    rows = [_rows(result) for result in results]
    # chunks of an array each number their rows 0..k-1: numbered on, as the
    # result of the whole array would be (labels a frame gave are kept)
    joined = rows[0].append(rows[1:]) if len(rows) > 1 else rows[0]
    renumber = not joined.is_unique and all(
        r.equals(pd.RangeIndex(len(r))) for r in rows
    )
    starts = np.cumsum([0] + [len(r) for r in rows])
    parts = [_bare(r) for r in results]
    if renumber:
        parts = [_renumbered(p, start) for p, start in zip(parts, starts)]
    out = pd.concat(parts)
    for key, value in first.attrs.items():
        if isinstance(value, (pd.Series, pd.DataFrame)):
            entries = [_bare(_own_rows(r.attrs[key], r, key)) for r in results]
            if renumber:
                entries = [_renumbered(e, a) for e, a in zip(entries, starts)]
            out.attrs[key] = pd.concat(entries)
        elif all(same_value(r.attrs[key], value) for r in results):
            out.attrs[key] = value
        else:
            seen = [r.attrs[key] for r in results]
            raise ValueError(
                f"The results disagree on attrs[{key!r}] ({seen}): they come "
                "from explainers of different settings."
            )
    return out


def _rows(result: pd.DataFrame) -> pd.Index:
    """A result's rows: its index, or an interactions result's first level."""
    rows = interaction_rows(result)
    return result.index if rows is None else rows


def _renumbered(frame, start: int):
    """``frame`` with its rows numbered from ``start`` (an interactions
    frame's or cell entry's first level; a per-row entry's index)."""
    index = frame.index
    if isinstance(frame, pd.DataFrame) and interaction_rows(frame) is not None:
        codes = index.get_level_values(0)
        number = pd.Index(codes.unique()).get_indexer(codes) + start
        new = pd.MultiIndex.from_arrays(
            [number, index.get_level_values(1)], names=index.names
        )
    else:
        new = pd.RangeIndex(start, start + len(frame), name=index.name)
    return frame.set_axis(new)


def _bare(frame):
    """``frame`` without its ``attrs`` (a shallow copy)."""
    frame = frame.copy(deep=False)
    frame.attrs = {}
    return frame


def _own_rows(entry, result: pd.DataFrame, key: str):
    """The rows of ``entry`` that belong to ``result``: a per-row entry of an
    interactions result is indexed by its rows, the result by (row, feature)."""
    rows = interaction_rows(result)
    if rows is None or list(entry.index.names) == list(result.index.names):
        rows = result.index  # a per-cell entry, indexed like the result
    return rows_of(entry, rows, f"attrs[{key!r}]")
