"""Interop for SHAP users: an ``explain`` result as a ``shap.Explanation``."""

from __future__ import annotations

import numpy as np
import pandas as pd


def to_shap(attributions: pd.DataFrame, X=None):
    """An ``explain`` result (with its ``attrs``) as a ``shap.Explanation``.

    So that SHAP's plots (``shap.plots.waterfall``, ``beeswarm``, ``bar``,
    ...) draw skattr's attributions. shap is needed only for this function.

    Parameters
    ----------
    attributions : DataFrame
        The result of ``explain``; with ``target="all"`` (two-level columns)
        the values become ``[n_rows, n_features, n_outputs]``, SHAP's layout
        for several outputs.
    X : DataFrame or array-like, default=None
        The rows explained, for the feature values (``data``); only when it
        has the attributions' columns (not for feature groups).

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
    base = attributions.attrs.get("base_values")
    if isinstance(attributions.columns, pd.MultiIndex):
        outputs = list(dict.fromkeys(attributions.columns.get_level_values(0)))
        features = list(attributions[outputs[0]].columns)
        values = np.stack([attributions[o].to_numpy() for o in outputs], axis=-1)
        base = None if base is None else base[outputs].to_numpy()
    else:
        outputs = None
        features = list(attributions.columns)
        values = attributions.to_numpy()
        base = None if base is None else base.to_numpy()
    data = None
    if X is not None:
        frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X))
        if not isinstance(X, pd.DataFrame) and frame.shape[1] == len(features):
            frame.columns = features
        if all(f in frame.columns for f in features) and len(frame) == len(values):
            data = frame[features].to_numpy()
    return shap.Explanation(
        values=values,
        base_values=base,
        data=data,
        feature_names=features,
        output_names=None if outputs is None else [str(o) for o in outputs],
    )
