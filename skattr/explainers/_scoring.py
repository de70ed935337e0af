"""FeaturePermutation's scored importance: the drop in a scikit-learn score.

``scored_importance`` evaluates the batch and every permuted copy of it in a
few large forward calls (through the same core as ``explain``), then scores
each copy with the user's scorer. A scikit-learn scorer calls ``predict``,
``predict_proba`` or ``decision_function`` on an estimator; here that is a
:class:`ModelView` made for one copy: it answers from the outputs already
computed for that copy's rows, and runs the model on any other input.

For the scorer names whose metric is a plain (weighted) mean over rows,
:func:`fast_scores` computes the scores of all copies at once with the same
formulas as scikit-learn; ``benchmarks/`` shows that it pays (see
``docs/permutation.md``) and the tests check it against scikit-learn's own
scorers.
"""

from __future__ import annotations

import numbers

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.metaestimators import available_if

from skattr._data import importance_table, row_index, to_numpy
from skattr.core.groups import group_members
from skattr.core.permutation import (
    permuted_outputs,
    random_permutations,
    row_outputs,
)


def scored_importance(
    explainer, X, settings, y, weights, rows, generator
) -> pd.DataFrame:
    """The table of ``FeaturePermutation.importance`` with ``scoring``.

    ``X`` has been checked; ``rows`` (the ``max_samples`` subsample, or
    ``None``) was drawn from ``generator``, the permutations come next.
    """
    from sklearn.metrics import check_scoring

    layout = explainer._layout_for(X, settings)
    Xt = layout.adapter.to_model(X)
    index = row_index(X)
    if rows is not None:
        Xt = Xt[rows.to(Xt.device)]
        kept = to_numpy(rows)
        index = index[kept]
        y = None if y is None else y[kept]
        weights = None if weights is None else weights[kept]
    m = Xt.shape[0]
    check_two_rows(m, "importance")
    view = model_view(explainer, layout)
    scorer = check_scoring(view, scoring=explainer.scoring)
    perms = draw_permutations(
        layout, explainer.n_repeats, m, generator, avoid_identity=False
    )
    g, R = perms.shape[:2]
    call = explainer._call(layout, index, settings)
    try:
        with layout.adapter.evaluating(), torch.no_grad():
            base_out = view.run(Xt, call)
            perm_out = permuted_outputs(
                call, Xt, perms, groups=layout.groups, batch_size=settings.batch_size
            )
        call.check()
    finally:
        call.close()
    # slice 0: the batch itself; slice 1 + j * R + r: group j, repeat r
    outputs = torch.cat([base_out[None], perm_out.reshape(g * R, m, -1)])
    responses = view.responses(outputs)
    scores = fast_scores(explainer.scoring, view, responses, y, weights)
    if scores is None:
        scores = _score_each_copy(
            explainer.scoring, scorer, view, responses, Xt, perms, y, weights, layout
        )
    base_score, scores = scores[0], scores[1:].reshape(g, R)
    drops = torch.as_tensor(base_score - scores).T  # [R, g']
    full = to_numpy(layout.to_result(drops).T)  # [g, R]; a dropped column: 0
    return drops_table(full, list(layout.group_names), float(base_score), m)


def drops_table(full: np.ndarray, names: list, base_score: float, m) -> pd.DataFrame:
    """The scored importance table of the drops ``full`` ``[g, R]`` per
    feature and repeat, ``base_score`` the unpermuted score, ``m`` the rows."""
    R = full.shape[1]
    index = pd.Index(names, name="feature")
    table = importance_table(
        pd.Series(full.mean(1), index), pd.Series(full.std(1), index)
    )
    repeats = pd.DataFrame(full, index=index, columns=range(R))
    repeats.columns.name = "repeat"
    table.attrs["importances"] = repeats.loc[table.index]
    table.attrs["baseline_score"] = float(base_score)
    table.attrs["n_rows"] = int(m)
    return table


def draw_permutations(layout, n_repeats: int, n: int, generator, *, avoid_identity):
    """Row permutations ``[g', n_repeats, n]``, drawn up front from ``generator``."""
    g = layout.n_groups
    perms = random_permutations(
        n, g * n_repeats, generator=generator, avoid_identity=avoid_identity
    )
    return perms.reshape(g, n_repeats, n).to(layout.adapter.device)


def check_two_rows(n: int, where: str) -> None:
    if n < 2:
        raise ValueError(
            f"FeaturePermutation.{where} needs at least 2 rows: it shuffles each "
            f"feature across the rows of the batch, and X has {n} row. Pass the "
            "row together with others (e.g. background rows), or use "
            "FeatureAblation for a single row."
        )


def subsample(n: int, max_samples, generator) -> torch.Tensor | None:
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


def _score_each_copy(scoring, scorer, view, responses, Xt, perms, y, weights, layout):
    """The scikit-learn scorer on every copy, each with a view of its outputs."""
    g, R, _ = perms.shape
    X_np = to_numpy(Xt)
    perm_np = to_numpy(perms)
    # the columns of the core's groups, numbered like perms
    cols = [to_numpy(m) for m in group_members(layout.groups, g)]
    by_name = isinstance(scoring, str)

    def data(s: int) -> np.ndarray:
        # scikit-learn's own scorers hand X only to the view, which answers
        # for it from the copy's outputs: the permuted X is built for callables
        if by_name or s == 0:
            return X_np
        j, r = divmod(s - 1, R)
        Xp = X_np.copy()
        Xp[:, cols[j]] = X_np[perm_np[j, r]][:, cols[j]]
        return Xp

    scores = np.empty(1 + g * R)
    for s in range(1 + g * R):  # one scorer call per copy, as scikit-learn
        Xs = data(s)
        answering = view.answering(
            Xs, {key: value[s] for key, value in responses.items()}
        )
        if weights is None:
            scores[s] = float(scorer(answering, Xs, y))
        else:
            scores[s] = float(scorer(answering, Xs, y, sample_weight=weights))
    return scores


# ---------------------------------------------------------------- the view
class ModelView(BaseEstimator):
    """The explained model as a fitted scikit-learn estimator, for scorers.

    Made by :func:`model_view`. ``answering(X, responses)`` gives the view
    for one copy of the batch: for that very ``X`` it answers from
    ``responses`` (the outputs computed in bulk), for any other input it
    runs the model.
    """

    def __init__(self, explainer=None, layout=None):
        self.explainer = explainer
        self.layout = layout

    def fit(self, X=None, y=None):
        """Nothing to fit: the view wraps an already trained model."""
        return self

    def __sklearn_is_fitted__(self):
        return True

    def answering(self, X, responses: dict) -> ModelView:
        view = type(self)(self.explainer, self.layout)
        view._answers = (X, responses)
        return view

    def run(self, Xt: torch.Tensor, call) -> torch.Tensor:
        """Every output ``[m, k]`` at the model-space rows ``Xt``."""
        batch_size = self.explainer.get_params()["batch_size"]
        return row_outputs(call, Xt, batch_size=batch_size)

    def _response(self, X, key: str) -> np.ndarray:
        answers = getattr(self, "_answers", None)
        if answers is not None and X is answers[0]:
            return answers[1][key]
        # a scorer only ever sees the model's input space (the batch after a
        # Pipeline's preprocessing): any other X it predicts on is read there
        adapter = self.layout.adapter
        Xt = adapter.from_model_space(X)
        call = self.explainer._call(
            self.layout, pd.RangeIndex(Xt.shape[0]), self.explainer._settings()
        )
        try:
            with adapter.evaluating(), torch.no_grad():
                outputs = self.run(Xt, call)
            call.check()
        finally:
            call.close()
        return self.responses(outputs[None])[key][0]

    def responses(self, outputs: torch.Tensor) -> dict:
        """Numpy responses for stacked outputs ``[S, m, k]``, keyed by method."""
        raise NotImplementedError


class _RegressorView(RegressorMixin, ModelView):
    def responses(self, outputs):
        out = to_numpy(outputs.double())
        return {"predict": out[..., 0] if out.shape[-1] == 1 else out}

    def predict(self, X):
        return self._response(X, "predict")


class _ClassifierView(ClassifierMixin, ModelView):
    """A classifier: probabilities, labels and, for a plain module's raw
    outputs, a decision function."""

    def _has_decision(self):
        ex = self.explainer
        return ex._adapter.kind != "skorch" and ex.output == "raw"

    def responses(self, outputs):
        ex = self.explainer
        raw = ex.output == "raw"
        proba = to_numpy(self.layout.adapter.proba(outputs) if raw else outputs)
        out = {"predict_proba": proba, "label_index": proba.argmax(axis=-1)}
        if self._has_decision():
            values = to_numpy(outputs)
            out["decision_function"] = (
                values[..., 1] - values[..., 0] if values.shape[-1] == 2 else values
            )
        return out

    def predict_proba(self, X):
        return self._response(X, "predict_proba")

    def predict(self, X):
        return self.classes_[self._response(X, "label_index")]

    @available_if(_has_decision)
    def decision_function(self, X):
        return self._response(X, "decision_function")

    @property
    def classes_(self):
        ex = self.explainer
        if ex.classes_ is not None:
            return np.asarray(ex.classes_)
        return np.arange(self.layout.n_outputs)


def model_view(explainer, layout) -> ModelView:
    """A skorch classifier, or a plain module with two or more outputs, is a
    classifier; anything else a regressor."""
    if explainer._adapter.kind == "skorch":
        classifier = explainer.classes_ is not None
    else:
        classifier = layout.n_outputs >= 2
    return (_ClassifierView if classifier else _RegressorView)(explainer, layout)


# ---------------------------------------------------------------- fast scores
def fast_scores(scoring, view, responses, y, weights) -> np.ndarray | None:
    """Every copy's score at once, for a few common scorer names.

    Same formulas as scikit-learn's metrics, vectorised over the copies;
    ``None`` when the scorer or the data is not one of the cases covered, and
    the scorer is then called copy by copy.
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
