"""Explanations on one shared model from several threads (Dask's threaded
scheduler): the same results as one after the other, the model left as it was."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
import torch

import skattr
from tests.conftest import CATEGORY_INPUTS, MLP, CategoryNet, category_frame

MAKERS = {
    "LayerGradientShap": lambda: skattr.LayerGradientShap(
        layer="hidden.0", n_samples=3, random_state=0, target=1
    ),
    "NeuronGradient": lambda: skattr.NeuronGradient(layer="hidden.0", neuron=2),
    "GradientShap": lambda: skattr.GradientShap(n_samples=3, random_state=0, target=1),
    "ShapleyValueSampling": lambda: skattr.ShapleyValueSampling(
        n_samples=4, random_state=0, target=1
    ),
    "FeatureAblation": lambda: skattr.FeatureAblation(target=1),
}


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(40, 5)).astype(np.float32)).add_prefix("f")


def _state(model):
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [(len(m._forward_hooks), len(m._forward_pre_hooks)) for m in model.modules()],
        {k: v.clone() for k, v in model.state_dict().items()},
    )


def _same_state(a, b):
    assert a[0] == b[0] and a[1] == b[1] and a[2] == b[2]
    assert all(torch.equal(a[3][k], b[3][k]) for k in a[3])


def _together(calls: dict, repeats: int) -> dict:
    """Run each call ``repeats`` times, every call in its own thread, all
    starting together; the results per call (a thread's error fails)."""
    results: dict[str, list] = {name: [] for name in calls}
    errors: list[BaseException] = []
    start = threading.Barrier(len(calls))

    def work(name):
        try:
            start.wait()
            for _ in range(repeats):
                results[name].append(calls[name]())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def test_threads_give_the_sequential_results_and_leave_the_model_alone(frame):
    model = MLP().train()  # a model left in training mode by its user
    before = _state(model)
    explainers = {name: make().fit(model, frame) for name, make in MAKERS.items()}
    sequential = {name: ex.explain(frame) for name, ex in explainers.items()}
    calls = {name: (lambda ex=ex: ex.explain(frame)) for name, ex in explainers.items()}
    results = _together(calls, repeats=15)
    for name, runs in results.items():
        for attr in runs:
            pd.testing.assert_frame_equal(attr, sequential[name])
    _same_state(_state(model), before)


def test_one_explainer_from_many_threads(frame):
    model = MLP()
    before = _state(model)
    ex = skattr.LayerGradientShap(layer="hidden.1", n_samples=2, random_state=0)
    ex.fit(model, frame)
    expected = ex.explain(frame)
    out, errors = [], []

    def work():
        try:
            for _ in range(10):
                out.append(ex.explain(frame))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert all(a.equals(expected) for a in out)
    _same_state(_state(model), before)


def test_a_model_raising_in_one_thread_leaves_the_others_and_the_model_alone(frame):
    model = MLP()
    before = _state(model)
    good = skattr.GradientShap(n_samples=2, random_state=0).fit(model, frame)
    expected = good.explain(frame)
    failing = MLP().train()
    failing_before = _state(failing)
    bad = skattr.GradientShap(n_samples=2, random_state=0).fit(failing, frame)
    failing.fail = True  # raises in every explain from now on
    errors, out = [], []

    def run_bad():
        for _ in range(10):
            try:
                bad.explain(frame)
            except RuntimeError as exc:
                errors.append(exc)

    def run_good():
        for _ in range(10):
            out.append(good.explain(frame))

    threads = [threading.Thread(target=run_bad), threading.Thread(target=run_good)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 10 and all(a.equals(expected) for a in out)
    _same_state(_state(model), before)
    _same_state(_state(failing), failing_before)  # restored after each raise


def _every_explainer(model, frame):
    """Every explainer on the shared ``model``; a callable; a ``model_inputs`` model."""
    import inspect

    from tests.conftest import FAST_PARAMS, explainer_names

    out = {}
    for name in explainer_names():
        cls = getattr(skattr, name)
        params = dict(FAST_PARAMS[name])
        if "random_state" in inspect.signature(cls).parameters:
            params["random_state"] = 0
        out[name] = (cls(**params).fit(model, frame), frame)
    weights = torch.linspace(-1, 1, 15).reshape(5, 3)

    def function(x):  # Captum's forward_func: a plain callable
        return torch.tanh(x @ weights.to(x.dtype))

    out["callable KernelShap"] = (
        skattr.KernelShap(n_samples=20, random_state=0).fit(function, frame),
        frame,
    )
    out["callable GradientShap"] = (
        skattr.GradientShap(n_samples=2, random_state=0).fit(function, frame),
        frame,
    )
    embedded = category_frame(40)
    net = CategoryNet(n_out=3, seed=1).train()
    inputs = CATEGORY_INPUTS
    out["model_inputs ShapleyValueSampling"] = (
        skattr.ShapleyValueSampling(
            n_samples=3, random_state=0, model_inputs=inputs
        ).fit(net, embedded),
        embedded,
    )
    out["model_inputs FeaturePermutation"] = (
        skattr.FeaturePermutation(random_state=0, model_inputs=inputs).fit(
            net, embedded
        ),
        embedded,
    )
    return out, net


def test_every_explainer_concurrently_on_one_model(frame):
    model = MLP().train()
    model.hidden[1].eval()  # mixed modes come back exactly
    before = _state(model)
    explainers, embedded_net = _every_explainer(model, frame)
    embedded_before = _state(embedded_net)
    sequential = {name: ex.explain(X) for name, (ex, X) in explainers.items()}
    calls = {
        name: (lambda ex=ex, X=X: ex.explain(X)) for name, (ex, X) in explainers.items()
    }
    results = _together(calls, repeats=4)
    for name, runs in results.items():
        for attr in runs:
            pd.testing.assert_frame_equal(attr, sequential[name], obj=name)
    _same_state(_state(model), before)
    _same_state(_state(embedded_net), embedded_before)
