"""FeaturePermutation: Captum's local attribution and sklearn's permutation importance."""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

from skattr._data import (
    check_input,
    check_int,
    check_sample_weight,
    check_y,
    row_index,
    to_numpy,
)
from skattr._model import _sigmoid_or_softmax
from skattr.core.permutation import (
    feature_permutation,
    permuted_outputs,
    random_permutations,
)
from skattr.explainers._base import BaseExplainer, _rank


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
    target : None, int, class label, "predicted" or "true", default=None
        Output explained by ``explain``. ``None``: the only output of a
        single-output model, else each row's predicted class. An int selects
        an output column; a class label (for models with ``classes_``) its
        column; ``"true"`` each row's label in ``y``.
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
    ``"baseline_score"`` and ``"n_samples"`` (the rows scored). The scorer
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

    def _check_explain(self, layout, X: torch.Tensor) -> None:
        _check_two_rows(X.shape[0], "explain")

    def _cost(self, layout, n):
        return n + n * layout.n_groups * int(self.n_repeats)

    # ------------------------------------------------------------ explain
    def _attribute(self, X, y, layout, call):
        f, fx, targets, _ = self._setup(X, y, layout, call, base=False)
        perms = self._permutations(layout, X.shape[0], avoid_identity=True)
        values, std = feature_permutation(
            f,
            X,
            perms,
            groups=layout.groups,
            fx=fx,
            batch_size=self.batch_size,
        )
        return values, {"std": std, "target": targets}

    def _permutations(
        self, layout, n: int, *, avoid_identity: bool, generator=None
    ) -> torch.Tensor:
        """Row permutations ``[g, n_repeats, n]``, drawn up front on the device."""
        g, R = layout.n_groups, self.n_repeats
        gen = self._generator() if generator is None else generator
        perms = random_permutations(
            n, g * R, generator=gen, avoid_identity=avoid_identity
        )
        return perms.reshape(g, R, n).to(self.device_)

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
        """
        self._check_fitted()
        self._check_all_params()
        X = check_input(self, X, reset=False, numeric=self._adapter.preprocess is None)
        n = X.shape[0]
        y = check_y(y, n)
        if isinstance(self.scoring, str) and y is None:
            raise ValueError(
                f"FeaturePermutation(scoring={self.scoring!r}).importance scores the "
                "model's predictions against the true targets: call "
                "importance(X, y). Without y, use scoring=None (the mean absolute "
                "attribution) or a callable scorer that needs no y."
            )
        weights = check_sample_weight(sample_weight, n)
        gen = self._generator()
        rows = _subsample(n, max_samples, gen)
        if self.scoring is None:
            return self._attribution_importance(X, y, weights, rows)
        return self._scored_importance(X, y, weights, rows, gen)

    def _attribution_importance(self, X, y, weights, rows):
        if rows is not None:
            idx = to_numpy(rows)
            X = X.iloc[idx] if isinstance(X, pd.DataFrame) else X[idx]
            y = None if y is None else y[idx]
            weights = None if weights is None else weights[idx]
        attr = self.explain(X, y)
        a = attr.abs()
        w = np.ones(len(attr)) if weights is None else weights
        w = w / w.sum()
        mean_abs = a.mul(w, axis=0).sum()
        ddof = 1 if len(attr) > 1 else 0
        if weights is None:
            std = a.std(ddof=ddof)
        else:
            std = np.sqrt(a.sub(mean_abs, axis=1).pow(2).mul(w, axis=0).sum())
        table = _rank(mean_abs, std, attr.mul(w, axis=0).sum())
        table.attrs["n_rows"] = len(attr)
        return table

    def _scored_importance(self, X, y, weights, rows, gen):
        from sklearn.metrics import check_scoring

        layout = self._layout_for(X)
        Xt = self._adapter.to_model(X, layout.labels)
        index = row_index(X)
        if rows is not None:
            Xt = Xt[rows.to(Xt.device)]
            kept = to_numpy(rows)
            index = index[kept]
            y = None if y is None else y[kept]
            weights = None if weights is None else weights[kept]
        m = Xt.shape[0]
        _check_two_rows(m, "importance")
        view = _model_view(self, layout)
        scorer = check_scoring(view, scoring=self.scoring)
        perms = self._permutations(layout, m, avoid_identity=False, generator=gen)
        g, R = perms.shape[:2]
        adapter = self._adapter
        call = self._call(layout, index)
        try:
            with adapter.evaluating(), torch.no_grad():
                base_out = self._outputs(Xt, call)
                perm_out = permuted_outputs(
                    call, Xt, perms, groups=layout.groups, batch_size=self.batch_size
                )
            call.check()
        finally:
            call.close()
        # slice 0: the batch itself; slice 1 + j * R + r: group j, repeat r
        outputs = torch.cat([base_out[None], perm_out.reshape(g * R, m, -1)])
        responses = view._responses(outputs)
        scores = _fast_scores(self.scoring, view, responses, y, weights)
        if scores is None:
            scores = self._scores_one_by_one(
                scorer, view, responses, Xt, perms, y, weights, layout
            )
        base_score, scores = scores[0], scores[1:].reshape(g, R)
        drops = base_score - scores
        full = np.zeros((len(layout.group_names), R))  # a dropped column: exactly 0
        full[layout.present] = drops
        names = list(layout.group_names)
        table = _rank(
            pd.Series(full.mean(1), index=names),
            pd.Series(full.std(1), index=names),
        )
        repeats = pd.DataFrame(
            full, index=pd.Index(names, name="feature"), columns=range(R)
        )
        repeats.columns.name = "repeat"
        table.attrs["importances"] = repeats.loc[table.index]
        table.attrs["baseline_score"] = float(base_score)
        table.attrs["n_rows"] = m
        return table

    def _scores_one_by_one(
        self, scorer, view, responses, Xt, perms, y, weights, layout
    ):
        """Call the scikit-learn scorer on every slice of the precomputed responses."""
        g, R, _ = perms.shape
        X_np = to_numpy(Xt)
        perm_np = to_numpy(perms)
        groups = to_numpy(layout.groups)  # the core's groups, numbered like perms
        cols = [np.flatnonzero(groups == j) for j in range(g)]
        by_name = isinstance(self.scoring, str)

        def data(s: int) -> np.ndarray:
            # scikit-learn's own scorers only hand X to the view, which answers
            # from the primed slice: the permuted X is built for callables only
            if by_name or s == 0:
                return X_np
            j, r = divmod(s - 1, R)
            Xp = X_np.copy()
            Xp[:, cols[j]] = X_np[perm_np[j, r]][:, cols[j]]
            return Xp

        scores = np.empty(1 + g * R)
        for s in range(1 + g * R):  # one scorer call per slice: sklearn's metrics
            slice_ = {key: value[s] for key, value in responses.items()}
            scores[s] = view._score(scorer, data(s), slice_, y, weights)
        return scores


def _check_two_rows(n: int, where: str) -> None:
    if n < 2:
        raise ValueError(
            f"FeaturePermutation.{where} needs at least 2 rows: it shuffles each "
            f"feature across the rows of the batch, and X has {n} row. Pass the "
            "row together with others (e.g. background rows), or use "
            "FeatureAblation for a single row."
        )


def _subsample(n: int, max_samples, generator) -> torch.Tensor | None:
    """Rows kept by ``max_samples`` (sorted), or ``None`` for all rows."""
    if max_samples is None:
        return None
    if isinstance(max_samples, numbers.Integral) and not isinstance(max_samples, bool):
        m = int(max_samples)
        if not 1 <= m <= n:
            raise ValueError(
                f"max_samples={m} must be between 1 and the number of rows of X ({n})."
            )
    elif isinstance(max_samples, numbers.Real) and 0 < max_samples <= 1:
        m = max(1, int(max_samples * n))
    else:
        raise ValueError(
            "max_samples must be None, an int number of rows, or a fraction in "
            f"(0, 1]; got {max_samples!r}."
        )
    if m == n:
        return None
    rows = torch.randperm(n, generator=generator, device=generator.device)
    return rows[:m].sort().values


# ---------------------------------------------------------------- scorer view
class _View(BaseEstimator):
    """The explained model as a fitted scikit-learn estimator, for scorers.

    ``predict`` and friends answer from the responses primed for the input
    object they are given (one slice of the outputs computed in bulk), and
    run the model on any other input.
    """

    def __init__(self, explainer=None, layout=None):
        self.explainer = explainer
        self.layout = layout

    def fit(self, X=None, y=None):
        """Nothing to fit: the view wraps an already trained model."""
        return self

    def __sklearn_is_fitted__(self):
        return True

    def _score(self, scorer, X, responses, y, weights) -> float:
        self._primed = (X, responses)
        try:
            if weights is None:
                return float(scorer(self, X, y))
            return float(scorer(self, X, y, sample_weight=weights))
        finally:
            self._primed = None

    def _response(self, X, key: str) -> np.ndarray:
        primed = getattr(self, "_primed", None)
        if primed is not None and X is primed[0]:
            return primed[1][key]
        ex, layout = self.explainer, self.layout
        Xt = ex._adapter.to_model(X, layout.labels)
        call = ex._call(layout, pd.RangeIndex(Xt.shape[0]))
        try:
            with ex._adapter.evaluating(), torch.no_grad():
                outputs = ex._outputs(Xt, call)
            call.check()
        finally:
            call.close()
        return self._responses(outputs[None])[key][0]

    def _responses(self, outputs: torch.Tensor) -> dict:
        """Numpy responses for stacked outputs ``[S, m, k]``, keyed by method."""
        raise NotImplementedError


class _RegressorView(RegressorMixin, _View):
    def _responses(self, outputs):
        out = to_numpy(outputs.double())
        return {"predict": out[..., 0] if out.shape[-1] == 1 else out}

    def predict(self, X):
        return self._response(X, "predict")


class _ClassifierView(ClassifierMixin, _View):
    def _responses(self, outputs):
        ex = self.explainer
        proba = outputs if ex.output == "proba" else _proba_nonlinearity(ex)(outputs)
        proba = to_numpy(proba)
        out = {"predict_proba": proba, "label_index": proba.argmax(axis=-1)}
        if ex.output == "raw":
            raw = to_numpy(outputs)
            out["decision_function"] = (
                raw[..., 1] - raw[..., 0] if raw.shape[-1] == 2 else raw
            )
        return out

    def predict_proba(self, X):
        return self._response(X, "predict_proba")

    def predict(self, X):
        return self.classes_[self._response(X, "label_index")]

    @property
    def classes_(self):
        ex = self.explainer
        if ex.classes_ is not None:
            return np.asarray(ex.classes_)
        return np.arange(self.layout.n_outputs)


class _ModuleClassifierView(_ClassifierView):
    def decision_function(self, X):
        return self._response(X, "decision_function")


def _model_view(ex, layout) -> _View:
    if ex._adapter.kind == "skorch":
        if ex.classes_ is not None:
            return _ClassifierView(ex, layout)
        return _RegressorView(ex, layout)
    if layout.n_outputs >= 2:
        # raw outputs are a decision function; probabilities are not
        view = _ModuleClassifierView if ex.output == "raw" else _ClassifierView
        return view(ex, layout)
    return _RegressorView(ex, layout)


def _proba_nonlinearity(ex):
    """Probabilities from raw outputs: the net's predict nonlinearity or softmax."""
    if ex._adapter.kind == "skorch":
        net = ex.model_
        if hasattr(net, "steps"):  # a Pipeline ending in the net
            net = net.steps[-1][1]
        return net._get_predict_nonlinearity()
    return _sigmoid_or_softmax


# ---------------------------------------------------------------- fast scores
def _fast_scores(scoring, view, responses, y, weights) -> np.ndarray | None:
    """Every slice's score at once, for a few common scorer names.

    Same formulas as scikit-learn's metrics, vectorised over the slices;
    ``None`` when the scorer or the data is not one of the cases covered, and
    the scorer is then called slice by slice.
    """
    if not isinstance(scoring, str) or y is None:
        return None
    w = np.ones(len(y)) if weights is None else weights
    w = w / w.sum()
    if scoring == "accuracy" and isinstance(view, _ClassifierView):
        pred = view.classes_[responses["label_index"]]  # [S, m]
        if pred.dtype.kind not in "iufb" or y.dtype.kind not in "iufb":
            return None  # string labels: leave comparisons to scikit-learn
        return _weighted_mean(pred == y[None, :], w)
    regression = (
        "neg_mean_squared_error",
        "neg_root_mean_squared_error",
        "neg_mean_absolute_error",
        "r2",
    )
    if scoring in regression and isinstance(view, _RegressorView):
        pred = responses["predict"]
        if pred.ndim != 2 or y.dtype.kind not in "iuf":
            return None  # multi-output: scikit-learn averages its own way
        err = pred - y[None, :].astype(np.float64)
        if scoring == "neg_mean_absolute_error":
            return -_weighted_mean(np.abs(err), w)
        mse = _weighted_mean(err**2, w)
        if scoring == "neg_mean_squared_error":
            return -mse
        if scoring == "neg_root_mean_squared_error":
            return -np.sqrt(mse)
        y_mean = _weighted_mean(y, w)
        total = _weighted_mean((y - y_mean) ** 2, w)
        if total == 0:
            return None  # constant y: scikit-learn's special cases
        return 1.0 - mse / total
    return None


def _weighted_mean(values: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mean over the last axis with weights ``w`` (summing to 1).

    Row by row (not a matrix product), so that equal rows give bitwise equal
    results and a feature the model ignores scores exactly 0.
    """
    return (values * w).sum(axis=-1)
