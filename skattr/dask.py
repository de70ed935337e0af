"""Explanations of Dask DataFrames, one partition at a time.

``explainer.explain(ddf)`` and ``explainer.importance(ddf)`` come here when
``ddf`` is a ``dask.dataframe.DataFrame``; :func:`explain_with_extras` adds
the per-row extras that a pandas result keeps in ``attrs``.

How a call is built:

- Everything that can fail on the columns is checked before any partition
  is read: the columns against those of ``fit`` (on the frame's ``meta``, a
  few made-up rows of the right dtypes), the parameters, the target.
- The result's ``meta`` (its columns, float64, the input's index) comes from
  the explainer's layout, the same place that names the columns of a pandas
  result: column names are strings (Parquet needs them), ``target="all"``
  keeps its two levels (output, feature).
- The fitted explainer, with its model, is one task of the graph that every
  partition's task depends on: a worker receives it once, not once per
  partition.
- Partition ``i`` draws from its own stream, seeded from one seed drawn from
  ``random_state`` when the graph is built and from ``i``: the same seed
  gives the same result however many workers or threads run it.
- Each partition runs the explainer's own in-memory call, so a partition's
  result equals ``explain`` on that partition; errors in a partition's data
  say which partition.
- ``importance`` reduces per-partition moments (rows, mean and spread of
  ``|attribution|``, combined exactly) with a Dask tree reduction and
  returns a computed pandas table.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import numpy as np
import pandas as pd

try:
    import dask
    from dask.dataframe.utils import meta_nonempty
except ImportError as exc:  # pragma: no cover - the test extra installs it
    raise ImportError(
        "Explaining Dask DataFrames needs Dask: install skattr's 'dask' extra "
        "(pip install 'skattr[dask]')."
    ) from exc

from skattr._config import config_context, get_config
from skattr._data import (
    check_dask_frame,
    check_input,
    check_same_rows,
    check_sample_weight,
    combine_importance_moments,
    derived_seed,
    importance_moments,
    moments_table,
    moments_width,
)
from skattr.explainers._scoring import drops_table
from skattr.explainers._scoring import scored_importance as _scored_in_memory

__all__ = ["explain_with_extras"]


def explain_with_extras(explainer, X, y=None):
    """Lazy attributions of a Dask DataFrame, and their per-row extras.

    A pandas result carries its extras (base values, standard errors, the
    explained output...) in ``DataFrame.attrs``; a Dask DataFrame has no
    ``attrs``, so they come as a second lazy frame, computed by the same
    tasks as the attributions: compute or write both in one
    ``dask.compute`` call to explain every partition once.

    Parameters
    ----------
    explainer : fitted explainer
        Any skattr explainer except ``ShapleyInteractions`` (its rows are
        per pair of features).
    X : dask.dataframe.DataFrame
        Rows to explain, with the columns seen in ``fit``.
    y : dask.dataframe.Series, default=None
        True labels aligned with ``X`` (same partitions), for
        ``target="true"``.

    Returns
    -------
    attributions : dask.dataframe.DataFrame
        What ``explainer.explain(X, y)`` returns.
    extras : dask.dataframe.DataFrame
        Indexed like ``X``, one column per row entry of ``attrs``, named by
        its key (``"base_values"``, ``"target"``...), and one per cell
        entry and result column, named ``key|column`` (``"std|age"``, the
        audit report's way of flattening two levels). With ``target="all"``
        the output comes between them: ``"base_values|setosa"``,
        ``"std|setosa|age"``. All float64
        except ``"target"`` (the class labels, or output columns). Per-call
        entries (KernelShap's ``exact``) depend on the parameters and
        columns alone and are left out: an in-memory call on a few rows
        gives them.

    Examples
    --------
    >>> import dask
    >>> import dask.dataframe as dd
    >>> import pandas as pd
    >>> import torch
    >>> from skattr import ShapleyValueSampling
    >>> from skattr.dask import explain_with_extras
    >>> model = torch.nn.Linear(2, 1)
    >>> X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    >>> ex = ShapleyValueSampling(n_samples=4, random_state=0).fit(model, X)
    >>> attr, extras = explain_with_extras(ex, dd.from_pandas(X, npartitions=2))
    >>> list(extras.columns)[:4]
    ['base_values', 'prediction', 'std|a', 'std|b']
    >>> attr, extras = dask.compute(attr, extras)
    >>> bool(((attr.sum(axis=1) + extras["base_values"]
    ...        - extras["prediction"]).abs() < 1e-6).all())
    True
    """
    job = _plan(explainer, X, y, "both")
    combined = _map(explainer, X, y, None, job)
    attributions = combined.map_partitions(
        _view, 0, job.n_attr, job.attr_meta.columns, meta=job.attr_meta
    )
    extras = combined.map_partitions(
        _view, job.n_attr, None, job.extras_meta.columns, meta=job.extras_meta
    )
    return attributions, extras


def explain(explainer, X, y=None):
    """``explainer.explain`` on a Dask DataFrame: a lazy frame of attributions."""
    job = _plan(explainer, X, y, "attributions")
    return _map(explainer, X, y, None, job)


def importance(explainer, X, y=None, sample_weight=None) -> pd.DataFrame:
    """``explainer.importance`` on a Dask DataFrame: a computed pandas table.

    Each partition's attributions are reduced to their weight, the mean and
    the sum of squared deviations of ``|attribution|`` per column (and the
    signed mean, or each output's mean ``|attribution|`` under
    ``target="all"``); a Dask tree reduction combines them exactly, so the
    table equals ``rank_attributions`` of the concatenated attributions.
    """
    job = _plan(explainer, X, y, "moments", sample_weight=sample_weight)
    row = _reduce(explainer, X, y, sample_weight, job, _combine_moments, g=job.n_result)
    _nonempty(row)
    return _moments_table(row, job, weighted=sample_weight is not None)


def scored_importance(explainer, X, y=None, sample_weight=None) -> pd.DataFrame:
    """``FeaturePermutation(scoring=...).importance`` on a Dask DataFrame.

    Each feature is permuted within each partition, never across partitions:
    a permutation across the whole frame would move every row between
    workers (a full shuffle per feature and repeat), while within a
    partition of thousands of rows a shuffled column is still drawn from the
    column's own values. Each partition is scored as in memory; the drops
    in score are averaged over partitions weighted by their rows (or
    ``sample_weight``): for a metric that is a mean over rows (accuracy,
    squared or absolute error, log loss) that is the drop of the whole
    frame's score under the within-partition permutations, for others
    (ROC AUC, R²) the row-weighted mean of the partitions' drops. A frame
    sorted by a column makes each partition's values of it narrower than
    the whole frame's: shuffle the rows first (``ddf.sample(frac=1.0)``)
    where that matters. A partition of one row has nothing to shuffle and
    is left out of the score and of ``attrs["n_rows"]``.
    """
    job = _plan(explainer, X, y, "scores", sample_weight=sample_weight)
    row = _reduce(explainer, X, y, sample_weight, job, _combine_means)
    # no row scored: X may still have rows, in partitions of one (its length
    # is read, a second pass, only on this error path)
    if row[1] == 0 and len(X.index) > 0:
        raise ValueError(
            "no partition of X has 2 rows or more, so no column can be "
            "shuffled within one: repartition X into fewer, larger partitions "
            "(X.repartition(npartitions=...))."
        )
    _nonempty(row)
    g = len(job.names)
    full = row[3:].reshape(g, -1)
    return drops_table(full, job.names, float(row[2]), int(round(row[1])))


# ---------------------------------------------------------------- the plan
@dataclass(frozen=True)
class _Job:
    """What every partition's task needs besides its data and the explainer."""

    what: str  #: "attributions", "both", "moments" or "scores"
    seed: int | None  #: drawn once from random_state; None: the method draws nothing
    config: dict  #: skattr.get_config() where the graph was built
    every: bool  #: target="all": (output, feature) columns
    n_outputs: int  #: outputs in the result (1 unless every)
    n_result: int  #: result columns per output
    names: list  #: the result columns as the pandas result names them
    outputs: list  #: the output labels of target="all"
    attr_meta: pd.DataFrame
    extras: tuple  #: (key, kind) of the row and cell entries
    extras_meta: pd.DataFrame | None
    moments_meta: pd.DataFrame | None

    @property
    def n_attr(self) -> int:
        return self.attr_meta.shape[1]

    def meta(self) -> pd.DataFrame:
        if self.what == "attributions":
            return self.attr_meta
        if self.what == "both":
            return _combined(self.attr_meta, self.extras_meta)
        return self.moments_meta


def _plan(explainer, X, y, what: str, sample_weight=None) -> _Job:
    """Check the call and build its :class:`_Job`, before any partition is read."""
    explainer._check_fitted()
    check_dask_frame(X, y=y, sample_weight=sample_weight)
    if not explainer._flat_rows:
        raise ValueError(
            f"{type(explainer).__name__} returns g rows per explained row (a row "
            "MultiIndex), which a Dask DataFrame cannot hold: explain Dask "
            "partitions with ShapleyValueSampling or KernelShap, or compute "
            "interactions in memory on a sample (ddf.sample(frac=...).compute())."
        )
    settings = explainer._settings()
    sample = meta_nonempty(X._meta)
    check_input(explainer, sample, reset=False, numeric=explainer._adapter.numeric_only)
    layout = explainer._layout_for(sample, settings)
    explainer._check_columns(layout, settings)
    if settings.target == "true" and y is None:
        raise ValueError("target='true' needs the true labels: call explain(X, y).")
    every = settings.target == "all"
    names = list(layout.result_columns)
    outputs = list(explainer._output_labels(layout)) if every else [None]
    index = X._meta.index[:0]
    attr_meta = _empty(_string_columns(explainer._frame_columns(layout, every)), index)
    extras = tuple(
        (key, kind) for key, kind in explainer._extras.items() if kind != "call"
    )
    extras_meta = moments_meta = None
    if what == "both":
        extras_meta = _extras_meta(explainer, layout, extras, names, outputs, index)
    elif what == "moments":
        g, k = len(names), len(outputs)
        moments_meta = _empty(_positions(moments_width(g, k)), pd.RangeIndex(0))
    elif what == "scores":
        explainer._check_scoring_y(y)
        R = int(explainer.n_repeats)
        moments_meta = _empty(_positions(3 + len(names) * R), pd.RangeIndex(0))
    seed = explainer._seed() if explainer._random else None
    return _Job(
        what=what,
        seed=seed,
        config=get_config(),
        every=every,
        n_outputs=len(outputs),
        n_result=len(names),
        names=names,
        outputs=outputs,
        attr_meta=attr_meta,
        extras=extras,
        extras_meta=extras_meta,
        moments_meta=moments_meta,
    )


def _map(explainer, X, y, sample_weight, job: _Job):
    """One task per partition of ``X``, all depending on one explainer task."""
    name = f"skattr-{type(explainer).__name__}-{uuid.uuid4().hex}"
    fitted = dask.delayed(explainer, name=name, pure=True)
    reduced = job.what in ("moments", "scores")  # one row per partition
    return X.map_partitions(
        _run,
        y,
        sample_weight,
        fitted,
        job,
        meta=job.meta(),
        enforce_metadata=False,
        clear_divisions=reduced,
    )


def _run(part, y, weights, explainer, job: _Job, partition_info=None):
    """The task of one partition: the explainer's in-memory call on it,
    under the settings (``skattr.config_context``) of the thread that built
    the graph."""
    if partition_info is None:  # pragma: no cover - Dask always gives it
        raise RuntimeError(
            "Dask did not say which partition this is (partition_info), so its "
            "random stream cannot be chosen."
        )
    number = int(partition_info["number"])
    if len(part) == 0:
        return _empty_result(part, job)
    with config_context(**job.config):
        return _run_partition(part, y, weights, explainer, job, number)


def _run_partition(part, y, weights, explainer, job: _Job, number: int):
    try:
        check_same_rows(part, y=y, sample_weight=weights)
        if job.what == "scores":
            if len(part) < 2:  # nothing to shuffle: it weighs nothing
                return _empty_result(part.iloc[:0], job)
            return _scores(explainer, part, y, weights, job, number)
        generator = None
        if job.seed is not None:
            generator = explainer._generator(derived_seed(job.seed, number))
        frame = explainer._explain(part, y, generator)
        if job.what == "moments":
            w = check_sample_weight(weights, len(part))
            return _moments(frame.to_numpy(), w, job)
    except (ValueError, TypeError) as exc:
        named = _in_partition(exc, number, part)
        if named is exc:
            raise
        raise named from exc
    values = pd.DataFrame(
        frame.to_numpy(), index=part.index, columns=job.attr_meta.columns, copy=False
    )
    if job.what == "attributions":
        return values
    return _combined(values, _extras_frame(frame, job))


def _in_partition(exc: Exception, number: int, part) -> Exception:
    """``exc`` with the partition it comes from named first."""
    first, last = part.index[[0, -1]].tolist()  # Python values, not numpy's reprs
    where = (
        f"In partition {number} of the Dask DataFrame (rows {first!r}..{last!r}): {exc}"
    )
    try:
        return type(exc)(where)
    except Exception:  # an exception class that takes other arguments
        return exc


# ---------------------------------------------------------------- frames
def _string_columns(columns: pd.Index) -> pd.Index:
    """The same columns with every label a string (Parquet needs them)."""
    if isinstance(columns, pd.MultiIndex):
        return pd.MultiIndex.from_tuples(
            [tuple(str(v) for v in c) for c in columns], names=columns.names
        )
    return pd.Index([str(c) for c in columns])


def _positions(n: int) -> pd.Index:
    return pd.Index([f"c{i}" for i in range(n)])


def _empty(columns: pd.Index, index: pd.Index, dtypes=None) -> pd.DataFrame:
    frame = pd.DataFrame(
        np.empty((len(index), len(columns))), index=index, columns=columns
    )
    return frame if dtypes is None else frame.astype(dict(zip(columns, dtypes)))


def _extras_meta(explainer, layout, extras, names, outputs, index) -> pd.DataFrame:
    """The extras frame's columns and dtypes (see :func:`explain_with_extras`)."""
    prefixes = [] if outputs == [None] else [f"|{o}" for o in outputs]
    columns, dtypes = [], []
    label = np.dtype(np.int64)
    classes = explainer.classes_
    if classes is not None and len(classes) == layout.n_outputs:
        label = np.asarray(classes).dtype
    for key, kind in extras:
        if kind == "cell":
            per = [f"|{c}" for c in names]
            cols = [f"{key}{o}{c}" for o in prefixes or [""] for c in per]
        else:
            cols = [f"{key}{o}" for o in prefixes or [""]]
        columns += cols
        dtypes += [label if kind == "target" else np.dtype(np.float64)] * len(cols)
    return _empty(pd.Index(columns), index, dtypes)


def _extras_frame(frame: pd.DataFrame, job: _Job) -> pd.DataFrame:
    """A partition's ``attrs`` entries as the columns of the extras frame."""
    meta = job.extras_meta
    blocks = {}
    at = 0
    for key, _kind in job.extras:
        entry = frame.attrs[key]
        values = entry.to_numpy()
        values = values[:, None] if values.ndim == 1 else values
        for j in range(values.shape[1]):
            column = meta.columns[at + j]
            blocks[column] = values[:, j].astype(meta.dtypes.iloc[at + j], copy=False)
        at += values.shape[1]
    return pd.DataFrame(blocks, index=frame.index, columns=meta.columns)


def _combined(attributions: pd.DataFrame, extras: pd.DataFrame) -> pd.DataFrame:
    """Attributions and extras side by side, under positional column names."""
    left = attributions.set_axis(_positions(attributions.shape[1]), axis=1)
    right = extras.set_axis([f"e{i}" for i in range(extras.shape[1])], axis=1)
    return pd.concat([left, right], axis=1)


def _view(combined: pd.DataFrame, start: int, stop, columns) -> pd.DataFrame:
    """Columns ``start:stop`` of a combined partition, under their own names."""
    return combined.iloc[:, start:stop].set_axis(columns, axis=1)


def _empty_result(part: pd.DataFrame, job: _Job) -> pd.DataFrame:
    """An empty partition's result: no rows, or a zero-weight moments row."""
    meta = job.meta()
    if job.what in ("moments", "scores"):
        return pd.DataFrame(np.zeros((1, meta.shape[1])), columns=meta.columns)
    return meta.set_axis(part.index[:0], axis=0)


# ---------------------------------------------------------------- reductions
def _identity(frame):
    return frame


def _moments(a: np.ndarray, w, job: _Job) -> pd.DataFrame:
    """A partition's :func:`~skattr._data.importance_moments`, as one row."""
    row = importance_moments(a, w, job.n_outputs, job.every)
    return pd.DataFrame(row[None], columns=job.moments_meta.columns)


def _combine_moments(frame: pd.DataFrame, g: int) -> pd.DataFrame:
    """Moments rows of several partitions -> the moments of their union."""
    row = combine_importance_moments(frame.to_numpy(), g)
    return pd.DataFrame(row[None], columns=frame.columns)


def _combine_means(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows of (weight, rows, values...) -> their weight-averaged values."""
    v = frame.to_numpy()
    W_i = v[:, 0]
    W = W_i.sum()
    values = W_i @ v[:, 2:] / W if W > 0 else v[0, 2:] * 0
    row = np.concatenate([[W, v[:, 1].sum()], values])
    return pd.DataFrame(row[None], columns=frame.columns)


def _reduce(explainer, X, y, sample_weight, job: _Job, combine, **kwargs):
    """One row per partition, combined by a Dask tree reduction: the
    whole frame's row ``(weight, rows, values...)``, computed."""
    rows = _map(explainer, X, y, sample_weight, job)
    total = rows.reduction(
        chunk=_identity,
        combine=combine,
        aggregate=combine,
        meta=job.moments_meta,
        combine_kwargs=kwargs,
        aggregate_kwargs=kwargs,
    ).compute()
    return total.to_numpy()[0]


def _nonempty(row: np.ndarray) -> None:
    """Refuse a reduced row that counted no rows of ``X``."""
    if row[1] == 0:
        raise ValueError(
            "X is empty: every partition of the Dask DataFrame has 0 rows."
        )


def _moments_table(row: np.ndarray, job: _Job, weighted: bool) -> pd.DataFrame:
    """The importance table from the moments of the whole frame."""
    outputs = job.outputs if job.every else None
    table = moments_table(row, pd.Index(job.names), outputs, weighted)
    table.attrs["n_rows"] = int(round(row[1]))
    return table


def _scores(explainer, part, y, weights, job: _Job, number: int) -> pd.DataFrame:
    """One row: weight, rows, the unpermuted score and the drops ``[g, R]``."""
    X, y, w, settings = explainer._checked_rows(part, y, weights)
    n = X.shape[0]
    generator = explainer._generator(derived_seed(job.seed, number))
    table = _scored_in_memory(explainer, X, settings, y, w, None, generator)
    drops = table.attrs["importances"].loc[job.names].to_numpy()
    W = n if w is None else w.sum()
    row = np.concatenate([[W, n, table.attrs["baseline_score"]], drops.ravel()])
    return pd.DataFrame(row[None], columns=job.moments_meta.columns)
