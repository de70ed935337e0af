"""The scikit-learn face shared by every explainer.

What the columns fix (the map from model inputs to user columns, the
feature groups, the baseline rows, the number of outputs and the target
column) is gathered in a :class:`Layout`. ``fit`` builds it when it knows
the columns: their names (from a DataFrame ``X``, a DataFrame baseline or a
Pipeline fitted on a DataFrame), or their number when nothing is given by
name. Otherwise each ``explain`` call builds its own layout from the ``X``
it is given, and writes nothing on the explainer.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from skattr._data import (
    baseline_needs_names,
    baseline_width,
    check_baseline_has_X,
    check_input,
    check_int,
    check_option,
    check_y,
    column_names,
    resolve_baseline,
    row_index,
    to_numpy,
)
from skattr._model import ModelAdapter, ModelCall
from skattr.core.forward import evaluate_rows
from skattr.core.groups import make_groups, needs_names
from skattr.exceptions import NotFittedError

#: numpydoc ``Attributes`` entries that every explainer fitted with
#: baselines shares; explainers' docstrings include it.
FITTED_ATTRIBUTES_DOC = """\
    model_ : object
        The model given to ``fit``.
    device_ : torch.device
        Device the computation runs on.
    n_features_in_ : int
        Number of features, when ``fit`` could know it: from ``X``, from a
        baseline with one value per feature, or from a fitted Pipeline.
        Without it, each ``explain`` takes the columns from its own ``X``.
    feature_names_in_ : ndarray of str
        Column names, when ``fit`` saw names: a DataFrame ``X``, a DataFrame
        baseline, or a Pipeline fitted on a DataFrame. They fix the columns
        (and their order) that ``explain`` accepts.
    baseline_ : Tensor of shape (n_background, n_model_inputs)
        Resolved baseline rows, in the model's input space. Only when
        ``fit`` knew the number of columns (and their names, for a baseline
        given by column name).
    groups_ : ndarray of shape (n_model_inputs,)
        Result column of each model input column. Only when ``fit`` knew
        the columns (and their names, for groups given by column name).
    group_names_ : list of str
        Names of the result's columns, with ``groups_``.
    n_outputs_ : int
        Number of model outputs, with ``baseline_``. Without them, a target
        out of range is reported at the start of ``explain``, before any
        heavy work.
    classes_ : ndarray or None
        Class labels of a classifier, else ``None``."""

_TARGET_WORDS = ("predicted", "true")


def with_fitted_attributes(cls):
    """Put :data:`FITTED_ATTRIBUTES_DOC` where the docstring says ``{attributes}``."""
    cls.__doc__ = cls.__doc__.replace("    {attributes}", FITTED_ATTRIBUTES_DOC)
    return cls


#: The kind of every key of a result's ``attrs``, the same for every
#: explainer: ``"row"`` a Series indexed like the result, ``"cell"`` a
#: DataFrame shaped like the result, ``"call"`` one value for the call.
EXTRA_KINDS = {
    "target": "row",
    "base_values": "row",
    "n_samples": "row",
    "delta": "row",
    "intercept": "row",
    "std": "cell",
    "exact": "call",
}

#: Fitted attributes that depend on the columns; ``fit`` sets them only
#: when it can resolve the columns.
_LAYOUT_ATTRIBUTES = ("baseline_", "n_outputs_", "groups_", "group_names_")


@dataclass(frozen=True, eq=False)
class Layout:
    """What one set of columns fixes for an explainer.

    Built by ``fit`` when it knows the columns, else by each ``explain``
    call for the columns of its ``X``; never changed after.
    """

    columns: tuple[str, ...]  #: user column names
    labels: list[str]  #: each model input in the user's terms (for errors)
    groups: (
        torch.Tensor
    )  #: ``[p]`` long on the device: the core's group of each model input
    present: list[int]  #: result column of each of the core's groups
    group_ids: np.ndarray  #: ``[p]``: result column of each model input
    group_names: list[str]  #: the result's columns (features or groups)
    baseline: torch.Tensor  #: ``[B, p]`` baseline rows in model space
    n_outputs: int  #: number of model outputs
    target_column: int | None  #: the output column of a fixed ``target``
    extra: dict  #: method-specific fitted values (``background_``, ...)

    @property
    def n_groups(self) -> int:
        """Groups the core sees: those with model inputs (0..g'-1)."""
        return len(self.present)


@dataclass(frozen=True, eq=False)
class _Resolved:
    """The part of a layout that depends on the number of columns only."""

    baseline: torch.Tensor
    n_outputs: int
    target_column: int | None
    extra: dict


class BaseExplainer(BaseEstimator):
    """Base class of the explainers: ``fit``, ``explain`` and ``importance``.

    Subclasses declare their parameters in ``__init__`` (stored unchanged;
    the shared ones, ``baseline``, ``target``, ``output``, ``feature_groups``,
    ``batch_size``, ``device``, ``random_state`` and ``show_progress``, only
    where the method uses them), check their own parameters in
    ``_check_params`` and compute attributions in
    ``_attribute(X, y, layout, call)``, which receives the validated
    model-space tensor, the layout and the :class:`~skattr._model.ModelCall`
    through which every model evaluation goes, and returns
    ``(values, extras)``: a tensor ``[n, layout.n_groups]`` and a dict of
    per-call information (keys of :data:`EXTRA_KINDS`) that ends up in
    ``DataFrame.attrs``. ``_cost(layout, n)`` gives the model rows a call
    evaluates (the progress bar's total).
    """

    #: gradient methods: parameters frozen, autograd on
    _needs_grad = False
    #: the result has one column per feature or group (``False``: per unit of
    #: a layer, see ``_result_columns``)
    _per_feature = True
    #: method-specific fitted attributes that ``_extra`` returns
    _extra_attributes: tuple[str, ...] = ()

    # ------------------------------------------------------------ fit
    def fit(self, model, X=None):
        """Bind the explainer to ``model`` and, optionally, background data.

        Parameters
        ----------
        model : torch.nn.Module, skorch net or sklearn Pipeline
            The model to explain. A plain module's ``forward`` takes one float
            tensor of shape ``(n_rows, n_features)``; a skorch net must be
            initialized; a Pipeline must end in a skorch net.
        X : array-like of shape (n_rows, n_features), default=None
            Background data: ``baseline="auto"``, ``"mean"`` and ``"median"``
            are computed from it, and it fixes the number and names of the
            columns that ``explain`` accepts. Without it, a DataFrame
            baseline or a Pipeline fitted on a DataFrame fixes the names, a
            baseline with one value per feature the number; otherwise each
            ``explain`` takes the columns (names and number) from its own
            ``X``, and dict ``feature_groups`` and dict or Series baselines
            are aligned by name to it.

        Returns
        -------
        self : object
            The fitted explainer.
        """
        self._check_all_params()
        adapter = ModelAdapter.from_model(
            model, output=getattr(self, "output", "raw"), device=self.device
        )
        numeric = adapter.preprocess is None
        check_baseline_has_X(getattr(self, "baseline", "auto"), X)
        if X is not None:
            X = check_input(self, X, reset=True, numeric=numeric)
            names = _names(X)
            width = X.shape[1]
        else:
            names, width = self._columns_without_X(adapter, numeric)
        for attr in (*_LAYOUT_ATTRIBUTES, *self._extra_attributes):
            self.__dict__.pop(attr, None)
        self.model_ = model
        self.device_ = adapter.device
        self.classes_ = None if adapter.classes is None else np.asarray(adapter.classes)
        self._adapter = adapter
        self._resolved = None
        self._fit_layout = None
        self._bind()
        if width is None:
            return self
        columns = names if names is not None else column_names(None, width)
        traced = adapter.inputs(columns)
        X_fit = None if X is None else adapter.to_model(X, traced[1])
        if names is None and baseline_needs_names(getattr(self, "baseline", None)):
            return self
        self._resolved = resolved = self._resolve(columns, traced[1], X_fit)
        self.baseline_ = resolved.baseline
        self.n_outputs_ = resolved.n_outputs
        for attr, value in resolved.extra.items():
            setattr(self, attr, value)
        if names is None and needs_names(getattr(self, "feature_groups", None)):
            return self
        self._fit_layout = layout = self._layout(columns, traced)
        self.groups_ = layout.group_ids
        self.group_names_ = list(layout.group_names)
        return self

    def _columns_without_X(self, adapter, numeric: bool):
        """Names and number of columns that ``fit`` knows without ``X``.

        A fitted Pipeline's own ``feature_names_in_`` or ``n_features_in_``,
        else a DataFrame baseline's columns, else the width of a baseline
        with one value per feature; ``None`` where nothing tells.
        """
        for attr in ("n_features_in_", "feature_names_in_"):
            self.__dict__.pop(attr, None)
        names, width = adapter.known_columns()
        baseline = getattr(self, "baseline", "auto")
        if names is None and isinstance(baseline, pd.DataFrame):
            check_input(self, baseline, reset=True, numeric=numeric, name="baseline")
            return _names(baseline), baseline.shape[1]
        if width is None and not baseline_needs_names(baseline):
            width = baseline_width(baseline)
        if names is not None:
            self.feature_names_in_ = np.asarray(names, dtype=object)
        if width is not None:
            self.n_features_in_ = int(width)
        return names, width

    def _bind(self) -> None:
        """Hook: resolve what needs only the model (a layer), at ``fit``."""

    def _extra(self, baseline: torch.Tensor, X_fit: torch.Tensor | None) -> dict:
        """Hook: method-specific values that need the baseline, by attribute name."""
        return {}

    def _resolve(self, columns, labels, X_fit) -> _Resolved:
        """Baseline rows, number of outputs and target column for these columns.

        A probe forward on the baseline rows gives the number of outputs; when
        ``fit`` did not know the number of columns, it is also the check that
        the model takes as many as ``X`` has, before any heavy work.
        """
        adapter = self._adapter
        baseline = resolve_baseline(
            getattr(self, "baseline", "auto"),
            X_fit=X_fit,
            columns=columns,
            n_columns=len(labels),
            device=adapter.device,
            dtype=adapter.dtype,
            to_model=lambda rows: adapter.to_model(rows, labels, name="baseline"),
        )
        with adapter.evaluating(), torch.no_grad():
            try:
                probe = adapter.forward(baseline[:2])
            except RuntimeError as exc:
                if "n_features_in_" in vars(self):
                    raise
                raise ValueError(
                    f"The model could not be run on rows of {len(labels)} input "
                    f"column(s), the width of the X given to explain "
                    f"({type(exc).__name__}: {exc}). fit got no X, so the columns "
                    "come from each X given to explain: give it the columns the "
                    "model takes, or pass X to fit(model, X) to fix them there."
                ) from exc
        n_outputs = int(probe.shape[1])
        target_column = self._target_column(n_outputs)
        with adapter.evaluating():
            extra = self._extra(baseline, X_fit)
        return _Resolved(baseline, n_outputs, target_column, extra)

    def _layout(self, columns, traced=None) -> Layout:
        """The layout of these columns: groups, and the resolved baseline."""
        inputs, labels = self._adapter.inputs(columns) if traced is None else traced
        resolved = self._resolved
        if resolved is None:
            resolved = self._resolve(columns, labels, None)
        user_groups, names = make_groups(getattr(self, "feature_groups", None), columns)
        model_groups = user_groups[inputs]
        # The core sees only groups with model inputs (a column a Pipeline
        # drops has none), numbered 0..g'-1; _expand puts exact zeros back.
        present, compact = torch.unique(model_groups, sorted=True, return_inverse=True)
        return Layout(
            columns=tuple(columns),
            labels=list(labels),
            groups=compact.to(self.device_),
            present=present.tolist(),
            group_ids=model_groups.numpy(),
            group_names=list(names),
            baseline=resolved.baseline,
            n_outputs=resolved.n_outputs,
            target_column=resolved.target_column,
            extra=resolved.extra,
        )

    def _layout_for(self, X) -> Layout:
        """The fitted layout when ``X`` has its columns, else one for ``X``."""
        if "feature_names_in_" in vars(self):
            columns = [str(c) for c in self.feature_names_in_]
        else:
            columns = column_names(X, X.shape[1])
        layout = self._fit_layout
        if layout is not None and layout.columns == tuple(columns):
            return layout
        return self._layout(columns)

    # ------------------------------------------------------------ params
    def _check_all_params(self) -> None:
        """Checked in ``fit`` and again in ``explain``: ``set_params`` may have
        changed them since."""
        self._check_common_params()
        self._check_params()

    def _check_common_params(self) -> None:
        check_option("output", getattr(self, "output", "raw"), ("raw", "proba"))
        check_int("batch_size", self.batch_size)
        target = getattr(self, "target", None)
        if isinstance(
            target, (list, tuple, np.ndarray, pd.Series, pd.Index, torch.Tensor)
        ):
            raise TypeError(
                f"target must be one output for every row, not a "
                f"{type(target).__name__} of them. To explain each row's own "
                "class, pass the labels as y with target='true': "
                "explain(X, y)."
            )
        if not (
            target is None
            or isinstance(target, (numbers.Integral, str))
            or np.isscalar(target)
        ):
            raise TypeError(
                "target must be None, an int output column, a class label, "
                f"'predicted' or 'true'; got {type(target).__name__}."
            )

    def _check_params(self) -> None:
        """Check the subclass's own parameters (raise ``ValueError``)."""

    def _target_column(self, k: int) -> int | None:
        """Resolve an int or class-label ``target`` to one of ``k`` output columns."""
        target = getattr(self, "target", None)
        if target is None or (isinstance(target, str) and target in _TARGET_WORDS):
            if target == "true" and k == 1:
                raise ValueError(
                    "target='true' picks each row's true class among the model's "
                    "outputs, but this model has a single output; use target=None."
                )
            return None
        classes = self.classes_
        if classes is not None and target in set(classes.tolist()):
            pos = classes.tolist().index(target)
            if k == 1 and len(classes) == 2:
                if pos == 1:
                    return 0
                raise ValueError(
                    f"The model has one output, the score of class {classes[1]!r}; "
                    f"target={target!r} has no output column of its own. Use "
                    "output='proba' for one column per class."
                )
            if pos >= k:
                raise ValueError(
                    f"target={target!r} is class {pos} but the model has {k} outputs."
                )
            return pos
        if isinstance(target, numbers.Integral) and not isinstance(target, bool):
            if not 0 <= int(target) < k:
                raise ValueError(
                    f"target={int(target)} is out of range: the model has {k} "
                    f"output(s), so target must be in 0..{k - 1}."
                )
            return int(target)
        known = "" if classes is None else f" Classes are {classes.tolist()}."
        raise ValueError(
            f"target={target!r} is neither an output column, a class label, "
            f"'predicted' nor 'true'.{known}"
        )

    # ------------------------------------------------------------ explain
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call "
                "fit(model, X) with the model to explain before explain or importance."
            )

    def _prepare(self, X):
        """Checked ``X``, its layout and its model-space tensor, before any heavy work."""
        self._check_fitted()
        self._check_all_params()
        X = check_input(self, X, reset=False, numeric=self._adapter.preprocess is None)
        layout = self._layout_for(X)
        return X, layout, self._adapter.to_model(X, layout.labels)

    def explain(self, X, y=None):
        """Local attributions: one row per row of ``X``, one column per feature.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Rows to explain: a numpy array, pandas DataFrame, torch tensor or
            list, with the columns seen in ``fit`` (or, when ``fit`` saw
            none, any columns the model takes: their names are the result's).
        y : array-like of shape (n_rows,), default=None
            True labels; needed for ``target="true"``.

        Returns
        -------
        attributions : DataFrame of shape (n_rows, n_features)
            Float64 attributions, indexed like ``X`` (0..n-1 for arrays), with
            one column per feature or feature group. ``attributions.attrs``
            holds the per-call extras the method's docstring lists.
        """
        X, layout, Xt = self._prepare(X)
        y = check_y(y, Xt.shape[0])
        self._check_explain(layout, Xt)
        index = row_index(X)
        call = self._call(layout, index)
        try:
            with self._adapter.evaluating(freeze_parameters=self._needs_grad):
                values, extras = self._attribute(Xt, y, layout, call)
            call.check(values)
        finally:
            call.close()
        return self._frame(values, index, extras, layout)

    def _call(self, layout: Layout, index: pd.Index) -> ModelCall:
        """The :class:`ModelCall` of one call over the rows ``index``."""
        return ModelCall(
            self._adapter,
            index,
            total=self._cost(layout, len(index)),
            progress=bool(getattr(self, "show_progress", False)),
            desc=type(self).__name__,
        )

    def _cost(self, layout: Layout, n: int) -> int | None:
        """Model rows one call on ``n`` rows evaluates (at most, with ``tol``)."""
        return None

    def _check_explain(self, layout: Layout, X: torch.Tensor) -> None:
        """Hook for method-specific checks of the rows to explain."""

    def _attribute(self, X, y, layout, call):  # pragma: no cover - abstract
        raise NotImplementedError

    def importance(self, X, y=None):
        """Global importance: mean absolute attribution per feature.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Rows over which to average.
        y : array-like of shape (n_rows,), default=None
            True labels, for ``target="true"``.

        Returns
        -------
        importance : DataFrame
            Indexed by feature, sorted by decreasing ``importance`` (the mean
            of |attribution| over rows), with ``std`` (its standard deviation
            over rows) and ``mean`` (the signed mean attribution).
        """
        attr = self.explain(X, y)
        return _rank(
            attr.abs().mean(),
            attr.abs().std(ddof=1 if len(attr) > 1 else 0),
            attr.mean(),
        )

    # ------------------------------------------------------------ helpers
    def _generator(self) -> torch.Generator:
        """A generator on ``device_``, seeded from ``random_state``, fresh per call.

        Random draws happen where the model runs, so that a GPU does not wait
        for the CPU's random numbers; the same seed on the same device gives
        the same draws (a CPU and a GPU draw different numbers).
        """
        rs = self.random_state
        if isinstance(rs, np.random.Generator):
            seed = int(rs.integers(0, 2**63 - 1))
        else:
            seed = int(check_random_state(rs).randint(0, np.iinfo(np.int32).max))
        return torch.Generator(device=self.device_).manual_seed(seed)

    def _outputs(self, X: torch.Tensor, call: ModelCall) -> torch.Tensor:
        """All model outputs ``[n, k]`` for the rows, in chunks, no autograd."""
        return evaluate_rows(call, X, batch_size=self.batch_size)

    def _targets(self, outputs: torch.Tensor, y, layout: Layout) -> torch.Tensor:
        """The output column explained for each row, ``[n]`` long."""
        n = outputs.shape[0]
        device = outputs.device
        if layout.target_column is not None:
            return torch.full(
                (n,), layout.target_column, dtype=torch.long, device=device
            )
        if getattr(self, "target", None) == "true":
            if y is None:
                raise ValueError(
                    "target='true' needs the true labels: call explain(X, y)."
                )
            return torch.as_tensor(
                self._label_columns(y, layout.n_outputs), device=device
            )
        if outputs.shape[1] == 1:
            return torch.zeros(n, dtype=torch.long, device=device)
        return outputs.argmax(1)

    def _label_columns(self, y: np.ndarray, k: int) -> np.ndarray:
        if self.classes_ is not None:
            columns = pd.Index(self.classes_).get_indexer(y)  # -1: not a class
            if (columns < 0).any():
                unknown = sorted(set(y[columns < 0].tolist()), key=str)
                raise ValueError(
                    f"y holds labels {unknown[:5]} that are not classes of the model "
                    f"({self.classes_.tolist()})."
                )
            return columns.astype(np.int64)
        if y.dtype.kind not in "iu" and not (
            y.dtype.kind == "f" and np.all(np.mod(y, 1) == 0)
        ):
            raise ValueError(
                "target='true' needs integer labels 0..n_outputs-1 for a model "
                f"without classes_; y has dtype {y.dtype}."
            )
        cols = y.astype(np.int64)
        if cols.min() < 0 or cols.max() >= k:
            raise ValueError(
                f"y holds labels outside 0..{k - 1}, the model's {k} outputs."
            )
        return cols

    def _setup(self, X: torch.Tensor, y, layout: Layout, call: ModelCall, base=True):
        """Outputs, targets, ``f`` and base values for perturbation methods.

        Returns ``(f, fx, targets, base)``: the scalar function handed to the
        core, f(x) per row ``[n]``, the output column per row ``[n]`` and
        f(baseline) per row ``[n]`` (averaged over background rows; ``None``
        with ``base=False``, for a method without a baseline).
        """
        outputs = self._outputs(X, call)
        targets = self._targets(outputs, y, layout)
        fx = outputs.gather(1, targets[:, None]).squeeze(1)
        if not base:
            fb = None
        else:
            with torch.no_grad():
                fb = call(layout.baseline).double().mean(0)[targets]
        return call.scalar(targets), fx, targets, fb

    def _expand(self, values: torch.Tensor, layout: Layout) -> torch.Tensor:
        """Group values ``[n, g']`` -> ``[n, g]`` with zeros for empty groups."""
        g = len(layout.group_names)
        if layout.n_groups == g:
            return values
        full = values.new_zeros(*values.shape[:-1], g)
        full[..., layout.present] = values
        return full

    def _frame(
        self, values: torch.Tensor, index, extras: dict, layout: Layout
    ) -> pd.DataFrame:
        columns = self._result_columns(layout)
        if self._per_feature:
            values = self._expand(values, layout)
        # the arrays are ours: the frames take them without pandas' copy
        frame = pd.DataFrame(
            to_numpy(values.double()), index=index, columns=columns, copy=False
        )
        for key, value in extras.items():
            frame.attrs[key] = self._extra_value(key, value, frame, layout)
        return frame

    def _extra_value(self, key: str, value, frame: pd.DataFrame, layout: Layout):
        """One ``attrs`` entry in its kind (see :data:`EXTRA_KINDS`)."""
        kind = EXTRA_KINDS[key]
        if kind == "call":
            return value
        if kind == "cell":
            if self._per_feature:
                value = self._expand(value, layout)
            return pd.DataFrame(
                to_numpy(value.double()), index=frame.index, columns=frame.columns,
                copy=False,
            )  # fmt: skip
        if isinstance(value, torch.Tensor):
            value = to_numpy(value)
        else:
            value = np.full(len(frame), value)
        if (
            key == "target"
            and self.classes_ is not None
            and len(self.classes_) == layout.n_outputs
        ):
            value = self.classes_[value]
        return pd.Series(value, index=frame.index, name=key, copy=False)

    def _result_columns(self, layout: Layout) -> list[str]:
        return list(layout.group_names)


def _names(X) -> list[str] | None:
    """The column names of a DataFrame (as strings), else ``None``."""
    if isinstance(X, pd.DataFrame):
        return [str(c) for c in X.columns]
    return None


def _rank(
    importance: pd.Series, std: pd.Series, mean: pd.Series | None = None
) -> pd.DataFrame:
    """An importance table indexed by feature, sorted by decreasing importance."""
    table = pd.DataFrame({"importance": importance, "std": std})
    if mean is not None:
        table["mean"] = mean
    table.index.name = "feature"
    return table.sort_values("importance", ascending=False, kind="stable")
