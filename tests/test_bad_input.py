"""The bad-input matrix: every bad input gets its own error, nothing is changed.

Each case is one kind of bad input at one entry point (``fit``, ``explain``,
``importance``; constructor parameters are checked at ``fit``), run on every
explainer it applies to. It expects an exception type and a fragment of the
message, and checks that the user's ``X`` and model (parameters, train/eval
mode, ``requires_grad`` flags, hooks) are exactly as before. The table in
``docs/bad_input.md`` lists the same cases; a test keeps the two in step.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import skattr
from skattr.exceptions import NotFittedError

from .conftest import (
    CATEGORY_INPUTS,
    FAST_PARAMS,
    MLP,
    CategoryNet,
    NaNAtRow,
    category_frame,
    explainer_names,
)

ALL = tuple(explainer_names())
BASELINED = tuple(n for n in ALL if n not in ("FeaturePermutation", "NeuronGradient"))
SAMPLED = (
    "ShapleyValueSampling",
    "KernelShap",
    "Lime",
    "GradientShap",
    "LayerGradientShap",
)
TARGETED = tuple(n for n in ALL if n != "NeuronGradient")
LAYERED = ("LayerGradientShap", "NeuronGradient")
DOCS = Path(__file__).resolve().parents[1] / "docs" / "bad_input.md"


def make(name, **params):
    """The explainer ``name`` with fast settings, overridden by ``params``."""
    return getattr(skattr, name)(**{**FAST_PARAMS[name], **params})


def frame(n=12):
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        rng.normal(size=(n, 5)).astype(np.float32),
        columns=[f"f{i}" for i in range(5)],
    )


# ---------------------------------------------------------------- models
class Returns(nn.Module):
    """A model that returns what ``how`` makes of its input."""

    def __init__(self, how):
        super().__init__()
        self.how = how
        self.linear = nn.Linear(5, 2)

    def forward(self, x):
        return self.how(self.linear(x))


def skorch_classifier(X):
    from skorch import NeuralNetClassifier

    torch.manual_seed(0)
    net = NeuralNetClassifier(
        nn.Sequential(nn.Linear(5, 3)), max_epochs=1, train_split=None, verbose=0
    )
    return net.fit(X.to_numpy(), np.array([0, 1, 2] * 4))


# ---------------------------------------------------------------- cases
@dataclass(frozen=True)
class Case:
    id: str
    entry: str  #: "fit", "explain" or "importance"
    explainers: tuple
    call: object  #: call(name, model, X) -> raises
    error: type
    match: str  #: a regular expression searched in the message


def _with(X, row, col, value):
    X = X.copy()
    X.iloc[row, col] = value
    return X


CASES = [
    # ---- what X holds
    Case("X with NaN", "explain", ALL,
         lambda n, m, X: make(n).fit(m, X).explain(_with(X, 2, 3, np.nan)),
         ValueError, r"NaN in column\(s\) 'f3'"),
    Case("X with inf", "explain", ALL,
         lambda n, m, X: make(n).fit(m, X).explain(_with(X, 0, 0, np.inf)),
         ValueError, r"infinity in column\(s\) 'f0'"),
    Case("X with strings", "explain", ALL,
         lambda n, m, X: make(n).fit(m, X).explain(X.assign(f1="a")),
         TypeError, r"non-numeric column\(s\) 'f1'.*Pipeline"),
    Case("X of complex numbers", "explain", ("FeatureAblation",),
         lambda n, m, X: make(n).fit(m, X).explain(X.to_numpy().astype(np.complex64)),
         TypeError, "complex numbers"),
    Case("X with a complex column", "explain", ("ShapleyValues",),
         lambda n, m, X: make(n).fit(m, X).explain(X.astype({"f2": np.complex128})),
         TypeError, r"column\(s\) \['f2'\] of complex numbers"),
    Case("X empty", "explain", ALL,
         lambda n, m, X: make(n).fit(m, X).explain(X.iloc[:0]),
         ValueError, "X is empty: it has 0 rows"),
    Case("X with a column name twice", "explain", ALL,
         lambda n, m, X: make(n).fit(m).explain(
             X.set_axis(["f0", "f1", "f0", "f3", "f4"], axis=1)),
         ValueError, "more than one column named 'f0'"),
    Case("X is None", "explain", ("KernelShap",),
         lambda n, m, X: make(n).fit(m, X).explain(None),
         ValueError, "X is None"),
    Case("X is 3-D", "explain", ("Lime",),
         lambda n, m, X: make(n).fit(m, X).explain(torch.zeros(2, 5, 1)),
         ValueError, r"Expected 2-D X.*reshape"),
    Case("X is a Series", "explain", ("ShapleyValues",),
         lambda n, m, X: make(n).fit(m, X).explain(X.iloc[0]),
         ValueError, r"pandas Series.*to_frame\(\)\.T"),
    Case("fit X with NaN", "fit", ALL,
         lambda n, m, X: make(n).fit(m, _with(X, 1, 1, np.nan)),
         ValueError, r"NaN in column\(s\) 'f1'"),
    Case("one row where two are needed", "explain", ("FeaturePermutation",),
         lambda n, m, X: make(n).fit(m, X).explain(X.iloc[:1]),
         ValueError, "needs at least 2 rows"),
    Case("one row to score", "importance", ("FeaturePermutation",),
         lambda n, m, X: make(n, scoring="neg_mean_squared_error")
         .fit(m, X).importance(X.iloc[:1], np.zeros(1)),
         ValueError, "needs at least 2 rows"),
    # ---- columns against fit
    Case("column missing", "explain", ALL,
         lambda n, m, X: make(n).fit(m, X).explain(X.drop(columns="f4")),
         ValueError, r"seen at fit time, yet now missing:\n- f4"),
    Case("column extra", "explain", ALL,
         lambda n, m, X: make(n).fit(m, X).explain(X.assign(f5=1.0)),
         ValueError, r"unseen at fit time:\n- f5"),
    Case("column renamed", "explain", ("ShapleyValueSampling",),
         lambda n, m, X: make(n).fit(m, X).explain(X.rename(columns={"f2": "zz"})),
         ValueError, r"unseen at fit time:\n- zz"),
    Case("columns reordered", "explain", ALL,
         lambda n, m, X: make(n).fit(m, X).explain(X[X.columns[::-1]]),
         ValueError, "same order as they were in fit"),
    Case("integer column labels reordered", "explain", ("FeatureAblation", "Lime"),
         lambda n, m, X: make(n).fit(m, X.set_axis(range(5), axis=1))
         .explain(X.set_axis(range(5), axis=1)[[4, 3, 2, 1, 0]]),
         ValueError, "columns of fit in another order"),
    Case("array of another width", "explain", ("FeatureAblation", "GradientShap"),
         lambda n, m, X: make(n).fit(m, X).explain(X.to_numpy()[:, :4]),
         ValueError, r"X has 4 features, but \w+ is expecting 5"),
    # ---- y
    Case("y of the wrong length", "explain", ("FeatureAblation", "KernelShap"),
         lambda n, m, X: make(n, target="true").fit(m, X).explain(X, np.zeros(3)),
         ValueError, "y has 3 entries but X has 12 rows"),
    Case("y holding X's labels in another order", "explain", ("ShapleyValues",),
         lambda n, m, X: make(n, target="true").fit(m, X)
         .explain(X.set_axis(list("abcdefghijkl")),
                  pd.Series([0, 1, 2] * 4, index=list("lkjihgfedcba"))),
         ValueError, r"y holds the labels of X in another order.*y\.loc\[X\.index\]"),
    Case("y 2-D", "explain", ("FeatureAblation",),
         lambda n, m, X: make(n, target="true").fit(m, X).explain(X, np.zeros((12, 2))),
         ValueError, "y must be 1-D"),
    Case("y with labels outside the outputs", "explain", ("ShapleyValues",),
         lambda n, m, X: make(n, target="true").fit(m, X).explain(X, np.full(12, 7)),
         ValueError, r"labels outside 0\.\.2"),
    Case("y with labels that are not classes", "explain", ("FeatureAblation",),
         lambda n, m, X: make(n, target="true")
         .fit(skorch_classifier(X), X).explain(X, np.array([0, 7] * 6)),
         ValueError, r"labels \[7\] that are not classes of the model \(\[0, 1, 2\]\)"),
    Case("target='true' without y", "explain", ("FeatureAblation", "Lime"),
         lambda n, m, X: make(n, target="true").fit(m, X).explain(X),
         ValueError, "needs the true labels"),
    Case("sample_weight of the wrong length", "importance", ("FeaturePermutation",),
         lambda n, m, X: make(n).fit(m, X).importance(X, sample_weight=np.ones(3)),
         ValueError, r"one weight per row of X \(12\)"),
    # ---- targets
    Case("target out of range", "fit", TARGETED,
         lambda n, m, X: make(n, target=7).fit(m, X),
         ValueError, r"target=7 is out of range.*0\.\.2"),
    Case("target negative", "fit", ("FeatureAblation",),
         lambda n, m, X: make(n, target=-1).fit(m, X),
         ValueError, "target=-1 is out of range"),
    Case("target a float", "fit", ("KernelShap",),
         lambda n, m, X: make(n, target=1.5).fit(m, X),
         ValueError, "target=1.5 is neither an output column"),
    Case("target a class of a regressor", "fit",
         ("FeatureAblation", "GradientShap"),
         lambda n, m, X: make(n, target="predicted").fit(_regressor(2), X),
         ValueError, "'predicted' explains each row's predicted class.*regressor"),
    Case("output changed by set_params after fit", "explain",
         ("ShapleyValues", "GradientShap"),
         lambda n, m, X: make(n).fit(m, X).set_params(output="proba").explain(X),
         ValueError, "output was changed by set_params after fit.*Call fit"),
    Case("target a list", "fit", ("ShapleyValueSampling",),
         lambda n, m, X: make(n, target=[0, 1]).fit(m, X),
         TypeError, "one output for every row, not a list"),
    Case("target a 0-d tensor", "fit", ("FeatureAblation",),
         lambda n, m, X: make(n, target=torch.tensor(1)).fit(m, X),
         TypeError, r"0-d Tensor.*target=target\.item\(\)"),
    Case("target an unknown word", "fit", ("GradientShap",),
         lambda n, m, X: make(n, target="cat").fit(m, X),
         ValueError, "target='cat' is neither"),
    Case("target='true' on one output", "fit", ("FeatureAblation",),
         lambda n, m, X: make(n, target="true").fit(MLP(n_out=1), X),
         ValueError, "single output"),
    # ---- counts and sizes
    Case("n_samples zero", "fit", SAMPLED,
         lambda n, m, X: make(n, n_samples=0).fit(m, X),
         ValueError, "n_samples must be an integer >= 1; got 0"),
    Case("n_samples negative", "fit", SAMPLED,
         lambda n, m, X: make(n, n_samples=-5).fit(m, X),
         ValueError, "n_samples must be an integer >= 1; got -5"),
    Case("n_samples one for a design of pairs", "fit",
         ("KernelShap", "ShapleyInteractions"),
         lambda n, m, X: make(n, n_samples=1).fit(m, X),
         ValueError, "n_samples counts coalitions, which come in pairs"),
    Case("n_samples fewer pairs than features", "explain",
         ("KernelShap", "ShapleyInteractions"),
         lambda n, m, X: make(n, n_samples=6).fit(m, X).explain(X),
         ValueError, "evaluates 3 coalition pairs for 5 features"),
    Case("n_samples not an integer", "fit", ("Lime",),
         lambda n, m, X: make(n, n_samples=1.5).fit(m, X),
         ValueError, "n_samples must be an integer >= 1; got 1.5"),
    Case("n_repeats zero", "fit", ("FeaturePermutation",),
         lambda n, m, X: make(n, n_repeats=0).fit(m, X),
         ValueError, "n_repeats must be an integer >= 1; got 0"),
    Case("batch_size zero", "fit", ALL,
         lambda n, m, X: make(n, batch_size=0).fit(m, X),
         ValueError, "batch_size must be an integer >= 1; got 0"),
    Case("batch_size negative", "fit", ("FeatureAblation",),
         lambda n, m, X: make(n, batch_size=-3).fit(m, X),
         ValueError, "batch_size must be an integer >= 1; got -3"),
    Case("max_samples zero", "importance", ("FeaturePermutation",),
         lambda n, m, X: make(n).fit(m, X).importance(X, max_samples=0),
         ValueError, "max_samples=0 must be between 1 and"),
    Case("too many groups for exact values", "explain",
         ("ShapleyValues", "ShapleyInteractions"),
         lambda n, m, X: make(n, max_groups=3).fit(m, X).explain(X),
         ValueError, r"2\^5 = 32 .*max_groups=3"),
    # ---- other parameters
    Case("output unknown", "fit", TARGETED,
         lambda n, m, X: make(n, output="prob").fit(m, X),
         ValueError, r"output must be one of \['raw', 'proba'\]"),
    Case("device unknown", "fit", ("FeatureAblation",),
         lambda n, m, X: make(n, device="tpu").fit(m, X),
         ValueError, "device='tpu' is not a torch device"),
    Case("show_progress not a bool", "fit", ("FeatureAblation",),
         lambda n, m, X: make(n, show_progress="yes").fit(m, X),
         TypeError, "show_progress must be True or False"),
    Case("random_state not a seed", "explain", ("ShapleyValueSampling",),
         lambda n, m, X: make(n, random_state="x").fit(m, X).explain(X),
         ValueError, "cannot be used to seed"),
    Case("tol negative", "fit", ("ShapleyValueSampling", "KernelShap"),
         lambda n, m, X: make(n, tol=-1).fit(m, X),
         ValueError, "tol must be a finite number > 0.0"),
    Case("antithetic not a bool", "fit", ("ShapleyValueSampling",),
         lambda n, m, X: make(n, antithetic="yes").fit(m, X),
         TypeError, "antithetic must be True or False"),
    Case("stdevs negative", "fit", ("GradientShap", "LayerGradientShap"),
         lambda n, m, X: make(n, stdevs=-1.0).fit(m, X),
         ValueError, "stdevs must be a finite number >= 0.0"),
    Case("kernel_width not positive", "fit", ("Lime",),
         lambda n, m, X: make(n, kernel_width=0.0).fit(m, X),
         ValueError, "kernel_width must be a finite number > 0.0"),
    Case("distance unknown", "fit", ("Lime",),
         lambda n, m, X: make(n, distance="manhattan").fit(m, X),
         ValueError, r"distance must be one of \['cosine', 'euclidean'\]"),
    Case("interpretable_model not a regressor", "fit", ("Lime",),
         lambda n, m, X: make(n, interpretable_model="lasso").fit(m, X),
         TypeError, "interpretable_model must be a scikit-learn regressor"),
    Case("perturb_func of the wrong shape", "explain", ("Lime",),
         lambda n, m, X: make(n, perturb_func=lambda *a: torch.ones(3))
         .fit(m, X).explain(X),
         ValueError, r"perturb_func.*must return a tensor of shape"),
    Case("similarity_func returning one weight", "explain", ("Lime",),
         lambda n, m, X: make(n, similarity_func=lambda x, z, c: torch.ones(()))
         .fit(m, X).explain(X),
         ValueError, r"similarity_func must return one weight per perturbed input"),
    Case("similarity weights all 0", "explain", ("Lime",),
         lambda n, m, X: make(n, similarity_func=lambda x, z, c: torch.zeros(len(z)))
         .fit(m, X).explain(X),
         ValueError, r"For 12 of the 12 rows of X.*or none weighs at all"),
    Case("scoring unknown", "fit", ("FeaturePermutation",),
         lambda n, m, X: make(n, scoring="acc").fit(m, X),
         ValueError, "scoring='acc' is not a scikit-learn scorer name"),
    Case("scoring by name without y", "importance", ("FeaturePermutation",),
         lambda n, m, X: make(n, scoring="accuracy").fit(m, X).importance(X),
         ValueError, r"call importance\(X, y\)"),
    Case("scoring y of another kind than the classes", "importance",
         ("FeaturePermutation",),
         lambda n, m, X: make(n, scoring="accuracy").fit(skorch_classifier(X), X)
         .importance(X, np.array(["a", "b", "c"] * 4)),
         ValueError, r"y holds strings, but the model's classes are \[0, 1, 2\]"),
    Case("interactions index unknown", "fit", ("ShapleyInteractions",),
         lambda n, m, X: make(n, index="STII").fit(m, X),
         ValueError, r"index must be one of \['SII'\]"),
    # ---- baselines
    Case("baseline unknown string", "fit", BASELINED,
         lambda n, m, X: make(n, baseline="average").fit(m, X),
         ValueError, "baseline must be one of"),
    Case("baseline of the wrong length", "fit", BASELINED,
         lambda n, m, X: make(n, baseline=np.zeros(3)).fit(m, X),
         ValueError, "baseline has 3 values per row, but X has 5"),
    Case("background with other columns", "fit", ("FeatureAblation", "GradientShap"),
         lambda n, m, X: make(n, baseline=X.rename(columns={"f0": "zz"})).fit(m, X),
         ValueError, r"missing \['f0'\]; unknown \['zz'\]"),
    Case("baseline naming a feature twice", "fit", ("FeatureAblation", "KernelShap"),
         lambda n, m, X: make(n, baseline=pd.Series(
             [0.0] * 6, index=["f0", "f1", "f2", "f3", "f4", "f0"])).fit(m, X),
         ValueError, "baseline names 'f0' more than once"),
    Case("baseline with NaN", "fit", ("ShapleyValues",),
         lambda n, m, X: make(n, baseline=np.full(5, np.nan)).fit(m, X),
         ValueError, "baseline contains NaN"),
    Case("baseline the model cannot take, no X", "fit", ("FeatureAblation", "Lime"),
         lambda n, m, X: make(n, baseline=np.zeros(3)).fit(m),
         ValueError, r"rows of 3 input column\(s\), the width of the baseline given "
         r"without X"),
    Case("baseline='mean' without X", "fit", ("KernelShap",),
         lambda n, m, X: make(n, baseline="mean").fit(m),
         ValueError, "baseline='mean' is computed from the X given to fit"),
    # ---- feature groups
    Case("groups reuse a name", "fit", ("FeatureAblation", "ShapleyValues"),
         lambda n, m, X: make(n, feature_groups={1: ["f0"], "1": ["f1"]}).fit(m, X),
         ValueError, "are both the result column '1'"),
    Case("group names an unknown column", "fit", ("FeatureAblation", "Lime"),
         lambda n, m, X: make(n, feature_groups={"g": ["f0", "nope"]}).fit(m, X),
         ValueError, "names column 'nope', which is not in X"),
    Case("column in two groups", "fit", ("KernelShap",),
         lambda n, m, X: make(n, feature_groups={"a": ["f0"], "b": ["f0"]}).fit(m, X),
         ValueError, "Column 'f0' is in two feature groups"),
    Case("group named like a free column", "fit", ("FeatureAblation",),
         lambda n, m, X: make(n, feature_groups={"f1": ["f0"]}).fit(m, X),
         ValueError, "name 'f1' is also the name of a column"),
    Case("mask of the wrong length", "fit", ("ShapleyValueSampling",),
         lambda n, m, X: make(n, feature_groups=[0, 0, 1]).fit(m, X),
         ValueError, r"one entry per column \(5\); got 3"),
    Case("mask with a negative id", "fit", ("FeatureAblation",),
         lambda n, m, X: make(n, feature_groups=[0, -1, 1, 1, 2]).fit(m, X),
         ValueError, "group ids >= 0"),
    Case("mask of floats", "fit", ("FeatureAblation",),
         lambda n, m, X: make(n, feature_groups=np.full(5, 0.5)).fit(m, X),
         TypeError, "must hold integer group ids"),
    # ---- layers and neurons
    Case("layer unknown", "fit", LAYERED,
         lambda n, m, X: make(n, layer="nope").fit(m, X),
         ValueError, r"no layer named 'nope'. Available layers: \['hidden'"),
    Case("neuron out of range", "fit", ("NeuronGradient",),
         lambda n, m, X: make(n, neuron=99).fit(m, X),
         ValueError, r"neuron=99 is out of range for layer 'hidden.0'"),
    Case("neuron with too many indices", "fit", ("NeuronGradient",),
         lambda n, m, X: make(n, neuron=(1, 2)).fit(m, X),
         ValueError, r"neuron=\(1, 2\) has 2 indices"),
    # ---- models
    Case("model returns NaN", "explain", ("FeatureAblation", "ShapleyValueSampling"),
         lambda n, m, X: make(n, baseline="zeros")
         .fit(NaNAtRow(), X).explain(_with(X, 4, 0, 1000.0)),
         ValueError, r"For 1 of the 12 rows of X the model returned NaN or "
         r"infinity \(first rows: 4\)"),
    Case("model returns a scalar", "fit", ("FeatureAblation", "GradientShap"),
         lambda n, m, X: make(n).fit(Returns(lambda o: o.sum()), X),
         ValueError, r"returned shape \(\)"),
    Case("model returns other rows", "explain", ("KernelShap", "FeaturePermutation"),
         lambda n, m, X: make(n).fit(Returns(lambda o: o[:2]), X).explain(X),
         ValueError, r"input of shape \(12, 5\) it returned shape \(2, 2\)"),
    Case("model returns a tuple", "fit", ("FeatureAblation",),
         lambda n, m, X: make(n).fit(Returns(lambda o: (o, o)), X),
         TypeError, "returned a tuple"),
    Case("model returns another device", "fit", ("FeatureAblation", "Lime"),
         lambda n, m, X: make(n).fit(Returns(lambda o: o.to("meta")), X),
         ValueError, "outputs on device meta, but its inputs are on cpu"),
    Case("callable that needs float64", "fit", ("FeatureAblation", "GradientShap"),
         lambda n, m, X: make(n).fit(_float64_callable(), X),
         TypeError, r"plain callable, failed on torch.float32 rows.*runs on float64"),
    Case("not a model", "fit", ("FeatureAblation",),
         lambda n, m, X: make(n).fit("net", X),
         TypeError, "model must be a torch.nn.Module"),
    Case("skorch net not initialized", "fit", ("FeatureAblation", "GradientShap"),
         lambda n, m, X: make(n).fit(
             __import__("skorch").NeuralNetRegressor(nn.Linear(5, 1)), X
         ),
         ValueError, r"not initialized; call net.initialize\(\)"),
    Case("Pipeline not fitted", "fit", ("FeatureAblation",),
         lambda n, m, X: make(n).fit(_unfitted_pipeline(), X),
         NotFittedError, "is not fitted; fit the Pipeline first"),
    Case("explain before fit", "explain", ALL,
         lambda n, m, X: make(n).explain(X),
         NotFittedError, r"not fitted yet. Call fit\(model, X\)"),
    Case("importance before fit", "importance", ALL,
         lambda n, m, X: make(n).importance(X),
         NotFittedError, r"not fitted yet"),
    # ---- model_inputs
    Case("model_inputs names an unknown column", "fit", ("FeatureAblation",),
         lambda n, m, X: make(n, model_inputs={"x": ["f0", "zz"]}).fit(m, X),
         ValueError, r"model_inputs\['x'\] names column\(s\) \['zz'\]"),
    Case("unknown category", "explain", ("FeatureAblation", "ShapleyValues"),
         lambda n, m, X: _embedded(n).explain(_unknown_category()),
         ValueError, r"column 'kind' holds \['w'\]"),
    Case("strings for a category column", "explain", ("KernelShap",),
         lambda n, m, X: _embedded(n).explain(
             category_frame(12).astype({"kind": object})
         ),
         TypeError, r"column 'kind' holds .*category"),
    Case("gradients through category codes", "fit", ("GradientShap",),
         lambda n, m, X: make(n, model_inputs=CATEGORY_INPUTS)
         .fit(CategoryNet(), category_frame(12)),
         TypeError, r"\['kind'\] enter it as integer codes"),
    # ---- Dask
    Case("Dask partition with bad rows", "explain", ("FeatureAblation", "KernelShap"),
         lambda n, m, X: _dask_bad_partition(make(n).fit(m, X), X),
         ValueError, r"In partition 1 of the Dask DataFrame \(rows 106\.\.111\).*NaN in column"),
]  # fmt: skip


def _dask_bad_partition(explainer, X):
    dd = pytest.importorskip("dask.dataframe")
    bad = _with(X, 8, 2, np.nan)  # partition 1 of two
    bad.index = pd.Index(np.arange(100, 112))  # int64 labels, said as Python's
    return explainer.explain(dd.from_pandas(bad, npartitions=2)).compute(
        scheduler="sync"
    )


def _float64_callable():
    """A Captum ``forward_func`` over a float64 module."""
    linear = nn.Linear(5, 2).double()
    return lambda x: linear(x)


def _regressor(k):
    """An initialized skorch regressor of ``k`` outputs on the 5 columns."""
    from skorch import NeuralNetRegressor

    torch.manual_seed(0)
    return NeuralNetRegressor(nn.Linear(5, k)).initialize()


def _unfitted_pipeline():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from skorch import NeuralNetRegressor

    net = NeuralNetRegressor(nn.Linear(5, 1)).initialize()
    return make_pipeline(StandardScaler(), net)


def _embedded(name):
    return make(name, model_inputs=CATEGORY_INPUTS, baseline="zeros").fit(
        CategoryNet(), category_frame(12)
    )


def _unknown_category():
    X = category_frame(12)
    X["kind"] = X["kind"].cat.add_categories("w")
    X.loc[3, "kind"] = "w"
    return X


def _pairs():
    for case in CASES:
        for name in case.explainers:
            yield pytest.param(case, name, id=f"{case.id}-{name}")


def _model_state(model):
    return (
        [p.detach().clone() for p in model.parameters()],
        [p.requires_grad for p in model.parameters()],
        [m.training for m in model.modules()],
        [len(m._forward_hooks) + len(m._backward_hooks) for m in model.modules()],
    )


@pytest.mark.parametrize(("case", "name"), list(_pairs()))
def test_bad_input_gets_its_error_and_changes_nothing(case, name):
    X = frame()
    model = MLP()
    model.train()
    model.hidden.register_forward_hook(lambda *a: None)
    before_X, before_model = X.copy(), _model_state(model)
    with pytest.raises(case.error) as info:
        case.call(name, model, X)
    assert re.search(case.match, str(info.value), re.S), str(info.value)
    pd.testing.assert_frame_equal(X, before_X)
    after = _model_state(model)
    assert all(torch.equal(a, b) for a, b in zip(after[0], before_model[0]))
    assert after[1:] == before_model[1:]


def test_at_least_forty_cases_over_every_explainer_and_entry():
    assert len(CASES) >= 40
    assert {n for c in CASES for n in c.explainers} == set(ALL)
    assert {c.entry for c in CASES} == {"fit", "explain", "importance"}
    assert len({c.id for c in CASES}) == len(CASES)


def test_the_docs_table_lists_every_case():
    text = DOCS.read_text()
    rows = re.findall(r"^\| (.+?) \| `(\w+)` \|", text, re.M)
    assert [r[0] for r in rows] == [c.id for c in CASES]
    assert [r[1] for r in rows] == [c.entry for c in CASES]
