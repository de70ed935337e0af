"""Property-based fuzzing of every explainer: shapes, dtypes, parameters, baselines.

Every call either returns a DataFrame of the right shape with finite values,
or raises ``ValueError`` / ``TypeError`` (``NotFittedError`` is a
``ValueError``) with a message: never an ``AssertionError``, an
``IndexError``, a ``KeyError`` or a torch internal error.

``make test`` runs a few hundred examples in all; ``make bench`` (or
``SKATTR_FUZZ_EXAMPLES=2000``) runs more.
"""

from __future__ import annotations

import inspect
import os
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import skattr  # noqa: E402
from tests.conftest import FAST_PARAMS, MLP, explainer_names  # noqa: E402

NAMES = explainer_names()
EXAMPLES = int(os.environ.get("SKATTR_FUZZ_EXAMPLES", "30"))  # per explainer
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples on every run: CI is reproducible
)

DTYPES = [np.float32, np.float64, np.int64, np.int8, np.bool_]
SPECIAL = [np.nan, np.inf, -np.inf, 1e30, -0.0]


@st.composite
def tables(draw):
    """A frame or array of 1..6 rows and 1..4 columns, maybe with bad values."""
    n = draw(st.integers(0, 6))
    p = draw(st.integers(1, 4))
    dtype = draw(st.sampled_from(DTYPES))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = rng.normal(size=(n, p)) * draw(st.sampled_from([1.0, 1e-3, 1e3]))
    if n and draw(st.booleans()) and np.dtype(dtype).kind == "f":
        values[draw(st.integers(0, n - 1)), draw(st.integers(0, p - 1))] = draw(
            st.sampled_from(SPECIAL)
        )
    values = values.astype(dtype) if dtype is not np.bool_ else values > 0
    kind = draw(st.sampled_from(["frame", "array", "tensor"]))
    if kind == "frame":
        return pd.DataFrame(values, columns=[f"c{i}" for i in range(p)])
    if kind == "tensor":
        return torch.as_tensor(values)
    return values


def mostly(valid: list, invalid: list):
    """Valid values about nine times in ten, so that calls get past the checks."""
    return st.sampled_from(valid * 9 + invalid) if invalid else st.sampled_from(valid)


def baselines(p):
    return st.one_of(
        mostly(["auto", "zeros", "mean", "median", 0.5, -3.0], ["nope", float("nan")]),
        st.integers(1, 5).map(lambda q: np.linspace(-1, 1, q)),
        st.just({f"c{i}": 0.0 for i in range(p)}),
        st.just({"zz": 1.0}),
    )


def parameters(name):
    """Constructor parameters to fuzz, where the explainer has them."""
    cls = getattr(skattr, name)
    own = set(inspect.signature(cls).parameters)
    spec = {
        "n_samples": mostly([1, 2, 3, 8, 20, 40], [0, -2]),
        "n_repeats": mostly([1, 2, 3], [0, -1]),
        "batch_size": mostly([1, 3, 64, 4096], [0, -1]),
        "target": mostly([None, 0, 1, 2, "predicted", "all", "true"], [3, -1]),
        "output": mostly(["raw", "proba"], ["prob"]),
        "antithetic": st.booleans(),
        "tol": mostly([None, 0.5, 0.01], [-1.0]),
        "stdevs": mostly([0.0, 0.1], [-1.0]),
        "neuron": mostly([0, 3, 7], [8, (1,)]),
        "max_groups": st.integers(1, 6),
        "feature_groups": st.sampled_from(
            [None, None, [0, 0, 1, 1], {"g": ["c0", "c1"]}]
        ),
        "kernel_width": mostly([0.5, 1.0], [-1.0]),
        "alpha": mostly([0.0, 0.01], [-1.0]),
    }
    return st.fixed_dictionaries({k: v for k, v in spec.items() if k in own})


def _expected_shape(ex, name, X, params):
    n = X.shape[0]
    k = 3 if params.get("target") == "all" else 1
    if name == "LayerGradientShap":
        return n, 8 * k
    groups = params.get("feature_groups")
    p = X.shape[1]
    g = p if groups is None else 2 if isinstance(groups, list) else p - 1
    if name == "ShapleyInteractions":
        return n * g, g * k
    return n, g * k


def _run(name, X, params, baseline, y_kind, fit_X):
    cls = getattr(skattr, name)
    full = {**FAST_PARAMS[name], **params}
    if "baseline" in inspect.signature(cls).parameters:
        full["baseline"] = baseline
    if "random_state" in inspect.signature(cls).parameters:
        full["random_state"] = 0
    p = X.shape[1] if X.ndim == 2 else 1
    model = MLP(n_in=max(p, 1))
    n = X.shape[0] if X.ndim else 0
    y = None if y_kind == "none" else np.arange(n) % (3 if y_kind == "ok" else 5)
    ex = cls(**full).fit(model, X if fit_X else None)
    attr = ex.explain(X, y)
    assert isinstance(attr, pd.DataFrame)
    assert attr.shape == _expected_shape(ex, name, X, params), attr.shape
    assert np.isfinite(attr.to_numpy()).all()
    table = ex.importance(X, y)
    assert isinstance(table, pd.DataFrame) and len(table)


@pytest.mark.parametrize("name", NAMES)
def test_every_call_returns_a_right_frame_or_a_clear_error(name):
    @FUZZ
    @given(
        X=tables(),
        params=parameters(name),
        baseline=st.integers(1, 4).flatmap(baselines),
        y_kind=st.sampled_from(["none", "ok", "ok", "out of range"]),
        fit_X=st.booleans(),
    )
    def check(X, params, baseline, y_kind, fit_X):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                _run(name, X, params, baseline, y_kind, fit_X)
                event("returned")
            except (ValueError, TypeError) as exc:
                event(f"refused: {type(exc).__name__}")
                assert str(exc).strip(), f"{type(exc).__name__} without a message"
                assert not isinstance(exc, (IndexError, KeyError))

    check()
