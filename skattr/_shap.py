"""Interop for SHAP users: an ``explain`` result as a ``shap.Explanation``."""

from __future__ import annotations

import numpy as np
import pandas as pd

from skattr._data import interaction_rows, rows_beside, rows_of, whole_interactions


def to_shap(attributions: pd.DataFrame, X=None):
    """An ``explain`` result (with its ``attrs``) as a ``shap.Explanation``.

    So that SHAP's plots (``shap.plots.waterfall``, ``beeswarm``, ``bar``,
    ...) draw skattr's attributions. shap is needed only for this function.

    Parameters
    ----------
    attributions : DataFrame
        The result of ``explain``, or rows of it (sliced or reordered: the
        extras in its ``attrs`` are matched to its rows by label); with
        ``target="all"`` (two-level columns) the values become
        ``[n_rows, n_features, n_outputs]``, SHAP's layout for several
        outputs. A ``ShapleyInteractions`` result gives SHAP's layout of
        interaction values, ``[n_rows, n_features, n_features]`` (and
        ``n_outputs`` last with ``target="all"``).
    X : DataFrame or array-like, default=None
        The rows explained, for the feature values (``data``); only when it
        has the attributions' columns (not for feature groups or
        interactions), matched to the attributions' rows as
        :func:`skattr._data.rows_beside` says: a DataFrame by its index
        (in its order beside an array's result), an array in its order
        beside a result in ``explain``'s order (whole or filtered), and
        refused where that cannot be told (an array beside a sorted result).

    Returns
    -------
    shap.Explanation
        ``values``, ``base_values`` (``attrs["base_values"]``, when the
        method writes it), ``data`` and ``feature_names``.
    """
    try:
        import shap
    except ImportError:  # pragma: no cover - shap is in the test extra
        raise ImportError("to_shap needs the shap package: pip install shap.") from None
    every = isinstance(attributions.columns, pd.MultiIndex)
    outputs = (
        list(dict.fromkeys(attributions.columns.get_level_values(0))) if every else None
    )
    features = list(attributions[outputs[0]].columns if every else attributions.columns)
    rows = interaction_rows(attributions)
    cube = rows is not None  # ShapleyInteractions': whole g x g matrices
    if cube:
        attributions = whole_interactions(attributions)
    else:
        rows = attributions.index
    parts = [attributions[o] for o in outputs] if every else [attributions]
    values = np.stack([part.to_numpy() for part in parts], axis=-1)
    if cube:
        values = values.reshape(len(rows), len(features), len(features), -1)
    if not every:
        values = values[..., 0]
    base = attributions.attrs.get("base_values")
    if base is not None:
        if isinstance(base, pd.DataFrame) and not every:
            raise ValueError(
                "These attributions are one output of a target='all' result, whose "
                "attrs hold every output's base values. Pass the whole result "
                "(SHAP's layout for several outputs), or explain with target=label."
            )
        base = rows_of(base, rows, 'attrs["base_values"]')
        base = (base[outputs] if every else base).to_numpy()
    data = None
    if X is not None and not cube:
        frame = rows_beside(X, rows, features, attributions.attrs)
        if all(f in frame.columns for f in features):
            data = frame[features].to_numpy()
    return shap.Explanation(
        values=values,
        base_values=base,
        data=data,
        feature_names=features,
        output_names=None if outputs is None else [str(o) for o in outputs],
    )
