"""scikit-learn Pipelines ending in a skorch net: preprocessing and groups.

The preprocessing steps (``pipeline[:-1]``) run on the numpy/pandas side once
per ``explain`` call; the torch core works in the model's input space. To
report one attribution per *original* column, every model-input column is
traced back to the input column it comes from, structurally, through the
transformers listed in :data:`ONE_TO_ONE` and ``ColumnTransformer``,
``Pipeline``, ``OneHotEncoder``, ``SimpleImputer`` (with or without
``add_indicator``), ``FunctionTransformer``, ``"passthrough"`` and
``"drop"``. A transformer whose outputs mix columns (PCA, polynomial
features, ...) cannot be traced: the error says to explain the net on the
transformed matrix, with ``feature_groups`` over its columns.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

#: Transformers whose output column j depends on input column j alone.
ONE_TO_ONE = (
    "StandardScaler",
    "MinMaxScaler",
    "MaxAbsScaler",
    "RobustScaler",
    "QuantileTransformer",
    "PowerTransformer",
    "OrdinalEncoder",
    "TargetEncoder",
    "Binarizer",
    "KBinsDiscretizer",  # encode="ordinal"; one-hot bins are traced per bin
)


class UntraceableError(ValueError):
    """A transformer's outputs cannot be traced back to its inputs."""


def trace(transformer, sources: list[int]) -> list[int]:
    """The input column each output column of ``transformer`` comes from.

    Parameters
    ----------
    transformer : fitted transformer, "passthrough", "drop" or None
    sources : list of int
        For each input column of ``transformer``, the original column it
        comes from.

    Returns
    -------
    list of int
        For each output column, the original column it comes from.
    """
    if transformer is None or transformer == "passthrough":
        return list(sources)
    if transformer == "drop":
        return []
    name = type(transformer).__name__
    if name == "Pipeline":
        for _, step in transformer.steps:
            sources = trace(step, sources)
        return sources
    if name == "ColumnTransformer":
        return _trace_column_transformer(transformer, sources)
    if name == "OneHotEncoder":
        counts = getattr(transformer, "_n_features_outs", None)
        if counts is None:  # pragma: no cover - older scikit-learn
            counts = [
                len(c) - (d is not None)
                for c, d in zip(transformer.categories_, _drop_idx(transformer))
            ]
        return [s for s, k in zip(sources, counts) for _ in range(k)]
    if name == "SimpleImputer":
        keep = list(sources)
        if not getattr(transformer, "keep_empty_features", False):
            stats = np.asarray(transformer.statistics_)
            if stats.dtype.kind == "f":
                keep = [s for s, v in zip(sources, stats) if not np.isnan(v)]
        indicator = getattr(transformer, "indicator_", None)
        if indicator is not None:
            keep += [sources[i] for i in indicator.features_]
        return keep
    if name == "KBinsDiscretizer" and transformer.encode != "ordinal":
        # one-hot bins, column by column: n_bins_[j] outputs for column j
        return [s for s, k in zip(sources, transformer.n_bins_) for _ in range(int(k))]
    if name == "TargetEncoder" and getattr(transformer, "target_type_", "") == (
        "multiclass"
    ):  # one output per class for each input column, column by column
        k = len(transformer.classes_)
        return [s for s in sources for _ in range(k)]
    if name in ONE_TO_ONE:
        return list(sources)
    if name == "FunctionTransformer":
        n_out = _n_outputs(transformer, len(sources))
        if n_out == len(sources) and _column_wise(transformer, len(sources)):
            return list(sources)
    raise UntraceableError(
        f"Cannot trace the outputs of {name} back to the input columns (it may "
        "mix columns)."
    )


def _drop_idx(encoder):  # pragma: no cover - older scikit-learn
    drop = getattr(encoder, "drop_idx_", None)
    return [None] * len(encoder.categories_) if drop is None else list(drop)


def _n_outputs(transformer, n_in: int) -> int | None:
    try:
        return len(transformer.get_feature_names_out([f"x{i}" for i in range(n_in)]))
    except Exception:
        pass
    try:
        return int(np.shape(transformer.transform(np.zeros((1, n_in))))[1])
    except Exception:
        return None


def _column_wise(transformer, n_in: int) -> bool:
    """Whether output column j of ``transformer`` moves with input column j
    alone, as far as a probe on a few synthetic rows tells.

    For each bit of the column numbers, the columns whose number has that
    bit set are moved together, then the others (values in ``[0.5, 1.5]``,
    each column moved by its own step in ``[0.15, 0.35]``, so that logs and
    roots are defined): a column-wise function moves only the outputs of
    moved columns. An output that reads another input (a reversal, a row
    normalizer) differs from it in some bit, so it is unmoved in a copy
    where that input moves; the steps differ per column, so that the moves
    of several inputs it reads do not cancel (a difference of differences).
    ``2 * ceil(log2(n_in))`` moved copies in one ``transform`` call, so that
    memory grows with ``n_in log n_in``. A function the probe cannot run on
    (it needs strings, say) is taken as column-wise.
    """
    if n_in < 2:
        return True
    rows = 4
    rng = np.random.default_rng(0)
    base = rng.uniform(0.5, 1.5, size=(rows, n_in))
    step = rng.uniform(0.15, 0.35, size=n_in)  # its own per column: no cancelling
    number = np.arange(n_in)
    bits = [(number >> b) & 1 == 1 for b in range(int(n_in - 1).bit_length())]
    moved_sets = [m for bit in bits for m in (bit, ~bit)]  # [2 * bits] of [n_in]
    moved = base[None] + (np.asarray(moved_sets) * step)[:, None, :]
    data = np.concatenate([base, moved.reshape(-1, n_in)])
    names = getattr(transformer, "feature_names_in_", None)
    if names is not None and len(names) == n_in:
        data = pd.DataFrame(data, columns=list(names))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the probe's rows, not the user's
            out = np.asarray(transformer.transform(data), dtype=np.float64)
    except Exception:
        return True
    if out.shape != (rows * (len(moved_sets) + 1), n_in):
        return True
    same = np.isclose(out[rows:].reshape(len(moved_sets), rows, n_in), out[None, :rows],
                      rtol=1e-9, atol=0.0, equal_nan=True)  # fmt: skip
    changed = ~same.all(axis=1)  # [probe, output column]
    return not (changed & ~np.asarray(moved_sets)).any()


def _trace_column_transformer(ct, sources: list[int]) -> list[int]:
    indices = getattr(ct, "_transformer_to_input_indices", None)
    if indices is None:  # pragma: no cover - older scikit-learn
        raise UntraceableError(
            "This scikit-learn's ColumnTransformer cannot be traced."
        )
    out: list[int] = []
    for name, trans, _ in ct.transformers_:
        cols = list(indices.get(name, []))
        if not cols or trans == "drop":
            continue
        out += trace(trans, [sources[c] for c in cols])
    return out


def mismatch_message(given: int, traced: int) -> str:
    """The error for preprocessing that gives another number of model
    inputs than were traced to the user's columns."""
    return (
        f"The Pipeline's preprocessing gives {given} model input(s), but skattr "
        f"traced {traced} back to the original columns: a transformer's outputs "
        "are not the ones its tracing assumes, and the attributions would be "
        "credited to the wrong columns. Explain the transformed matrix with the "
        "net itself, grouping its columns with feature_groups: "
        "fit(pipeline[-1], pipeline[:-1].transform(X))."
    )


def trace_inputs(preprocess, columns) -> tuple[list[int], list[str]]:
    """For each model input: the user column it comes from, and a label.

    The label names the user column and, where the preprocessing gives
    output names, the model input (``"island (model input 'cat__island_Biscoe')"``),
    for error messages. A transformer that cannot be traced gets a
    ``ValueError`` that shows the alternative.
    """
    try:
        origin = trace(preprocess, list(range(len(columns))))
    except UntraceableError as exc:
        raise ValueError(
            f"{exc} skattr reports one attribution per original column by tracing "
            "each model input back to its column, which is not possible here. "
            "Explain the transformed matrix with the net itself, grouping its "
            "columns with feature_groups: fit(pipeline[-1], pipeline[:-1].transform(X)) "
            "with feature_groups={name: [model columns]} or an integer mask."
        ) from None
    try:
        names = [str(n) for n in preprocess.get_feature_names_out()]
    except Exception:
        names = None
    if names is not None and len(names) != len(origin):
        raise ValueError(mismatch_message(len(names), len(origin)))
    labels = [
        f"{columns[src]} (model input {names[i]!r})"
        if names is not None
        else f"{columns[src]} (model input {i})"
        for i, src in enumerate(origin)
    ]
    return origin, labels
