"""Model adapters: one torch function, whatever the user's model is.

A :class:`ModelAdapter` wraps a plain ``torch.nn.Module``, a skorch net, a
scikit-learn ``Pipeline`` that ends in a skorch net, or a plain callable on
float tensors, and offers

- ``known_columns()``: the column names and number a fitted Pipeline fixes,
- ``for_columns(columns)``: the adapter bound to the user's columns, which
  knows for every model input the user column it comes from (``origin``,
  the one place that decides it, tracing a Pipeline once) and a readable
  label (``labels``),
- ``to_model(X)`` (bound): the Pipeline's preprocessing (identity otherwise)
  and the conversion to a checked tensor on the device,
- ``forward(Z)``: model-input tensor ``[m, p]`` to output ``[m, k]``, raw or
  through the predict nonlinearity; ``proba(outputs)``: the predict
  nonlinearity alone (skorch's, else softmax or sigmoid), for scorers,
- ``evaluating()``: a context in which the module is in eval mode and after
  which its train/eval modes and ``requires_grad`` flags are restored, also
  when the model raises.

A :class:`ModelCall` is one ``explain`` call's view of the model: every
model evaluation of the call goes through it, so that it counts them (the
progress bar) and notes the explained rows whose outputs are not finite.

Errors about the model are written here.
"""

from __future__ import annotations

import contextlib
import copy
import math
import numbers
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from skattr._config import get_config
from skattr._data import (
    column_kinds,
    encode_columns,
    most_frequent,
    to_numpy,
    to_tensor,
)
from skattr._head import AffineHead, find_affine_head
from skattr._pipeline import mismatch_message, trace_inputs
from skattr.core.gradients import select_neuron
from skattr.exceptions import NotFittedError


def _identity(y: torch.Tensor) -> torch.Tensor:
    return y


def _sigmoid_or_softmax(y: torch.Tensor) -> torch.Tensor:
    """``output="proba"`` for a plain module: sigmoid for one output, else softmax."""
    return torch.sigmoid(y) if y.shape[-1] == 1 else torch.softmax(y, dim=-1)


def _is_skorch_net(model) -> bool:
    # not imported yet: the model cannot be one (and skorch stays unimported)
    skorch = sys.modules.get("skorch")
    return skorch is not None and isinstance(model, skorch.NeuralNet)


def _is_pipeline(model) -> bool:
    pipeline = sys.modules.get("sklearn.pipeline")
    return pipeline is not None and isinstance(model, pipeline.Pipeline)


def _is_skorch_regressor(net) -> bool:
    from skorch import NeuralNetRegressor

    return isinstance(net, NeuralNetRegressor)


def split_pipeline(pipeline):
    """Split a fitted Pipeline into its preprocessing and its final net."""
    from sklearn.exceptions import NotFittedError as SklearnNotFittedError
    from sklearn.utils.validation import check_is_fitted

    net = pipeline.steps[-1][1]
    if not _is_skorch_net(net):
        raise TypeError(
            "A Pipeline to explain must end in a skorch net; its last step "
            f"{pipeline.steps[-1][0]!r} is a {type(net).__name__}."
        )
    preprocess = pipeline[:-1] if len(pipeline.steps) > 1 else None
    if preprocess is not None:
        for name, step in preprocess.steps:
            if step is not None and step != "passthrough":
                try:
                    check_is_fitted(step)
                except SklearnNotFittedError:
                    raise NotFittedError(
                        f"The Pipeline step {name!r} is not fitted; fit the "
                        "Pipeline first."
                    ) from None
    return preprocess, net


class ModelAdapter:
    """One torch function for a module, a skorch net or a Pipeline.

    Build it with :meth:`from_model`, then bind it to the user's columns
    with :meth:`for_columns`. The adapter holds the module, the device, the
    dtype of the model's inputs, the output nonlinearity and the
    classifier's ``classes_``; once bound, also ``columns`` (the user's
    column names), ``origin`` (``[p]`` long: the user column of each model
    input) and ``labels`` (each model input in the user's terms, for
    errors). It pickles when the model does.
    """

    #: the user's column names (bound adapters only)
    columns: tuple[str, ...] | None = None
    #: ``[p]`` long: the user column each model input comes from (bound)
    origin: torch.Tensor | None = None
    #: each model input in the user's terms, for error messages (bound)
    labels: list[str] | None = None
    #: the named forward arguments and their columns (bound, with ``model_inputs``)
    inputs: ModelInputs | None = None

    def __init__(
        self,
        module: nn.Module,
        *,
        device: torch.device,
        dtype: torch.dtype,
        nonlinearity: Callable[[torch.Tensor], torch.Tensor],
        classes=None,
        preprocess=None,
        kind: str = "module",
        user_module: nn.Module | None = None,
        proba: Callable[[torch.Tensor], torch.Tensor] = None,
        model_inputs: dict | None = None,
        head: AffineHead | None = None,
        regressor: bool = False,
    ):
        self.module = module
        self.device = device
        self.dtype = dtype
        self.nonlinearity = nonlinearity
        self.classes = classes
        self.preprocess = preprocess
        self.kind = kind
        #: the user's own module; ``module`` is a copy when ``device`` differs
        self.user_module = module if user_module is None else user_module
        #: raw outputs -> probabilities (the predict nonlinearity)
        self.proba = _sigmoid_or_softmax if proba is None else proba
        #: ``{forward argument: [columns]}``, the explainers' ``model_inputs``
        self.model_inputs = model_inputs
        #: the module split after its first ``nn.Linear`` (``_head``), or ``None``
        self.head = head
        #: a skorch regressor: its outputs are predictions, not class scores
        self.regressor = regressor

    # ------------------------------------------------------------ creation
    @classmethod
    def from_model(
        cls,
        model,
        *,
        output: str = "raw",
        device=None,
        model_inputs=None,
        find_head: bool = False,
    ) -> ModelAdapter:
        """Adapt ``model``; ``output`` is ``"raw"`` or ``"proba"``.

        ``device`` (a torch device string) runs a copy of the module there when
        it differs from the model's own device; the user's model is not moved.
        ``model_inputs`` (``{forward argument: [columns]}``) calls the module
        with one tensor per argument. ``find_head``: look for the module's
        affine head (:func:`skattr._head.find_affine_head`), for the methods
        that update its first layer incrementally.
        """
        preprocess = None
        net = model
        _check_model_inputs(model_inputs)
        if _is_pipeline(model):
            if model_inputs is not None:
                raise ValueError(
                    "model_inputs does not apply to a Pipeline: its preprocessing "
                    "already defines the net's input. Use model_inputs=None, or "
                    "explain the net itself on the columns it takes."
                )
            preprocess, net = split_pipeline(model)
        if _is_skorch_net(net):
            if not getattr(net, "initialized_", False):
                raise ValueError(
                    f"The skorch net {type(net).__name__} is not initialized; call "
                    "net.initialize() or net.fit(X, y) before explaining it."
                )
            module = net.module_
            if not isinstance(module, nn.Module):  # pragma: no cover - skorch ensures
                raise TypeError("The skorch net's module_ is not a torch.nn.Module.")
            if output == "proba" and _is_skorch_regressor(net):
                raise ValueError(
                    f"output='proba' explains class probabilities, but "
                    f"{type(net).__name__} is a regressor: it has none. Use "
                    "output='raw' to explain its predictions."
                )
            own_device = torch.device(net.device)
            proba = _one_score_per_row(net, net._get_predict_nonlinearity())
            nonlinearity = proba if output == "proba" else _identity
            classes = _skorch_classes(net)
            kind = "skorch"
            regressor = _is_skorch_regressor(net)
        elif isinstance(net, nn.Module):
            module = net
            own_device = _module_device(module)
            proba = _sigmoid_or_softmax
            nonlinearity = _identity if output == "raw" else proba
            classes = None
            kind = "module"
            regressor = False
        elif callable(net) and preprocess is None:
            module = _Function(net)  # the modes and hooks of a module, no layers
            own_device = torch.device("cpu") if device is None else _device(device)
            proba = _sigmoid_or_softmax
            nonlinearity = _identity if output == "raw" else proba
            classes = None
            kind = "callable"
            regressor = False
        else:
            raise TypeError(
                "model must be a torch.nn.Module, an initialized skorch net, a "
                "scikit-learn Pipeline whose last step is a skorch net, or a "
                "callable on float tensors; got "
                f"{type(model).__module__}.{type(model).__name__}."
            )
        target_device = own_device if device is None else _device(device)
        user_module = module
        if target_device != own_device and kind != "callable":
            module = copy.deepcopy(module).to(target_device)
        adapter = cls(
            module,
            device=target_device,
            dtype=_module_dtype(module),
            nonlinearity=nonlinearity,
            classes=classes,
            preprocess=preprocess,
            kind=kind,
            regressor=regressor,
            user_module=user_module,
            proba=proba,
            model_inputs=None if model_inputs is None else dict(model_inputs),
            head=(
                find_affine_head(module)
                if find_head and kind != "callable" and model_inputs is None
                else None
            ),
        )
        return adapter

    def runs_in_float64(self, rows: torch.Tensor) -> bool:
        """Whether a plain callable, which failed on ``rows``, runs on them in
        float64 (it has no parameters to read a dtype from: skattr calls it
        on the default float dtype)."""
        if self.kind != "callable" or rows.dtype == torch.float64:
            return False
        try:
            self.module(rows.double())
        except Exception:  # noqa: BLE001 - any failure: not a matter of dtype
            return False
        return True

    # ------------------------------------------------------------ columns
    @property
    def numeric_only(self) -> bool:
        """Whether ``X`` must be numeric as given (no Pipeline, no ``model_inputs``
        to encode or take its columns)."""
        return self.preprocess is None and self.model_inputs is None

    def known_columns(self) -> tuple[list[str] | None, int | None]:
        """Column names and number a fitted Pipeline fixes (``None``: not known).

        A Pipeline fitted on a DataFrame records the names of its columns
        (``feature_names_in_``), one fitted on an array their number
        (``n_features_in_``); a plain module or skorch net records neither.
        """
        if self.preprocess is None:
            return None, None
        names = getattr(self.preprocess, "feature_names_in_", None)
        width = getattr(self.preprocess, "n_features_in_", None)
        if names is not None:
            names = [str(c) for c in names]
            width = len(names)
        return names, (None if width is None else int(width))

    def for_columns(self, columns: Sequence[str], X=None) -> ModelAdapter:
        """This adapter bound to the user's ``columns``.

        Decides, once, the user column each model input comes from: an
        identity without a Pipeline, the traced preprocessing with one
        (:func:`skattr._pipeline.trace_inputs`), the columns of each forward
        argument in order with ``model_inputs`` (their kinds, categories and
        most frequent codes read from ``X``, the data of ``fit``). Every
        explainer groups and sums model inputs through ``origin``; errors
        name ``labels``.
        """
        bound = copy.copy(self)
        bound.columns = tuple(str(c) for c in columns)
        if self.model_inputs is not None:
            bound.inputs = ModelInputs.of(self.model_inputs, bound.columns, X)
            position = {c: i for i, c in enumerate(bound.columns)}
            bound.origin = torch.tensor(
                [position[c] for c in bound.inputs.columns], dtype=torch.long
            )
            bound.labels = bound.inputs.labels()
        elif self.preprocess is None:
            bound.origin = torch.arange(len(columns))
            bound.labels = list(bound.columns)
        else:
            origin, labels = trace_inputs(self.preprocess, list(bound.columns))
            bound.origin = torch.tensor(origin, dtype=torch.long)
            bound.labels = labels
        return bound

    # ------------------------------------------------------------ running
    def transform(self, X):
        """Apply the Pipeline's preprocessing (identity without one)."""
        if self.preprocess is None:
            return X
        if isinstance(X, torch.Tensor):
            X = to_numpy(X)
        try:
            Z = self.preprocess.transform(X)
        except ValueError as exc:
            names = getattr(self.preprocess, "feature_names_in_", None)
            if (
                names is None
                or isinstance(X, pd.DataFrame)
                or not _runs_on_frame(self.preprocess, X, names)
            ):
                raise
            raise ValueError(
                "The Pipeline was fitted on a DataFrame, and its preprocessing "
                f"failed on X given as {type(X).__name__} ({exc}). Pass X as a "
                f"DataFrame with the columns {list(names)[:10]}."
            ) from exc
        traced = self.labels  # bound adapters: the inputs traced to columns
        if traced is not None and Z.ndim == 2 and Z.shape[1] != len(traced):
            raise ValueError(mismatch_message(Z.shape[1], len(traced)))
        return Z

    def to_model(self, X, *, name: str = "X") -> torch.Tensor:
        """User rows -> checked model-input tensor on the device (bound adapters).

        An error about NaN or non-numeric values names the column through
        ``labels``. With ``model_inputs`` the columns are put in the order of
        the forward arguments, code columns as their codes: a frame's by
        name, an array's (the user's columns in their order) by position.
        """
        if self.inputs is not None:
            X = self.inputs.encode(X, name, positions=self.origin)
        return to_tensor(
            self.transform(X),
            device=self.device,
            dtype=self.dtype,
            columns=self.labels,
            name=name,
        )

    def from_model_space(self, Z) -> torch.Tensor:
        """Rows already in the model's input space -> checked tensor on the device."""
        return to_tensor(Z, device=self.device, dtype=self.dtype, columns=self.labels)

    def raw_forward(self, Z: torch.Tensor) -> torch.Tensor:
        """The module's output as ``[m, k]``, checked."""
        if self.inputs is None:
            out = self.module(Z)
        else:
            try:
                out = self.module(**self.inputs.split(Z))
            except IndexError as exc:
                self.inputs.explain_index_error(Z, exc)
                raise
        return _checked_output(out, Z)

    def forward_from_head(self, H: torch.Tensor) -> torch.Tensor:
        """Model output ``[m, k]`` from the first layer's pre-activations ``[m, h]``."""
        out = self.nonlinearity(_checked_output(self.head.rest(H), H))
        if out.dim() == 1:  # pragma: no cover - defensive, custom nonlinearity
            out = out[:, None]
        return out

    def forward(self, Z: torch.Tensor) -> torch.Tensor:
        """Model output ``[m, k]`` for inputs ``Z`` ``[m, p]``, raw or proba."""
        out = self.nonlinearity(self.raw_forward(Z))
        if out.dim() == 1:  # pragma: no cover - defensive, custom nonlinearity
            out = out[:, None]
        return out

    @contextlib.contextmanager
    def evaluating(self, *, freeze_parameters: bool = False) -> Iterator[None]:
        """Run the module in eval mode; restore modes and flags afterwards.

        With ``freeze_parameters=True`` the parameters' ``requires_grad`` is
        switched off meanwhile, so that a backward pass computes input
        gradients only. Both are restored in a ``finally``, so the model is as
        before even when it raises. Calls on the same module from several
        threads nest (:class:`_ModelState`): the first to enter saves the
        model's state, the last to leave restores it, so that concurrent
        explanations (Dask's threaded scheduler) leave the model as it was.
        """
        state = _ModelState.enter(self.module, freeze_parameters)
        try:
            yield
        finally:
            state.leave(freeze_parameters)


class _ModelState:
    """Who is running a module now, and what its modes and flags were before.

    One per module in use, in a registry guarded by a lock: ``enter`` counts
    the callers (saving the modules in training mode and switching to eval at
    the first), and the callers that freeze the parameters (saving and
    clearing the flags at the first); ``leave`` restores each at the last.
    Nothing is stored on the explainer or the model, so both still pickle.
    """

    _lock = threading.Lock()
    _active: dict[int, _ModelState] = {}

    def __init__(self, module: nn.Module):
        self.module = module
        self.callers = 0
        self.training: list[nn.Module] = []
        self.freezers = 0
        self.frozen: list[torch.Tensor] = []

    @classmethod
    def enter(cls, module: nn.Module, freeze: bool) -> _ModelState:
        with cls._lock:
            state = cls._active.get(id(module))
            if state is None or state.module is not module:
                state = cls._active[id(module)] = cls(module)
            first, first_freezer = state.callers == 0, freeze and state.freezers == 0
            if first or first_freezer:
                training, frozen = _modes_and_flags(module)
            if first:
                state.training = training
                if training:  # eval() only when needed: it visits every submodule
                    module.eval()
            state.callers += 1
            if freeze:
                if first_freezer:
                    state.frozen = frozen
                    for p in frozen:
                        p.requires_grad_(False)
                state.freezers += 1
            return state

    def leave(self, freeze: bool) -> None:
        with self._lock:
            if freeze:
                self.freezers -= 1
                if self.freezers == 0:
                    for p in self.frozen:
                        p.requires_grad_(True)
                    self.frozen = []
            self.callers -= 1
            if self.callers == 0:
                for m in self.training:
                    m.training = True
                self.training = []
                if self._active.get(id(self.module)) is self:
                    del self._active[id(self.module)]


def _modes_and_flags(module: nn.Module) -> tuple[list, list]:
    """The submodules in training mode and the parameters that require a
    gradient, in one walk over the modules (each shared parameter once)."""
    training, frozen, seen = [], [], set()
    for m in module.modules():
        if m.training:
            training.append(m)
        for p in m._parameters.values():
            if p is not None and p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                frozen.append(p)
    return training, frozen


class ModelCall:
    """One ``explain`` call's view of the model: every evaluation goes through it.

    ``call(Z, rows)`` returns the model's outputs ``[m, k]`` for inputs ``Z``
    ``[m, p]``, where ``rows[i]`` is the explained row that input ``i``
    stands for (``-1`` or ``rows=None``: a baseline or background row). It
    is the function ``f`` every core routine gets. On the way it notes, on the device and without waiting
    for it, the explained rows that got a non-finite output, and advances
    the progress bar by ``m`` model rows. :meth:`check` then looks at those
    notes once, with a single synchronisation, and raises before anything
    is returned.

    Parameters
    ----------
    adapter : ModelAdapter
    index : pandas.Index
        Labels of the explained rows, for the error message.
    total : int, default=None
        Model rows the call will evaluate, for the progress bar.
    progress : bool, default=False
        Show one tqdm bar for the whole call.
    desc : str, default=None
        Label of the bar.
    """

    def __init__(
        self,
        adapter: ModelAdapter,
        index: pd.Index,
        *,
        total: int | None = None,
        progress: bool = False,
        desc: str | None = None,
    ):
        self.index = index
        self.n_rows = len(index)
        self._forward = adapter.forward
        self._adapter = adapter
        #: ``(weight [h, p], bias [h] or None)`` of the model's first layer when
        #: the core may update its pre-activations incrementally (``rest``),
        #: else ``None``: the affine head was found at ``fit``, no hook or
        #: parametrization appeared since, and the setting allows it
        self.affine = None
        head = adapter.head
        if (
            head is not None
            and adapter.inputs is None
            and get_config()["incremental_first_layer"]
            and head.usable()
        ):
            self.affine = (head.weight.detach(), _detached(head.bias))
        #: per explained row (the last slot: baseline rows) the sum of
        #: ``0 * output`` over its evaluations: 0 while every output was
        #: finite, NaN from the first that was not (a multiply and an
        #: index_add per chunk, cheaper than isfinite, and nothing to sync;
        #: on the CPU only for a chunk whose outputs do not sum to a finite
        #: number, see ``_watch``); ``None`` until a chunk is folded into it,
        #: and then every output so far was finite
        self._seen: torch.Tensor | None = None
        self._device = adapter.device
        #: model rows evaluated so far
        self.rows_evaluated = 0
        self._bar = None
        if progress:
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, desc=desc, unit="row", leave=True)

    def __call__(
        self, Z: torch.Tensor, rows: torch.Tensor | None = None
    ) -> torch.Tensor:
        out = self._forward(Z)
        self._watch(out, rows)
        return out

    def rest(self, H: torch.Tensor, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Outputs ``[m, k]`` from the first layer's pre-activations ``H``
        ``[m, h]``, watched and counted as ``call(Z, rows)``."""
        out = self._adapter.forward_from_head(H)
        self._watch(out, rows)
        return out

    def window(self, start: int) -> _RowWindow:
        """This call seen by a chunk of the explained rows that begins at ``start``."""
        return _RowWindow(self, start)

    def _watch(self, out: torch.Tensor, rows: torch.Tensor | None) -> None:
        """Fold ``0 * output`` per input into its row's slot; count the rows.

        On the CPU, where reading a value waits for nothing, a chunk whose
        outputs sum to a finite number is only counted: it has no non-finite
        output, and its slots would get exact zeros. (A sum that overflows
        folds the chunk: the slots then say which outputs were not finite.)
        """
        out = out.detach()
        m = int(out.shape[0])
        self.rows_evaluated += m
        if self._bar is not None:
            self._bar.update(m)
        if out.device.type == "cpu" and math.isfinite(out.sum().item()):
            return
        if self._seen is None:
            self._seen = torch.zeros(self.n_rows + 1, device=self._device)
        zeros = (out * 0).sum(1).to(self._seen.dtype)
        if rows is None:
            self._seen[-1:] += zeros.sum()
        else:  # row -1 (a baseline row) lands in the last slot
            slot = rows.remainder(self.n_rows + 1).to(self._seen.device)
            self._seen.index_add_(0, slot, zeros.to(self._seen.device))

    def row_label(self, i: int):
        """The label of row ``i`` of the call's ``X``, for messages."""
        return self.index[i]

    def check(self, values: np.ndarray | None = None) -> None:
        """Raise a ``ValueError`` if an output (or a value of ``values``) is not finite.

        ``values`` ``[n, ...]``: the result per explained row (attributions,
        on the host), checked too, for the gradients of a model whose outputs
        are finite. One reduction and one synchronisation on the device; the
        result is read on the host by chunks of rows, so that the check never
        copies a large result.
        """
        # _seen holds sums of 0 * output: finite while every output was
        # (None: no chunk was folded, every output was finite)
        finite = self._seen is None or bool(torch.isfinite(self._seen.sum()))
        values_bad = None
        if values is not None and values.size:
            step = max(1, _PROBE_VALUES // max(1, values[0].size))
            for start in range(0, values.shape[0], step):
                if not np.isfinite(values[start : start + step]).all():
                    flat = values.reshape(values.shape[0], -1)
                    values_bad = torch.from_numpy(~np.isfinite(flat).all(1))
                    break
        if finite and values_bad is None:
            return
        seen = (
            torch.ones(self.n_rows + 1, dtype=torch.bool)
            if self._seen is None
            else torch.isfinite(self._seen).cpu()
        )
        rows_bad, base_bad = ~seen[:-1], ~seen[-1]
        if bool(base_bad):
            raise ValueError(
                "The model returned NaN or infinity at the baseline (the rows that "
                "stand for an absent feature), so no attribution is defined. Choose "
                "another baseline, or check the model at it."
            )
        if bool(rows_bad.any()):
            which, what = rows_bad, "the model returned NaN or infinity"
        else:
            which, what = values_bad, "the attributions (gradients) are NaN or infinite"
        positions = torch.nonzero(which).flatten().cpu().numpy()
        labels = ", ".join(repr(self.row_label(i)) for i in positions[:5])
        more = ", ..." if len(positions) > 5 else ""
        raise ValueError(
            f"For {len(positions)} of the {self.n_rows} rows of X {what} (first rows: "
            f"{labels}{more}), at the rows themselves or at their perturbations; "
            "attributions of a non-finite prediction are not returned. Check the "
            "model on those rows, or leave them out."
        )

    def close(self) -> None:
        """End the progress bar at its total (the rows actually evaluated)."""
        if self._bar is not None:
            if self._bar.total != self._bar.n:
                self._bar.total = self._bar.n
            self._bar.refresh()
            self._bar.close()
            self._bar = None


#: most values of a result :meth:`ModelCall.check` reads at once
_PROBE_VALUES = 2**20


def _check_model_inputs(model_inputs) -> None:
    if model_inputs is None:
        return
    if not isinstance(model_inputs, dict) or not model_inputs:
        raise TypeError(
            "model_inputs must be None or a dict {forward argument name: [columns]}; "
            f"got {model_inputs!r}."
        )
    for name, cols in model_inputs.items():
        if not isinstance(name, str) or isinstance(cols, str) or not list(cols):
            raise TypeError(
                f"model_inputs[{name!r}] must list the columns of that forward "
                f"argument, e.g. {{'x_cat': ['island', 'sex']}}; got {cols!r}."
            )


@dataclass(frozen=True)
class ModelInputs:
    """The module's named forward arguments and the user columns of each.

    The core sees one float tensor ``[m, p]`` whose columns are those of the
    arguments in order; code columns (integer and ``category``) hold their
    codes, exact in floating point, so that perturbations (which take every
    value from the row or a baseline) keep them codes. ``split`` hands the
    module one tensor per argument: floats in the model's dtype, codes as
    int64.
    """

    names: tuple[str, ...]  #: forward argument names
    bounds: tuple[tuple[int, int], ...]  #: model-space columns of each argument
    codes: tuple[bool, ...]  #: whether each argument takes int64 codes
    columns: tuple[str, ...]  #: the user column of each model-space column
    kinds: tuple[str, ...]  #: ``"float"`` or ``"code"`` per model-space column
    categories: dict  #: ``category`` columns: their categories at ``fit``
    modes: tuple  #: code columns: the most frequent code at ``fit`` (else None)
    highest: tuple  #: code columns: the largest code at ``fit`` (else None)
    typed: bool  #: whether the kinds come from data (else every column is float)

    @classmethod
    def of(cls, spec: dict, columns: Sequence[str], X) -> ModelInputs:
        known = set(columns)
        order: list[str] = []
        names, bounds = [], []
        for name, cols in spec.items():
            cols = [str(c) for c in cols]
            missing = [c for c in cols if c not in known]
            if missing:
                raise ValueError(
                    f"model_inputs[{name!r}] names column(s) {missing} that X does "
                    f"not have. Columns are: {list(columns)}."
                )
            twice = [c for c in cols if c in order]
            if twice:
                raise ValueError(
                    f"Column(s) {twice} are in two model_inputs; give each column "
                    "to one forward argument."
                )
            names.append(name)
            bounds.append((len(order), len(order) + len(cols)))
            order += cols
        kinds = ["float"] * len(order) if X is None else column_kinds(X, order)
        codes = []
        for name, (a, b) in zip(names, bounds):
            mixed = set(kinds[a:b])
            if len(mixed) > 1:
                raise TypeError(
                    f"model_inputs[{name!r}] mixes float and integer/category "
                    "columns; one forward argument takes one dtype. Split it in two."
                )
            codes.append(kinds[a] == "code")
        categories, modes, highest = {}, [], []
        for c, kind in zip(order, kinds):
            if kind == "code" and isinstance(X[c].dtype, pd.CategoricalDtype):
                categories[c] = pd.Index(X[c].cat.categories)
        if any(k == "code" for k in kinds):
            values = encode_columns(X, order, kinds, categories)
            for i, kind in enumerate(kinds):
                code = kind == "code"
                modes.append(most_frequent(values[:, i]) if code else None)
                highest.append(float(values[:, i].max()) if code else None)
        else:
            modes = highest = [None] * len(order)
        return cls(
            tuple(names), tuple(bounds), tuple(codes), tuple(order), tuple(kinds),
            categories, tuple(modes), tuple(highest), X is not None,
        )  # fmt: skip

    def labels(self) -> list[str]:
        """Each model-space column in the user's terms."""
        return [
            f"{c} (model input {name!r})"
            for name, (a, b) in zip(self.names, self.bounds)
            for c in self.columns[a:b]
        ]

    @property
    def code_columns(self) -> list[str]:
        return [c for c, k in zip(self.columns, self.kinds) if k == "code"]

    def encode(self, X, name: str = "X", *, positions=None):
        """User rows -> float64 model-space values, code columns as codes.

        A frame's columns are read by name; an array's (the user's columns
        in their order) at ``positions``, the user column of each model
        column (the bound adapter's ``origin``), so that arguments listed
        in another order than the columns get their own values.
        """
        self.check_kinds(X)
        return encode_columns(
            X, self.columns, self.kinds, self.categories, name, positions=positions
        )

    def check_kinds(self, X) -> None:
        """Refuse code columns in ``X`` when ``fit`` saw no data to fix their codes."""
        if self.typed or not isinstance(X, pd.DataFrame):
            return
        seen = column_kinds(X, self.columns)
        late = [c for c, k, s in zip(self.columns, self.kinds, seen) if s != k]
        if late:
            raise ValueError(
                f"Column(s) {late} are integer or category columns, which "
                "model_inputs gives to an embedding as codes; those codes are "
                "fixed at fit: call fit(model, X) with X."
            )

    def split(self, Z: torch.Tensor) -> dict:
        """One tensor per forward argument (codes as int64)."""
        return {
            name: Z[:, a:b].round().long() if code else Z[:, a:b]
            for name, (a, b), code in zip(self.names, self.bounds, self.codes)
        }

    def explain_index_error(self, Z: torch.Tensor, exc: IndexError) -> None:
        """Raise a ValueError naming a code column with codes not seen at ``fit``."""
        for i, (c, top) in enumerate(zip(self.columns, self.highest)):
            if top is None:
                continue
            largest = float(Z[:, i].max())
            if largest > top:
                raise ValueError(
                    f"Column {c!r} holds the code {int(largest)}, above the largest "
                    f"seen at fit ({int(top)}), and the model could not take it "
                    f"({exc}): an embedding has no row for it. Map it to a known "
                    "value, or refit the model with it."
                ) from exc

    def mode_label(self, column: str):
        """The most frequent value of a code column at ``fit``, as the user writes it."""
        code = self.modes[self.columns.index(column)]
        if column in self.categories:
            return self.categories[column][int(code)]
        return int(code)

    def with_modes(self, t: torch.Tensor) -> torch.Tensor:
        """Baseline rows with every code column set to its most frequent code."""
        t = t.clone()
        for i, mode in enumerate(self.modes):
            if mode is not None:
                t[:, i] = mode
        return t


class _RowWindow:
    """A :class:`ModelCall` for the explained rows ``start, start + 1, ...``.

    The core numbers a chunk's rows from 0; the window shifts them to the
    call's rows, so that a non-finite output is put on the right row of
    ``X``, and hands everything else (``affine``, ``check``...) to the call.
    """

    def __init__(self, call: ModelCall, start: int):
        self._call = call
        self._start = start

    def _shift(self, rows):
        if rows is None or self._start == 0:
            return rows
        return torch.where(rows >= 0, rows + self._start, rows)

    def __call__(self, Z: torch.Tensor, rows: torch.Tensor | None = None):
        return self._call(Z, self._shift(rows))

    def rest(self, H: torch.Tensor, rows: torch.Tensor | None = None):
        return self._call.rest(H, self._shift(rows))

    def row_label(self, i: int):
        """The label of the chunk's row ``i`` in the call's ``X``."""
        return self._call.row_label(self._start + i)

    def __getattr__(self, name):
        return getattr(self._call, name)


class _Function(nn.Module):
    """A plain callable ``f(x) -> [n, k]`` or ``[n]`` (Captum's ``forward_func``)
    as a module without parameters, so that it runs like any other model.

    It runs on the device the explainer's ``device`` names (the CPU by
    default): the inputs are made there, and ``f`` must accept them.
    """

    def __init__(self, function):
        super().__init__()
        self.function = function

    def forward(self, x):
        return self.function(x)


def _detached(t):
    return None if t is None else t.detach()


def _runs_on_frame(preprocess, X, names) -> bool:
    """Whether ``preprocess`` runs on ``X`` made a frame of ``names``: then
    the array itself was what it failed on, and a frame is the way out."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            preprocess.transform(pd.DataFrame(np.asarray(X), columns=list(names)))
    except Exception:
        return False
    return True


def _checked_output(out, inputs: torch.Tensor) -> torch.Tensor:
    """The model's output as ``[m, k]``, or an error that says what it was."""
    shape = inputs.shape
    if not isinstance(out, torch.Tensor):
        raise TypeError(
            "The model must return one tensor of shape (n_rows,) or (n_rows, "
            f"n_outputs); it returned a {type(out).__name__}."
        )
    if out.device != inputs.device:
        raise ValueError(
            f"The model returned its outputs on device {out.device}, but its "
            f"inputs are on {inputs.device}: return the outputs on the inputs' "
            "device (or pass device= to run the model elsewhere)."
        )
    if shape[0] == 1 and out.dim() < 2:  # one row, squeezed: (), (k,)
        out = out.reshape(1, -1)
    elif out.dim() == 1:
        out = out[:, None]
    if out.dim() != 2 or out.shape[0] != shape[0]:
        raise ValueError(
            "The model must return a tensor of shape (n_rows,) or (n_rows, "
            f"n_outputs); for input of shape {tuple(shape)} it returned shape "
            f"{tuple(out.shape)}."
        )
    return out


def _device(device) -> torch.device:
    """The ``device`` parameter as a torch device, or an error naming it."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ValueError(
            f"device={device!r} is not a torch device; use None (the model's "
            "device), 'cpu', 'cuda', 'cuda:1' or a torch.device."
        ) from None


def _module_tensors(module: nn.Module, kind: str) -> Iterator[torch.Tensor]:
    """The module's parameters (``kind="_parameters"``) or buffers, in order,
    read from each submodule's own dict (cheaper than ``parameters()``)."""
    for m in module.modules():
        for t in getattr(m, kind).values():
            if t is not None:
                yield t


def _module_device(module: nn.Module) -> torch.device:
    for kind in ("_parameters", "_buffers"):
        for t in _module_tensors(module, kind):
            return t.device
    return torch.device("cpu")


def _module_dtype(module: nn.Module) -> torch.dtype:
    """The float dtype of the module's parameters, else of its buffers (a
    module of fixed coefficients), else torch's default."""
    for kind in ("_parameters", "_buffers"):
        for t in _module_tensors(module, kind):
            if t.is_floating_point():
                return t.dtype
    return torch.get_default_dtype()


def _one_score_per_row(net, proba):
    """skorch's predict nonlinearity, given the outputs as its net returns them.

    A binary classifier's module returns one score per row, ``[m]``, from
    which skorch's nonlinearity stacks ``(1 - p, p)`` as ``[m, 2]`` (along
    dimension 1); the adapter holds outputs as ``[m, 1]``, which would
    stack to ``[m, 2, 1]``, and the scorer stacks copies as ``[S, m, 1]``:
    the scores are handed over flat, and the result takes their leading
    dimensions back.
    """
    from skorch import NeuralNetBinaryClassifier

    if not isinstance(net, NeuralNetBinaryClassifier):
        return proba

    def binary(out: torch.Tensor) -> torch.Tensor:
        lead = out.shape[:-1] if out.dim() >= 2 and out.shape[-1] == 1 else out.shape
        return proba(out.reshape(-1)).reshape(*lead, -1)

    return binary


def _skorch_classes(net):
    try:
        classes = net.classes_
    except (AttributeError, Exception):  # skorch raises when not inferred
        return None
    return None if classes is None else list(classes)


def layer_names(module: nn.Module) -> list[str]:
    """The dotted names of the module's submodules (``""`` excluded)."""
    return [name for name, _ in module.named_modules() if name]


def check_neuron(neuron, shape: tuple[int, ...], what: str) -> None:
    """Check a neuron selector against the layer's ``shape`` per row, at
    ``fit`` (``what`` names the layer in messages).

    A callable must return a tensor of values per row; an int or tuple
    gives one index per dimension, in range, unless a slice says to sum
    (an int on units of shape ``(2, 4)`` would take a whole row of them;
    Captum refuses it too).
    """
    if callable(neuron):
        probe = neuron(torch.zeros(1, *shape))
        if not isinstance(probe, torch.Tensor):
            raise TypeError(
                "neuron, as a callable, must return a tensor of the selected "
                f"values per row; it returned a {type(probe).__name__}."
            )
        if probe.dim() == 0 or probe.shape[0] != 1:
            raise ValueError(
                "neuron, as a callable, must return the selected values per "
                "row, a tensor of shape (n_rows, ...); on one row it returned "
                f"shape {tuple(probe.shape)}. Leave out a sum over the rows: "
                "the values of each row are summed for you."
            )
        return
    index = neuron if isinstance(neuron, tuple) else (neuron,)
    if len(index) < len(shape) and not any(isinstance(i, slice) for i in index):
        flat = index[0] if len(index) == 1 else None
        unit = (
            f" (the unit a layer method labels [{flat}] is neuron="
            f"{tuple(int(i) for i in np.unravel_index(flat, shape))})"
            if isinstance(flat, numbers.Integral) and 0 <= flat < math.prod(shape)
            else ""
        )
        raise ValueError(
            f"neuron={neuron!r} has {len(index)} index(es), but the layer's "
            f"activation has shape {shape} per row: give one index per "
            f"dimension{unit}, or slices for values to sum, such as "
            f"{(*index, slice(None))!r}."
        )
    try:
        select_neuron(torch.zeros(1, *shape), neuron)
    except IndexError:
        raise ValueError(
            f"neuron={neuron!r} is out of range for {what} has shape {shape} per row."
        ) from None


def check_layer(layer: object) -> None:
    """``layer`` must be a non-empty dotted submodule name or a module."""
    if not (isinstance(layer, nn.Module) or (isinstance(layer, str) and layer)):
        raise TypeError(
            "layer must be a dotted submodule name such as 'hidden.0' or a "
            f"torch.nn.Module of the model; got {layer!r}."
        )


def get_layer(module: nn.Module, layer) -> tuple[str, nn.Module]:
    """Resolve ``layer`` (dotted name or module object) to ``(name, module)``.

    Raises a ``ValueError`` listing the available names when it is not found.
    """
    if isinstance(layer, nn.Module):
        for name, m in module.named_modules():
            if m is layer and name:
                return name, m
        raise ValueError(
            f"The layer {type(layer).__name__} given is not a submodule of the model "
            "(a copy of one, pickled or deep-copied, is not either): give it by "
            f"name. Available layers: {layer_names(module)}."
        )
    check_layer(layer)
    named = dict(module.named_modules())
    if layer not in named:
        raise ValueError(
            f"The model has no layer named {layer!r}. Available layers: "
            f"{layer_names(module)}."
        )
    return layer, named[layer]
