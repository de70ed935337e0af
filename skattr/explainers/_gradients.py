"""Gradient methods: GradientShap, LayerGradientShap and NeuronGradient."""

from __future__ import annotations

import numbers

import torch
from sklearn.base import clone
from torch import nn

from skattr._data import check_bool, check_int, check_number
from skattr._model import check_layer, check_neuron, get_layer
from skattr.core.gradients import (
    capture_layer,
    gradient_shap,
    neuron_gradient,
)
from skattr.explainers._base import BaseExplainer, with_fitted_attributes


# ---------------------------------------------------------------- helpers
class _LayerMethod:
    """The layer methods' hooks: find ``layer`` at ``fit``, measure its units."""

    def _to_layer_input(self) -> bool:
        """Whether the layer's input (not its output) is attributed."""
        raise NotImplementedError

    def _find_layer(self, adapter):
        """``layer`` (name or module object) -> ``layer_`` and the module run.

        A module object is looked up in the user's model (the module run may
        be a copy on another ``device``), then found by name in the module
        run.
        """
        if adapter.kind == "callable":
            raise TypeError(
                f"{type(self).__name__} attributes to a layer of a torch module, "
                "but the model is a plain callable, which has no layers. Pass the "
                "torch.nn.Module itself, or use GradientShap or a perturbation "
                "method on the callable."
            )
        module, layer = adapter.module, self.layer
        foreign = isinstance(layer, nn.Module) and not any(
            m is layer for m in module.modules()
        )
        if foreign and adapter.user_module is not module:  # a copy on ``device``
            layer, _ = get_layer(adapter.user_module, layer)
        self.layer_, self._layer = get_layer(module, layer)

    def __sklearn_clone__(self):
        """``sklearn.base.clone``, keeping a ``layer`` given as a module object.

        scikit-learn's clone deep-copies the parameters, and a copy of the
        layer is no submodule of the model the clone is then fitted on; the
        layer, like the model, is referred to, not owned.
        """
        if not isinstance(self.layer, nn.Module):
            return super().__sklearn_clone__()
        params = self.get_params(deep=False)
        layer = params.pop("layer")
        return type(self)(
            layer=layer, **{k: clone(v, safe=False) for k, v in params.items()}
        )

    def _probe(self, adapter, rows):
        """The outputs at ``rows`` and the layer's shape per row, in one forward."""
        with capture_layer(self._layer, to_input=self._to_layer_input()) as box:
            out = adapter.forward(rows)
            return out, tuple(box.take().shape[1:])


def _shap(explainer, X, y, layout, call, run, *, layer=None, to_input=False):
    """Shared ``_attribute`` of GradientShap and LayerGradientShap.

    One pass per target column a row keeps: with ``target="all"``, one per
    output, each from the same generator state (the same draws).
    """
    target = run.settings.target
    fixed = explainer._fixed_column(layout, target)
    if fixed is not None:  # one column for every row: sliced, not gathered
        pick, columns = None, [fixed]
    else:
        pick = explainer._targets(y, layout, target, X.shape[0])
        columns = [pick] if callable(pick) else list(pick.T)
    state = run.generator.get_state() if len(columns) > 1 else None
    results = []
    for column in columns:
        generator = run.generator
        if state is not None:  # every pass from the same draws
            generator = torch.Generator(device=generator.device)
            generator.set_state(state)
        results.append(
            gradient_shap(
                call,
                X,
                layout.baseline,
                targets=(lambda out: pick(out)[:, 0]) if callable(column) else column,
                n_samples=explainer.n_samples,
                stdevs=float(explainer.stdevs),
                multiply_by_inputs=explainer.multiply_by_inputs,
                batch_size=run.settings.batch_size,
                generator=generator,
                layer=layer,
                attribute_to_layer_input=to_input,
            )
        )
    values, delta, base, targets = (torch.stack(r, -1) for r in zip(*results))
    return values, {"delta": delta, "base_values": base, "target": targets}


_SHAP_EXTRAS = {"delta": "row", "base_values": "row", "target": "target"}


def _shap_cost(explainer, layout, n: int) -> int:
    S = int(explainer.n_samples)
    B = layout.baseline.shape[0]
    noisy = n * S if float(explainer.stdevs) > 0 else 0
    passes = layout.n_outputs if explainer.target == "all" else 1
    return passes * (n + min(B, n * S) + n * S + noisy)


def _check_shap_params(explainer) -> None:
    check_int("n_samples", explainer.n_samples)
    check_number("stdevs", explainer.stdevs)
    check_bool("multiply_by_inputs", explainer.multiply_by_inputs)


# ---------------------------------------------------------------- GradientShap
@with_fitted_attributes
class GradientShap(BaseExplainer):
    """GradientSHAP: expected gradients on random points between baseline and input.

    For each row ``x`` and each of ``n_samples`` samples, a baseline row ``b``
    is drawn from the background distribution, Gaussian noise of standard
    deviation ``stdevs`` is added to ``x``, and a point ``z`` is drawn
    uniformly on the segment from ``b`` to the noisy ``x``. The attribution
    is the mean over samples of ``grad f(z) * (x - b)`` (the mean gradient
    alone with ``multiply_by_inputs=False``), as Captum's ``GradientShap``.
    It approximates SHAP values; on a linear model it converges to
    ``w * (x - mean(background))``. All rows and samples go through one
    chunked forward and backward pass.

    Parameters
    ----------
    n_samples : int, default=5
        Samples (baseline draws and points on the path) per row.
    stdevs : float, default=0.0
        Standard deviation of the Gaussian noise added to the inputs (in the
        model's input space).
    multiply_by_inputs : bool, default=True
        Multiply the gradients by ``x - b`` (global attribution). ``False``
        returns the mean gradient (local attribution).
    baseline : "auto", "zeros", "mean", "median", float, array-like, dict, Series or DataFrame, default="auto"
        The baseline distribution. ``"auto"``: the rows of the ``X`` given to
        ``fit`` (zeros without it). Anything else is used instead of those
        rows, even when ``fit`` got ``X``: a DataFrame or 2-D array gives the
        background rows; the other forms a single baseline row (see
        :class:`FeatureAblation`).
    target : None, int, class label, "predicted", "true" or "all", default=None
        Output explained. ``None``: the only output of a single-output
        model, else each row's predicted class (refused for a skorch
        regressor: its outputs are not classes). An int selects an output
        column; a class label (for models with ``classes_``) its column;
        ``"true"`` each row's label in ``y``; ``"all"`` every output at once
        (columns (output, feature), see ``explain``).
    output : {"raw", "proba"}, default="raw"
        Explain the module's raw output (e.g. logits) or probabilities
        (skorch's predict nonlinearity; softmax or sigmoid for a module).
    feature_groups : None, dict or array-like of int, default=None
        ``None``: every column is a feature. A dict ``{name: [columns]}`` or
        an integer array of length ``n_features`` (Captum's
        ``feature_mask``): the attributions of the columns of a group are
        summed.
    batch_size : int, default=4096
        Most model rows in one forward and backward call; bounds memory.
    device : str, default=None
        Torch device to compute on; ``None`` uses the model's.
    random_state : None, int or numpy.random.Generator, default=None
        Seeds the baseline draws, the noise and the points on the path.
    show_progress : bool, default=False
        Show a tqdm progress bar over the batches.
    {model_inputs}

    Attributes
    ----------
    {attributes}

    Here ``baseline_`` is the baseline distribution the draws come from:
    with ``baseline="auto"``, every row of the ``X`` given to ``fit``.

    See Also
    --------
    LayerGradientShap : The same for the units of a layer.
    ShapleyValueSampling : Model-agnostic Shapley values.

    Notes
    -----
    Cost: ``n_rows * n_samples`` model rows forward and backward, plus a
    forward pass over the rows and over at most ``n_rows * n_samples``
    background rows (and over the noisy rows when ``stdevs > 0``); with
    ``target="all"``, all of it once per output (one backward per output,
    every output from the same draws). The
    frame returned by ``explain`` carries in ``attrs``: ``"delta"``, the
    convergence delta per row (sum of the attributions minus
    ``f(x) - mean f(b)`` over the drawn baselines; with noise, the mean of
    ``f`` at the noisy inputs replaces ``f(x)``: it is the mean over samples
    of Captum's per-sample deltas); ``"base_values"``, the mean of ``f``
    at the drawn baselines; and ``"target"``, the output explained per row.

    References
    ----------
    Lundberg and Lee, "A Unified Approach to Interpreting Model
    Predictions", NeurIPS 2017. Captum, ``captum.attr.GradientShap``.

    Examples
    --------
    >>> import torch
    >>> from skattr import GradientShap
    >>> model = torch.nn.Linear(3, 1)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, -2.0, 0.0]]))
    ...     _ = model.bias.zero_()
    >>> X = torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 5.0]])
    >>> attr = GradientShap(baseline="zeros", random_state=0).fit(model, X).explain(X)
    >>> attr
        x0   x1   x2
    0  1.0 -2.0  0.0
    1  2.0  0.0  0.0
    >>> bool(attr.attrs["delta"].abs().max() < 1e-6)
    True
    """

    _needs_grad = True

    def __init__(
        self,
        *,
        n_samples=5,
        stdevs=0.0,
        multiply_by_inputs=True,
        baseline="auto",
        target=None,
        output="raw",
        feature_groups=None,
        batch_size=4096,
        device=None,
        random_state=None,
        show_progress=False,
        model_inputs=None,
    ):
        self.n_samples = n_samples
        self.stdevs = stdevs
        self.multiply_by_inputs = multiply_by_inputs
        self.baseline = baseline
        self.target = target
        self.output = output
        self.feature_groups = feature_groups
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.show_progress = show_progress
        self.model_inputs = model_inputs

    _space = "inputs"
    _extras = _SHAP_EXTRAS
    _auto_baseline = "rows"
    _random = True

    def _check_params(self):
        _check_shap_params(self)

    def _cost(self, layout, n):
        return _shap_cost(self, layout, n)

    def _attribute(self, X, y, layout, call, run):
        return _shap(self, X, y, layout, call, run)


# ---------------------------------------------------------------- LayerGradientShap
@with_fitted_attributes
class LayerGradientShap(_LayerMethod, BaseExplainer):
    """GradientSHAP of the units of a layer, as Captum's ``LayerGradientShap``.

    The samples are drawn as in :class:`GradientShap` (a background row
    ``b``, noise on ``x``, a point ``z`` on the segment between them, all in
    the model's input space). The attribution of each unit of ``layer`` is
    the mean over samples of the gradient of the output with respect to the
    layer's activation at ``z``, times the difference of the layer's
    activations at the (noisy) input and at ``b``; or the mean gradient
    alone with ``multiply_by_inputs=False``.

    Parameters
    ----------
    layer : str or torch.nn.Module
        The layer, by dotted name relative to the torch module (``"hidden.0"``;
        for a skorch net relative to ``module_``). A module object is resolved
        to its name in ``fit`` (kept in ``layer_``).
    n_samples : int, default=5
        Samples per row.
    stdevs : float, default=0.0
        Standard deviation of the Gaussian noise added to the inputs.
    multiply_by_inputs : bool, default=True
        Multiply the layer gradients by the activation differences.
    attribute_to_layer_input : bool, default=False
        Attribute to the layer's input instead of its output.
    baseline : "auto", "zeros", "mean", "median", float, array-like, dict, Series or DataFrame, default="auto"
        The baseline distribution, as in :class:`GradientShap`: ``"auto"``
        is the rows of the ``X`` given to ``fit``; an explicit value wins.
    target : None, int, class label, "predicted", "true" or "all", default=None
        Output explained, as in :class:`GradientShap`.
    output : {"raw", "proba"}, default="raw"
        Explain the raw output or probabilities.
    batch_size : int, default=4096
        Most model rows in one forward and backward call.
    device : str, default=None
        Torch device to compute on; ``None`` uses the model's.
    random_state : None, int or numpy.random.Generator, default=None
        Seeds the draws.
    show_progress : bool, default=False
        Show a tqdm progress bar over the batches.
    {model_inputs}

    Attributes
    ----------
    layer_ : str
        Dotted name of the layer.
    layer_shape_ : tuple of int
        Shape of the layer's output (or input) per row; the result has one
        column per element, named ``"<layer_>[i]"`` (flat index). Only when
        ``fit`` knew the number of columns; otherwise each call finds it.
    model_, device_, n_features_in_, feature_names_in_, baseline_, n_outputs_, classes_
        As in :class:`GradientShap` (``baseline_`` is the baseline
        distribution).

    See Also
    --------
    GradientShap : The same for the model's inputs.
    NeuronGradient : Gradient of one unit with respect to the inputs.

    Notes
    -----
    Cost: ``n_rows * n_samples`` model rows forward and backward, plus
    forward passes over the rows and the drawn background rows (the noisy
    rows when ``stdevs > 0``); with ``target="all"``, all of it once per
    output, from the same draws. ``attrs`` holds ``"delta"`` (sum of the
    attributions minus ``f(x) - mean f(b)``, as in :class:`GradientShap`),
    ``"base_values"`` and ``"target"``. Feature groups do not apply.

    References
    ----------
    Captum, ``captum.attr.LayerGradientShap``.

    Examples
    --------
    >>> import torch
    >>> from skattr import LayerGradientShap
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Linear(2, 1))
    >>> X = torch.randn(4, 3)
    >>> ex = LayerGradientShap(layer="0", baseline="zeros", random_state=0)
    >>> list(ex.fit(model, X).explain(X).columns)
    ['0[0]', '0[1]']
    """

    _needs_grad = True
    _space = "units"
    _extras = _SHAP_EXTRAS
    _auto_baseline = "rows"
    _random = True
    _fit_parameters = (
        *BaseExplainer._fit_parameters,
        "layer",
        "attribute_to_layer_input",
    )

    def __init__(
        self,
        layer,
        *,
        n_samples=5,
        stdevs=0.0,
        multiply_by_inputs=True,
        attribute_to_layer_input=False,
        baseline="auto",
        target=None,
        output="raw",
        batch_size=4096,
        device=None,
        random_state=None,
        show_progress=False,
        model_inputs=None,
    ):
        self.layer = layer
        self.n_samples = n_samples
        self.stdevs = stdevs
        self.multiply_by_inputs = multiply_by_inputs
        self.attribute_to_layer_input = attribute_to_layer_input
        self.baseline = baseline
        self.target = target
        self.output = output
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.show_progress = show_progress
        self.model_inputs = model_inputs

    def _check_params(self):
        check_layer(self.layer)
        _check_shap_params(self)
        check_bool("attribute_to_layer_input", self.attribute_to_layer_input)

    def _to_layer_input(self):
        return self.attribute_to_layer_input

    def _cost(self, layout, n):
        return _shap_cost(self, layout, n)

    def _result_columns(self, group_names, layer_shape):
        """One column per unit of the layer, by flat index."""
        width = 1
        for d in layer_shape:
            width *= d
        return [f"{self.layer_}[{i}]" for i in range(width)]

    def _attribute(self, X, y, layout, call, run):
        return _shap(
            self,
            X,
            y,
            layout,
            call,
            run,
            layer=self._layer,
            to_input=self.attribute_to_layer_input,
        )


# ---------------------------------------------------------------- NeuronGradient
@with_fitted_attributes
class NeuronGradient(_LayerMethod, BaseExplainer):
    """Gradient of one neuron of a layer with respect to the inputs.

    As Captum's ``NeuronGradient``: the neuron is chosen in the output of
    ``layer`` (its input with ``attribute_to_neuron_input=True``) by
    ``neuron``, and the result is the gradient of its value with respect to
    each input feature, for every row. When ``neuron`` selects several
    values (slices, or a callable returning several), their sum is
    differentiated. There is no target: the neuron is the output explained.
    ``attrs["activation"]`` holds the neuron's value at each row (that sum),
    from the same forward call.

    Parameters
    ----------
    layer : str or torch.nn.Module
        The layer, by dotted name relative to the torch module (``"hidden.0"``;
        for a skorch net relative to ``module_``). A module object is resolved
        to its name in ``fit`` (kept in ``layer_``).
    neuron : int, tuple of int and slice, or callable
        Captum's neuron selector. An int or a tuple indexes the layer's
        activation without its batch dimension (``(2,)``, ``(slice(0, 4),)``;
        slices select several neurons, summed); a callable maps the
        activation of shape ``(n_rows, ...)`` to the values per row.
    attribute_to_neuron_input : bool, default=False
        Select the neuron in the layer's input instead of its output.
    batch_size : int, default=4096
        Most rows in one forward and backward call.
    device : str, default=None
        Torch device to compute on; ``None`` uses the model's.
    show_progress : bool, default=False
        Show a tqdm progress bar over the batches.
    {model_inputs}

    Attributes
    ----------
    layer_ : str
        Dotted name of the layer.
    layer_shape_ : tuple of int
        Shape of the layer's output (or input) per row.
    model_, device_, n_features_in_, feature_names_in_, groups_, group_names_
        As in :class:`GradientShap`. A Pipeline's one-hot columns are summed
        into the feature they encode.

    See Also
    --------
    LayerGradientShap : Attribution to the units of a layer.

    Notes
    -----
    Cost: ``n_rows`` model rows forward and backward.

    References
    ----------
    Captum, ``captum.attr.NeuronGradient``.

    Examples
    --------
    >>> import torch
    >>> from skattr import NeuronGradient
    >>> model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Tanh())
    >>> with torch.no_grad():
    ...     _ = model[0].weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.5, -1.0, 2.0]]))
    ...     _ = model[0].bias.zero_()
    >>> X = torch.zeros(2, 3)
    >>> NeuronGradient(layer="0", neuron=1).fit(model, X).explain(X)
        x0   x1   x2
    0  0.5 -1.0  2.0
    1  0.5 -1.0  2.0
    """

    _needs_grad = True
    _space = "inputs"
    _auto_baseline = None  # no baseline
    _extras = {"activation": "row"}
    _fit_parameters = (
        *BaseExplainer._fit_parameters,
        "layer",
        "attribute_to_neuron_input",
    )

    def __init__(
        self,
        layer,
        neuron,
        *,
        attribute_to_neuron_input=False,
        batch_size=4096,
        device=None,
        show_progress=False,
        model_inputs=None,
    ):
        self.layer = layer
        self.neuron = neuron
        self.attribute_to_neuron_input = attribute_to_neuron_input
        self.batch_size = batch_size
        self.device = device
        self.show_progress = show_progress
        self.model_inputs = model_inputs

    def _check_params(self):
        check_layer(self.layer)
        check_bool("attribute_to_neuron_input", self.attribute_to_neuron_input)
        neuron = self.neuron
        index = neuron if isinstance(neuron, tuple) else (neuron,)
        ok = callable(neuron) or (
            len(index) > 0
            and all(
                isinstance(i, slice)
                or (isinstance(i, numbers.Integral) and not isinstance(i, bool))
                for i in index
            )
        )
        if not ok:
            raise TypeError(
                "neuron must be an int, a tuple of ints and slices, or a callable "
                f"over the layer's activation; got {neuron!r}."
            )

    def _to_layer_input(self):
        return self.attribute_to_neuron_input

    def _probe(self, adapter, rows):
        """Outputs and the layer's shape per row; also checks that ``neuron`` is in it."""
        out, shape = super()._probe(adapter, rows)
        where = "input" if self.attribute_to_neuron_input else "output"
        check_neuron(self.neuron, shape, f"layer {self.layer_!r}, whose {where}")
        return out, shape

    def _cost(self, layout, n):
        return n

    def _attribute(self, X, y, layout, call, run):
        values, activation = neuron_gradient(
            call,
            X,
            layer=self._layer,
            neuron=self.neuron,
            attribute_to_neuron_input=self.attribute_to_neuron_input,
            batch_size=run.settings.batch_size,
        )
        return values, {"activation": activation}
