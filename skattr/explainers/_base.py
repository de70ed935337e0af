"""The scikit-learn face shared by every explainer."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state

from skattr._data import (
    baseline_width,
    check_input,
    check_int,
    check_option,
    check_y,
    column_names,
    resolve_baseline,
    row_index,
    to_numpy,
    to_tensor,
)
from skattr._model import ModelAdapter
from skattr.core.forward import evaluate_rows
from skattr.core.groups import make_groups
from skattr.exceptions import NotFittedError

#: numpydoc ``Attributes`` entries that every explainer fitted with
#: baselines shares; explainers' docstrings include it.
FITTED_ATTRIBUTES_DOC = """\
    model_ : object
        The model given to ``fit``.
    device_ : torch.device
        Device the computation runs on.
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names seen in ``fit`` (only when ``X`` was a DataFrame).
    baseline_ : Tensor of shape (n_background, n_model_inputs)
        Resolved baseline rows, in the model's input space.
    groups_ : ndarray of shape (n_model_inputs,)
        Group index of each model input column.
    group_names_ : list of str
        Names of the result's columns.
    n_outputs_ : int
        Number of model outputs.
    classes_ : ndarray or None
        Class labels of a classifier, else ``None``."""

_TARGET_WORDS = ("predicted", "true")


class BaseExplainer(BaseEstimator):
    """Base class of the explainers: ``fit``, ``explain`` and ``importance``.

    Subclasses declare their parameters in ``__init__`` (stored unchanged;
    the shared ones, ``baseline``, ``target``, ``output``, ``feature_groups``,
    ``batch_size``, ``device``, ``random_state`` and ``show_progress``, only
    where the method uses them),
    check their own parameters in ``_check_params`` and compute attributions
    in ``_attribute(X, y)``, which receives the validated model-space tensor
    and returns ``(values, extras)``: a tensor ``[n, n_columns]`` and a dict
    of per-call information that ends up in ``DataFrame.attrs``.
    """

    #: gradient methods: parameters frozen, autograd on
    _needs_grad = False

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
            columns that ``explain`` accepts. Without it, the number of
            features comes from the baseline or from the model's first layer.

        Returns
        -------
        self : object
            The fitted explainer.
        """
        self._check_all_params()
        adapter = ModelAdapter.from_model(
            model, output=getattr(self, "output", "raw"), device=self.device
        )
        if X is not None:
            X = check_input(self, X, reset=True)
            columns = column_names(X, X.shape[1])
        else:
            columns = self._columns_without_X(adapter)
        self.model_ = model
        self.device_ = adapter.device
        self._adapter = adapter
        self._model_labels = self._label_model_columns(adapter, columns)
        X_fit = None if X is None else self._to_model(X)
        user_groups, self.group_names_ = make_groups(
            getattr(self, "feature_groups", None), columns
        )
        model_groups = user_groups[self._input_groups(adapter, columns)]
        self.groups_ = model_groups.numpy()
        # The core sees only groups with model inputs (a column a Pipeline
        # drops has none), numbered 0..g'-1; _frame puts exact zeros back.
        present, compact = torch.unique(model_groups, sorted=True, return_inverse=True)
        self._present = present.tolist()
        self._groups = compact.to(self.device_)
        self.baseline_ = resolve_baseline(
            getattr(self, "baseline", "auto"),
            X_fit=X_fit,
            columns=columns,
            n_columns=len(self._model_labels),
            device=self.device_,
            dtype=adapter.dtype,
            to_model=lambda rows: self._to_model(rows, name="baseline"),
        )
        with adapter.evaluating(), torch.no_grad():
            probe = adapter.forward(self.baseline_[:2])
        self.n_outputs_ = int(probe.shape[1])
        self.classes_ = None if adapter.classes is None else np.asarray(adapter.classes)
        self._target_column = self._fixed_target_column()
        self._fit_background(X_fit)
        return self

    def _columns_without_X(self, adapter) -> list[str]:
        """Columns when ``fit`` got no ``X``: from the baseline or the model."""
        for attr in ("n_features_in_", "feature_names_in_"):
            if hasattr(self, attr):
                delattr(self, attr)
        baseline = getattr(self, "baseline", "auto")
        if isinstance(baseline, pd.DataFrame):
            check_input(self, baseline, reset=True, name="baseline")
            return column_names(baseline, baseline.shape[1])
        if isinstance(baseline, pd.Series):
            names = [str(c) for c in baseline.index]
            self.n_features_in_ = len(names)
            self.feature_names_in_ = np.asarray(names, dtype=object)
            return names
        p = baseline_width(baseline)
        if p is None and adapter.preprocess is None:
            p = adapter.n_features()
        if p is None:
            raise ValueError(
                "Could not tell how many features the model takes: pass background "
                "data to fit(model, X), or a baseline with one value per feature."
            )
        self.n_features_in_ = int(p)
        return column_names(None, p)

    def _label_model_columns(self, adapter, columns) -> list[str]:
        """A name per model-input column, in the user's terms (for errors)."""
        if adapter.preprocess is None:
            return list(columns)
        from skattr._pipeline import model_input_labels

        return model_input_labels(adapter.preprocess, columns)

    def _input_groups(self, adapter, columns) -> torch.Tensor:
        """For each model-input column, the user column it comes from."""
        if adapter.preprocess is None:
            return torch.arange(len(columns))
        from skattr._pipeline import input_columns

        return input_columns(adapter.preprocess, columns)

    def _to_model(self, X, *, name: str = "X") -> torch.Tensor:
        """User rows -> validated model-space tensor on the device."""
        adapter = self._adapter
        Xt = adapter.transform(X)
        return to_tensor(
            Xt,
            device=adapter.device,
            dtype=adapter.dtype,
            columns=self._model_labels,
            name=name,
        )

    def _fit_background(self, X_fit: torch.Tensor | None) -> None:
        """Hook for subclasses that keep more of the background data."""

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

    def _fixed_target_column(self) -> int | None:
        """Resolve an int or class-label ``target`` to an output column."""
        target, k = getattr(self, "target", None), self.n_outputs_
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

    def explain(self, X, y=None):
        """Local attributions: one row per row of ``X``, one column per feature.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Rows to explain: a numpy array, pandas DataFrame, torch tensor or
            list, with the columns seen in ``fit``.
        y : array-like of shape (n_rows,), default=None
            True labels; needed for ``target="true"``.

        Returns
        -------
        attributions : DataFrame of shape (n_rows, n_features)
            Float64 attributions, indexed like ``X`` (0..n-1 for arrays), with
            one column per feature or feature group. ``attributions.attrs``
            holds the per-call extras the method's docstring lists.
        """
        self._check_fitted()
        self._check_all_params()
        X = check_input(self, X, reset=False)
        index = row_index(X)
        Xt = self._to_model(X)
        y = check_y(y, Xt.shape[0])
        self._check_explain(Xt)
        with self._adapter.evaluating(freeze_parameters=self._needs_grad):
            values, extras = self._attribute(Xt, y)
        return self._frame(values, index, extras)

    def _check_explain(self, X: torch.Tensor) -> None:
        """Hook for method-specific checks of the rows to explain."""

    def _attribute(self, X: torch.Tensor, y):  # pragma: no cover - abstract
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

    def _outputs(self, X: torch.Tensor) -> torch.Tensor:
        """All model outputs ``[n, k]`` for the rows, in chunks, no autograd."""
        adapter = self._adapter
        return evaluate_rows(
            lambda Z, rows: adapter.forward(Z),
            X,
            batch_size=self.batch_size,
        )

    def _targets(self, outputs: torch.Tensor, y) -> torch.Tensor:
        """The output column explained for each row, ``[n]`` long."""
        n = outputs.shape[0]
        device = outputs.device
        if self._target_column is not None:
            return torch.full(
                (n,), self._target_column, dtype=torch.long, device=device
            )
        if getattr(self, "target", None) == "true":
            if y is None:
                raise ValueError(
                    "target='true' needs the true labels: call explain(X, y)."
                )
            return torch.as_tensor(self._label_columns(y), device=device)
        if outputs.shape[1] == 1:
            return torch.zeros(n, dtype=torch.long, device=device)
        return outputs.argmax(1)

    def _label_columns(self, y: np.ndarray) -> np.ndarray:
        if self.classes_ is not None:
            columns = pd.Index(self.classes_).get_indexer(y)  # -1: not a class
            if (columns < 0).any():
                unknown = sorted(set(y[columns < 0].tolist()), key=str)
                raise ValueError(
                    f"y holds labels {unknown[:5]} that are not classes of the model "
                    f"({self.classes_.tolist()})."
                )
            return columns.astype(np.int64)
        k = self.n_outputs_
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

    def _scalar_function(self, targets: torch.Tensor):
        """``f(Z, rows)``: the model output at the target of row ``rows[i]``."""
        adapter = self._adapter

        def f(Z: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
            return adapter.forward(Z).gather(1, targets[rows, None]).squeeze(1)

        return f

    def _setup(self, X: torch.Tensor, y):
        """Outputs, targets, ``f`` and base values for perturbation methods.

        Returns ``(f, fx, targets, base)``: the scalar function, f(x) per row
        ``[n]``, the output column per row ``[n]`` and f(baseline) per row
        ``[n]`` (averaged over background rows).
        """
        outputs = self._outputs(X)
        targets = self._targets(outputs, y)
        fx = outputs.gather(1, targets[:, None]).squeeze(1)
        with torch.no_grad():
            fb = self._adapter.forward(self.baseline_).double().mean(0)
        return self._scalar_function(targets), fx, targets, fb[targets]

    def _expand(self, values: torch.Tensor) -> torch.Tensor:
        """Group values ``[n, g']`` -> ``[n, g]`` with zeros for empty groups."""
        g = len(self.group_names_)
        if values.shape[-1] == g or len(self._present) == g:
            return values
        full = values.new_zeros(*values.shape[:-1], g)
        full[..., self._present] = values
        return full

    def _frame(self, values: torch.Tensor, index, extras: dict) -> pd.DataFrame:
        columns = self._result_columns()
        if columns == list(self.group_names_):
            values = self._expand(values)
            extras = {
                k: self._expand(v)
                if isinstance(v, torch.Tensor)
                and v.dim() == 2
                and v.shape[1] == len(self._present)
                else v
                for k, v in extras.items()
            }
        # the arrays are ours: the frames take them without pandas' copy
        frame = pd.DataFrame(
            to_numpy(values.double()), index=index, columns=columns, copy=False
        )
        for key, value in extras.items():
            if isinstance(value, torch.Tensor):
                value = to_numpy(value)
                if (
                    key == "target"
                    and self.classes_ is not None
                    and len(self.classes_) == self.n_outputs_
                ):
                    value = self.classes_[value]
                if value.ndim == 1 and len(value) == len(index):
                    value = pd.Series(value, index=index, name=key, copy=False)
                elif value.ndim == 2 and value.shape == frame.shape:
                    value = pd.DataFrame(
                        value, index=index, columns=columns, copy=False
                    )
            frame.attrs[key] = value
        return frame

    def _result_columns(self) -> list[str]:
        return list(self.group_names_)


def _rank(
    importance: pd.Series, std: pd.Series, mean: pd.Series | None = None
) -> pd.DataFrame:
    """An importance table indexed by feature, sorted by decreasing importance."""
    table = pd.DataFrame({"importance": importance, "std": std})
    if mean is not None:
        table["mean"] = mean
    table.index.name = "feature"
    return table.sort_values("importance", ascending=False, kind="stable")
