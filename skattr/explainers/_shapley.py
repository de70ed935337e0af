"""ShapleyValueSampling and ShapleyValues: fair credit over feature coalitions."""

from __future__ import annotations

from skattr._data import check_bool, check_int, check_number, check_option
from skattr.core.shapley import SAMPLINGS, shapley_exact, shapley_sampling
from skattr.explainers._base import (
    FITTED_ATTRIBUTES_DOC,
    MODEL_INPUTS_DOC,
    BaseExplainer,
    interval_halfwidth,
)

_SHARED_PARAMS = """\
    baseline : "auto", "zeros", "mean", "median", float, array-like, dict, Series or DataFrame, default="auto"
        Values a feature takes when it is not in a coalition. ``"auto"`` is
        the mean of the ``X`` given to ``fit``, or zeros without it. A number
        is used for every feature; a 1-D array, Series or dict gives one
        value per feature; a DataFrame (or 2-D array) gives background rows:
        the result is then the interventional Shapley value averaged over
        them, at ``n_background`` times the cost.
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
        ``None``: every column is a player. A dict ``{name: [columns]}``
        makes those columns one player named ``name``; an integer array of
        length ``n_features`` (Captum's ``feature_mask``) groups columns
        with the same id, named by their columns joined with ``"+"``.
    batch_size : int, default=4096
        Most rows in one forward call; bounds memory.
    device : str, default=None
        Torch device to compute on; ``None`` uses the model's."""


class ShapleyValueSampling(BaseExplainer):
    __doc__ = f"""Shapley values estimated from random feature orderings.

    For each row, ``n_samples`` random permutations of the features (or
    groups) are drawn; walking along a permutation, each feature in turn is
    switched from the baseline to the row's value, and the change in the
    model output is that feature's marginal contribution. Its mean over the
    permutations estimates the Shapley value, as Captum's
    ``ShapleyValueSampling``; the standard error of that mean comes with it.
    All states of all permutations of all rows are built as tensors and
    evaluated in a few large forward calls. Every row sums exactly (to float
    rounding) to ``f(x) - f(baseline)``, whatever the permutations.

    Parameters
    ----------
    n_samples : int, default=25
        Permutations per row (rounded up to an even number when
        ``antithetic``). With ``tol`` set, the most a row may use.
    antithetic : bool, default=True
        Draw permutations in pairs, a permutation and its reverse, which
        usually lowers the variance. A pair counts as one draw in the
        standard error.
    sampling : {"stratified", "independent"}, default="stratified"
        ``"stratified"``: draws come in blocks of three that rotate one
        random ordering by evenly spaced shifts, so that within a block each
        feature takes positions spread evenly along the ordering (a
        stratification by position; blocks are independent). At equal cost
        it is 1.2 to 1.8 times more accurate than independent draws on the
        games of ``benchmarks/quality.py``; its standard errors treat the
        draws as independent, so they err on the safe side.
        ``"independent"``: every permutation drawn at random (Captum's).
    tol : float, default=None
        Sample to a precision: draw permutations in rounds (4 draws, then
        doubling) and stop drawing for a row once the standard error of
        every one of its attributions is at most ``tol``, in units of the
        explained output, or when it reaches ``n_samples``. ``None`` draws
        ``n_samples`` for every row.
{_SHARED_PARAMS}
    random_state : None, int or numpy.random.Generator, default=None
        Seed of the permutations; the same seed gives the same result,
        whatever ``batch_size``.
    show_progress : bool, default=False
        Show a tqdm progress bar over the forward batches.
{MODEL_INPUTS_DOC}

    Attributes
    ----------
{FITTED_ATTRIBUTES_DOC}

    See Also
    --------
    ShapleyValues : Exact Shapley values for up to ``max_groups`` groups.
    FeatureAblation : One feature removed at a time.

    Notes
    -----
    Cost of ``explain``, in model rows: for each row and each background
    row, ``2 + P * (n_groups - 1)``, where ``P`` is the number of
    permutations (``n_samples``, rounded up to an even number when
    ``antithetic``; with ``tol``, each row's own count): the all-baseline
    and all-``x`` states, the same for every permutation, once, and the
    ``n_groups - 1`` states in between once per permutation, all in the same
    chunked pass (so that a feature the model ignores gets exactly 0). In
    all, ``n_rows * n_background * (2 + P * (n_groups - 1))``, plus
    ``n_rows`` to pick the targets when they are each row's predicted class
    of a multi-output model: a DataFrame of background rows multiplies the
    cost by their number.

    The frame returned by ``explain`` carries, in ``attrs``, without extra
    computation:

    - ``"base_values"``: ``f(baseline)`` per row (a Series);
    - ``"prediction"``: ``f(x)`` per row (a Series; rows sum to
      ``prediction - base_values``);
    - ``"std"``: the standard error of each attribution (a DataFrame like
      the result; NaN when a row had a single draw);
    - ``"ci95"``: the half-width of each attribution's 95% interval, the
      Student-t quantile on ``n_draws - 1`` degrees of freedom times
      ``std`` (a DataFrame like the result);
    - ``"n_draws"``: the independent draws behind each row's estimates
      (antithetic pairs, or permutations; a Series);
    - ``"n_samples"``: permutations used per row (a Series);
    - ``"target"``: the output explained per row.

    References
    ----------
    Castro, Gomez and Tejada (2009), "Polynomial calculation of the Shapley
    value based on sampling". Captum, ``captum.attr.ShapleyValueSampling``.

    Examples
    --------
    >>> import torch
    >>> from skattr import ShapleyValueSampling
    >>> model = torch.nn.Linear(3, 1)
    >>> with torch.no_grad():
    ...     _ = model.weight.copy_(torch.tensor([[1.0, -2.0, 0.0]]))
    ...     _ = model.bias.zero_()
    >>> X = torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 5.0]])
    >>> ex = ShapleyValueSampling(baseline="zeros", random_state=0).fit(model, X)
    >>> attr = ex.explain(X)
    >>> attr
        x0   x1   x2
    0  1.0 -2.0  0.0
    1  2.0  0.0  0.0
    >>> attr.attrs["n_samples"].tolist()
    [26, 26]
    """

    def __init__(
        self,
        *,
        n_samples=25,
        antithetic=True,
        sampling="stratified",
        tol=None,
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
        self.antithetic = antithetic
        self.sampling = sampling
        self.tol = tol
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
        check_bool("antithetic", self.antithetic)
        check_option("sampling", self.sampling, SAMPLINGS)
        check_number("tol", self.tol, strict=True, allow_none=True)

    _extras = {
        "base_values": "row",
        "prediction": "row",
        "std": "cell",
        "ci95": "cell",
        "n_draws": "row",
        "n_samples": "row",
        "target": "target",
    }
    _incremental = True
    _random = True

    def _cost(self, layout, n):
        B, g = layout.baseline.shape[0], layout.n_groups
        per_draw = 2 if self.antithetic else 1
        P = -(-int(self.n_samples) // per_draw) * per_draw
        return self._pick_cost(layout, n) + n * B * (2 + P * (g - 1))

    def _rows_per_chunk(self, layout):
        # the states of every permutation of a chunk's rows are held at once:
        # a quarter of the usual budget keeps the peak flat in n_samples
        per_row = int(self.n_samples) * layout.n_groups * layout.baseline.shape[0]
        return self._chunk_for(layout, per_row, share=0.25)

    def _attribute(self, X, y, layout, call, run):
        result = shapley_sampling(
            call,
            X,
            layout.baseline,
            groups=layout.groups,
            targets=self._targets(y, layout, run.settings.target, X.shape[0]),
            n_samples=self.n_samples,
            antithetic=bool(self.antithetic),
            sampling=self.sampling,
            tol=self.tol,
            generator=run.generator,
            batch_size=run.settings.batch_size,
        )
        per_draw = 2 if self.antithetic else 1
        draws = result.n_permutations // per_draw
        return result.values, {
            "base_values": result.fb,
            "prediction": result.fx,
            "std": result.std,
            "ci95": interval_halfwidth(result.std, draws - 1),
            "n_draws": draws,
            "n_samples": result.n_permutations,
            "target": result.targets,
        }


class ShapleyValues(BaseExplainer):
    __doc__ = f"""Exact Shapley values over all coalitions of the features.

    The model is evaluated once on every coalition of features (or groups)
    of every row, ``2^n_groups`` inputs per row (Captum's ``ShapleyValues``
    walks all ``n_groups!`` orderings instead), and the Shapley weights are
    applied to those values as one matrix product in float64, whatever the
    model's dtype. Every row sums to ``f(x) - f(baseline)``.

    Parameters
    ----------
    max_groups : int, default=20
        Refuse more features (or groups) than this: the cost doubles with
        each one. Use ``feature_groups`` to merge features, or
        ``ShapleyValueSampling``.
{_SHARED_PARAMS}
    show_progress : bool, default=False
        Show a tqdm progress bar over the forward batches.
{MODEL_INPUTS_DOC}

    Attributes
    ----------
{FITTED_ATTRIBUTES_DOC}

    See Also
    --------
    ShapleyValueSampling : Estimates from random orderings, for many features.
    KernelShap : Shapley values from a weighted linear regression.

    Notes
    -----
    Cost of ``explain``, in model rows: every coalition of every row with
    every background row, ``n_rows * 2^n_groups * n_background``, plus
    ``n_rows`` to pick the targets when they are each row's predicted class
    of a multi-output model: a DataFrame of background rows multiplies the
    cost by their number.
    Memory: ``8 * n_rows * 2^n_groups`` bytes per explained output for the
    coalition values (8 MB per row at 20 groups), plus the marginal
    contributions in chunks of at most 128 MB.

    The frame returned by ``explain`` carries in ``attrs``:
    ``"base_values"``, ``f(baseline)`` per row (a Series), ``"prediction"``,
    ``f(x)`` per row, and ``"target"``,
    the output explained per row.

    References
    ----------
    Shapley (1953), "A value for n-person games". Captum,
    ``captum.attr.ShapleyValues``.

    Examples
    --------
    >>> import torch
    >>> from skattr import ShapleyValues
    >>> class Product(torch.nn.Module):
    ...     def forward(self, x):
    ...         return (x[:, :1] * x[:, 1:2]) + x[:, 2:]
    >>> X = torch.tensor([[2.0, 3.0, 1.0]])
    >>> ShapleyValues(baseline="zeros").fit(Product(), X).explain(X)
        x0   x1   x2
    0  3.0  3.0  1.0
    """

    def __init__(
        self,
        *,
        max_groups=20,
        baseline="auto",
        target=None,
        output="raw",
        feature_groups=None,
        batch_size=4096,
        device=None,
        show_progress=False,
        model_inputs=None,
    ):
        self.max_groups = max_groups
        self.baseline = baseline
        self.target = target
        self.output = output
        self.feature_groups = feature_groups
        self.batch_size = batch_size
        self.device = device
        self.show_progress = show_progress
        self.model_inputs = model_inputs

    def _check_params(self):
        check_int("max_groups", self.max_groups)

    def _check_layout(self, layout):
        g = layout.n_groups
        if g > self.max_groups:
            count = f"2^{g} = {2**g:,}" if g <= 40 else f"2^{g}"
            raise ValueError(
                f"ShapleyValues needs {count} model evaluations per row "
                "(and per background row) "
                f"for {g} features (groups), more than max_groups={self.max_groups} "
                "allows. Use ShapleyValueSampling, merge features with "
                "feature_groups, or raise max_groups."
            )

    _extras = {"base_values": "row", "prediction": "row", "target": "target"}

    def _cost(self, layout, n):
        B = layout.baseline.shape[0]
        return self._pick_cost(layout, n) + n * 2**layout.n_groups * B

    def _rows_per_chunk(self, layout):
        return self._chunk_for(layout, 2**layout.n_groups * layout.baseline.shape[0])

    def _attribute(self, X, y, layout, call, run):
        result = shapley_exact(
            call,
            X,
            layout.baseline,
            groups=layout.groups,
            targets=self._targets(y, layout, run.settings.target, X.shape[0]),
            batch_size=run.settings.batch_size,
        )
        return result.values, {
            "base_values": result.fb,
            "prediction": result.fx,
            "target": result.targets,
        }

    _incremental = True
