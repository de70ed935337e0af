"""Conversion and validation of user data: the one place that does it.

Everything the user hands to an explainer (``X``, ``y``, ``baseline``,
parameters) is checked here, and every error message about data is written
here, in the user's terms: column names, shapes, the parameter's name.
Validated data becomes a float tensor on the model's device; the index and
the column names are kept beside it.
"""

from __future__ import annotations

import numbers
import os
import sys
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.utils.validation import validate_data

# ---------------------------------------------------------------- parameters


def check_int(name: str, value: object, *, minimum: int = 1, allow_none=False) -> None:
    """Raise if ``value`` is not an integer of at least ``minimum``."""
    if value is None and allow_none:
        return
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or int(value) < minimum
    ):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")


def check_coalition_count(name: str, value: object) -> None:
    """Raise unless ``value`` is ``None`` or a number of coalitions that holds
    a pair (a coalition and its complement): an integer of at least 2."""
    check_int(name, value, allow_none=True)
    if value is not None and value < 2:
        raise ValueError(
            f"{name} counts coalitions, which come in pairs (a coalition and its "
            f"complement): it must be at least 2; got {value}."
        )


def check_pairs_cover_groups(
    method: str, n_samples: int | None, g: int, exact: bool, instead: str
) -> None:
    """Raise when a sampled Kernel SHAP design has fewer coalition pairs than
    the ``g`` groups it estimates: its regression on the pairs then has no
    degree of freedom left for an error bar and is mostly underdetermined,
    its values arbitrary (they grew to ``1e13`` on a model of outputs below
    1). ``instead`` names what else the user can do. A drawn design of more
    pairs that still does not determine the values is drawn again
    (:func:`~skattr.core.kernel_shap.grow_determined`)."""
    if exact or n_samples is None or n_samples >= 2 * g:
        return
    raise ValueError(
        f"{method}(n_samples={n_samples}) evaluates {n_samples // 2} coalition "
        f"pairs for {g} features (groups): fewer pairs than groups leave its "
        "regression no error bar and, mostly, values it cannot determine "
        f"(arbitrary ones). Use n_samples >= {2 * g} (the default, None, takes "
        f"{instead}), or merge features with feature_groups."
    )


def check_bool(name: str, value: object) -> None:
    """Raise if ``value`` is not ``True`` or ``False``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}.")


def check_number(
    name: str, value: object, *, minimum: float = 0.0, strict=False, allow_none=False
) -> None:
    """Raise if ``value`` is not a real number above ``minimum``."""
    if value is None and allow_none:
        return
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and (value > minimum if strict else value >= minimum)
    if not ok or not np.isfinite(value):
        op = ">" if strict else ">="
        raise ValueError(
            f"{name} must be a finite number {op} {minimum}; got {value!r}."
        )


def check_option(name: str, value: object, options: Sequence[str]) -> None:
    """Raise if ``value`` is not one of ``options``."""
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {list(options)}; got {value!r}.")


# ---------------------------------------------------------------------- X


def is_dask(obj) -> bool:
    """Whether ``obj`` is a Dask collection (DataFrame, Series, Array...).

    Told from the object's type, without importing Dask: a Dask collection
    has a task graph (``__dask_graph__``) and comes from a ``dask`` module.
    """
    module = type(obj).__module__ or ""
    root = module.split(".")[0]  # dask 2024.x kept its frames in dask_expr
    return root in ("dask", "dask_expr") and hasattr(obj, "__dask_graph__")


def check_dask_frame(X, **series) -> None:
    """A Dask ``X`` must be a Dask DataFrame (not an Array or a Series), and
    ``y`` or ``sample_weight`` given with it Dask Series with ``X``'s
    partitions (their rows are checked per partition, :func:`check_same_rows`)."""
    # told by the type's name: Dask is optional, and a Dask Series answers
    # for .columns through its metadata
    if type(X).__name__ != "DataFrame":
        raise TypeError(
            f"X is a Dask {type(X).__name__}; expected a dask.dataframe.DataFrame "
            "with the columns seen in fit (a Dask Array converts with "
            "dask.dataframe.from_dask_array(array, columns=[...]))."
        )
    for name, value in series.items():
        if value is None:
            continue
        if not (is_dask(value) and hasattr(value, "index")):  # a Series or frame
            raise TypeError(
                f"X is a Dask DataFrame, so {name} must be a Dask Series aligned "
                f"with it (e.g. ddf['label'], with the same partitions); got "
                f"{type(value).__name__}."
            )
        if value.npartitions != X.npartitions:
            raise ValueError(
                f"{name} has {value.npartitions} partitions but X has "
                f"{X.npartitions}: give {name} from the same frame as X "
                "(e.g. X = ddf.drop(columns='label'), y = ddf['label'])."
            )


def check_same_rows(part: pd.DataFrame, **series) -> None:
    """In one partition, ``y`` and ``sample_weight`` follow ``X``'s rows."""
    for name, value in series.items():
        if value is not None and not value.index.equals(part.index):
            raise ValueError(
                f"{name} is not indexed like X in this partition: give {name} "
                "from the same frame as X (e.g. y = ddf['label']), whose rows "
                "it then follows."
            )


def dask_free(**arrays) -> None:
    """Refuse a Dask collection where the call's ``X`` is in memory."""
    for name, value in arrays.items():
        if value is not None and is_dask(value):
            raise TypeError(
                f"{name} is a Dask collection, but X is not: give X as a Dask "
                f"DataFrame too (with {name} from the same frame), or compute "
                f"{name} first."
            )


def check_input(estimator, X, *, reset: bool, numeric: bool = True, name: str = "X"):
    """Check the shape, emptiness and column names of ``X``; return it 2-D.

    ``numeric=True`` (a model without a Pipeline to encode the columns)
    first refuses non-numeric columns, naming them. ``reset=True`` (in
    ``fit``) records ``n_features_in_`` and, for a DataFrame,
    ``feature_names_in_`` on ``estimator``; ``reset=False`` (in ``explain``)
    checks ``X`` against what ``fit`` recorded, with scikit-learn's
    messages: the names and their order when ``fit`` saw names, the number
    of columns when it saw only that, nothing when it saw neither (then
    each call takes its columns from its own ``X``). Values are not
    converted here: a Pipeline may still need to encode them.
    """
    if X is None:
        raise ValueError(
            f"{name} is None; expected an array-like of shape (n_rows, n_features)."
        )
    if is_dask(X):
        raise TypeError(
            f"{name} is a Dask collection; fit and baselines take in-memory rows: "
            f"give a sample, e.g. {name}.sample(frac=0.01).compute(). (explain "
            "and importance take Dask DataFrames as they are.)"
        )
    if isinstance(X, pd.Series):
        raise ValueError(
            f"{name} is a pandas Series; expected 2-D data of shape "
            f"(n_rows, n_features). Use {name}.to_frame().T for one row, "
            f"or {name}.to_frame() for one feature."
        )
    if not isinstance(X, (pd.DataFrame, np.ndarray, torch.Tensor)):
        X = _as_array(X, name)
    if X.ndim != 2:
        raise ValueError(
            f"Expected 2-D {name} of shape (n_rows, n_features); got {X.ndim}-D "
            f"of shape {tuple(X.shape)}. Reshape with {name}.reshape(1, -1) for one "
            f"row or {name}.reshape(-1, 1) for one feature."
        )
    n, p = X.shape
    if n == 0:
        raise ValueError(f"{name} is empty: it has 0 rows (shape {tuple(X.shape)}).")
    if p == 0:
        raise ValueError(f"{name} has no columns (shape {tuple(X.shape)}).")
    if isinstance(X, pd.DataFrame) and not X.columns.is_unique:
        twice = _repeated(X.columns)
        raise ValueError(
            f"{name} has more than one column named {', '.join(map(repr, twice))}: "
            "each column needs a name of its own, for the result's columns and "
            "for feature_groups and baselines by name. Rename them first."
        )
    if numeric:
        check_numeric(X, name)
    # the common cases without scikit-learn's general machinery: string
    # names at fit, the very names fit recorded at explain
    strings = _string_names(X) if reset else None
    if reset:  # labels that are not all strings: scikit-learn records none
        labelled = isinstance(X, pd.DataFrame) and strings is None
        estimator._column_labels = X.columns if labelled else None
    else:
        _check_column_order(estimator, X, name)
    if strings is not None:  # what validate_data records for string names
        names = np.asarray(strings, dtype=object)
        estimator.feature_names_in_ = names
        estimator.n_features_in_ = p
        # the names as an Index too: explain compares them in one call
        estimator._names_index = (names, X.columns)
        return X
    if not reset and _same_names(estimator, X):
        return X
    if (
        reset
        or hasattr(estimator, "feature_names_in_")
        or (
            isinstance(X, pd.DataFrame)
            and getattr(estimator, "_unnamed_fit_rows", False)
        )
    ):
        # scikit-learn's own checks, warnings and messages (fit saw rows
        # without names: "X has feature names, but ... was fitted without")
        validate_data(estimator, X, reset=reset, skip_check_array=True)
    elif hasattr(estimator, "n_features_in_") and p != estimator.n_features_in_:
        raise ValueError(
            f"{name} has {p} features, but {type(estimator).__name__} is expecting "
            f"{estimator.n_features_in_} features as input."
        )
    return X


def _string_names(X) -> list[str] | None:
    """At ``fit``, the common case decided without scikit-learn's general
    machinery: the column names of a DataFrame whose names are all strings."""
    if not isinstance(X, pd.DataFrame):
        return None
    columns = X.columns.tolist()
    return columns if all(isinstance(c, str) for c in columns) else None


def _reordered(labels: pd.Index, reference: pd.Index) -> bool:
    """Whether ``labels`` are those of ``reference``, each once, in another
    order (what reading by position would cross)."""
    return (
        len(labels) == len(reference)
        and not labels.equals(reference)
        and labels.is_unique
        and reference.is_unique
        and labels.isin(reference).all()
    )


def _check_column_order(estimator, X, name: str) -> None:
    """Refuse a frame holding the column labels ``fit`` saw (not all
    strings, which scikit-learn's checks skip) in another order: taken by
    position, each column would go where another belongs."""
    fitted = getattr(estimator, "_column_labels", None)
    if fitted is None or not isinstance(X, pd.DataFrame):
        return
    columns = X.columns
    if _reordered(columns, fitted):
        raise ValueError(
            f"{name} has the columns of fit in another order ({list(columns)[:10]} "
            f"against {list(fitted)[:10]}): columns go to the model by position, "
            f"so each would go where another belongs. Pass {name}[fit_columns], "
            "the columns in the same order as they were in fit."
        )


def _same_names(estimator, X) -> bool:
    """At ``explain``, the common case decided without scikit-learn's
    general machinery: a DataFrame with the very names ``fit`` recorded, in
    their order."""
    if not isinstance(X, pd.DataFrame):
        return False
    fitted = getattr(estimator, "feature_names_in_", None)
    if fitted is None:
        return False
    names, index = getattr(estimator, "_names_index", (None, None))
    if names is fitted and X.columns.equals(index):  # `is` first, then values
        return True  # the Index of fit's names (string names: equal values)
    return X.columns.tolist() == list(fitted)


def _numpy_numeric(dtypes) -> bool:
    """Whether every dtype is a plain numpy bool, integer or float dtype."""
    return all(isinstance(dt, np.dtype) and dt.kind in "biuf" for dt in dtypes)


def _plain_frame(X: pd.DataFrame) -> bool:
    """Whether every column of ``X`` has a plain numpy numeric dtype.

    Read from the frame's blocks (one dtype per block, not a Series of one
    per column: 20 µs a call on 30 columns) where pandas has them; from
    ``X.dtypes`` otherwise.
    """
    blocks = getattr(getattr(X, "_mgr", None), "blocks", None)
    if isinstance(blocks, tuple):
        return _numpy_numeric(b.dtype for b in blocks)
    return _numpy_numeric(X.dtypes.tolist())


def check_numeric(X, name: str = "X", columns: Sequence[str] | None = None) -> None:
    """Refuse non-numeric columns, naming them (an array's through
    ``columns``, where given), and recommend a Pipeline."""
    if isinstance(X, pd.DataFrame):
        if _plain_frame(X):
            return
        dtypes = X.dtypes.tolist()
        complex_ = [
            str(c)
            for c, dt in zip(X.columns, dtypes)
            if pd.api.types.is_complex_dtype(dt)
        ]
        if complex_:
            raise TypeError(
                f"{name} has column(s) {complex_[:10]} of complex numbers; "
                "attributions need real-valued features: pass their .real, or "
                "split the real and imaginary parts into columns."
            )
        bad = [
            str(c)
            for c, dt in zip(X.columns, dtypes)
            if not (pd.api.types.is_numeric_dtype(dt) or pd.api.types.is_bool_dtype(dt))
        ]
        if bad:
            shown = ", ".join(repr(c) for c in bad[:10])
            more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
            first = X[next(c for c in X.columns if str(c) == bad[0])].iloc[0]
            raise TypeError(
                f"{name} has non-numeric column(s) {shown}{more} (values such as "
                f"{first!r}). Encode them first, "
                "or explain a scikit-learn Pipeline that does (e.g. a "
                "ColumnTransformer with a OneHotEncoder before the skorch net)."
            )
    elif _complex(X):
        raise TypeError(
            f"{name} holds complex numbers (dtype {X.dtype}); attributions need "
            "real-valued features: pass X.real, or split the real and imaginary "
            "parts into columns."
        )
    elif isinstance(X, np.ndarray) and X.dtype.kind not in "biuf" and not _floats(X):
        where = ""
        if columns is not None and X.ndim == 2 and X.shape[1] == len(columns):
            bad = [c for j, c in enumerate(columns) if not _floats(X[:, j])]
            where = f" in column(s) {', '.join(map(repr, bad[:10]))}"
        raise TypeError(
            f"{name} holds non-numeric values{where} (dtype {X.dtype}). Encode "
            "them first, or explain a scikit-learn Pipeline that does (e.g. a "
            "ColumnTransformer with a OneHotEncoder before the skorch net; a "
            "column it passes through reaches the net as it is)."
        )


def _floats(values: np.ndarray) -> bool:
    """Whether ``values`` convert to float64."""
    try:
        values.astype(np.float64)
    except (TypeError, ValueError):
        return False
    return True


def _complex(X) -> bool:
    """Whether an array or tensor holds complex numbers."""
    if isinstance(X, torch.Tensor):
        return X.is_complex()
    return isinstance(X, np.ndarray) and X.dtype.kind == "c"


def _as_array(X, name: str) -> np.ndarray:
    try:
        return np.asarray(X)
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"{name} could not be converted to an array ({exc}); pass a numpy "
            "array, a pandas DataFrame or a torch tensor."
        ) from exc


def column_names(X, n_columns: int) -> list[str]:
    """Names of the columns of ``X``: its own for a DataFrame, else x0, x1, ..."""
    if isinstance(X, pd.DataFrame):
        return [str(c) for c in X.columns.tolist()]  # a list iterates fast
    return [f"x{i}" for i in range(n_columns)]


def frame_index(X) -> pd.Index | None:
    """A DataFrame's row labels; ``None`` for rows without labels."""
    return X.index if isinstance(X, pd.DataFrame) else None


def row_index(X) -> pd.Index:
    """The index of the result: ``X.index`` for a DataFrame, else 0..n-1."""
    if isinstance(X, pd.DataFrame):
        return X.index
    return pd.RangeIndex(X.shape[0])


def to_tensor(
    X,
    *,
    device: torch.device,
    dtype: torch.dtype,
    columns: Sequence[str],
    name: str = "X",
    what: str = "column",
) -> torch.Tensor:
    """Convert numeric, finite 2-D data to a tensor on ``device``.

    The tensor is always a copy: a model that writes into its input then
    changes skattr's rows, never the user's ``X``.

    Non-numeric columns get a ``TypeError`` that recommends a Pipeline; NaN
    or infinite values a ``ValueError`` naming the columns that hold them
    (``columns`` gives each column's name in the user's terms).
    """
    finite = None
    if isinstance(X, torch.Tensor):
        if X.is_complex() or not (X.is_floating_point() or X.dtype in _INT_DTYPES):
            raise TypeError(
                f"{name} must hold real numbers; got a tensor of dtype {X.dtype}."
            )
        t = X.detach().to(device=device, dtype=dtype, copy=True)
    else:
        np_dtype = _NUMPY_DTYPES.get(dtype, np.float32)
        arr = _numeric_array(X, columns, name, np_dtype)
        if arr.dtype != np_dtype or not arr.flags.writeable or arr is X:
            arr = arr.astype(np_dtype)  # a writable copy in the model's dtype
        if dtype in _NUMPY_DTYPES:  # the very values: check them on the host
            finite = bool(np.isfinite(arr).all())  # (5x cheaper than in torch)
        t = torch.from_numpy(arr)
        if t.device != device or t.dtype != dtype:
            t = t.to(device=device, dtype=dtype)
    if not (finite if finite is not None else bool(torch.isfinite(t).all())):
        bad = ~torch.isfinite(t)
        per_col = bad.sum(0).cpu()
        cols = [columns[i] for i in torch.nonzero(per_col).flatten().tolist()]
        kinds = []
        if bool(torch.isnan(t).any()):
            kinds.append("NaN")
        if bool(torch.isinf(t).any()):
            kinds.append("infinity")
        raise ValueError(
            f"{name} contains {' and '.join(kinds)} in {what}(s) "
            f"{', '.join(repr(c) for c in cols[:10])}"
            f"{' and others' if len(cols) > 10 else ''} "
            f"({int(per_col.sum())} values). Impute or drop them first, or explain a "
            "Pipeline whose preprocessing handles missing values."
        )
    return t


_NUMPY_DTYPES = {
    torch.float16: np.float16,
    torch.float32: np.float32,
    torch.float64: np.float64,
}

_INT_DTYPES = {
    torch.bool,
    torch.uint8,
    torch.int8,
    torch.int16,
    torch.int32,
    torch.int64,
}


def _numeric_array(X, columns: Sequence[str], name: str, np_dtype) -> np.ndarray:
    """Numeric 2-D data as an array, in ``np_dtype`` where that is exact."""
    if isinstance(X, pd.DataFrame):
        if _plain_frame(X):  # plain columns: one copy, writable
            return X.to_numpy(dtype=np_dtype, copy=True)
        check_numeric(X, name)
        return X.to_numpy(dtype=np.float64, na_value=np.nan)
    if hasattr(X, "toarray"):  # scipy sparse output of a ColumnTransformer
        X = X.toarray()
    X = np.asarray(X)
    check_numeric(X, name, columns)
    return X.astype(np.float64, copy=False)


# ---------------------------------------------------------------------- y


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A tensor's values as a NumPy array on the host (detached).

    On the CPU the array shares the tensor's memory: callers either only
    read it or own the tensor (results are fresh tensors). From a GPU,
    tensors of a megabyte or more go through a page-locked staging buffer (reused from torch's
    caching host allocator): a direct copy into fresh pageable memory ran at
    under 2 GB/s on an H100 machine, the staged one at more than twice that.
    """
    t = t.detach()
    if t.device.type != "cuda" or t.numel() * t.element_size() < 2**20:
        return t.cpu().numpy()
    staging = torch.empty(t.shape, dtype=t.dtype, pin_memory=True)
    staging.copy_(t)
    return staging.numpy().copy()


def rows_of(entry, index: pd.Index, what: str, *, by_position: bool = False):
    """``entry`` (a Series or DataFrame indexed by rows) for the rows ``index``.

    A result's per-row extras (``attrs["base_values"]``, ``"prediction"``)
    are indexed like the rows explained, and pandas copies them whole into
    every frame derived from the result (a slice, a sort): read by position,
    they paired each row with another row's value. Here they are read by
    label: as they are when the index is the same, else ``entry.loc[index]``
    when ``entry``'s labels are unique and hold every label of ``index``.

    ``by_position`` is for the ``X`` a user passes beside a result: a result
    indexed ``0..n-1`` in order (an array's, or a frame's default index)
    takes ``X``'s rows in their order when ``X``'s labels are not
    ``0..n-1`` themselves (the rows of ``X_test`` explained as an array);
    beside an ``X`` labelled ``0..n-1`` in another order it is refused, as
    the rows could be the frame's own or an array's in ``X``'s order. A
    result whose labels are ``0..n-1`` in another order, beside an ``X``
    without them, is refused too: it could be a sorted array result as
    well as another frame's rows. So is anything else that cannot be
    matched: a label named twice cannot say which of its rows is meant.
    """
    labels = entry.index
    if labels.equals(index):
        return entry
    n = len(index)
    if by_position and len(entry) == n and index.equals(pd.RangeIndex(n)):
        if not _positions(labels):  # X_test beside its array's result
            return entry
        raise ValueError(
            f"{what} holds the labels 0..{n - 1} in another order than the "
            f"attributions, which are labelled 0..{n - 1} in order: they may be "
            f"a frame's own rows (then pass {what}.sort_index(), or "
            f"{what}.loc[attributions.index]) or an array's rows in {what}'s "
            f"order (then pass {what}.reset_index(drop=True)); which one cannot "
            "be told."
        )
    present = index.isin(labels)
    if labels.is_unique and present.all():
        return entry.loc[index]
    if by_position and not present.all() and _positions(index):
        raise ValueError(
            f"The attributions' rows are labelled 0..{n - 1} (an array's rows, "
            f"or a default index) in another order than {what}'s, which does not "
            f"hold those labels: pass {what} in the attributions' order (e.g. "
            f"{what}.iloc[attributions.index] for an array's result)."
        )
    if not present.all():
        missing = list(index[~present][:5])
        raise ValueError(
            f"{what} has no row labelled {missing}: pass the rows that were "
            "explained (or the result of explaining these rows)."
        )
    twice = _repeated(labels)[:5]
    raise ValueError(
        f"{what} cannot be matched to these rows: its index names {twice} more "
        "than once, so that a row taken from a sliced or reordered result could "
        "be any of them. Give the rows unique labels (X.reset_index(drop=True)) "
        "before explain, or pass the whole result as explain returned it."
    )


def explained_order(attrs: dict) -> pd.Index | None:
    """The rows of a result in the order ``explain`` returned them: the
    index of its per-row extras, which pandas copies whole into every frame
    derived from the result (sorted, sliced); ``None`` without such extras."""
    for value in attrs.values():
        if isinstance(value, (pd.Series, pd.DataFrame)):
            return value.index
    return None


def rows_beside(X, index: pd.Index, columns, attrs: dict) -> pd.DataFrame:
    """The ``X`` a user passes beside a result, as a frame of the result's
    rows ``index`` (its columns named ``columns`` when ``X`` is an array of
    as many; ``attrs`` the result's). A DataFrame goes through
    :func:`rows_of` (``by_position``).
    An array has no labels: it is taken in its order beside a result of as
    many rows in the order ``explain`` returned them (read from the per-row
    extras in ``attrs`` by :func:`explained_order`; kept, or filtered;
    where those labels repeat, only the whole result) and labelled ``0..n-1`` in
    order (an array's) or not labelled by positions at all (a frame's own
    labels). A result in another order than ``explain``'s (sorted), one
    with labels but no record of that order (no per-row extras), or one
    labelled by positions in another order (a sorted array result, or a
    frame whose labels look like positions), is refused, since which rows
    the array holds cannot be told."""
    if isinstance(X, pd.DataFrame):
        return rows_of(X, index, "X", by_position=True)
    frame = pd.DataFrame(np.asarray(X))
    if frame.shape[1] == len(columns):
        frame.columns = list(columns)
    explained = explained_order(attrs)
    in_order = index.equals(pd.RangeIndex(len(index)))
    if explained is None:  # no record of explain's order
        if not in_order:
            raise ValueError(
                "X is an array, and the attributions' rows carry labels but no "
                "per-row extras that keep the order explain returned them in "
                "(a method without them, or a frame rebuilt without its attrs): "
                "which rows of X they hold cannot be told. Pass X as a DataFrame "
                "with the rows' labels (the frame that was explained)."
            )
    elif not explained.equals(index):  # part of the result, or reordered
        if not explained.is_unique:
            raise ValueError(
                "X is an array, and the attributions are part of a result whose "
                f"rows have labels named more than once ({_repeated(explained)[:5]})"
                ": which rows they hold cannot be told. Pass the whole result, or "
                "give the rows unique labels (X.reset_index(drop=True)) before "
                "explain."
            )
        if not _kept_in_order(index, explained):
            raise ValueError(
                "X is an array, and the attributions' rows are in another order "
                "than explain returned them (sorted or shuffled): which rows of X "
                "they hold cannot be told. Pass X as a DataFrame with the rows' "
                "labels (the frame that was explained), or the attributions in "
                "explain's order."
            )
    if not in_order and len(index) and _positions(index, len(frame)):
        raise ValueError(
            "X is an array, and the attributions' rows are labelled by positions "
            "in another order (sorted or sliced): which rows of X they hold "
            "cannot be told. Pass X as a DataFrame with the rows' labels, or "
            "X[attributions.index] if they are an array's positions."
        )
    if len(frame) != len(index):
        raise ValueError(
            f"X has {len(frame)} rows but the attributions {len(index)}; pass the "
            "rows that were explained."
        )
    return frame


def _kept_in_order(index: pd.Index, explained: pd.Index) -> bool:
    """Whether the rows ``index`` are some of ``explained``'s (unique
    labels) in its order: the result as ``explain`` returned it, sliced or
    filtered."""
    at = explained.get_indexer(index)
    return bool((at >= 0).all() and (np.diff(at) >= 0).all())


def whole_interactions(frame: pd.DataFrame) -> pd.DataFrame:
    """An interactions frame as whole ``g x g`` blocks: each row's lines
    in the columns' feature order, whatever order the frame's lines
    are in (sorted, reversed); refused where a row's block is cut."""
    features = list(frame.columns.get_level_values(-1).unique())
    level0 = frame.index.get_level_values(0).unique()
    g = len(features)
    whole = pd.MultiIndex.from_arrays(
        [level0.repeat(g), np.tile(np.asarray(features, dtype=object), len(level0))]
    )
    index = frame.index
    if index.equals(whole):
        return frame
    if index.is_unique and len(index) == len(whole) and whole.isin(index).all():
        return frame.loc[whole]
    raise ValueError(
        "An interactions result is read as whole matrices: each row's "
        f"{g} lines, one per feature. Select rows by their first index level "
        "(attributions.loc[[row, ...]]), or pass the result as explain "
        "returned it."
    )


def interaction_rows(frame: pd.DataFrame) -> pd.Index | None:
    """The rows of a ShapleyInteractions result, ``None`` for any other frame.

    Such a result is indexed by (row of ``X``, feature), its levels named
    ``"row"`` and ``"feature"``, the features those of its columns; a row
    of ``X`` that is itself a tuple (a MultiIndex ``X``) comes back as a
    MultiIndex, to match the result's per-row extras. The one test of
    whether a frame holds interactions, for ``to_shap``, ``concat`` and the
    plots.
    """
    index = frame.index
    if not (
        isinstance(index, pd.MultiIndex)
        and index.nlevels == 2
        and index.names[1] == "feature"
        and index.get_level_values(1).isin(frame.columns.get_level_values(-1)).all()
    ):
        return None
    rows = index.get_level_values(0).unique()
    if len(rows) and all(isinstance(r, tuple) for r in rows):
        return pd.MultiIndex.from_tuples(list(rows))
    return rows


def _positions(index: pd.Index, m: int | None = None) -> bool:
    """Whether ``index`` holds distinct positions of ``m`` rows (``0..m-1``,
    in any order); ``m=None``: all of ``0..len(index)-1``."""
    if not len(index):
        return True
    if not pd.api.types.is_integer_dtype(index.dtype) or not index.is_unique:
        return False
    m = len(index) if m is None else m
    return int(index.min()) >= 0 and int(index.max()) < m


def _repeated(labels) -> list:
    """The labels named more than once, each once, in order."""
    labels = pd.Index(labels)
    return labels[labels.duplicated()].unique().tolist()


def same_value(a, b) -> bool:
    """Whether two parameter or ``attrs`` values are the same: the same
    object, or an equal value of the same type (arrays, tensors and frames compared
    by value, dtype and shape: a joblib round trip stores an array apart
    from the explainer's own reference to it; containers item by item)."""
    if a is b:
        return True
    if type(a) is not type(b):
        return False
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, torch.Tensor):
        if a.dtype != b.dtype or a.device != b.device or a.shape != b.shape:
            return False
        try:
            return torch.equal(a, b)
        except (NotImplementedError, RuntimeError):  # meta tensors hold no values
            return False
    if isinstance(a, (pd.Series, pd.DataFrame, pd.Index)):
        return a.equals(b)
    if isinstance(a, dict):  # in order: a dict of groups orders the columns
        return list(a) == list(b) and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(same_value, a, b))
    try:
        equal = a == b
    except Exception:  # noqa: BLE001 - an object that cannot compare: changed
        return False
    return bool(equal) if isinstance(equal, (bool, np.bool_)) else False


def checked_similarity(func):
    """Lime's ``similarity_func``, called in Captum's order ``(X, Z_inputs,
    Z_interp)``, as the core calls an observer, ``(x, z, inputs)``, its
    weights checked: one finite, non-negative weight per input."""

    def similarity(x, z, inputs):
        m = inputs.shape[0]
        weights = func(x, inputs, z)
        shape = tuple(getattr(weights, "shape", ()))
        if not isinstance(weights, torch.Tensor) or shape != (m,):
            raise ValueError(
                f"similarity_func must return one weight per perturbed input, a "
                f"tensor of shape ({m},); it returned "
                f"{type(weights).__name__} of shape {shape}. skattr calls it on "
                f"{m} perturbed inputs at once (row i of each argument belongs "
                "together), where Captum calls it on one: compute along the last "
                "dimension, e.g. torch.linalg.vector_norm(X - Z_inputs, dim=-1)."
            )
        if not bool((torch.isfinite(weights) & (weights >= 0)).all()):
            raise ValueError(
                "similarity_func returned negative, NaN or infinite weights; "
                "LIME's weights must be finite and at least 0."
            )
        return weights

    return similarity


def checked_coalitions(perturb_func, n: int, g: int, s: int, generator):
    """Lime's coalitions from the user's ``perturb_func(n_rows, n_groups,
    n_samples, generator)``, checked: ``[n, s, g]`` or ``[s, g]`` of 0 and 1,
    as a bool tensor."""
    try:
        Z = perturb_func(n, g, s, generator)
    except TypeError as exc:
        raise TypeError(
            f"perturb_func is called as perturb_func(n_rows, n_groups, "
            f"n_samples, generator) and returns every coalition at once; it "
            f"raised {type(exc).__name__}: {exc}. (Captum's perturb_func, "
            "called on one input per sample, does not fit this signature.)"
        ) from exc
    Z = torch.as_tensor(Z)
    if Z.shape not in ((n, s, g), (s, g)):
        raise ValueError(
            f"perturb_func(n_rows={n}, n_groups={g}, n_samples={s}, generator) "
            f"must return a tensor of shape ({n}, {s}, {g}) or ({s}, {g}); got "
            f"{tuple(Z.shape)}."
        )
    if not bool(((Z == 0) | (Z == 1)).all()):
        raise ValueError("perturb_func must return values in {0, 1}.")
    return Z.bool()


def check_similarity_weights(w, Z, row_label, cause: str, fix: str) -> None:
    """Refuse rows whose similarity weights leave LIME's surrogate no data;
    warn of rows whose weights leave it little.

    ``w`` ``[n, s]`` are the weights of the coalitions ``Z`` (``[s, g]``, or
    ``[n, s, g]`` per row); ``row_label(i)`` names row ``i`` of the chunk;
    ``cause`` and ``fix`` go into the messages. No data: every perturbed
    input weighs 0, or every input that weighs keeps the same groups (a
    kernel far narrower than the distances weighs only the copies of the
    row itself, the coalition that keeps every group): the surrogate
    returned zeros. Little: fewer effective samples, ``(sum w)^2 / sum
    w^2``, than its ``g + 1`` coefficients, or less than one effective
    sample on the rarer side of some group that the coalitions vary (its
    coefficient then rests on a sliver of the weight).
    """
    n, s = w.shape
    g = Z.shape[-1]
    total = w.sum(1)
    zf = Z.to(w.device, torch.float64)
    # each group's share of the weight among the inputs that keep it
    kept = (
        w @ zf if zf.dim() == 2 else torch.einsum("ns,nsg->ng", w, zf)
    ) / total.clamp(min=torch.finfo(torch.float64).tiny)[:, None]
    side = torch.minimum(kept, 1 - kept).clamp(min=0)  # [n, g]
    # a group the coalitions never vary (a perturb_func that fixes it)
    # is the user's design, not the weights' doing: left out here
    varies = zf.amax(-2) != zf.amin(-2)  # [g] or [n, g]
    side = torch.where(varies, side, torch.inf)
    empty = (total <= 0) | (side <= 0).all(1)
    dead = torch.nonzero(empty).flatten().tolist()
    if dead:
        labels = ", ".join(repr(row_label(i)) for i in dead[:5])
        raise ValueError(
            f"For {len(dead)} of the {n} rows of X (first rows: {labels}) the "
            f"perturbed inputs that weigh more than 0 ({cause}) all keep the "
            "same features, or none weighs at all, so that the surrogate has "
            f"no data to fit. {fix}"
        )
    effective = total**2 / (w**2).sum(1)
    rarer = (effective[:, None] * side).min(1).values
    few = (effective < g + 1) | (rarer < 1)
    if bool(few.any()):
        if s < g + 1:  # too few samples whatever their weights
            cause = f"n_samples={s} is below them"
        warnings.warn(
            f"Lime: for {int(few.sum())} of the {n} rows of X the similarity "
            f"weights leave fewer effective samples (as few as "
            f"{float(effective.min()):.1f}, {float(rarer.min()):.2g} on the "
            f"rarer side of a feature) than the surrogate's {g + 1} "
            f"coefficients need ({cause}): their attributions rest on a few "
            "perturbed inputs. Raise kernel_width or n_samples.",
            UserWarning,
            stacklevel=_user_stacklevel(),
        )


def _user_stacklevel() -> int:
    """The ``stacklevel`` of a warning that names the first caller outside
    skattr (the user's ``explain`` or ``importance``, however deep the call)."""
    package = os.path.dirname(os.path.abspath(__file__))  # skattr/
    frame, level = sys._getframe(1), 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        package + os.sep
    ):
        frame, level = frame.f_back, level + 1
    return level


def check_y(
    y, n_rows: int, index: pd.Index | None = None, *, two_d: bool = False
) -> np.ndarray | None:
    """Return ``y`` as a 1-D numpy array of length ``n_rows`` (or ``None``);
    with ``two_d``, a 2-D one of several columns stays 2-D (a scorer's
    targets of a multi-output regressor).

    Read by position, as scikit-learn does; a Series holding the labels of
    ``X`` (``index``, a DataFrame's) in another order is refused
    (:func:`check_row_labels`).
    """
    if y is None:
        return None
    check_row_labels(y, index, "y")
    if isinstance(y, torch.Tensor):
        y = to_numpy(y)
    arr = y.to_numpy() if isinstance(y, (pd.Series, pd.DataFrame)) else np.asarray(y)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1 and not (two_d and arr.ndim == 2):
        raise ValueError(
            f"y must be 1-D with one label per row; got shape {arr.shape}."
        )
    if arr.shape[0] != n_rows:
        raise ValueError(
            f"y has {arr.shape[0]} entries but X has {n_rows} rows; they must match."
        )
    return arr


def label_kind(labels) -> str:
    """``"numbers"``, ``"strings"`` or ``"other"`` (mixed, say): what the
    labels are, whatever the array's dtype (an object array of ints)."""
    kind = pd.api.types.infer_dtype(labels, skipna=True)
    if kind in ("integer", "floating", "mixed-integer-float", "boolean", "decimal"):
        return "numbers"
    return "strings" if kind == "string" else "other"


def check_label_kind(y, classes) -> None:
    """Refuse a classifier's true labels ``y`` of another kind (numbers,
    strings) than its ``classes``, which its predictions are: a scorer then
    fails with scikit-learn's "Mix of label input types"."""
    if y is None or classes is None:
        return
    kinds = {label_kind(classes), label_kind(y)}
    if kinds == {"numbers", "strings"}:
        raise ValueError(
            f"y holds {label_kind(y)}, but the model's classes are "
            f"{np.asarray(classes).tolist()[:10]}, which its predictions are: pass "
            "y as those labels (for codes 0..k-1, np.asarray(explainer.classes_)[y])."
        )


def check_row_labels(values, index: pd.Index | None, name: str) -> None:
    """Refuse a Series (or frame) ``values`` whose labels are those of ``X``
    (``index``) in another order.

    ``y`` and ``sample_weight`` are read by position, as scikit-learn reads
    them; such a one (sorted or shuffled apart from ``X``) would pair each
    row with another row's value. Other labels say nothing of the order and
    are read by position. Labels ``0..n-1`` in order on one side and in
    another order on the other are refused too: a reset index (``X``'s,
    after a shuffle) and a reordered ``y`` look alike, and the message
    gives the fix for each.
    """
    if index is None or not isinstance(values, (pd.Series, pd.DataFrame)):
        return
    if _reordered(values.index, index):
        raise ValueError(
            f"{name} holds the labels of X in another order, and it is read by "
            "position, as scikit-learn does, which would pair rows of X with "
            f"other rows' values. If {name} was reordered apart from X, pass "
            f"{name}.loc[X.index]; if X's index was reset since (X.reset_index), "
            f"{name} is in X's order: pass {name}.to_numpy()."
        )


def check_sample_weight(
    sample_weight, n_rows: int, index: pd.Index | None = None
) -> np.ndarray | None:
    """Return ``sample_weight`` as float64 of length ``n_rows`` (or ``None``);
    read by position (:func:`check_row_labels`)."""
    if sample_weight is None:
        return None
    check_row_labels(sample_weight, index, "sample_weight")
    if isinstance(sample_weight, torch.Tensor):
        sample_weight = to_numpy(sample_weight)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim != 1 or w.shape[0] != n_rows:
        raise ValueError(
            f"sample_weight must be 1-D with one weight per row of X ({n_rows}); got "
            f"shape {w.shape}."
        )
    if not np.isfinite(w).all() or (w < 0).any() or w.sum() <= 0:
        raise ValueError("sample_weight must be finite, non-negative and not all zero.")
    return w


# --------------------------------------------------------------- baseline

_BASELINE_WORDS = ("auto", "zeros", "mean", "median")


def check_baseline_has_X(baseline, X) -> None:
    """``"mean"`` and ``"median"`` need the ``X`` given to ``fit``."""
    if X is None and isinstance(baseline, str) and baseline in ("mean", "median"):
        raise ValueError(
            f"baseline={baseline!r} is computed from the X given to fit, but fit "
            "was called without X. Pass X to fit(model, X), or give the baseline "
            "values themselves."
        )


def baseline_needs_names(baseline) -> bool:
    """Whether ``baseline`` gives its values by column name (dict or Series)."""
    return isinstance(baseline, (Mapping, pd.Series))


def baseline_width(baseline) -> int | None:
    """Number of features a ``baseline`` value fixes, if it fixes one."""
    if isinstance(baseline, (str, numbers.Number)) or baseline is None:
        return None
    if isinstance(baseline, (Mapping, pd.Series)):
        return len(baseline)
    shape = baseline.shape if hasattr(baseline, "shape") else np.shape(baseline)
    return int(shape[-1]) if len(shape) >= 1 else None


def resolve_baseline(
    baseline,
    *,
    X_fit: torch.Tensor | None,
    adapter,
    auto: str = "mean",
) -> torch.Tensor:
    """Turn the ``baseline`` parameter into background rows ``[B, p]``.

    Parameters
    ----------
    baseline : str, number, array-like, dict, Series or DataFrame
        See the explainers' ``baseline`` parameter.
    X_fit : Tensor of shape ``[n, p]`` or None
        The model-space ``X`` given to ``fit``: ``"mean"``, ``"median"`` and
        ``"auto"`` are computed from it.
    adapter : ModelAdapter
        Bound to the user's columns: its ``columns`` name the values of a
        dict, Series or DataFrame, its ``labels`` count the model inputs,
        and its ``to_model`` maps user-space rows to a validated model-space
        tensor, exactly as ``explain`` maps ``X``.
    auto : {"mean", "rows"}, default="mean"
        What ``"auto"`` means with ``X_fit``: its mean (one row), or its
        rows (a baseline distribution, for GradientShap).
    """
    columns = adapter.columns
    n_columns = len(adapter.labels)
    device, dtype = adapter.device, adapter.dtype
    inputs = adapter.inputs  # named forward arguments, with code columns
    codes = [] if inputs is None else inputs.code_columns
    # code columns (embedded categories) take their most frequent code,
    # except from a per-feature value or rows that name one
    typed = (lambda t: t) if not codes else inputs.with_modes
    if isinstance(baseline, str):
        check_option("baseline", baseline, _BASELINE_WORDS)
        if baseline == "mean" and codes:
            raise ValueError(
                f"baseline='mean' would average the codes of column(s) {codes}, "
                "which are categories, not numbers. Use 'auto' or 'median' (the "
                "most frequent category there), or a dict naming a category."
            )
        if baseline == "zeros" or (baseline == "auto" and X_fit is None):
            return typed(torch.zeros(1, n_columns, device=device, dtype=dtype))
        check_baseline_has_X(baseline, X_fit)
        if baseline == "auto" and auto == "rows":
            return X_fit
        if baseline in ("auto", "mean"):
            return typed(X_fit.mean(0, keepdim=True))
        median = X_fit.quantile(0.5, dim=0, keepdim=True, interpolation="lower")
        return typed(median)
    if isinstance(baseline, (np.ndarray, torch.Tensor)) and baseline.ndim == 0:
        baseline = baseline.item()  # a 0-d array or tensor: its one value
    if isinstance(baseline, numbers.Real) and not isinstance(baseline, bool):
        check_number("baseline", baseline, minimum=-np.inf)
        full = torch.full((1, n_columns), float(baseline), device=device, dtype=dtype)
        return typed(full)
    if isinstance(baseline, (Mapping, pd.Series)):
        _check_named_once([str(k) for k, _ in baseline.items()])
        values = {str(k): v for k, v in baseline.items()}
        for c in codes:  # a category the dict does not name: the most frequent
            if c not in values:
                values[c] = inputs.mode_label(c)
        _check_baseline_columns(list(values), columns)
        rows = pd.DataFrame([[values[c] for c in columns]], columns=list(columns))
    elif isinstance(baseline, pd.DataFrame):
        given = [str(c) for c in baseline.columns]
        _check_baseline_columns(given, columns)
        rows = baseline.set_axis(given, axis=1)[list(columns)]
    elif isinstance(baseline, (np.ndarray, torch.Tensor, list, tuple)):
        rows = baseline if isinstance(baseline, torch.Tensor) else np.asarray(baseline)
        if rows.ndim == 1:
            rows = rows.reshape(1, -1)
        if rows.ndim != 2:
            raise ValueError(
                "baseline as an array must be 1-D (one value per feature) or 2-D "
                f"(background rows); got shape {tuple(rows.shape)}."
            )
    else:
        raise TypeError(
            "baseline must be 'auto', 'zeros', 'mean', 'median', a number, a "
            "per-feature array, Series or dict, or a DataFrame of background rows; "
            f"got {type(baseline).__name__}."
        )
    if rows.shape[0] == 0:
        raise ValueError("baseline has no rows; give at least one background row.")
    if not isinstance(rows, pd.DataFrame) and rows.shape[1] != len(columns):
        raise ValueError(
            f"baseline has {rows.shape[1]} values per row, but X has "
            f"{len(columns)} features."
        )
    t = adapter.to_model(rows, name="baseline")
    if t.shape[1] != n_columns:  # pragma: no cover - to_model keeps the width
        raise ValueError(
            f"baseline maps to {t.shape[1]} model inputs, expected {n_columns}."
        )
    return t


def _check_named_once(given: list[str]) -> None:
    twice = _repeated(given)
    if twice:
        raise ValueError(
            f"baseline names {', '.join(map(repr, twice))} more than once: give "
            "one value (or column) per feature."
        )


def _check_baseline_columns(given: list[str], columns: Sequence[str]) -> None:
    _check_named_once(given)
    missing = [c for c in columns if c not in given]
    unknown = [c for c in given if c not in columns]
    if missing or unknown:
        parts = []
        if missing:
            parts.append(f"missing {missing}")
        if unknown:
            parts.append(f"unknown {unknown}")
        raise ValueError(
            f"baseline must give one value for every feature of X ({'; '.join(parts)})."
        )


# ------------------------------------------------------- typed model inputs


def column_kinds(X, columns: Sequence[str]) -> list[str]:
    """``"float"`` or ``"code"`` for each of ``columns`` of ``X``.

    Integer and pandas ``category`` columns are codes (they feed an
    embedding as int64); bool and float columns are floats; object
    (string) columns are refused, naming the column.
    """
    if not isinstance(X, pd.DataFrame):
        dtype = np.asarray(X).dtype if not isinstance(X, torch.Tensor) else None
        if dtype is not None and dtype.kind in "iu":
            return ["code"] * len(columns)
        return ["float"] * len(columns)
    kinds = []
    for c in columns:
        dt = X[c].dtype
        if isinstance(dt, pd.CategoricalDtype):
            kinds.append("code")
        elif pd.api.types.is_bool_dtype(dt) or pd.api.types.is_float_dtype(dt):
            kinds.append("float")
        elif pd.api.types.is_integer_dtype(dt):
            kinds.append("code")
        else:
            raise TypeError(
                f"Column {c!r} holds {dt} values such as {X[c].iloc[0]!r}; a model "
                "input takes numbers. "
                "Encode strings as a pandas 'category' column (its codes feed "
                "an embedding), or explain a Pipeline that encodes them."
            )
    return kinds


def encode_columns(
    X,
    columns: Sequence[str],
    kinds: Sequence[str],
    categories: dict,
    name: str = "X",
    *,
    positions=None,
) -> np.ndarray:
    """The model-space values of ``columns`` as float64 ``[n, p]``: a
    frame's by name, an array's at ``positions`` (the column of the array
    each of ``columns`` is; default: in order).

    Float columns as they are; code columns as their integer values, or, for
    a column ``fit`` saw as ``category``, the position of each value in the
    categories of ``fit`` (a label given as a string or number works too).
    An unknown category, a negative or fractional code, or a string column
    is an error naming the column and the value.
    """
    frame = isinstance(X, pd.DataFrame)
    if not frame:
        X = np.asarray(X.detach().cpu() if isinstance(X, torch.Tensor) else X)
        if positions is not None and X.ndim == 2:
            X = X[:, np.asarray(positions)]
    out = np.empty((len(X), len(columns)), dtype=np.float64)
    labelled = [
        i for i, c in enumerate(columns) if kinds[i] == "code" and c in categories
    ]
    for i in labelled:  # a category column: its values -> positions in fit's categories
        out[:, i] = _category_codes(X[columns[i]] if frame else X[:, i], columns[i],
                                    categories[columns[i]], name)  # fmt: skip
    plain = [i for i in range(len(columns)) if i not in set(labelled)]
    if plain:  # every other column at once: numbers as they are
        block = X[[columns[i] for i in plain]] if frame else X[:, plain]
        check_numeric(block, name)
        out[:, plain] = (
            block.to_numpy(dtype=np.float64, na_value=np.nan)
            if frame
            else np.asarray(block, dtype=np.float64)
        )
    codes = [i for i in plain if kinds[i] == "code"]
    if codes:  # integer columns feeding an embedding
        values = out[:, codes]
        bad = (values < 0) | (values != np.round(values))
        if bad.any():
            j = int(np.flatnonzero(bad.any(0))[0])
            raise ValueError(
                f"{name} column {columns[codes[j]]!r} feeds an embedding, so it must "
                "hold non-negative integer codes; it holds "
                f"{values[bad[:, j], j][:3].tolist()}."
            )
    return out


def _category_codes(col, column: str, categories: pd.Index, name: str) -> np.ndarray:
    """Positions of a column's values in the categories ``fit`` saw."""
    if isinstance(getattr(col, "dtype", None), pd.CategoricalDtype):
        codes = pd.Categorical(col, categories=categories).codes
    elif name == "X" and not pd.api.types.is_numeric_dtype(col.dtype):
        first = col.iloc[0] if isinstance(col, pd.Series) else col[0]
        raise TypeError(
            f"{name} column {column!r} holds {col.dtype} values such as {first!r}, "
            f"but fit saw it as a 'category' column: pass it as one "
            f"(X[{column!r}].astype('category')), or use a Pipeline to encode it."
        )
    else:  # labels written out (a baseline naming a category)
        codes = categories.get_indexer(pd.Index(np.asarray(col)))
    if (codes < 0).any():
        bad = np.asarray(col)[codes < 0][:3].tolist()
        if pd.isna(np.asarray(col, dtype=object)[codes < 0]).all():
            raise ValueError(
                f"{name} column {column!r} has missing values (NaN), which have no "
                "code of their own: fill them with a category seen at fit (or add "
                "one for them before fit), or drop those rows."
            )
        raise ValueError(
            f"{name} column {column!r} holds {bad}, not among the categories seen "
            f"at fit ({list(categories)[:10]}). Map them to a known category, or "
            "fit on data that has them."
        )
    return codes


def most_frequent(values: np.ndarray) -> float:
    """The most frequent value (the smallest among ties)."""
    uniques, counts = np.unique(values, return_counts=True)
    return float(uniques[np.argmax(counts)])


def derived_seed(seed: int, number: int) -> int:
    """The seed of part ``number`` (a chunk of rows, a Dask partition) of a
    call seeded ``seed``: a ``SeedSequence`` of the two numbers, so that the
    parts draw independent streams, each the same wherever it runs."""
    state = np.random.SeedSequence([seed, number]).generate_state(1, dtype=np.uint64)
    return int(state[0] >> np.uint64(1))


def importance_table(
    importance: pd.Series, std: pd.Series, mean: pd.Series | None = None
) -> pd.DataFrame:
    """An importance table indexed by feature, sorted by decreasing importance."""
    table = pd.DataFrame({"importance": importance, "std": std})
    if mean is not None:
        table["mean"] = mean
    # a renamed copy of the index: it may be the very columns of the
    # caller's attributions, whose name must not change
    table.index = table.index.rename("feature")
    return table.sort_values("importance", ascending=False, kind="stable")


# ------------------------------------------------------- importance moments
# The importance table of local attributions, in three steps, so that rows
# held apart (the partitions of a Dask DataFrame) give the table of all of
# them: each part's moments, their exact combination, the table.


def importance_moments(
    values: np.ndarray, weights: np.ndarray | None, n_outputs: int, every: bool
) -> np.ndarray:
    """The moments of attributions ``values`` ``[n, k * g]`` (output-major
    columns when ``every``, ``target="all"``): one row of the weight, the
    rows, the (weighted) mean and sum of squared deviations of each row's
    ``|attribution|`` (its mean over the outputs when ``every``), and the
    signed mean (``every``: each output's mean ``|attribution|``)."""
    n = values.shape[0]
    w = np.ones(n) if weights is None else np.asarray(weights, dtype=np.float64)
    if every:
        magnitude = np.abs(values)
        per_row = magnitude.reshape(n, n_outputs, -1).mean(1)
        means = magnitude
    else:
        per_row, means = np.abs(values), values
    W = w.sum()
    mean = w @ per_row / W if W > 0 else np.zeros(per_row.shape[1])
    m2 = w @ (per_row - mean) ** 2
    other = w @ means / W if W > 0 else np.zeros(means.shape[1])
    return np.concatenate([[W, n], mean, m2, other])


def moments_width(g: int, k: int) -> int:
    """Length of a row of :func:`importance_moments` for ``g`` result columns
    and ``k`` outputs (1 unless ``target="all"``): the weight, the rows, the
    mean and squared deviations per column, and a mean per output and column."""
    return 2 + 2 * g + k * g


def _moment_parts(rows: np.ndarray, g: int) -> tuple[np.ndarray, ...]:
    """The means, squared deviations and other means of moments rows (along
    the last axis, as :func:`importance_moments` lays them out)."""
    return rows[..., 2 : 2 + g], rows[..., 2 + g : 2 + 2 * g], rows[..., 2 + 2 * g :]


def combine_importance_moments(rows: np.ndarray, g: int) -> np.ndarray:
    """Moments rows ``[parts, ...]`` of :func:`importance_moments` -> the
    moments of all their rows (the parallel-axis formula)."""
    W_i = rows[:, 0]
    W = W_i.sum()
    means, m2, other = _moment_parts(rows, g)
    if W > 0:
        mean = W_i @ means / W
        spread = m2.sum(0) + W_i @ (means - mean) ** 2
        other = W_i @ other / W
    else:
        mean, spread, other = means[0] * 0, m2[0] * 0, other[0] * 0
    return np.concatenate([[W, rows[:, 1].sum()], mean, spread, other])


def moments_table(
    row: np.ndarray, names: pd.Index, outputs: list | None, weighted: bool
) -> pd.DataFrame:
    """The importance table from the moments of all rows.

    ``importance`` is the (weighted) mean of ``|attribution|`` over rows,
    ``std`` its spread over rows (with weights, the weighted standard
    deviation; without, the sample one), and ``mean`` the signed mean, or,
    with ``outputs`` (``target="all"``), a column per output of its mean
    ``|attribution|``.
    """
    g = len(names)
    W, n = row[0], int(round(row[1]))
    mean, m2, other = _moment_parts(row, g)
    if weighted:
        std = np.sqrt(m2 / W)
    else:
        std = np.sqrt(m2 / (n - 1)) if n > 1 else np.zeros(g)
    importance, spread = pd.Series(mean, names), pd.Series(std, names)
    if outputs is None:
        return importance_table(importance, spread, pd.Series(other, names))
    table = importance_table(importance, spread)
    for o, values in zip(outputs, other.reshape(len(outputs), g)):
        table[o] = pd.Series(values, names)
    return table
