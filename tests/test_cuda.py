"""The CUDA path: every explainer on a model that lives on a GPU.

Skipped where no GPU is present (CI never has one); run on a GPU machine with
``python -m pytest tests/test_cuda.py``. Random draws happen on the model's
device, so a GPU run draws other perturbations than a CPU run: the
deterministic methods are compared with the CPU, the random ones with closed
forms that hold whatever is drawn (a linear model) and with themselves.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import skattr
from tests.conftest import MLP, explainer_names
from tests.test_common import build

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs a CUDA device"
)

EXPLAINERS = [getattr(skattr, name) for name in explainer_names()]
CUDA = torch.device("cuda")


#: explainers whose result does not depend on random draws (with these settings)
DETERMINISTIC = {
    "FeatureAblation": {},
    "ShapleyValues": {},
    "NeuronGradient": {},
    "KernelShap": {"n_samples": 64},  # all 2**5 - 2 coalitions: exact
}


@pytest.mark.parametrize("cls", EXPLAINERS, ids=lambda c: c.__name__)
def test_gpu_model_reproducible_and_left_as_it_was(cls, X_frame, y_labels):
    model = MLP().to(CUDA)
    ex = build(cls).fit(model, X_frame)
    first = ex.explain(X_frame, y_labels)
    again = ex.explain(X_frame, y_labels)
    assert ex.device_.type == "cuda"
    assert first.index.equals(X_frame.index)
    if cls is not skattr.LayerGradientShap:  # its columns are the layer's units
        assert list(first) == list(X_frame)
    assert np.isfinite(first.to_numpy()).all()
    np.testing.assert_array_equal(first.to_numpy(), again.to_numpy())
    assert all(p.device.type == "cuda" for p in model.parameters())
    assert model.training and all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name", sorted(DETERMINISTIC))
def test_deterministic_methods_agree_with_cpu(name, X_frame):
    cls = getattr(skattr, name)
    cpu_model = MLP()
    gpu_model = copy.deepcopy(cpu_model).to(CUDA)
    params = DETERMINISTIC[name]
    expected = build(cls, **params).fit(cpu_model, X_frame).explain(X_frame)
    got = build(cls, **params).fit(gpu_model, X_frame).explain(X_frame)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), atol=2e-5)


LINEAR = {
    "FeatureAblation": {},
    "ShapleyValueSampling": {"n_samples": 4},
    "ShapleyValues": {},
    "KernelShap": {"n_samples": 20},  # sampled: fewer than 2**5 - 2
    "Lime": {"n_samples": 40, "alpha": 0.0},
    "GradientShap": {"n_samples": 5},
}


@pytest.mark.parametrize("name", sorted(LINEAR))
def test_random_methods_recover_linear_model_on_gpu(name, X_frame):
    w = torch.tensor([[1.0, -2.0, 0.5, 0.0, 3.0]])
    model = nn.Linear(5, 1).to(CUDA)
    with torch.no_grad():
        model.weight.copy_(w)
        model.bias.fill_(0.7)
    b = np.full(5, 0.25, dtype=np.float32)
    cls = getattr(skattr, name)
    got = build(cls, baseline=b, **LINEAR[name]).fit(model, X_frame).explain(X_frame)
    expected = (X_frame.to_numpy() - b) * w.numpy()
    np.testing.assert_allclose(got.to_numpy(), expected, atol=1e-4)


def test_permutation_importance_on_gpu(X_frame, y_labels):
    model = MLP().to(CUDA)
    imp = skattr.FeaturePermutation(n_repeats=3, random_state=0).fit(model, X_frame)
    scores = imp.importance(X_frame, y_labels, max_samples=10)
    assert list(scores.index.sort_values()) == sorted(X_frame)
    assert np.isfinite(scores.to_numpy()).all()
    again = imp.importance(X_frame, y_labels, max_samples=10)
    np.testing.assert_array_equal(scores.to_numpy(), again.to_numpy())


@pytest.mark.parametrize("cls", EXPLAINERS, ids=lambda c: c.__name__)
def test_cuda_tensor_input(cls, X_frame):
    model = MLP().to(CUDA)
    X = torch.as_tensor(X_frame.to_numpy(), device=CUDA)
    got = build(cls).fit(model, X).explain(X)
    Xn = X_frame.to_numpy()
    expected = build(cls).fit(model, Xn).explain(Xn)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), atol=1e-5)
    assert X.device.type == "cuda"  # the user's tensor is untouched


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_device_parameter_copies_the_model(device, X_frame):
    source = "cpu" if device == "cuda" else "cuda"
    model = MLP().to(source)
    ex = skattr.FeatureAblation(device=device).fit(model, X_frame)
    got = ex.explain(X_frame)
    assert ex.device_.type == device
    assert all(p.device.type == source for p in model.parameters())
    expected = skattr.FeatureAblation().fit(MLP(), X_frame).explain(X_frame)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), atol=1e-5)


def test_skorch_net_on_cuda(breast_cancer_net):
    from skorch import NeuralNetClassifier

    cpu_net, X, y = breast_cancer_net
    net = NeuralNetClassifier(
        copy.deepcopy(cpu_net.module_).to(CUDA),
        criterion=nn.CrossEntropyLoss,
        device="cuda",
        verbose=0,
    ).initialize()
    net.classes_inferred_ = np.unique(y)
    rows = X.iloc[:20]
    params = {"output": "proba", "target": 1}
    ex = skattr.ShapleyValueSampling(n_samples=4, random_state=0, **params)
    got = ex.fit(net, X).explain(rows)
    assert ex.device_.type == "cuda"
    # efficiency: each row sums to f(x) - f(baseline), the net's probabilities
    proba = cpu_net.predict_proba(rows.to_numpy())[:, 1]
    base = np.asarray(got.attrs["base_values"], dtype=float)
    np.testing.assert_allclose(got.sum(axis=1), proba - base, atol=1e-5)
    ablation = skattr.FeatureAblation(**params)
    np.testing.assert_allclose(
        ablation.fit(net, X).explain(rows).to_numpy(),
        skattr.FeatureAblation(**params).fit(cpu_net, X).explain(rows).to_numpy(),
        atol=1e-5,
    )
    imp = skattr.FeaturePermutation(n_repeats=2, random_state=0).fit(net, X)
    scores = imp.importance(X, y)
    assert np.isfinite(scores["importance"]).all()


def test_model_restored_when_it_raises_on_cuda(X_frame):
    model = MLP().to(CUDA).train()
    ex = skattr.GradientShap(n_samples=3, random_state=0).fit(model, X_frame)
    model.fail = True
    with pytest.raises(RuntimeError, match="on purpose"):
        ex.explain(X_frame)
    assert model.training
    assert all(p.requires_grad for p in model.parameters())


def test_large_result_comes_back_through_pinned_staging():
    # 3,000 x 60 float64 attributions (1.4 MB): above the staging threshold
    X = torch.randn(3000, 60, generator=torch.Generator().manual_seed(0))
    model = nn.Linear(60, 1)
    expected = X.double() * model.weight.detach().double()
    ex = skattr.FeatureAblation(baseline="zeros").fit(model.to(CUDA), X)
    got = ex.explain(X)
    assert got.shape == (3000, 60)
    np.testing.assert_allclose(got.to_numpy(), expected.numpy(), atol=1e-5)
    got.iloc[0, 0] = 123.0  # the frame owns writable memory
    assert got.iloc[0, 0] == 123.0
