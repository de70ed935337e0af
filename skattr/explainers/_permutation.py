"""FeaturePermutation: Captum's local attribution and sklearn's permutation importance."""

from __future__ import annotations

import pandas as pd
import torch

from skattr._data import (
    check_input,
    check_int,
    check_label_kind,
    check_sample_weight,
    check_y,
    dask_free,
    frame_index,
    is_dask,
    to_numpy,
)
from skattr.core.permutation import feature_permutation
from skattr.explainers._base import (
    BaseExplainer,
    rank_attributions,
    with_fitted_attributes,
)
from skattr.explainers._scoring import (
    check_two_rows,
    draw_permutations,
    scored_importance,
    subsample,
)


@with_fitted_attributes
class FeaturePermutation(BaseExplainer):
    """Attribution and importance by shuffling a feature across the rows.

    Two quantities share the same batched machinery: for every feature (or
    group) ``j`` and every repeat ``r``, a copy of the batch in which only
    the columns of ``j`` are shuffled across the rows (one row permutation
    for all columns of a group), all copies evaluated in a few large forward
    calls.

    ================  ==========================================  ==========================================
    method            ``explain(X)``                              ``importance(X, y)`` with ``scoring``
    ================  ==========================================  ==========================================
    as                Captum ``FeaturePermutation``               scikit-learn ``permutation_importance``
    per               row and feature                             feature
    value             ``f(x) - f(x with j permuted)``, the        ``score(X, y) - score(X with j permuted,
                      target output, mean over ``n_repeats``      y)``, mean and std over ``n_repeats``
    ================  ==========================================  ==========================================

    Without ``scoring``, ``importance`` is the mean absolute local
    attribution, as for the other explainers.

    Parameters
    ----------
    n_repeats : int, default=1
        Independent permutations per feature; results are averaged over them.
    scoring : str, callable or None, default=None
        Scorer of ``importance``: any name :func:`sklearn.metrics.get_scorer`
        accepts (``"accuracy"``, ``"roc_auc"``, ``"neg_log_loss"``, ``"r2"``,
        ``"neg_mean_squared_error"``, ...) or a callable
        ``scorer(estimator, X, y)``. The estimator handed to the scorer is a
        view of the model (see Notes). ``None``: ``importance`` is the mean
        absolute attribution of ``explain``.
    target : None, int, class label, "predicted", "true" or "all", default=None
        Output explained by ``explain``. ``None``: the only output of a
        single-output model, else each row's predicted class (refused for a
        skorch regressor: its outputs are not classes). An int selects
        an output column; a class label (for models with ``classes_``) its
        column; ``"true"`` each row's label in ``y``; ``"all"`` every output
        at once (columns (output, feature)).
    output : {"raw", "proba"}, default="raw"
        Explain the module's raw output (e.g. logits) or probabilities
        (skorch's predict nonlinearity; softmax or sigmoid for a module).
    feature_groups : None, dict or array-like of int, default=None
        ``None``: every column is a feature. A dict ``{name: [columns]}``
        permutes those columns together under ``name``; an integer array of
        length ``n_features`` (Captum's ``feature_mask``) groups columns
        with the same id, named by their columns joined with ``"+"``.
    batch_size : int, default=4096
        Most rows in one forward call; bounds memory.
    device : str, default=None
        Torch device to compute on; ``None`` uses the model's.
    random_state : None, int or numpy.random.Generator, default=None
        Seeds the permutations. An int gives the same result on every call,
        whatever ``batch_size``.
    show_progress : bool, default=False
        Show a tqdm progress bar over the forward batches.
    {model_inputs}

    Attributes
    ----------
    model_ : object
        The model given to ``fit``.
    device_ : torch.device
        Device the computation runs on.
    n_features_in_ : int
        Number of features, when ``fit`` could know it (from ``X`` or a
        fitted Pipeline); without it each call takes its columns from its
        ``X``.
    feature_names_in_ : ndarray of str
        Column names, when ``fit`` saw a DataFrame ``X`` or a Pipeline
        fitted on one; they fix the columns ``explain`` accepts.
    groups_ : ndarray of shape (n_model_inputs,)
        Result column of each model input column, when ``fit`` knew the
        columns.
    group_names_ : list of str
        Names of the result's columns, with ``groups_``.
    n_outputs_ : int
        Number of model outputs, when ``fit`` knew the number of columns.
    classes_ : ndarray or None
        Class labels of a classifier, else ``None``.

    See Also
    --------
    FeatureAblation : Replace a feature by a fixed baseline instead.
    sklearn.inspection.permutation_importance : The scikit-learn original.

    Notes
    -----
    Cost: ``n_rows * (1 + n_groups * n_repeats)`` model rows, for both
    ``explain`` and a scored ``importance`` (with ``max_samples`` rows
    instead of ``n_rows``). The permutations are drawn up front from
    ``random_state``, so the result does not depend on ``batch_size``. A
    permutation that leaves every row in place is redrawn in ``explain``
    (as Captum does), not in ``importance`` (as scikit-learn).

    ``explain`` needs at least two rows: the values come from the other rows
    of the batch, so the attribution of a row depends on the batch it is in.
    The frame it returns carries in ``attrs``: ``"std"``, the standard
    deviation over the repeats per row and feature (a DataFrame), and
    ``"target"``, the output (class label or column) explained per row.

    A scored ``importance`` returns ``importance`` (the mean drop in score)
    and ``std`` (its standard deviation over repeats, ``ddof=0`` as
    scikit-learn); its ``attrs`` hold ``"importances"``, every repeat's drop
    (a DataFrame, features by repeats, in the table's order),
    ``"baseline_score"`` and ``"n_rows"`` (the rows scored). The scorer
    receives a scikit-learn view of the model whose ``predict``,
    ``predict_proba`` and ``decision_function`` return the outputs already
    computed for the permuted batch (and run the model on any other input).
    A skorch classifier, or a plain module with two or more outputs, is a
    classifier: ``predict_proba`` gives probabilities (the predict
    nonlinearity, softmax for a module), ``predict`` the class labels
    (``classes_``, or ``0..n_outputs-1`` for a module); a plain module also
    has ``decision_function`` (its raw outputs; for two outputs, their
    difference), a skorch classifier does not, as the net itself. Anything
    else is a regressor whose ``predict`` is the model output. Unlike
    scikit-learn, with ``max_samples`` the baseline score is computed on the
    same rows as the permuted scores.

    References
    ----------
    Captum, ``captum.attr.FeaturePermutation``; scikit-learn,
    ``sklearn.inspection.permutation_importance``; L. Breiman, "Random
    Forests", Machine Learning 45 (2001).

    Examples
    --------
    >>> import torch
    >>> from skattr import FeaturePermutation
    >>> model = torch.nn.Linear(3, 1)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, -2.0, 0.0]]))
    ...     _ = model.bias.zero_()
    >>> X = torch.tensor(
    ...     [[0.0, 1.0, 1.0], [1.0, 0.0, 5.0], [2.0, 1.0, 0.0], [3.0, 0.0, 2.0]]
    ... )
    >>> ex = FeaturePermutation(random_state=0).fit(model, X)
    >>> ex.explain(X)
        x0   x1   x2
    0 -3.0  0.0  0.0
    1  1.0  2.0  0.0
    2  1.0 -2.0  0.0
    3  1.0  0.0  0.0
    >>> y = model(X).detach().numpy().ravel()
    >>> ex.set_params(scoring="neg_mean_squared_error", n_repeats=10)
    FeaturePermutation(n_repeats=10, random_state=0, scoring='neg_mean_squared_error')
    >>> ex.importance(X, y).round(2)
             importance   std
    feature
    x0              2.8  1.12
    x1              2.0  0.89
    x2              0.0  0.00
    """

    def __init__(
        self,
        *,
        n_repeats=1,
        scoring=None,
        target=None,
        output="raw",
        feature_groups=None,
        batch_size=4096,
        device=None,
        random_state=None,
        show_progress=False,
        model_inputs=None,
    ):
        self.n_repeats = n_repeats
        self.scoring = scoring
        self.target = target
        self.output = output
        self.feature_groups = feature_groups
        self.batch_size = batch_size
        self.device = device
        self.random_state = random_state
        self.show_progress = show_progress
        self.model_inputs = model_inputs

    def _check_params(self) -> None:
        check_int("n_repeats", self.n_repeats)
        if not (self.scoring is None or callable(self.scoring)):
            if not isinstance(self.scoring, str):
                raise TypeError(
                    "scoring must be None, a scorer name such as 'accuracy' or a "
                    f"callable scorer(estimator, X, y); got {self.scoring!r}."
                )
            from sklearn.metrics import get_scorer_names

            if self.scoring not in get_scorer_names():
                raise ValueError(
                    f"scoring={self.scoring!r} is not a scikit-learn scorer name; "
                    "see sklearn.metrics.get_scorer_names() for the valid ones, or "
                    "pass a callable scorer(estimator, X, y)."
                )

    _extras = {"std": "cell", "target": "target"}
    _auto_baseline = None  # the values come from the other rows
    _random = True
    _incremental = True

    def _check_explain(self, layout, X: torch.Tensor) -> None:
        check_two_rows(X.shape[0], "explain")

    def _cost(self, layout, n):
        return n + n * layout.n_groups * int(self.n_repeats)

    # ------------------------------------------------------------ explain
    def _attribute(self, X, y, layout, call, run):
        perms = draw_permutations(
            layout, self.n_repeats, X.shape[0], run.generator, avoid_identity=True
        )
        values, std, targets, _ = feature_permutation(
            call,
            X,
            perms,
            groups=layout.groups,
            targets=self._targets(y, layout, run.settings.target, X.shape[0]),
            batch_size=run.settings.batch_size,
        )
        return values, {"std": std, "target": targets}

    # ------------------------------------------------------------ importance
    def importance(self, X, y=None, sample_weight=None, max_samples=None):
        """Global importance: the drop in score (with ``scoring``) or mean |attribution|.

        Parameters
        ----------
        X : array-like of shape (n_rows, n_features)
            Rows to permute and score (at least two).
        y : array-like of shape (n_rows,), default=None
            True targets; needed by scorers given by name and by
            ``target="true"``.
        sample_weight : array-like of shape (n_rows,), default=None
            Row weights: passed to the scorer, or weighting the mean
            |attribution| without ``scoring``.
        max_samples : int or float, default=None
            Rows used, drawn without replacement from ``random_state``: an int
            count, or a fraction of ``n_rows`` in (0, 1]. ``None``: all rows.

        Returns
        -------
        importance : DataFrame
            Indexed by feature, sorted by decreasing ``importance``. With
            ``scoring``: the mean drop in score over ``n_repeats``, its ``std``,
            and in ``attrs`` ``"importances"`` (every repeat), ``"baseline_score"``
            and ``"n_rows"`` (the rows scored). Without: the weighted mean
            |attribution|, its ``std`` over rows, ``mean`` (the signed mean
            attribution), and ``"n_rows"`` in ``attrs``.

        Notes
        -----
        One generator per call, seeded from ``random_state``, draws first the
        ``max_samples`` rows, then the permutations.

        On a Dask DataFrame (``y`` and ``sample_weight`` then Dask Series
        from the same frame, ``max_samples`` refused) each feature is
        permuted within each partition, which moves no row between
        workers, and the partitions' drops are averaged weighted by their
        rows: for a metric that is a mean over rows, the whole frame's
        drop (see :func:`skattr.dask.scored_importance`).
        """
        if is_dask(X):
            return self._dask_importance(X, y, sample_weight, max_samples)
        dask_free(y=y, sample_weight=sample_weight)
        X, y, weights, settings = self._checked_rows(X, y, sample_weight)
        generator = self._generator()
        rows = subsample(X.shape[0], max_samples, generator)
        if self.scoring is not None:
            return scored_importance(self, X, settings, y, weights, rows, generator)
        if rows is not None:
            idx = to_numpy(rows)
            X = X.iloc[idx] if isinstance(X, pd.DataFrame) else X[idx]
            y = None if y is None else y[idx]
            weights = None if weights is None else weights[idx]
        attr = self._explain(X, y, generator)
        table = rank_attributions(attr, weights)
        table.attrs["n_rows"] = len(attr)
        return table

    def _checked_rows(self, X, y, sample_weight):
        """``importance``'s checked ``X``, ``y``, weights and settings (also
        each Dask partition's)."""
        self._check_fitted()
        settings = self._settings()
        X = check_input(self, X, reset=False, numeric=self._adapter.numeric_only)
        n = X.shape[0]
        index = frame_index(X)
        # a scorer compares every output: a multi-output regressor's y is 2-D
        y = check_y(y, n, index, two_d=self.scoring is not None)
        self._check_scoring_y(y)
        return X, y, check_sample_weight(sample_weight, n, index), settings

    def _explains_target(self) -> bool:
        """With ``scoring``, ``importance`` scores every output: ``fit`` does
        not check ``target`` (a multi-output regressor has no default), and
        ``explain`` still does."""
        return self.scoring is None

    def _check_scoring_y(self, y) -> None:
        """A scorer given by name compares with the true targets: refuse no
        ``y``, and a classifier's ``y`` of another kind than its classes."""
        if isinstance(self.scoring, str) and not self._adapter.regressor:
            check_label_kind(y, self.classes_)
        if isinstance(self.scoring, str) and y is None:
            raise ValueError(
                f"FeaturePermutation(scoring={self.scoring!r}).importance scores the "
                "model's predictions against the true targets: call "
                "importance(X, y). Without y, use scoring=None (the mean absolute "
                "attribution) or a callable scorer that needs no y."
            )

    def _dask_importance(self, X, y, sample_weight, max_samples) -> pd.DataFrame:
        """``importance`` of a Dask DataFrame (see :mod:`skattr.dask`)."""
        from skattr import dask

        if max_samples is not None:
            raise ValueError(
                "max_samples subsamples rows in memory; on a Dask DataFrame, "
                "sample the frame itself: importance(ddf.sample(frac=0.1), ...)."
            )
        if self.scoring is not None:
            return dask.scored_importance(self, X, y, sample_weight)
        return dask.importance(self, X, y, sample_weight)
