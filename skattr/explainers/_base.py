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

import functools
import numbers
from dataclasses import dataclass, field, fields

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from skattr._data import (
    baseline_needs_names,
    baseline_width,
    check_baseline_has_X,
    check_bool,
    check_input,
    check_int,
    check_option,
    check_y,
    column_names,
    dask_free,
    derived_seed,
    frame_index,
    importance_moments,
    is_dask,
    moments_table,
    resolve_baseline,
    row_index,
    same_value,
    to_numpy,
)
from skattr._model import ModelAdapter, ModelCall
from skattr.core.groups import make_groups, needs_names, sum_over_groups
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

_TARGET_WORDS = ("predicted", "true", "all")


#: numpydoc entry of the shared ``model_inputs`` parameter.
MODEL_INPUTS_DOC = """\
    model_inputs : dict, default=None
        ``None``: the model takes one float tensor of all columns. A dict
        ``{forward argument: [columns]}`` calls it as
        ``module(**{argument: tensor})``, each tensor in its columns' dtype:
        float columns in the model's float dtype, integer and pandas
        ``category`` columns as int64 codes (categories in the order of the
        ``X`` given to ``fit``, which such columns need). Attributions come
        out per user column."""


def with_fitted_attributes(cls):
    """Put the shared docstring blocks where the docstring says ``{attributes}``
    (:data:`FITTED_ATTRIBUTES_DOC`) and ``{model_inputs}``
    (:data:`MODEL_INPUTS_DOC`)."""
    doc = cls.__doc__.replace("    {attributes}", FITTED_ATTRIBUTES_DOC)
    cls.__doc__ = doc.replace("    {model_inputs}", MODEL_INPUTS_DOC)
    return cls


#: Values (rows x samples x targets) a method that explains rows in chunks
#: holds for one chunk (:meth:`BaseExplainer._attribute_rows`): some 100 MiB
#: of intermediate results, whatever the number of rows.
ROW_BUDGET = 2**19
#: On a GPU the chunks are this many times larger: a chunk's evaluations
#: should fill several of its large batches (65,536 rows at W3).
CUDA_BUDGET_FACTOR = 16

#: The kinds of ``attrs`` entries: ``"row"`` a Series indexed like the
#: result (from a tensor ``[n]`` or one number for every row), ``"cell"`` a
#: DataFrame shaped like the result (from a tensor shaped like the values),
#: ``"call"`` one value for the call, ``"target"`` a Series of the output
#: explained per row (class labels where the model has them).
EXTRA_KINDS = ("row", "cell", "call", "target")

#: Fitted attributes that depend on the columns; ``fit`` sets them only
#: when it can resolve the columns.
_LAYOUT_ATTRIBUTES = (
    "baseline_",
    "n_outputs_",
    "groups_",
    "group_names_",
    "layer_shape_",
)


@dataclass(frozen=True)
class Settings:
    """The shared parameters of one call, neutral where the method has none.

    Built once per ``fit`` or ``explain`` from the constructor's parameters
    (:meth:`BaseExplainer._settings`) and handed down to ``_attribute`` and
    the core, instead of each of them reading the explainer's attributes.
    """

    baseline: object = "auto"
    target: object = None
    output: str = "raw"
    feature_groups: object = None
    batch_size: int = 4096
    device: object = None
    show_progress: bool = False
    model_inputs: object = None

    @classmethod
    def of(cls, explainer) -> Settings:
        declared = _shared_parameters(type(explainer))
        return cls(**{name: getattr(explainer, name) for name in declared})


def _brief(value) -> str:
    """A parameter's value for a message: its repr, or its type when long."""
    text = repr(value)
    short = len(text) <= 60 and "\n" not in text
    return text if short else f"a {type(value).__name__}"


def _draw_seed(random_state) -> int:
    """A torch seed drawn from ``random_state`` as scikit-learn reads it."""
    return int(check_random_state(random_state).randint(0, np.iinfo(np.int32).max))


@functools.lru_cache(maxsize=1024)
def _seed_of(random_state: int) -> int:
    """The seed of an int ``random_state``, drawn once (a ``RandomState`` costs 0.15 ms)."""
    return _draw_seed(random_state)


@functools.lru_cache(maxsize=256)
def _column_index(columns: tuple) -> pd.Index:
    """The result's column ``Index`` of these names, built once per set of
    names (an ``Index`` is immutable; building one costs about 0.1 ms)."""
    return pd.Index(columns)


@functools.cache
def _fit_parameter_names(cls) -> tuple[str, ...]:
    """``cls._fit_parameters`` among its constructor parameters."""
    params = set(cls._get_param_names())
    return tuple(name for name in cls._fit_parameters if name in params)


@functools.cache
def _shared_parameters(cls) -> tuple[str, ...]:
    """The :class:`Settings` fields among ``cls``'s constructor parameters."""
    params = set(cls._get_param_names())
    return tuple(f.name for f in fields(Settings) if f.name in params)


@dataclass(frozen=True, eq=False)
class Layout:
    """What one set of columns fixes for an explainer.

    Built by ``fit`` when it knows the columns, else by each ``explain``
    call for the columns of its ``X``; never changed after. Its
    :meth:`to_result` and :meth:`from_inputs` are the one place where values
    per core group or per model input become values per result column.
    """

    adapter: ModelAdapter  #: bound to the columns (``columns``, ``origin``, ``labels``)
    groups: (
        torch.Tensor
    )  #: ``[p]`` long on the device: the core's group of each model input
    present: list[int]  #: result column of each of the core's groups
    group_ids: np.ndarray  #: ``[p]``: result column of each model input
    group_names: list[str]  #: the result's columns (features or groups)
    baseline: torch.Tensor | None  #: ``[B, p]`` baseline rows in model space
    n_outputs: int  #: number of model outputs
    layer_shape: tuple[int, ...] | None  #: a layer method's units per row
    result_columns: pd.Index  #: the columns of the result frame
    #: model input ``c`` is result column ``c`` for every ``c`` (no groups, no
    #: Pipeline): per-input values are per-column values as they are
    one_to_one: bool = False

    @property
    def n_groups(self) -> int:
        """Groups the core sees: those with model inputs (0..g'-1)."""
        return len(self.present)

    def to_result(self, values: torch.Tensor) -> torch.Tensor:
        """Values per core group ``[n, g', ...]`` -> per result column ``[n, g, ...]``.

        A result column that no model input feeds (a column the Pipeline
        drops) gets exactly 0.
        """
        if self.n_groups == len(self.group_names):  # every column has inputs
            return values
        full = values.new_zeros(
            values.shape[0], len(self.group_names), *values.shape[2:]
        )
        full[:, self.present] = values
        return full

    def from_inputs(self, values: torch.Tensor) -> torch.Tensor:
        """Values per model input ``[n, p, ...]`` -> per result column, summed per group."""
        if self.one_to_one:
            return values
        return self.to_result(sum_over_groups(values, self.groups, dim=1))


@dataclass(frozen=True, eq=False)
class _Resolved:
    """The part of a layout that depends on the number of columns only."""

    baseline: torch.Tensor | None
    n_outputs: int
    layer_shape: tuple[int, ...] | None


class BaseExplainer(BaseEstimator):
    """Base class of the explainers: ``fit``, ``explain`` and ``importance``.

    Subclasses declare their parameters in ``__init__`` (stored unchanged;
    the shared ones of :class:`Settings` only where the method uses them),
    check their own parameters in ``_check_params`` and compute
    attributions in ``_attribute(X, y, layout, call, settings)``, which
    receives the validated model-space tensor, the layout, the
    :class:`~skattr._model.ModelCall` through which every model evaluation
    goes and the call's settings, and returns ``(values, extras)``: a tensor
    in the space ``_space`` names and a dict whose keys and kinds the class
    declares in ``_extras``. ``_cost(layout, n)`` gives the model rows a
    call evaluates (the progress bar's total).
    """

    #: gradient methods: parameters frozen, autograd on
    _needs_grad = False
    #: what ``_attribute`` returns values over: ``"groups"`` (the core's
    #: groups, ``[n, g']``), ``"inputs"`` (model inputs, ``[n, p]``, summed
    #: per group) or ``"units"`` (a layer's units, as they are)
    _space = "groups"
    #: the extras ``_attribute`` returns, with their kinds (:data:`EXTRA_KINDS`)
    _extras: dict[str, str] = {}
    #: whether the method uses a baseline, and what ``"auto"`` means for it:
    #: ``"mean"`` (of the ``X`` given to ``fit``) or ``"rows"`` (its rows,
    #: a distribution); ``None``: no baseline
    _auto_baseline: str | None = "mean"
    #: whether the method draws random numbers (a generator per call)
    _random = False
    #: whether the result has one row per explained row (a Dask DataFrame
    #: can hold it); ``False``: rows per (row, feature)
    _flat_rows = True
    #: whether the method's coalitions may update the model's first layer
    #: incrementally (``skattr.core.incremental``): ``fit`` then looks for
    #: the model's affine head
    _incremental = False
    #: the parameters ``fit`` acts on (the model's adapter, the baseline, the
    #: layout; a layer method's layer): ``explain`` keeps what ``fit`` made
    #: of them, so that a ``set_params`` of one after ``fit`` is refused
    #: there (:meth:`_check_fitted`) instead of silently ignored
    _fit_parameters = ("output", "device", "model_inputs", "baseline", "feature_groups")

    # ------------------------------------------------------------ fit
    def fit(self, model, X=None):
        """Bind the explainer to ``model`` and, optionally, background data.

        Parameters
        ----------
        model : torch.nn.Module, skorch net, sklearn Pipeline or callable
            The model to explain. A plain module's ``forward`` takes one float
            tensor of shape ``(n_rows, n_features)``; a skorch net must be
            initialized; a Pipeline must end in a skorch net. A plain
            callable (Captum's ``forward_func``) maps such a tensor to outputs
            of shape ``(n_rows, n_outputs)`` or ``(n_rows,)``; it runs on the
            CPU unless ``device`` says otherwise, gradient methods need it to
            be differentiable, and the layer methods refuse it.
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
        settings = self._settings()
        adapter = ModelAdapter.from_model(
            model,
            output=settings.output,
            device=settings.device,
            model_inputs=settings.model_inputs,
            find_head=self._incremental,
        )
        numeric = adapter.numeric_only
        baseline = settings.baseline if self._auto_baseline else None
        check_baseline_has_X(baseline, X)
        for attr in (*_LAYOUT_ATTRIBUTES, "_column_labels"):
            self.__dict__.pop(attr, None)
        if X is not None:
            X = check_input(self, X, reset=True, numeric=numeric)
            names = _names(X)
            width = X.shape[1]
        else:
            names, width = self._columns_without_X(adapter, numeric, baseline)
        # rows without names: explain warns, as scikit-learn does, of a frame's
        self._unnamed_fit_rows = X is not None and names is None
        self._fit_values = self._fit_parameter_values()
        self.model_ = model
        self.device_ = adapter.device
        self.classes_ = None if adapter.classes is None else np.asarray(adapter.classes)
        self._adapter = adapter
        self._resolved = None
        self._fit_layout = None
        self._find_layer(adapter)
        if width is None:
            return self
        bound = adapter.for_columns(names or column_names(None, width), X)
        X_fit = None if X is None else bound.to_model(X)
        if names is None and baseline_needs_names(baseline):
            return self
        self._resolved = resolved = self._resolve(bound, X_fit, settings)
        if resolved.baseline is not None:
            self.baseline_ = resolved.baseline
        self.n_outputs_ = resolved.n_outputs
        if resolved.layer_shape is not None:
            self.layer_shape_ = resolved.layer_shape
        if names is None and needs_names(settings.feature_groups):
            return self
        self._fit_layout = layout = self._layout(bound, settings)
        self.groups_ = layout.group_ids.copy()  # the user's: not the layout's map
        self.group_names_ = list(layout.group_names)
        return self

    def _columns_without_X(self, adapter, numeric: bool, baseline):
        """Names and number of columns that ``fit`` knows without ``X``.

        A fitted Pipeline's own ``feature_names_in_`` or ``n_features_in_``,
        else a DataFrame baseline's columns, else the width of a baseline
        with one value per feature; ``None`` where nothing tells.
        """
        for attr in ("n_features_in_", "feature_names_in_"):
            self.__dict__.pop(attr, None)
        names, width = adapter.known_columns()
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

    def _find_layer(self, adapter: ModelAdapter) -> None:
        """Hook of the layer methods: resolve ``layer`` in the model, at ``fit``."""

    def _probe(self, adapter: ModelAdapter, rows: torch.Tensor):
        """One forward on probe rows: ``(outputs, layer shape or None)``.

        The layer methods override it to also capture their layer's shape
        per row in the same forward call.
        """
        return adapter.forward(rows), None

    def _resolve(self, adapter, X_fit, settings: Settings) -> _Resolved:
        """Baseline rows, number of outputs and target column for these columns.

        A probe forward on a copy of two baseline rows (one row twice; rows
        of ``X`` or zeros for a method without baseline) gives the number of
        outputs; when ``fit``
        did not know the number of columns, it is also the check that the
        model takes as many as ``X`` has, before any heavy work.
        """
        codes = [] if adapter.inputs is None else adapter.inputs.code_columns
        if self._needs_grad and codes:
            raise TypeError(
                f"{type(self).__name__} differentiates the model with respect to "
                f"its inputs, but column(s) {codes} enter it as integer codes "
                "(model_inputs), which have no gradient. Use a perturbation "
                "method: ShapleyValueSampling, ShapleyValues, KernelShap, Lime, "
                "FeatureAblation or FeaturePermutation."
            )
        baseline = None
        if self._auto_baseline is not None:
            baseline = resolve_baseline(
                settings.baseline,
                X_fit=X_fit,
                adapter=adapter,
                auto=self._auto_baseline,
            )
            probe_rows = baseline[:2]
        elif X_fit is not None:
            probe_rows = X_fit[:2]
        else:
            probe_rows = torch.zeros(
                2, len(adapter.labels), device=adapter.device, dtype=adapter.dtype
            )
        # two rows, copied: a model that squeezes its output shows its
        # per-row shape, and one that writes into its input leaves the
        # baseline alone
        probe_rows = probe_rows.repeat(2 // probe_rows.shape[0], 1)
        with adapter.evaluating(), torch.no_grad():
            try:
                probe, layer_shape = self._probe(adapter, probe_rows)
            except RuntimeError as exc:
                if adapter.runs_in_float64(probe_rows):
                    raise TypeError(
                        f"The model, a plain callable, failed on {adapter.dtype} "
                        f"rows ({type(exc).__name__}: {exc}) but runs on float64 "
                        f"ones. skattr calls a plain callable on {adapter.dtype} "
                        "tensors, as it has no parameters to read a dtype from: "
                        "cast inside it (lambda x: f(x.double())), or pass the "
                        "torch module itself, whose parameters' dtype is used."
                    ) from exc
                if X_fit is not None:
                    raise  # the user's own X and model
                if "n_features_in_" in vars(self):
                    raise ValueError(
                        f"The model could not be run on rows of "
                        f"{len(adapter.labels)} input column(s), the width of the "
                        f"baseline given without X ({type(exc).__name__}: {exc}). "
                        "Give a baseline with one value per column the model "
                        "takes, or pass X to fit(model, X)."
                    ) from exc
                raise ValueError(
                    f"The model could not be run on rows of {len(adapter.labels)} "
                    f"input column(s), the width of the X given to explain "
                    f"({type(exc).__name__}: {exc}). fit got no X, so the columns "
                    "come from each X given to explain: give it the columns the "
                    "model takes, or pass X to fit(model, X) to fix them there."
                ) from exc
        n_outputs = int(probe.shape[1])
        if self._explains_target():
            self._target_column(settings.target, n_outputs)  # a bad one fails here
        return _Resolved(baseline, n_outputs, layer_shape)

    def _explains_target(self) -> bool:
        """Whether what this explainer is fitted for reads ``target``, so
        that ``fit`` checks it (``explain`` always does)."""
        return True

    def _layout(self, adapter: ModelAdapter, settings: Settings) -> Layout:
        """The layout of the columns ``adapter`` is bound to."""
        resolved = self._resolved
        if resolved is None:
            resolved = self._resolve(adapter, None, settings)
        if settings.feature_groups is None and adapter.numeric_only:
            # one group per column, model input c is column c (origin: 0..p-1)
            names, model_groups = list(adapter.columns), adapter.origin
            present = compact = model_groups
            one_to_one = True
        else:
            user_groups, names = make_groups(settings.feature_groups, adapter.columns)
            model_groups = user_groups[adapter.origin]
            # The core sees only groups with model inputs (a column a Pipeline
            # drops has none), numbered 0..g'-1; to_result puts zeros back.
            present, compact = torch.unique(
                model_groups, sorted=True, return_inverse=True
            )
            p = model_groups.shape[0]
            one_to_one = p == len(names) and torch.equal(model_groups, torch.arange(p))
        columns = self._result_columns(list(names), resolved.layer_shape)
        return Layout(
            adapter=adapter,
            groups=compact.to(self.device_),
            present=present.tolist(),
            group_ids=model_groups.numpy(),
            group_names=list(names),
            baseline=resolved.baseline,
            n_outputs=resolved.n_outputs,
            layer_shape=resolved.layer_shape,
            result_columns=_column_index(tuple(columns)),
            one_to_one=one_to_one,
        )

    def _layout_for(self, X, settings: Settings) -> Layout:
        """The fitted layout when ``X`` has its columns, else one for ``X``."""
        if "feature_names_in_" in vars(self):
            columns = [str(c) for c in self.feature_names_in_]
        else:
            columns = column_names(X, X.shape[1])
        layout = self._fit_layout
        if layout is not None and layout.adapter.columns == tuple(columns):
            return layout
        bound = self._adapter.for_columns(columns)
        if bound.inputs is not None:  # before the probe: codes need fit's X
            bound.inputs.check_kinds(X)
        return self._layout(bound, settings)

    # ------------------------------------------------------------ params
    def _settings(self) -> Settings:
        """Check every parameter and return the shared ones.

        Called by ``fit`` and again by ``explain``: ``set_params`` may have
        changed them since.
        """
        settings = Settings.of(self)
        check_option("output", settings.output, ("raw", "proba"))
        check_int("batch_size", settings.batch_size)
        check_bool("show_progress", settings.show_progress)
        _check_target(settings.target)
        self._check_params()
        return settings

    def _check_params(self) -> None:
        """Check the subclass's own parameters (raise ``ValueError``)."""

    def _target_column(self, target, k: int) -> int | None:
        """Resolve an int or class-label ``target`` to one of ``k`` output columns."""
        if target is None or (isinstance(target, str) and target in _TARGET_WORDS):
            by_class = _target_rule(target, k) in ("true", "predicted")
            # a method without a target (NeuronGradient: its neuron) picks none
            has_target = "target" in _shared_parameters(type(self))
            if by_class and has_target and self._adapter.regressor:
                raise ValueError(
                    f"target={target!r} explains each row's "
                    f"{'true' if target == 'true' else 'predicted'} class, but the "
                    f"model ({type(self.model_).__name__}) is a regressor: its {k} "
                    "output(s) are predictions, not class scores. Pick an output "
                    f"(target=0..{k - 1}) or explain them all (target='all')."
                )
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
                    f"The model has one output, the score of class {classes.tolist()[1]!r}; "
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
        """Raise unless fitted, and fitted with the parameters ``fit`` acts on as
        they are now (a ``set_params`` since would otherwise be ignored)."""
        if not hasattr(self, "model_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call "
                "fit(model, X) with the model to explain before explain or importance."
            )
        now = self._fit_parameter_values()
        for name, then in self._fit_values.items():
            if not same_value(now[name], then):
                raise ValueError(
                    f"{name} was changed by set_params after fit (from "
                    f"{_brief(then)} to {_brief(now[name])}), but fit is where "
                    f"{type(self).__name__} acts on it. Call fit(model, X) again "
                    f"for the new {name} to take effect."
                )

    def _fit_parameter_values(self) -> dict:
        """The current values of the parameters ``fit`` acts on."""
        return {name: getattr(self, name) for name in _fit_parameter_names(type(self))}

    def _prepare(self, X):
        """Checked ``X``, settings, layout and model-space tensor, before heavy work."""
        self._check_fitted()
        settings = self._settings()
        X = check_input(self, X, reset=False, numeric=self._adapter.numeric_only)
        layout = self._layout_for(X, settings)
        return X, settings, layout, layout.adapter.to_model(X)

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
            holds the per-call extras the method's docstring lists. With
            ``target="all"`` the columns are two-level, (output, feature):
            ``attributions[label]`` is what ``target=label`` gives, with the
            same draws; per-row extras are then DataFrames with a column per
            output, per-cell extras take the two-level columns.

            Given a ``dask.dataframe.DataFrame`` (and ``y`` as a Dask Series
            from the same frame), a lazy Dask DataFrame: each partition
            explained by this call, column names as strings, a random
            stream per partition from ``random_state``, no ``attrs``
            (:func:`skattr.dask.explain_with_extras` gives them).
        """
        if is_dask(X):
            from skattr import dask

            return dask.explain(self, X, y)
        dask_free(y=y)
        return self._explain(X, y)

    def _explain(self, X, y, generator: torch.Generator | None = None):
        """``explain``, with the call's generator given by ``importance``."""
        X, settings, layout, Xt = self._prepare(X)
        y = check_y(y, Xt.shape[0], frame_index(X))
        self._check_columns(layout, settings)
        self._check_explain(layout, Xt)
        if self._random and generator is None:
            generator = self._generator()
        index = row_index(X)
        call = self._call(layout, index, settings)
        try:
            with layout.adapter.evaluating(freeze_parameters=self._needs_grad):
                values, extras = self._attribute_rows(
                    Xt, y, layout, call, settings, generator
                )
            result, every = self._result_array(values, layout, settings)
            call.check(result)
        finally:
            call.close()
        return self._frame(result, every, index, extras, layout)

    def _attribute_rows(self, X, y, layout, call, settings, generator):
        """``_attribute`` over chunks of at most :meth:`_rows_per_chunk` rows.

        A method whose intermediate results grow with the rows times its
        samples (KernelShap's pairs, Lime's samples, the permutations of
        ShapleyValueSampling) explains the rows chunk by chunk, so that
        memory grows with the rows only by the result. The first chunk
        draws from the call's generator, chunk ``i`` from its own
        (:meth:`_chunk_generator`); the chunk size depends on the method's
        parameters, the columns, the number of outputs and the device type,
        never on ``batch_size`` or ``target``.
        """
        n = X.shape[0]
        chunk = self._rows_per_chunk(layout)
        if chunk is None or n <= chunk:
            return self._attribute(X, y, layout, call, _Call(settings, generator))
        state = None if generator is None else generator.get_state()
        values = extras = None
        memo: dict = {}  # shared by the chunks
        for i, begin in enumerate(range(0, n, chunk)):
            stop = min(n, begin + chunk)
            own = (
                None
                if generator is None
                else self._chunk_generator(generator, state, i)
            )
            part, part_extras = self._attribute(
                X[begin:stop],
                None if y is None else y[begin:stop],
                layout,
                call.window(begin),
                _Call(settings, own, memo),
            )
            if values is None:  # the whole result, written chunk by chunk
                values = _rows_like(part, n)
                extras = {k: _rows_like(v, n) for k, v in part_extras.items()}
            values[begin:stop] = part
            for key, value in part_extras.items():
                if _per_row(value):
                    extras[key][begin:stop] = value
        return values, extras

    def _rows_per_chunk(self, layout: Layout) -> int | None:
        """Most rows one ``_attribute`` call takes (``None``: all at once)."""
        return None

    def _chunk_for(self, layout: Layout, per_row: int, share: float = 1.0) -> int:
        """Rows per chunk for a method that holds ``per_row`` values (samples)
        per row and output: ``share`` of :data:`ROW_BUDGET` in all.

        Sized for every output whatever ``target`` is, so that ``target="all"``
        and ``target=label`` cut the rows alike and draw the same numbers.
        """
        t = layout.n_outputs
        budget = ROW_BUDGET * share
        if self.device_.type == "cuda":  # large batches keep a GPU busy
            budget *= CUDA_BUDGET_FACTOR
        return max(1, int(budget) // max(1, per_row * t))

    def _chunk_generator(self, generator, state, i: int) -> torch.Generator:
        """The generator of chunk ``i``: the call's own for the first chunk,
        then one seeded from its seed and ``i`` (:func:`~skattr._data.derived_seed`)."""
        if i == 0:
            return generator
        seed = derived_seed(generator.initial_seed(), i)
        return torch.Generator(device=generator.device).manual_seed(seed)

    def _call(self, layout: Layout, index: pd.Index, settings: Settings) -> ModelCall:
        """The :class:`ModelCall` of one call over the rows ``index``."""
        return ModelCall(
            layout.adapter,
            index,
            total=self._cost(layout, len(index)),
            progress=bool(settings.show_progress),
            desc=type(self).__name__,
        )

    def _model_rows(self, X) -> int | None:
        """Model rows ``explain(X)`` evaluates (at most, with ``tol``): its documented cost."""
        self._check_fitted()
        X = check_input(self, X, reset=False, numeric=self._adapter.numeric_only)
        return self._cost(self._layout_for(X, self._settings()), X.shape[0])

    def _cost(self, layout: Layout, n: int) -> int | None:
        """Model rows one call on ``n`` rows evaluates (at most, with ``tol``)."""
        return None

    def _check_columns(self, layout: Layout, settings: Settings) -> None:
        """Every check of the parameters against the columns, before any
        model evaluation: the method's own (:meth:`_check_layout`) and the
        target's (again at every call, for a ``set_params`` since ``fit``).
        Run by ``explain`` and when a Dask call is planned."""
        self._check_layout(layout)
        self._target_column(settings.target, layout.n_outputs)

    def _check_layout(self, layout: Layout) -> None:
        """Hook for method-specific checks of the parameters against the
        columns (the number of groups), before any model evaluation; also run
        when a Dask call is planned, before any partition is read."""

    def _check_explain(self, layout: Layout, X: torch.Tensor) -> None:
        """Hook for method-specific checks of the rows to explain."""

    def _attribute(self, X, y, layout, call, run):  # pragma: no cover - abstract
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
            of ``|attribution|`` over rows), with ``std`` (its standard deviation
            over rows) and ``mean`` (the signed mean attribution). With
            ``target="all"``: ``importance`` is the mean over rows of each
            row's mean ``|attribution|`` over the outputs, ``std`` its standard
            deviation over rows, and one column per output holds that
            output's mean ``|attribution|``. ``attrs["n_rows"]`` holds the
            number of rows averaged over. Given a Dask DataFrame, the same
            table, reduced over the partitions.
        """
        if is_dask(X):
            from skattr import dask

            return dask.importance(self, X, y)
        attr = self.explain(X, y)
        table = rank_attributions(attr)
        table.attrs["n_rows"] = len(attr)
        return table

    # ------------------------------------------------------------ helpers
    def _generator(self, seed: int | None = None) -> torch.Generator:
        """A generator on ``device_``, seeded from ``random_state``, fresh per call.

        Random draws happen where the model runs, so that a GPU does not wait
        for the CPU's random numbers; the same seed on the same device gives
        the same draws (a CPU and a GPU draw different numbers). ``seed``
        replaces the one :meth:`_seed` draws (a Dask partition's own).
        """
        seed = self._seed() if seed is None else seed
        return torch.Generator(device=self.device_).manual_seed(seed)

    def _seed(self) -> int:
        """The torch seed of one call, from ``random_state`` as scikit-learn reads it."""
        rs = self.random_state
        if isinstance(rs, np.random.Generator):
            return int(rs.integers(0, 2**63 - 1))
        if isinstance(rs, numbers.Integral) and not isinstance(rs, bool):
            return _seed_of(int(rs))
        return _draw_seed(rs)

    def _targets(self, y, layout: Layout, target, n: int):
        """The output columns explained per row: ``[n, t]`` long, or a picker.

        A fixed ``target``, ``"true"`` and ``"all"`` give the columns up
        front; ``None`` and ``"predicted"`` give ``targets(outputs)``, for the
        core to call on every output at the rows (the largest per row). The
        target is resolved here, at every call, so that ``set_params``
        takes effect without a new ``fit``.
        """
        device, k = self.device_, layout.n_outputs
        rule = _target_rule(target, k)
        if rule == "all":
            return torch.arange(k, device=device).expand(n, k)
        if rule == "true":
            if y is None:
                raise ValueError(
                    "target='true' needs the true labels: call explain(X, y)."
                )
            labels = self._label_columns(y, k)
            return torch.as_tensor(labels, device=device)[:, None]
        if rule == "fixed":
            column = self._fixed_column(layout, target)
            return torch.full((n, 1), column, dtype=torch.long, device=device)

        def predicted(outputs):
            return outputs.argmax(1, keepdim=True)

        return predicted

    def _fixed_column(self, layout: Layout, target) -> int | None:
        """The output column of every row when ``target`` fixes one, else ``None``."""
        if _target_rule(target, layout.n_outputs) != "fixed":
            return None
        column = self._target_column(target, layout.n_outputs)
        return 0 if column is None else column  # None: the single output

    def _pick_cost(self, layout: Layout, n: int) -> int:
        """Model rows spent on picking the targets: ``n`` for a picker, else 0."""
        rule = _target_rule(Settings.of(self).target, layout.n_outputs)
        return n if rule == "predicted" else 0

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

    # ------------------------------------------------------------ result
    def _result_array(
        self, values: torch.Tensor, layout: Layout, settings: Settings
    ) -> tuple[np.ndarray, bool]:
        """The result's values on the host, float64, one row per explained
        row, and whether they hold every output (``target="all"``)."""
        every = values.dim() == 3 and settings.target == "all"
        return _flat(self._to_result(values, layout).double(), every), every

    def _frame(
        self, values: np.ndarray, every: bool, index, extras: dict, layout: Layout
    ) -> pd.DataFrame:
        """The result frame and its ``attrs``, in the layout of the call.

        ``values`` are the result's, flat (:func:`_flat`); methods with a
        target return values with a last axis over the targets kept per row
        (one, or every output with ``target="all"``, ``every``), and with
        ``"all"`` the columns become (output, feature).
        """
        if set(extras) != set(self._extras):
            raise AssertionError(  # pragma: no cover - a method's own bug
                f"{type(self).__name__} returned extras {sorted(extras)}, but "
                f"declares {sorted(self._extras)}."
            )
        columns = self._frame_columns(layout, every)
        frame = pd.DataFrame(values, index=index, columns=columns, copy=False)
        for key, kind in self._extras.items():
            frame.attrs[key] = self._attrs_entry(
                kind, key, extras[key], frame, layout, every
            )
        return frame

    def _frame_columns(self, layout: Layout, every: bool) -> pd.Index:
        """The result's columns: the result columns, or (output, feature) for "all"."""
        if not every:
            return layout.result_columns
        return pd.MultiIndex.from_product(
            [self._output_labels(layout), layout.result_columns],
            names=["output", "feature"],
        )

    def _output_labels(self, layout: Layout) -> list:
        """Level 0 of ``target="all"``'s columns: class labels, else 0..k-1."""
        classes, k = self.classes_, layout.n_outputs
        if classes is not None and len(classes) == k:
            return list(classes)
        if classes is not None and k == 1 and len(classes) == 2:
            return [classes[1]]  # the one output scores the second class
        return list(range(k))

    def _to_result(self, values: torch.Tensor, layout: Layout) -> torch.Tensor:
        """Values in the method's ``_space`` -> one column per result column."""
        if self._space == "groups":
            return layout.to_result(values)
        if self._space == "inputs":
            return layout.from_inputs(values)
        return values

    def _attrs_entry(self, kind: str, key: str, value, frame, layout, every: bool):
        """One ``attrs`` entry in its declared kind (see :data:`EXTRA_KINDS`).

        Values may carry the targets' axis last (``[n, t]`` for a row,
        ``[n, g, t]`` for a cell); with ``target="all"`` a row entry is a
        DataFrame with a column per output, a cell entry has the result's
        two-level columns.
        """
        if kind == "call":
            return value
        if kind == "cell":
            value = self._to_result(value, layout).double()
            return pd.DataFrame(
                _flat(value, every), index=frame.index, columns=frame.columns,
                copy=False,
            )  # fmt: skip
        n = len(frame)
        if not isinstance(value, torch.Tensor):
            value = torch.full((n,), value)
        outputs = self._output_labels(layout) if every else None
        if value.dim() == 2 and outputs is None:
            value = value[:, 0]
        elif value.dim() == 1 and outputs is not None:
            value = value[:, None].expand(n, len(outputs))
        value = to_numpy(value)
        if kind == "target" and self.classes_ is not None:
            # the labels target="all" gives its outputs: a binary net's one
            # score column is its second class
            value = np.asarray(self._output_labels(layout))[value]
        if outputs is None:
            return pd.Series(value, index=frame.index, name=key, copy=False)
        return pd.DataFrame(
            value, index=frame.index, columns=pd.Index(outputs, name="output")
        )

    def _result_columns(self, group_names: list[str], layer_shape) -> list[str]:
        """The result's column names: the features or groups, by default."""
        return group_names


@dataclass(frozen=True)
class _Call:
    """What one call hands to ``_attribute`` besides the data: its settings,
    its generator (``None`` for a method that draws nothing) and a memo that
    the chunks of rows of one call share (what depends on the call's draws
    and columns but not on the rows: KernelShap's regression on its pairs)."""

    settings: Settings
    generator: torch.Generator | None
    memo: dict = field(default_factory=dict)


def _target_rule(target, n_outputs: int) -> str:
    """How a ``target`` picks its columns: ``"fixed"``, ``"true"``, ``"all"``
    or ``"predicted"`` (from the outputs; a single output is fixed)."""
    if isinstance(target, str) and target in ("true", "all"):
        return target
    if target is None or (isinstance(target, str) and target == "predicted"):
        return "fixed" if n_outputs == 1 else "predicted"
    return "fixed"


def _flat(values: torch.Tensor, every: bool) -> np.ndarray:
    """``[n, g]``, ``[n, g, 1]`` or, with ``every``, ``[n, g, t]`` as a 2-D array
    (output-major columns)."""
    if values.dim() == 3:
        values = (
            values.permute(0, 2, 1).reshape(values.shape[0], -1)
            if every
            else values[..., 0]
        )
    return to_numpy(values)


def _check_target(target) -> None:
    if isinstance(target, (np.ndarray, torch.Tensor)) and target.ndim == 0:
        raise TypeError(
            f"target is a 0-d {type(target).__name__}; pass its value as a "
            "Python int or class label: target=target.item()."
        )
    if isinstance(target, (list, tuple, np.ndarray, pd.Series, pd.Index, torch.Tensor)):
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


def _per_row(value) -> bool:
    """Whether an extra has a row axis (a tensor), or is one value per call."""
    return isinstance(value, torch.Tensor) and value.dim() > 0


def _rows_like(value, n: int):
    """An empty tensor for ``n`` rows shaped like a chunk's ``value`` (a
    per-call value is kept as the first chunk gives it)."""
    if not _per_row(value):
        return value
    return value.new_empty((n, *value.shape[1:]))


def interval_halfwidth(std: torch.Tensor, df) -> torch.Tensor:
    """Half-width of the 95% interval of estimates with standard errors ``std``.

    The Student-t quantile on ``df`` degrees of freedom (per row, ``[n]``,
    or one number) times ``std``: at the few draws sampling methods often
    stop at, the normal quantile 1.96 would cover far less than 95%. Zero
    where ``std`` is zero (an exact value), NaN where ``df`` is below one.
    """
    df = torch.as_tensor(df, dtype=torch.float64).cpu()
    q = torch.where(df >= 1, _t_quantile(df.clamp_min(1)), torch.nan).to(std.device)
    while q.dim() < std.dim():
        q = q[..., None]
    return torch.where(std == 0, torch.zeros_like(std), q * std)


#: degrees of freedom below which :func:`_t_quantile` reads a table
_T_TABLE = 4096


def _t_ppf(df: np.ndarray) -> torch.Tensor:
    """scipy's Student-t 0.975 quantile at each ``df`` (about 0.4 ms a call)."""
    from scipy.stats import t as student_t

    return torch.as_tensor(student_t.ppf(0.975, df))


@functools.cache
def _t_table() -> torch.Tensor:
    """The Student-t 0.975 quantiles on 0..``_T_TABLE - 1`` degrees of freedom
    (0: NaN), computed once."""
    df = np.arange(_T_TABLE, dtype=np.float64)
    return _t_ppf(np.where(df >= 1, df, np.nan))


def _t_quantile(df: torch.Tensor) -> torch.Tensor:
    """The Student-t 0.975 quantile at each ``df`` (float64, >= 1, on the CPU):
    read from :func:`_t_table` where every ``df`` is a whole number in it."""
    if df.numel() and bool(((df == df.floor()) & (df < _T_TABLE)).all()):
        return _t_table()[df.long()]
    return _t_ppf(df.numpy())


def _names(X) -> list[str] | None:
    """The column names of a DataFrame (as strings), else ``None``."""
    if isinstance(X, pd.DataFrame):
        return column_names(X, X.shape[1])
    return None


def rank_attributions(attr: pd.DataFrame, weights=None) -> pd.DataFrame:
    """The importance table of local attributions (optionally row-weighted).

    One row per feature, sorted by decreasing ``importance``, the (weighted)
    mean of ``|attribution|`` over rows, with ``std`` over rows and ``mean``, the
    signed mean. For ``target="all"``'s two-level columns, ``importance`` and
    ``std`` are those of each row's mean ``|attribution|`` over the outputs, and
    a column per output holds that output's mean ``|attribution|``. The
    statistics are :func:`~skattr._data.importance_moments`, as Dask's
    partitions compute them.
    """
    every = isinstance(attr.columns, pd.MultiIndex)
    values = attr.to_numpy(dtype=np.float64)  # no copy of attrs (pandas copies them)
    if not every:
        row = importance_moments(values, weights, 1, every=False)
        return moments_table(row, attr.columns, None, weighted=weights is not None)
    outputs = list(dict.fromkeys(attr.columns.get_level_values(0)))
    features = pd.Index(dict.fromkeys(attr.columns.get_level_values(1)))
    order = attr.columns.get_indexer(pd.MultiIndex.from_product([outputs, features]))
    if (order < 0).any():
        raise ValueError(
            "attributions with (output, feature) columns must hold every feature "
            "for every output."
        )
    row = importance_moments(values[:, order], weights, len(outputs), every=True)
    return moments_table(row, features, outputs, weighted=weights is not None)
