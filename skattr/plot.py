"""Plots of attributions and importances (matplotlib, the ``plot`` extra).

Every function draws on ``ax`` (a new Axes when it is ``None``) and returns
it, so that a figure can be composed or saved by the caller:

- :func:`bar`: global importance with error bars (grouped by output for a
  table with a column per output, from ``target="all"``);
- :func:`beeswarm`: the local attributions of many rows, one strip per
  feature, coloured by the feature's value;
- :func:`waterfall`: one row of an efficient method's result, from its base
  value ``f(baseline)`` to the model's output ``f(x)``;
- :func:`dependence`: one feature's attribution against its value
  (categorical columns as strips);
- :func:`interactions`: a heat map of ``ShapleyInteractions``' matrices
  (their mean |cell| over rows, or one row's).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from skattr._data import interaction_rows, rows_beside, rows_of, whole_interactions

_OUTPUT_FREE = ("importance", "std", "mean")


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is in the test extra
        raise ImportError(
            "skattr.plot needs matplotlib: pip install 'skattr[plot]'."
        ) from None
    return plt


def _axes(ax):
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots(figsize=(6.4, 4.0))
    return ax


def _one_output(attributions: pd.DataFrame, what: str) -> pd.DataFrame:
    if isinstance(attributions.columns, pd.MultiIndex):
        outputs = list(dict.fromkeys(attributions.columns.get_level_values(0)))
        raise ValueError(
            f"{what} draws one output; this frame has every output "
            f"(target='all'). Select one: attributions[{outputs[0]!r}]."
        )
    return attributions


def bar(importance: pd.DataFrame, *, ax=None, max_display: int = 10):
    """Horizontal bars of global importance, largest on top, with ``std`` as error bars.

    Parameters
    ----------
    importance : DataFrame
        The result of an explainer's ``importance`` (indexed by feature, with
        ``importance`` and ``std``; with a column per output under
        ``target="all"``, one bar per output and feature), or the
        attributions of ``explain`` themselves, as SHAP's bar plot takes
        them: their importance table is computed first. For
        ``ShapleyInteractions`` (its ``importance``, or its result), one bar
        per pair of features, ranked as its ``importance`` ranks them.
    ax : matplotlib Axes, default=None
    max_display : int, default=10
        The features shown (the most important).

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> from skattr import plot
    >>> imp = pd.DataFrame({"importance": [2.0, 1.0], "std": [0.1, 0.2]}, index=["a", "b"])
    >>> [float(p.get_width()) for p in plot.bar(imp).patches]
    [1.0, 2.0]
    """
    if "importance" not in importance.columns:  # attributions, one row per row
        if interaction_rows(importance) is not None:  # (row, feature): pairs
            from skattr.explainers._interactions import rank_pairs

            importance = rank_pairs(importance)
        else:
            from skattr.explainers._base import rank_attributions

            importance = rank_attributions(importance)
    pairs = list(importance.index.names) == ["feature", "other"]  # rank_pairs
    ax = _axes(ax)
    top = importance.head(max_display).iloc[::-1]  # the largest on top
    outputs = [c for c in importance.columns if c not in _OUTPUT_FREE]
    y = np.arange(len(top))
    if not outputs:
        ax.barh(y, top["importance"], xerr=top.get("std"), color="#1f77b4")
    else:
        height = 0.8 / len(outputs)
        for i, output in enumerate(outputs):
            offset = (i - (len(outputs) - 1) / 2) * height
            ax.barh(y + offset, top[output], height=height, label=str(output))
        ax.legend(title="output", fontsize="small")
    names = [" × ".join(map(str, f)) if pairs else str(f) for f in top.index]
    ax.set_yticks(y, names)
    ax.set_xlabel("mean |interaction|" if pairs else "mean |attribution|")
    return ax


def beeswarm(attributions: pd.DataFrame, X, *, ax=None, max_display: int = 10):
    """Every row's attribution of each feature, coloured by the feature's value.

    One strip per feature (the ``max_display`` with the largest mean
    ``|attribution|``, the largest on top); within a strip, the rows are spread
    vertically so that they do not hide each other; blue is a low value of
    the feature, red a high one (category codes for categorical columns).

    Parameters
    ----------
    attributions : DataFrame
        The result of ``explain`` for one output.
    X : DataFrame or array-like
        The rows explained, with the same columns.
    ax : matplotlib Axes, default=None
    max_display : int, default=10

    Returns
    -------
    matplotlib Axes
    """
    attributions = _one_output(attributions, "beeswarm")
    ax = _axes(ax)
    values = _frame_like(X, attributions)
    magnitude = np.abs(attributions.to_numpy()).mean(0)  # no copy of the attrs
    order = (
        pd.Series(magnitude, attributions.columns)
        .sort_values(ascending=False)
        .index[:max_display]
    )
    rng = np.random.default_rng(0)
    for y, feature in enumerate(reversed(list(order))):
        attr = attributions[feature].to_numpy()
        colour = _scaled(values[feature])
        jitter = rng.uniform(-0.3, 0.3, size=len(attr))
        ax.scatter(attr, y + jitter, c=colour, cmap="coolwarm", vmin=0, vmax=1, s=10)
    ax.set_yticks(range(len(order)), [str(f) for f in reversed(list(order))])
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("attribution")
    return ax


def waterfall(row, *, output=None, ax=None, max_display: int = 10):
    """One row of an efficient method, from ``f(baseline)`` to ``f(x)``.

    The bars start at the base value and add each feature's attribution in
    turn (the largest ``|attribution|`` first; the rest merged into one bar),
    ending at the model's output. Both ends come from the frame's ``attrs``
    (``"base_values"`` and ``"prediction"``, matched to the row by its
    label), which the efficient methods write: ShapleyValueSampling,
    ShapleyValues and KernelShap.

    Parameters
    ----------
    row : Series or one-row DataFrame
        One row of such a result (``attr.iloc[i]`` or ``attr.iloc[[i]]``),
        also of a sliced or sorted one.
    output : label, default=None
        With ``target="all"``, the output drawn: the row may hold every
        output (``attr.iloc[i]``) or the output's columns alone
        (``attr[output].iloc[i]``, whose ``attrs`` still hold every output's
        ends).
    ax : matplotlib Axes, default=None
    max_display : int, default=10

    Returns
    -------
    matplotlib Axes
    """
    if isinstance(row, pd.DataFrame):
        if len(row) != 1:
            raise ValueError(f"waterfall draws one row; got {len(row)}.")
        label, row = row.index[0], row.iloc[0]
    else:
        label = row.name
    attrs = row.attrs
    every = isinstance(row.index, pd.MultiIndex)
    per_output = isinstance(attrs.get("base_values"), pd.DataFrame)
    if (every or per_output) and output is None:
        outputs = (
            list(dict.fromkeys(row.index.get_level_values(0)))
            if every
            else list(attrs["base_values"].columns)
        )
        raise ValueError(
            "waterfall draws one output, and this row comes from a target='all' "
            f"result: say which with output=, one of {outputs}."
        )
    if output is not None and not (every or per_output):
        raise ValueError(
            "output= picks one output of a target='all' result; this row has "
            "one output already: leave output out."
        )
    if every:
        if output not in row.index.get_level_values(0):
            raise ValueError(f"output={output!r} is not an output of this row.")
        row = row[output]
    if "prediction" not in attrs or "base_values" not in attrs:
        raise ValueError(
            "waterfall needs the attributions of a method whose rows sum to "
            "f(x) - f(baseline) (ShapleyValueSampling, ShapleyValues, "
            "KernelShap): their frames carry 'base_values' and 'prediction' in "
            "attrs, and this one does not."
        )
    ends = []
    for key in ("base_values", "prediction"):
        entry = attrs[key]
        if per_output:
            if output not in entry.columns:
                raise ValueError(
                    f"output={output!r} is not one of the result's outputs "
                    f"{list(entry.columns)}."
                )
            entry = entry[output]
        ends.append(float(rows_of(entry, pd.Index([label]), f"attrs[{key!r}]").iloc[0]))
    base, end = ends
    ax = _axes(ax)
    ordered = row.reindex(row.abs().sort_values(ascending=False).index)
    shown = ordered.iloc[:max_display]
    rest = ordered.iloc[max_display:]
    steps = list(shown.items())
    if len(rest):
        steps.append((f"{len(rest)} other features", float(rest.sum())))
    values = np.array([value for _, value in steps])
    starts = base + np.concatenate([[0.0], np.cumsum(values)[:-1]])
    n = len(steps)
    for i, ((_, value), start) in enumerate(zip(steps, starts)):
        y = n - 1 - i  # the first step on top
        colour = "#d62728" if value >= 0 else "#1f77b4"
        ax.barh(y, value, left=start, color=colour)
    ax.set_yticks(range(n), [str(name) for name, _ in reversed(steps)])
    ax.axvline(base, color="grey", linestyle=":", linewidth=0.8)
    ax.axvline(end, color="black", linewidth=0.8)
    ax.set_xlabel(f"f(baseline) = {base:.3g}  ->  f(x) = {end:.3g}")
    return ax


def dependence(attributions: pd.DataFrame, X, feature, *, ax=None):
    """One feature's attribution against its value, for every row.

    A numeric column gives a scatter; a categorical one (pandas
    ``category``, strings or booleans) one strip per category.

    Parameters
    ----------
    attributions : DataFrame
        The result of ``explain`` for one output.
    X : DataFrame or array-like
        The rows explained, with the same columns.
    feature : str
        The column drawn.
    ax : matplotlib Axes, default=None

    Returns
    -------
    matplotlib Axes
    """
    attributions = _one_output(attributions, "dependence")
    if feature not in attributions.columns:
        raise ValueError(
            f"{feature!r} is not a column of the attributions: "
            f"{list(attributions.columns)}."
        )
    ax = _axes(ax)
    values = _frame_like(X, attributions)[feature]
    attr = attributions[feature].to_numpy()
    if _categorical(values):
        categories = list(pd.Categorical(values).categories)
        codes = pd.Categorical(values, categories=categories).codes
        jitter = np.random.default_rng(0).uniform(-0.25, 0.25, size=len(attr))
        ax.scatter(codes + jitter, attr, s=12)
        ax.set_xticks(range(len(categories)), [str(c) for c in categories])
    else:
        ax.scatter(values.to_numpy(dtype=float), attr, s=12)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel(str(feature))
    ax.set_ylabel(f"attribution of {feature}")
    return ax


def _frame_like(X, attributions: pd.DataFrame) -> pd.DataFrame:
    """``X`` as a frame of the attributions' rows (:func:`skattr._data.rows_beside`)."""
    X = rows_beside(X, attributions.index, attributions.columns, attributions.attrs)
    missing = [c for c in attributions.columns if c not in X.columns]
    if missing:
        raise ValueError(
            f"X lacks the column(s) {missing} of the attributions (groups cannot be "
            "coloured by one value)."
        )
    return X


def _categorical(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.CategoricalDtype) or not (
        pd.api.types.is_numeric_dtype(values.dtype)
        and not pd.api.types.is_bool_dtype(values.dtype)
    )


def _scaled(values: pd.Series) -> np.ndarray:
    """Values as colours in [0, 1] (category codes for categorical columns)."""
    if _categorical(values):
        v = pd.Categorical(values).codes.astype(float)
    else:
        v = values.to_numpy(dtype=float)
    low, high = np.nanmin(v), np.nanmax(v)
    return np.zeros_like(v) if high == low else (v - low) / (high - low)


def interactions(
    attributions: pd.DataFrame, *, row=None, ax=None, max_display: int = 20
):
    """A heat map of pairwise interactions (``ShapleyInteractions``' result).

    Without ``row``: the mean over rows of ``|cell|`` (the diagonal the mean
    absolute main effect, each off-diagonal cell the mean of half the pair's
    absolute interaction), on a sequential scale. With ``row``: that row's
    matrix, signed, on a scale centred at 0. Features are ordered by their
    mean absolute Shapley value (the matrix rows' sums), the ``max_display``
    largest shown; each cell is annotated when at most 12 features are shown.

    Parameters
    ----------
    attributions : DataFrame
        The result of ``ShapleyInteractions.explain`` (rows (row of ``X``,
        feature), one column per feature); one output.
    row : label, default=None
        A row of ``X`` (the first level of the index) to draw alone.
    ax : matplotlib Axes, default=None
    max_display : int, default=20

    Returns
    -------
    matplotlib Axes

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import pandas as pd
    >>> from skattr import plot
    >>> index = pd.MultiIndex.from_product([[0, 1], ["a", "b"]], names=["row", "feature"])
    >>> attr = pd.DataFrame([[1.0, 0.5], [0.5, 2.0], [3.0, -1.0], [-1.0, 0.0]],
    ...                     index=index, columns=["a", "b"])
    >>> plot.interactions(attr).images[0].get_array().tolist()
    [[2.0, 0.75], [0.75, 1.0]]
    """
    attributions = _one_output(attributions, "plot.interactions")
    if interaction_rows(attributions) is None:
        raise ValueError(
            "plot.interactions draws ShapleyInteractions' result, whose rows are "
            "(row of X, feature); this frame has one row per row of X. Use "
            "plot.bar or plot.beeswarm for it."
        )
    attributions = whole_interactions(attributions)  # lines in feature order
    names = list(attributions.columns)
    g = len(names)
    cube = attributions.to_numpy().reshape(-1, g, g)
    order = np.argsort(-np.abs(cube.sum(2)).mean(0), kind="stable")[:max_display]
    if row is None:
        grid, cmap, title = np.abs(cube).mean(0), "viridis", "mean |interaction|"
        lim = (0.0, float(grid.max()) or 1.0)
    else:
        grid = attributions.loc[row].to_numpy()
        cmap, title = "RdBu_r", f"interactions of row {row!r}"
        top = float(np.abs(grid).max()) or 1.0
        lim = (-top, top)
    grid = grid[np.ix_(order, order)]
    shown = [names[i] for i in order]
    ax = _axes(ax)
    image = ax.imshow(grid, cmap=cmap, vmin=lim[0], vmax=lim[1])
    ax.set_xticks(range(len(shown)), shown, rotation=90)
    ax.set_yticks(range(len(shown)), shown)
    ax.set_title(title)
    if len(shown) <= 12:
        for i in range(len(shown)):
            for j in range(len(shown)):
                ax.text(j, i, f"{grid[i, j]:.2g}", ha="center", va="center", fontsize=7)
    ax.figure.colorbar(image, ax=ax, fraction=0.046)
    return ax
