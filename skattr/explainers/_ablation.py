"""FeatureAblation: one group at a time replaced by the baseline."""

from __future__ import annotations

from skattr.core.ablation import feature_ablation
from skattr.explainers._base import (
    FITTED_ATTRIBUTES_DOC,
    MODEL_INPUTS_DOC,
    BaseExplainer,
)


class FeatureAblation(BaseExplainer):
    __doc__ = f"""Attribution by ablation: how much the output drops without each feature.

    For each row ``x`` and each feature (or group) ``j``, the attribution is
    ``f(x) - f(x with j set to the baseline)``, as Captum's
    ``FeatureAblation``. With several background rows as ``baseline`` the
    result is averaged over them. All rows and all groups are evaluated in a
    few large forward calls.

    Parameters
    ----------
    baseline : "auto", "zeros", "mean", "median", float, array-like, dict, Series or DataFrame, default="auto"
        Value a feature takes when ablated. ``"auto"`` is the mean of the
        ``X`` given to ``fit``, or zeros without it. A number is used for
        every feature; a 1-D array, Series or dict gives one value per
        feature; a DataFrame (or 2-D array) gives background rows, over which
        the attributions are averaged.
    target : None, int, class label, "predicted", "true" or "all", default=None
        Output explained. ``None``: the only output of a single-output
        model, else each row's predicted class (refused for a skorch
        regressor: its outputs are not classes). An int selects an output
        column; a class label (for models with ``classes_``) its column;
        ``"true"`` each row's label in ``y``; ``"all"`` every output at once
        (columns (output, feature), see ``explain``).
    output : {{"raw", "proba"}}, default="raw"
        Explain the module's raw output (e.g. logits) or probabilities
        (skorch's predict nonlinearity; softmax or sigmoid for a module).
    feature_groups : None, dict or array-like of int, default=None
        ``None``: every column is a feature. A dict ``{{name: [columns]}}``
        ablates those columns together under ``name``; an integer array of
        length ``n_features`` (Captum's ``feature_mask``) groups columns
        with the same id, named by their columns joined with ``"+"``.
    batch_size : int, default=4096
        Most rows in one forward call; bounds memory.
    device : str, default=None
        Torch device to compute on; ``None`` uses the model's.
    show_progress : bool, default=False
        Show a tqdm progress bar over the forward batches.
{MODEL_INPUTS_DOC}

    Attributes
    ----------
{FITTED_ATTRIBUTES_DOC}

    See Also
    --------
    FeaturePermutation : Ablation with values from other rows.
    ShapleyValueSampling : Fair credit when features interact.

    Notes
    -----
    Cost: ``n_rows * (n_groups + 2) * n_background`` model rows: every
    group ablated, and ``f(x)`` and ``f(baseline)`` evaluated in the same
    pass (so that a feature the model ignores gets exactly 0), plus
    ``n_rows`` to pick the targets when they are each row's predicted class
    of a multi-output model. The frame
    returned by ``explain`` carries in ``attrs``: ``"base_values"``, the
    model output at the baseline for each row's target (a Series), and
    ``"target"``, the output (class label or column) explained per row.

    References
    ----------
    Captum, ``captum.attr.FeatureAblation``.

    Examples
    --------
    >>> import torch
    >>> from skattr import FeatureAblation
    >>> model = torch.nn.Linear(3, 1)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, -2.0, 0.0]]))
    ...     _ = model.bias.zero_()
    >>> X = torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 5.0]])
    >>> FeatureAblation(baseline="zeros").fit(model, X).explain(X)
        x0   x1   x2
    0  1.0 -2.0  0.0
    1  2.0  0.0  0.0
    """

    def __init__(
        self,
        *,
        baseline="auto",
        target=None,
        output="raw",
        feature_groups=None,
        batch_size=4096,
        device=None,
        show_progress=False,
        model_inputs=None,
    ):
        self.baseline = baseline
        self.target = target
        self.output = output
        self.feature_groups = feature_groups
        self.batch_size = batch_size
        self.device = device
        self.show_progress = show_progress
        self.model_inputs = model_inputs

    _extras = {"base_values": "row", "target": "target"}
    _incremental = True

    def _cost(self, layout, n):
        B = layout.baseline.shape[0]
        return self._pick_cost(layout, n) + n * (layout.n_groups + 2) * B

    def _rows_per_chunk(self, layout):
        # every group's ablated value per row (and background row) is held
        return self._chunk_for(layout, (layout.n_groups + 2) * layout.baseline.shape[0])

    def _attribute(self, X, y, layout, call, run):
        values, cv = feature_ablation(
            call,
            X,
            layout.baseline,
            groups=layout.groups,
            targets=self._targets(y, layout, run.settings.target, X.shape[0]),
            batch_size=run.settings.batch_size,
        )
        return values, {"base_values": cv.fb, "target": cv.targets}
