"""Functions on result frames: joining the results of chunks of rows."""

from __future__ import annotations

import pandas as pd

from skattr._data import rows_of


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
    out = pd.concat([_bare(result) for result in results])
    for key, value in first.attrs.items():
        if isinstance(value, (pd.Series, pd.DataFrame)):
            out.attrs[key] = pd.concat(
                [_bare(_own_rows(r.attrs[key], r, key)) for r in results]
            )
        elif all(_agree(r.attrs[key], value) for r in results):
            out.attrs[key] = value
        else:
            seen = [r.attrs[key] for r in results]
            raise ValueError(
                f"The results disagree on attrs[{key!r}] ({seen}): they come "
                "from explainers of different settings."
            )
    return out


def _bare(frame):
    """``frame`` without its ``attrs`` (a shallow copy)."""
    frame = frame.copy(deep=False)
    frame.attrs = {}
    return frame


def _own_rows(entry, result: pd.DataFrame, key: str):
    """The rows of ``entry`` that belong to ``result``: a per-row entry of an
    interactions result is indexed by its rows, the result by (row, feature)."""
    rows = result.index
    if entry.index.nlevels < rows.nlevels:
        rows = rows.get_level_values(0).unique()
    return rows_of(entry, rows, f"attrs[{key!r}]")


def _agree(a, b) -> bool:
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return a is b
