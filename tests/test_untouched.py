"""Nothing the user owns is changed, by any explainer.

``X`` and ``y`` (frames and arrays), the model's parameters (bit for bit),
modes, ``requires_grad`` flags and hooks, and the global torch and numpy
random states (with an int or Generator ``random_state``) are as before
after ``fit``, ``explain`` and ``importance``, and after a call whose model
raises midway through its batches; the user's own exceptions reach them
unchanged.
"""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd
import pytest
import torch

import skattr
from tests.conftest import FAST_PARAMS, MLP, explainer_names

NAMES = explainer_names()


class _Mine(Exception):
    """An exception of the user's own."""


class FailsLater(MLP):
    """Raises at its ``after``-th forward call (``None``: never)."""

    def __init__(self):
        super().__init__()
        self.after = None
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        if self.after is not None and self.calls >= self.after:
            raise _Mine(f"forward call {self.calls}")
        return super().forward(x)


def build(name, random_state=0, **extra):
    cls = getattr(skattr, name)
    params = {**FAST_PARAMS[name], **extra}
    if "random_state" in inspect.signature(cls).parameters:
        params["random_state"] = random_state
    return cls(**params)


def data(n=16):
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        rng.normal(size=(n, 5)).astype(np.float32), columns=[f"f{i}" for i in range(5)]
    )
    y = np.arange(n) % 3
    return X, y


def model_state(model):
    return (
        [p.detach().clone() for p in model.parameters()],
        [b.detach().clone() for b in model.buffers()],
        [p.requires_grad for p in model.parameters()],
        [m.training for m in model.modules()],
        [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.modules()
        ],
    )


def assert_same_model(before, after):
    assert all(torch.equal(a, b) for a, b in zip(before[0], after[0]))
    assert all(torch.equal(a, b) for a, b in zip(before[1], after[1]))
    assert before[2:] == after[2:]


def _user_model():
    model = FailsLater().train()
    model.hidden[1].eval()  # mixed modes
    model.out.bias.requires_grad_(False)  # a flag the user set
    model.hidden.register_forward_hook(lambda *a: None)
    return model


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("form", ["frame", "array"])
def test_calls_change_nothing_the_user_owns(name, form):
    X, y = data()
    X_in = X if form == "frame" else X.to_numpy()
    y_in = pd.Series(y) if form == "frame" else y
    X_before = X_in.copy()
    y_before = y_in.copy()
    model = _user_model()
    state = model_state(model)
    target = "true" if name != "NeuronGradient" else None
    extra = {} if target is None else {"target": target}
    ex = build(name, **extra).fit(model, X_in)
    ex.explain(X_in, y_in)
    ex.importance(X_in, y_in)
    if isinstance(X_in, pd.DataFrame):
        pd.testing.assert_frame_equal(X_in, X_before)
        pd.testing.assert_series_equal(y_in, y_before)
    else:
        np.testing.assert_array_equal(X_in, X_before)
        np.testing.assert_array_equal(y_in, y_before)
    assert_same_model(state, model_state(model))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("seed", ["int", "generator"])
def test_global_random_states_are_left_alone(name, seed):
    X, _ = data()
    model = MLP()
    random_state = 3 if seed == "int" else np.random.default_rng(3)
    np.random.seed(11)  # noqa: NPY002 - the global state is what is checked
    torch.manual_seed(11)
    numpy_before = np.random.get_state()  # noqa: NPY002
    torch_before = torch.get_rng_state()
    ex = build(name, random_state=random_state).fit(model, X)
    ex.explain(X)
    ex.importance(X)
    numpy_after = np.random.get_state()  # noqa: NPY002
    assert numpy_before[0] == numpy_after[0]
    np.testing.assert_array_equal(numpy_before[1], numpy_after[1])
    assert numpy_before[2:] == numpy_after[2:]
    assert torch.equal(torch_before, torch.get_rng_state())


@pytest.mark.parametrize("name", NAMES)
def test_a_model_raising_midway_reaches_the_user_and_changes_nothing(name):
    X, _ = data(40)
    model = _user_model()
    state = model_state(model)
    ex = build(name, batch_size=8).fit(model, X)
    model.calls, model.after = 0, 3  # the third forward call of explain raises
    X_before = X.copy()
    with pytest.raises(_Mine, match="forward call 3") as info:
        ex.explain(X)
    assert type(info.value) is _Mine  # not wrapped
    model.after = None
    pd.testing.assert_frame_equal(X, X_before)
    assert_same_model(state, model_state(model))
    ex.explain(X)  # and the explainer still works


def test_a_perturb_func_error_reaches_the_user():
    X, _ = data()
    model = _user_model()
    state = model_state(model)
    raised = _Mine("from perturb_func")

    def perturb(n_rows, n_groups, n_samples, generator):
        raise raised

    ex = skattr.Lime(n_samples=10, perturb_func=perturb).fit(model, X)
    with pytest.raises(_Mine) as info:
        ex.explain(X)
    assert info.value is raised
    assert_same_model(state, model_state(model))


def test_a_scorer_error_reaches_the_user():
    X, y = data()
    model = _user_model()
    state = model_state(model)
    raised = _Mine("from the scorer")

    def scorer(estimator, X, y):
        estimator.predict(X)
        raise raised

    ex = skattr.FeaturePermutation(scoring=scorer).fit(model, X)
    with pytest.raises(_Mine) as info:
        ex.importance(X, y)
    assert info.value is raised
    assert_same_model(state, model_state(model))


def test_a_callable_model_error_reaches_the_user():
    X, _ = data()
    raised = _Mine("from forward_func")
    calls = []

    def function(x):
        calls.append(x.shape[0])
        if len(calls) > 2:
            raise raised
        return x.sum(1, keepdim=True)

    ex = skattr.ShapleyValueSampling(n_samples=2, batch_size=8).fit(function, X)
    with pytest.raises(_Mine) as info:
        ex.explain(X)
    assert info.value is raised


@pytest.mark.parametrize("target", [0, "all"])
def test_an_audit_leaves_the_attributions_it_ranks_as_they_were(tmp_path, target):
    # the audit ranks the result frames it hands back: the importance table's
    # index may be such a frame's very columns, and naming it "feature" in
    # place once renamed them
    from skattr.report import audit

    X, _ = data()
    ex = skattr.FeatureAblation(target=target)
    rep = audit(
        MLP(), X, explainers={"fa": ex}, path=tmp_path / "r", show_progress=False
    )
    attr = rep.attributions["fa"]
    expected = ["output", "feature"] if target == "all" else [None]
    assert list(attr.columns.names) == expected
