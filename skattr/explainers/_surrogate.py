"""KernelShap and Lime: a weighted linear surrogate per row, all rows at once."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.base import clone

from skattr._data import (
    check_coalition_count,
    check_int,
    check_number,
    check_option,
    check_pairs_cover_groups,
    check_similarity_weights,
    checked_coalitions,
    checked_similarity,
    to_numpy,
)
from skattr.core.designs import ALLOCATIONS
from skattr.core.kernel_shap import REGRESSIONS, kernel_shap, kernel_shap_size
from skattr.core.surrogate import (
    bernoulli_coalitions,
    exp_kernel_similarity,
    lime_samples,
    weighted_lasso,
)
from skattr.explainers._base import (
    BaseExplainer,
    interval_halfwidth,
    with_fitted_attributes,
)

_SHARED_DOC = """
    baseline : "auto", "zeros", "mean", "median", float, array-like, dict, Series or DataFrame, default="auto"
        Value a feature takes when it is left out of a coalition. ``"auto"``
        is the mean of the ``X`` given to ``fit``, or zeros without it. A
        number is used for every feature; a 1-D array, Series or dict gives
        one value per feature; a DataFrame (or 2-D array) gives background
        rows: the value of a coalition is then the mean model output over
        them (SHAP's interventional definition).
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
        ``None``: every column is a feature. A dict ``{name: [columns]}``
        keeps or drops those columns together under ``name``; an integer
        array of length ``n_features`` (Captum's ``feature_mask``) groups
        columns with the same id, named by their columns joined with ``"+"``.
    batch_size : int, default=4096
        Most rows in one forward call; bounds memory. Does not change the
        result.
    device : str, default=None
        Torch device to compute on; ``None`` uses the model's.
    random_state : None, int or numpy.random.Generator, default=None
        Seed of the coalitions; an int gives the same result on every call.
    show_progress : bool, default=False
        Show a tqdm progress bar over the forward batches.
    {model_inputs}"""


def _doc(cls):
    cls.__doc__ = cls.__doc__.replace("    {shared}", _SHARED_DOC.strip("\n"))
    return with_fitted_attributes(cls)


@_doc
class KernelShap(BaseExplainer):
    """Kernel SHAP: Shapley values from a weighted regression over coalitions.

    A coalition ``z`` of feature groups stands for the input that keeps the
    groups in ``z`` from the row and takes the others from the baseline.
    Kernel SHAP fits ``v(z) ~ v(0) + z . phi`` by least squares weighted with
    the Shapley kernel, with ``sum(phi) = f(x) - f(baseline)`` enforced
    exactly; when all ``2**g - 2`` non-trivial coalitions fit in
    ``n_samples`` they are all evaluated and the result is the exact Shapley
    values. Otherwise, for the most accurate estimate per model evaluation:

    - coalitions come in complementary pairs, shared by all rows;
    - pairs are grouped by size, and every size whose pairs the budget
      covers is enumerated completely (in practice the smallest and largest
      coalitions, which carry most of the kernel's weight); the other sizes
      get an equal share of the rest (``sampling="leverage"``, the leverage
      scores of the regression) or a share by kernel weight
      (``sampling="kernel"``), drawn without replacement;
    - the regression also fits third-order interaction terms, penalised,
      with the penalty chosen per row by leave-one-pair-out error
      (``regression="cubic"``); it falls back to plain Kernel SHAP
      (``regression="linear"``) where they do not predict.

    The standard error of each estimate is the jackknife over the drawn
    pairs (0 for enumerated sizes); ``tol`` draws until it is small enough.

    Parameters
    ----------
    n_samples : int, default=None
        Coalitions evaluated per row (the empty and full coalitions, evaluated
        with them for ``f(baseline)`` and ``f(x)``, are not counted), rounded
        down to an even number; with ``tol`` set, the most a row may use.
        ``None``: ``2 * g + 2048`` for ``g`` feature groups. Fewer than
        ``2 * g`` (fewer coalition pairs than groups) are refused at
        ``explain`` unless they enumerate every coalition: the regression
        would be underdetermined and its values arbitrary.
    tol : float, default=None
        Sample to a precision: grow the coalitions in rounds (first as many
        pairs as there are coalition sizes plus 8, then doubling) and stop a
        row once the standard error of every one of its attributions is at
        most ``tol``, in units of the explained output (and at least 8 pairs
        were drawn), or at ``n_samples``. ``None`` uses ``n_samples``.
    sampling : {"leverage", "kernel"}, default="leverage"
        How the coalitions not enumerated are shared among the sizes.
    regression : {"cubic", "linear"}, default="cubic"
        ``"linear"``: Kernel SHAP's regression on the pairs; ``"cubic"``:
        with penalised third-order terms (the same result once every
        coalition is evaluated).
    {shared}

    Attributes
    ----------
    {attributes}

    See Also
    --------
    ShapleyValueSampling : Shapley values by sampling permutations.
    ShapleyValues : Exact Shapley values, ``2**g`` evaluations per row.
    Lime : A Lasso surrogate with a similarity kernel.

    Notes
    -----
    Cost: ``n_rows * (2 + min(n_samples, 2**g - 2)) * n_background`` model
    rows (the full and the empty coalition in the same pass as the others;
    with ``tol``, each row's own count), plus ``n_rows`` to pick the targets
    when they are each row's predicted class of a multi-output model. The
    regression costs one eigendecomposition of an ``m x m`` matrix for ``m``
    pairs (``n_samples / 2``), shared by all rows: about a second at
    ``m = 1000``, and about ``4 * m**2`` float64 values of memory at its
    peak (``regression="linear"`` needs none). Each row sums to
    ``f(x) - f(baseline)`` (efficiency), ``f(baseline)`` being the mean over
    the background rows.

    The frame returned by ``explain`` carries in ``attrs``:

    - ``"base_values"`` (f(baseline) per row, a Series) and ``"prediction"``
      (f(x) per row);
    - ``"std"``: the standard error of each attribution (a DataFrame like
      the result; 0 when every coalition was evaluated);
    - ``"ci95"``: the half-width of each attribution's 95% interval,
      the Student-t quantile on the jackknife's degrees of freedom times
      ``std`` (a DataFrame like the result);
    - ``"n_draws"``: the pairs drawn at random per row, the independent
      draws behind ``std`` (a Series; 0 when every coalition was evaluated);
    - ``"n_samples"``: coalitions evaluated per row (a Series);
    - ``"exact"``: whether all coalitions were enumerated;
    - ``"target"``: the output explained per row.

    References
    ----------
    Lundberg and Lee, "A Unified Approach to Interpreting Model
    Predictions", NeurIPS 2017. Covert and Lee, "Improving KernelSHAP",
    AISTATS 2021 (paired sampling, standard errors). Musco and Witter,
    "Provably Accurate Shapley Value Estimation via Leverage Score
    Sampling", ICLR 2025. Captum, ``captum.attr.KernelShap``.

    Examples
    --------
    >>> import torch
    >>> from skattr import KernelShap
    >>> model = torch.nn.Linear(3, 1)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, -2.0, 0.0]]))
    ...     _ = model.bias.zero_()
    >>> X = torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 5.0]])
    >>> KernelShap(baseline="zeros").fit(model, X).explain(X).round(6)
        x0   x1   x2
    0  1.0 -2.0  0.0
    1  2.0  0.0  0.0
    """

    def __init__(
        self,
        *,
        n_samples=None,
        tol=None,
        sampling="leverage",
        regression="cubic",
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
        self.tol = tol
        self.sampling = sampling
        self.regression = regression
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
        check_coalition_count("n_samples", self.n_samples)
        check_number("tol", self.tol, strict=True, allow_none=True)
        check_option("sampling", self.sampling, ALLOCATIONS)
        check_option("regression", self.regression, REGRESSIONS)

    _extras = {
        "base_values": "row",
        "prediction": "row",
        "std": "cell",
        "ci95": "cell",
        "n_draws": "row",
        "n_samples": "row",
        "exact": "call",
        "target": "target",
    }
    _random = True
    _incremental = True

    def _check_layout(self, layout):
        g = layout.n_groups
        check_pairs_cover_groups(
            "KernelShap",
            self.n_samples,
            g,
            kernel_shap_size(g, self.n_samples)[1],
            "2 * g + 2048; ShapleyValueSampling is unbiased at any budget",
        )

    def _cost(self, layout, n):
        B = layout.baseline.shape[0]
        s = kernel_shap_size(layout.n_groups, self.n_samples)[0]
        return self._pick_cost(layout, n) + n * (s + 2) * B

    def _rows_per_chunk(self, layout):
        return self._chunk_for(
            layout, kernel_shap_size(layout.n_groups, self.n_samples)[0]
        )

    def _chunk_generator(self, generator, state, i):
        # every chunk draws the same pairs: the design is shared by all rows,
        # so a row's values do not depend on the chunk it falls in
        return torch.Generator(device=generator.device).set_state(state)

    def _attribute(self, X, y, layout, call, run):
        n_coalitions, _ = kernel_shap_size(layout.n_groups, self.n_samples)
        result = kernel_shap(
            call,
            X,
            layout.baseline,
            groups=layout.groups,
            targets=self._targets(y, layout, run.settings.target, X.shape[0]),
            n_samples=n_coalitions,
            batch_size=run.settings.batch_size,
            generator=run.generator,
            allocation=self.sampling,
            regression=self.regression,
            tol=self.tol,
            memo=run.memo,
        )
        return result.values, {
            "base_values": result.fb,
            "prediction": result.fx,
            "std": result.std,
            "ci95": interval_halfwidth(result.std, result.df),
            "n_draws": result.n_draws,
            "n_samples": result.n_coalitions,
            "exact": result.exact,
            "target": result.targets,
        }


@_doc
class Lime(BaseExplainer):
    """LIME: a sparse linear surrogate per row, weighted by similarity.

    For each row, ``n_samples`` binary coalitions ``z`` over the feature
    groups are drawn (each group kept with probability 1/2, as Captum's
    default), each standing for the input that keeps the groups in ``z``
    from the row and takes the others from the baseline. Each perturbed
    input is weighted by its similarity to the row,
    ``exp(-d**2 / (2 * kernel_width**2))`` with ``d`` the cosine or
    Euclidean distance between the row and the perturbed input (Captum's
    ``get_exp_kernel_similarity_function``), and a linear model of the
    target output over ``z`` is fitted: by default scikit-learn's
    ``Lasso(alpha)`` objective (Captum's default surrogate), solved for all
    rows at once in torch. The coefficients are the attributions.

    Parameters
    ----------
    n_samples : int, default=50
        Perturbed inputs per row.
    kernel_width : float, default=1.0
        Width of the exponential similarity kernel.
    distance : {"cosine", "euclidean"}, default="cosine"
        Distance between a row and its perturbed inputs, in the model's
        input space; for a model with integer or category ``model_inputs``,
        between the coalitions (the row being all ones), so that codes never
        enter a distance.
    alpha : float, default=0.01
        L1 penalty of the Lasso surrogate (scikit-learn's ``alpha``); ``0``
        gives weighted least squares. Ignored with ``interpretable_model``.
    interpretable_model : scikit-learn regressor, default=None
        ``None``: the batched torch Lasso. Otherwise any scikit-learn
        regressor whose ``fit`` takes ``sample_weight`` and that exposes
        ``coef_`` (and ``intercept_``), cloned and fitted once per row on
        ``(Z, y, sample_weight=w)``. This is the slow path: one Python fit
        per row.
    perturb_func : callable, default=None
        ``perturb_func(n_rows, n_groups, n_samples, generator) -> Tensor``
        of shape ``(n_rows, n_samples, n_groups)`` (coalitions per row) or
        ``(n_samples, n_groups)`` (shared by all rows), with values in
        {0, 1} (1: the group keeps the row's value). ``generator`` is a
        ``torch.Generator`` on the explainer's device, seeded from
        ``random_state``: draw from it (with ``device=generator.device``) to
        stay reproducible. ``None``: each group kept with probability 1/2.
    similarity_func : callable, default=None
        ``similarity_func(X, Z_inputs, Z_interp) -> Tensor`` of shape
        ``(m,)``, Captum's order of arguments (original, perturbed,
        interpretable): the weight (finite, at least 0) of perturbed input
        ``Z_inputs[i]`` (shape ``(m, n_model_inputs)``, built from
        coalition ``Z_interp[i]``, a float 0/1 tensor ``(m, n_groups)``)
        for the explained row ``X[i]`` (``(m, n_model_inputs)``). Called on
        chunks of at most ``batch_size`` perturbed inputs at once (Captum
        calls it on one), on the device: compute along the last dimension.
        ``None``: the exponential kernel over ``distance`` with
        ``kernel_width``.
    {shared}

    Attributes
    ----------
    {attributes}

    See Also
    --------
    KernelShap : The Shapley kernel instead of a similarity kernel.
    FeatureAblation : One group at a time replaced by the baseline.

    Notes
    -----
    Cost: ``n_rows * (n_samples + 2) * n_background`` model rows (with
    ``f(x)`` and ``f(baseline)``; plus ``n_rows`` to pick predicted targets
    of a multi-output model), then one
    batched Lasso: FISTA on per-row ``g x g`` Gram matrices until every
    row's duality gap is below ``1e-12`` times the weighted variance of its
    outputs, polished by an exact solve on the active set; coefficients
    match ``Lasso(alpha).fit(Z, y, sample_weight=w)`` to about ``1e-9``.
    With background rows, the output of a coalition and its similarity
    are both averaged over them. The frame returned by ``explain`` carries
    in ``attrs``: ``"intercept"`` (each row's surrogate intercept, a
    Series), ``"base_values"`` (f(baseline) per row), ``"target"`` (the
    output explained per row) and ``"n_samples"``. Unlike Kernel SHAP the
    attributions do not sum to ``f(x) - f(baseline)``.

    References
    ----------
    Ribeiro, Singh and Guestrin, "Why Should I Trust You?", KDD 2016.
    Captum, ``captum.attr.Lime``.

    Examples
    --------
    >>> import torch
    >>> from sklearn.linear_model import LinearRegression
    >>> from skattr import Lime
    >>> model = torch.nn.Linear(3, 1)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, -2.0, 0.0]]))
    ...     _ = model.bias.zero_()
    >>> X = torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 5.0]])
    >>> lime = Lime(baseline="zeros", alpha=0.0, random_state=0)
    >>> lime.fit(model, X).explain(X).round(6)
        x0   x1   x2
    0  1.0 -2.0  0.0
    1  2.0  0.0  0.0
    """

    def __init__(
        self,
        *,
        n_samples=50,
        kernel_width=1.0,
        distance="cosine",
        alpha=0.01,
        interpretable_model=None,
        perturb_func=None,
        similarity_func=None,
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
        self.kernel_width = kernel_width
        self.distance = distance
        self.alpha = alpha
        self.interpretable_model = interpretable_model
        self.perturb_func = perturb_func
        self.similarity_func = similarity_func
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
        check_int("n_samples", self.n_samples)
        check_number("kernel_width", self.kernel_width, strict=True)
        check_option("distance", self.distance, ("cosine", "euclidean"))
        check_number("alpha", self.alpha)
        model = self.interpretable_model
        if model is not None and not (
            hasattr(model, "fit") and hasattr(model, "get_params")
        ):
            raise TypeError(
                "interpretable_model must be a scikit-learn regressor (with fit and "
                f"get_params) or None; got {type(model).__name__}. (Captum's "
                "SkLearnLasso wraps one: pass sklearn.linear_model.Lasso(alpha=...) "
                "itself.)"
            )
        for name in ("perturb_func", "similarity_func"):
            value = getattr(self, name)
            if value is not None and not callable(value):
                raise TypeError(f"{name} must be callable or None; got {value!r}.")

    def _coalitions(self, n: int, g: int, generator: torch.Generator) -> torch.Tensor:
        s = int(self.n_samples)
        if self.perturb_func is None:
            return bernoulli_coalitions(n, g, s, generator)
        return checked_coalitions(self.perturb_func, n, g, s, generator)

    _extras = {
        "intercept": "row",
        "base_values": "row",
        "n_samples": "row",
        "target": "target",
    }
    _random = True

    def _cost(self, layout, n):
        B = layout.baseline.shape[0]
        return self._pick_cost(layout, n) + n * (int(self.n_samples) + 2) * B

    def _rows_per_chunk(self, layout):
        # each row's samples are held as [n_samples, groups] for its Lasso,
        # and its Gram matrix [groups, groups] about four times (the Gram, the
        # active-set system, its factors and mask): with fewer samples than
        # groups the Gram matrices are the larger part
        g = layout.n_groups
        return self._chunk_for(layout, (int(self.n_samples) + 4 * g) * g)

    def _attribute(self, X, y, layout, call, run):
        n = X.shape[0]
        Z = self._coalitions(n, layout.n_groups, run.generator)
        similarity = self.similarity_func
        if similarity is not None:
            similarity = checked_similarity(similarity)
        else:
            kernel = exp_kernel_similarity(self.distance, float(self.kernel_width))
            similarity = kernel
            inputs = layout.adapter.inputs
            if inputs is not None and inputs.code_columns:
                # codes are labels, not coordinates: measure the distance in
                # the coalition space (the row is the all-ones coalition)
                def similarity(x, z, model_inputs):
                    return kernel(torch.ones_like(z), z, z)

        v, w, cv = lime_samples(
            call,
            X,
            layout.baseline,
            Z,
            groups=layout.groups,
            targets=self._targets(y, layout, run.settings.target, X.shape[0]),
            similarity=similarity,
            batch_size=run.settings.batch_size,
        )
        call.check()  # before the solve: a NaN output would keep the Lasso going
        self._check_weights(w, Z, call)
        # one surrogate per (row, target): the targets' axis joins the rows
        t = v.shape[2]
        v = v.permute(0, 2, 1).reshape(n * t, -1)
        w = w.repeat_interleave(t, 0)
        Zt = Z if Z.dim() == 2 else Z.repeat_interleave(t, 0)
        if self.interpretable_model is None:
            coef, intercept = weighted_lasso(Zt, v, w, float(self.alpha))
        else:
            coef, intercept = self._fit_each_row(Zt, v, w)
        return coef.reshape(n, t, -1).permute(0, 2, 1), {
            "intercept": intercept.reshape(n, t),
            "base_values": cv.fb,
            "n_samples": int(self.n_samples),
            "target": cv.targets,
        }

    def _check_weights(self, w: torch.Tensor, Z: torch.Tensor, call) -> None:
        """The weights' check (:func:`~skattr._data.check_similarity_weights`),
        its messages naming this explainer's cause and fix."""
        if self.similarity_func is not None:
            cause, fix = "the similarity_func's weights", "Check the similarity_func."
        else:
            cause = (
                f"kernel_width={self.kernel_width} is small for these "
                f"{self.distance} distances"
            )
            fix = "Raise kernel_width, or use distance='cosine'."
        check_similarity_weights(w, Z, call.row_label, cause, fix)

    def _fit_each_row(self, Z, v, w):
        """The slow path: one scikit-learn fit per row."""
        n, s = v.shape
        Zn = Z.expand(n, *Z.shape[-2:]) if Z.dim() == 2 else Z
        Zn, vn, wn = to_numpy(Zn.double()), to_numpy(v), to_numpy(w)
        coefs, intercepts = [], []
        for r in range(n):
            model = clone(self.interpretable_model)
            model.fit(Zn[r], vn[r], sample_weight=wn[r])
            coefs.append(np.ravel(model.coef_))
            intercepts.append(float(np.ravel(getattr(model, "intercept_", 0.0))[0]))
        return (
            torch.as_tensor(np.stack(coefs), dtype=torch.float64),
            torch.as_tensor(intercepts, dtype=torch.float64),
        )
