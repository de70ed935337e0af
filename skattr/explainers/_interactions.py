"""ShapleyInteractions: pairwise Shapley interaction values in SHAP's layout."""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from skattr._data import (
    check_coalition_count,
    check_int,
    check_option,
    check_pairs_cover_groups,
    interaction_rows,
    to_numpy,
    whole_interactions,
)
from skattr.core.interactions import interactions_exact, interactions_sampled
from skattr.core.kernel_shap import kernel_shap_size
from skattr.explainers._base import (
    FITTED_ATTRIBUTES_DOC,
    MODEL_INPUTS_DOC,
    BaseExplainer,
    interval_halfwidth,
)

#: the interaction indices computed
INDICES = ("SII",)


class ShapleyInteractions(BaseExplainer):
    __doc__ = f"""Pairwise Shapley interaction values, SHAP's layout, every row at once.

    For each pair of features (or groups) ``i, j``, the Shapley interaction
    index (SII, Grabisch and Roubens) averages, over the coalitions ``S`` of
    the other features weighted by ``|S|! (g - |S| - 2)! / (g - 1)!``, how
    much the two features' joint effect differs from the sum of their
    separate effects::

        v(S + i + j) - v(S + i) - v(S + j) + v(S)

    with ``v(S)`` the model output when the features in ``S`` take the row's
    values and the others the baseline's. As SHAP's TreeExplainer reports
    them, each row of ``X`` gets a ``g x g`` matrix: half of each pair's
    interaction in each of its two off-diagonal cells and the main effect on
    the diagonal, so that each matrix row sums to that feature's Shapley
    value and the matrix to ``f(x) - f(baseline)``.

    With ``n_samples=None`` the model is evaluated on every one of the
    ``2^g`` coalitions of every row (the cost of exact Shapley values) and
    the interactions come from one Möbius transform of those values. With an
    int, ``n_samples`` coalitions per row are drawn (KernelShap's paired
    design, sizes the budget covers enumerated): the Shapley values come
    from KernelShap's regression and each interaction from its stratified
    sum over the drawn coalitions, with standard errors; exact once every
    coalition fits.

    Parameters
    ----------
    index : {{"SII"}}, default="SII"
        The interaction index.
    n_samples : int, default=None
        ``None``: exact, from all ``2^g`` coalitions per row. An int:
        coalitions evaluated per row (rounded down to an even number), the
        sampled mode; at least ``2 * g`` (as many coalition pairs as groups)
        unless it enumerates every coalition: fewer are refused, as the
        regression for the Shapley values would be underdetermined.
    max_groups : int, default=20
        The exact mode refuses more features (or groups) than this: its cost
        doubles with each one. Use ``n_samples`` (the sampled mode), or merge
        features with ``feature_groups``.
    baseline : "auto", "zeros", "mean", "median", float, array-like, dict, Series or DataFrame, default="auto"
        Values a feature takes when it is not in a coalition. ``"auto"`` is
        the mean of the ``X`` given to ``fit``, or zeros without it; a
        DataFrame gives background rows (the values are then averaged over
        them, at ``n_background`` times the cost).
    target : None, int, class label, "predicted", "true" or "all", default=None
        Output explained. ``None``: the only output of a single-output
        model, else each row's predicted class (refused for a skorch
        regressor: its outputs are not classes); ``"all"``: every output at
        once (columns (output, feature)).
    output : {{"raw", "proba"}}, default="raw"
        Explain the module's raw output or probabilities.
    feature_groups : None, dict or array-like of int, default=None
        ``None``: every column is a player. A dict ``{{name: [columns]}}``
        makes those columns one player; an integer array (Captum's
        ``feature_mask``) groups columns with the same id.
    batch_size : int, default=4096
        Most rows in one forward call; bounds memory.
    device : str, default=None
        Torch device to compute on; ``None`` uses the model's.
    random_state : None, int or numpy.random.Generator, default=None
        Seed of the sampled mode's coalitions.
    show_progress : bool, default=False
        Show a tqdm progress bar over the forward batches.
{MODEL_INPUTS_DOC}

    Attributes
    ----------
{FITTED_ATTRIBUTES_DOC}

    See Also
    --------
    ShapleyValues : The Shapley values alone (the matrices' row sums).
    KernelShap : Shapley values from the same sampled design.

    Notes
    -----
    ``explain(X)`` returns a DataFrame with a two-level row index (row of
    ``X``, feature) and one column per feature: ``attr.loc[row]`` is that
    row's matrix (columns (output, feature) under ``target="all"``).
    ``importance(X)`` ranks the pairs by the mean over rows of
    ``|SII_ij|`` (twice a cell), indexed by the pair.

    Cost of ``explain``, in model rows: exact, ``n_rows * 2^g *
    n_background``; sampled, ``n_rows * (2 + n_samples) * n_background``;
    plus ``n_rows`` to pick the targets when they are each row's predicted
    class of a multi-output model. Memory of the exact mode: the
    ``2^g`` values of every row, as ``ShapleyValues``.

    The frame carries in ``attrs``: ``"base_values"`` and ``"prediction"``
    (f(baseline) and f(x) per row of ``X``, a Series indexed like ``X``),
    ``"std"`` and ``"ci95"`` (standard errors and the half-widths of the
    95% intervals, shaped like the result; 0 when exact), ``"n_draws"`` (the
    drawn coalition pairs behind each row's estimates, per row of ``X``; 0
    when exact), ``"exact"`` and ``"target"`` (per row of ``X``).

    References
    ----------
    Grabisch and Roubens (1999), "An axiomatic approach to the concept of
    interaction among players in cooperative games". Lundberg et al. (2020),
    "From local explanations to global understanding with explainable AI for
    trees" (SHAP interaction values). Fumagalli et al. (2023), "SHAP-IQ:
    Unified approximation of any-order Shapley interactions".

    Examples
    --------
    >>> import torch
    >>> from skattr import ShapleyInteractions
    >>> class Product(torch.nn.Module):
    ...     def forward(self, x):
    ...         return x[:, :1] * x[:, 1:2] + x[:, 2:]
    >>> X = torch.tensor([[2.0, 3.0, 1.0]])
    >>> attr = ShapleyInteractions(baseline="zeros").fit(Product(), X).explain(X)
    >>> attr.loc[0].round(6) + 0.0
    feature   x0   x1   x2
    feature
    x0       0.0  3.0  0.0
    x1       3.0  0.0  0.0
    x2       0.0  0.0  1.0
    """

    def __init__(
        self,
        *,
        index="SII",
        n_samples=None,
        max_groups=20,
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
        self.index = index
        self.n_samples = n_samples
        self.max_groups = max_groups
        self.baseline = baseline
        self.target = target
        self.output = output
        self.feature_groups = feature_groups
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.show_progress = show_progress
        self.model_inputs = model_inputs

    def _check_params(self):
        check_option("index", self.index, INDICES)
        check_coalition_count("n_samples", self.n_samples)
        check_int("max_groups", self.max_groups)

    _flat_rows = False  # rows per (row, feature)
    _extras = {
        "base_values": "row",
        "prediction": "row",
        "std": "cell",
        "ci95": "cell",
        "n_draws": "row",
        "exact": "call",
        "target": "target",
    }
    _random = True
    _incremental = True

    def _exact(self, g: int) -> bool:
        return self.n_samples is None or kernel_shap_size(g, self.n_samples)[1]

    def _check_layout(self, layout):
        g = layout.n_groups
        if self.n_samples is None and g > self.max_groups:
            count = f"2^{g} = {2**g:,}" if g <= 40 else f"2^{g}"
            raise ValueError(
                f"Exact ShapleyInteractions needs {count} model evaluations per "
                f"row (and per background row) for {g} features (groups), more "
                f"than max_groups={self.max_groups} allows. Use the sampled mode "
                "(n_samples=<coalitions per row>, e.g. n_samples=2000), merge "
                "features with feature_groups, or raise max_groups."
            )
        if g < 2:
            raise ValueError(
                "ShapleyInteractions needs at least two features (groups) to "
                f"have pairs; got {g}."
            )
        check_pairs_cover_groups(
            "ShapleyInteractions",
            self.n_samples,
            g,
            self._exact(g),
            f"every coalition, exactly, up to max_groups={self.max_groups}",
        )

    def _cost(self, layout, n):
        B, g = layout.baseline.shape[0], layout.n_groups
        per_row = 2**g if self._exact(g) else kernel_shap_size(g, self.n_samples)[0] + 2
        return self._pick_cost(layout, n) + n * per_row * B

    def _attribute(self, X, y, layout, call, run):
        common = {
            "groups": layout.groups,
            "targets": self._targets(y, layout, run.settings.target, X.shape[0]),
            "batch_size": run.settings.batch_size,
        }
        exact = self._exact(layout.n_groups)
        if exact:
            result = interactions_exact(call, X, layout.baseline, **common)
            std = torch.zeros_like(result.values)
        else:
            size, _ = kernel_shap_size(layout.n_groups, self.n_samples)
            result = interactions_sampled(
                call, X, layout.baseline, n_samples=size, generator=run.generator,
                **common,
            )  # fmt: skip
            std = result.std
        return result.values, {
            "base_values": result.fb,
            "prediction": result.fx,
            "std": std,
            "ci95": interval_halfwidth(std, result.df),
            "n_draws": torch.full((X.shape[0],), result.n_draws),
            "exact": bool(exact),
            "target": result.targets,
        }

    # ------------------------------------------------------------ result
    def _result_array(self, values, layout, settings):
        """The matrices ``[n, g, g * t]`` on the host (each row of ``X`` first)."""
        every = settings.target == "all"
        cells = _cells(values, layout, every)
        return cells.reshape(values.shape[0], -1, cells.shape[1]), every

    def _frame(self, values, every, index, extras, layout) -> pd.DataFrame:
        """Rows (row of ``X``, feature), columns the features: SHAP's layout."""
        if set(extras) != set(self._extras):
            raise AssertionError(  # pragma: no cover - a method's own bug
                f"ShapleyInteractions returned extras {sorted(extras)}."
            )
        names = list(layout.result_columns)
        rows = pd.MultiIndex.from_product(
            [index, names], names=[index.name or "row", "feature"]
        )
        columns = pd.Index(names, name="feature")
        if every:
            columns = pd.MultiIndex.from_product(
                [self._output_labels(layout), names], names=["output", "feature"]
            )
        frame = pd.DataFrame(
            values.reshape(-1, values.shape[2]), index=rows, columns=columns, copy=False
        )
        per_row = pd.DataFrame(index=index)  # the attrs of a row of X
        for key, kind in self._extras.items():
            if kind == "cell":
                cells = (
                    np.zeros(frame.shape)  # the exact mode's error bars
                    if not bool(extras[key].any())
                    else _cells(extras[key], layout, every)
                )
                frame.attrs[key] = pd.DataFrame(cells, index=rows, columns=columns)
            else:
                frame.attrs[key] = self._attrs_entry(
                    kind, key, extras[key], per_row, layout, every
                )
        return frame

    def importance(self, X, y=None):
        """Pairs ranked by their mean absolute interaction over the rows of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Rows over which to average.
        y : array-like of shape (n_rows,), default=None
            True labels, for ``target="true"``.

        Returns
        -------
        importance : DataFrame
            Indexed by the pair (two levels, ``feature``, ``other``), one row
            per pair of distinct features, sorted by decreasing
            ``importance``: the mean over rows of ``|SII|`` (the pair's whole
            interaction, both cells of the matrix), with ``std`` (over rows)
            and ``mean`` (signed). With ``target="all"``, ``importance`` and
            ``std`` are those of each row's mean ``|SII|`` over the outputs,
            and a column per output holds that output's mean ``|SII|``.
            ``attrs["n_rows"]`` holds the number of rows averaged over.
        """
        attr = self.explain(X, y)
        table = rank_pairs(attr)
        table.attrs["n_rows"] = len(interaction_rows(attr))
        return table


def rank_pairs(attr: pd.DataFrame) -> pd.DataFrame:
    """The pairs of an interaction result, ranked by mean ``|SII|`` (see
    :meth:`ShapleyInteractions.importance`)."""
    attr = whole_interactions(attr)  # lines in feature order, as they come
    names = list(attr.columns.get_level_values(-1).unique())
    every = isinstance(attr.columns, pd.MultiIndex)
    outputs = list(attr.columns.get_level_values(0).unique()) if every else [None]
    g = len(names)
    upper = np.triu_indices(g, 1)
    pairs = pd.MultiIndex.from_arrays(
        [np.asarray(names)[upper[0]], np.asarray(names)[upper[1]]],
        names=["feature", "other"],
    )
    per_output = []
    for o in outputs:
        block = attr[o] if every else attr
        cube = block.to_numpy().reshape(-1, g, g)
        per_output.append(2 * cube[:, upper[0], upper[1]])  # [n, pairs]
    sii = np.stack(per_output)  # [outputs, n, pairs]
    size = np.abs(sii).mean(0)  # each row's mean |SII| over the outputs
    n = size.shape[0]
    table = pd.DataFrame(
        {
            "importance": size.mean(0),
            "std": size.std(0, ddof=1 if n > 1 else 0),
        },
        index=pairs,
    )
    if every:
        for o, part in zip(outputs, sii):
            table[o] = np.abs(part).mean(0)
    else:
        table["mean"] = sii[0].mean(0)
    return table.sort_values("importance", ascending=False, kind="stable")


def _cells(values: torch.Tensor, layout, every: bool) -> np.ndarray:
    """``[n, g', g', t]`` in core groups -> ``[n * g, g * t]`` over result columns."""
    full = layout.to_result(values)  # rows of the matrix
    full = layout.to_result(full.transpose(1, 2)).transpose(1, 2)  # columns
    n, g, _, t = full.shape
    if not every:
        full = full[..., :1]
        t = 1
    return to_numpy(full.permute(0, 1, 3, 2).reshape(n * g, t * g).double())
