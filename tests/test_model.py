"""ModelAdapter: modules, skorch nets, devices, probes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from skorch import NeuralNetBinaryClassifier, NeuralNetRegressor
from torch import nn

from skattr import FeatureAblation
from skattr._model import ModelAdapter, get_layer
from tests.conftest import MLP, modules_imported_by


def test_plain_module_proba_is_softmax_or_sigmoid():
    X = torch.randn(4, 5)
    multi = ModelAdapter.from_model(MLP(), output="proba")
    np.testing.assert_allclose(multi.forward(X).sum(1).detach(), np.ones(4), rtol=1e-6)
    single = ModelAdapter.from_model(nn.Linear(5, 1), output="proba")
    out = single.forward(X)
    assert out.shape == (4, 1) and bool(((out > 0) & (out < 1)).all())


def test_skorch_classifier_uses_net_nonlinearity(breast_cancer_net):
    net, X, _ = breast_cancer_net
    adapter = ModelAdapter.from_model(net, output="proba")
    assert adapter.module is net.module_
    assert adapter.classes == [0, 1]
    with torch.no_grad():
        ours = adapter.forward(torch.tensor(X.to_numpy()[:10])).numpy()
    np.testing.assert_allclose(ours, net.predict_proba(X.to_numpy()[:10]), atol=1e-6)


def test_skorch_regressor_and_binary_classifier():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    y = (X @ np.array([1.0, -1.0, 0.5])).astype(np.float32)
    reg = NeuralNetRegressor(nn.Linear(3, 1), max_epochs=2, verbose=0, train_split=None)
    reg.fit(X, y[:, None])
    attr = FeatureAblation(baseline="zeros").fit(reg, X).explain(X[:5])
    w = reg.module_.weight.detach().numpy()[0]
    np.testing.assert_allclose(attr.to_numpy(), X[:5] * w, atol=1e-5)

    binary = NeuralNetBinaryClassifier(
        nn.Sequential(nn.Linear(3, 1), nn.Flatten(0)),
        max_epochs=2,
        verbose=0,
        train_split=None,
    )
    binary.fit(X, (y > 0).astype(np.float32))
    raw = FeatureAblation(target=1).fit(binary, X)
    assert raw.n_outputs_ == 1 and raw.explain(X[:3]).shape == (3, 3)
    with pytest.raises(ValueError, match="use output='proba'|Use output='proba'"):
        FeatureAblation(target=0).fit(binary, X)
    proba = FeatureAblation(target=0, output="proba").fit(binary, X)
    assert proba.n_outputs_ == 2  # skorch's sigmoid-then-2d


def test_device_copy_leaves_model_alone():
    model = MLP()
    adapter = ModelAdapter.from_model(model, device="cpu")
    assert adapter.module is model  # same device: no copy
    assert adapter.device == torch.device("cpu")


def test_float64_module_gets_float64_inputs():
    model = nn.Linear(3, 1).double()
    ex = FeatureAblation().fit(model, np.ones((2, 3), dtype=np.float32))
    assert ex.baseline_.dtype == torch.float64


def test_layer_lookup_errors():
    model = MLP()
    assert get_layer(model, "hidden.0")[1] is model.hidden[0]
    assert get_layer(model, model.out)[0] == "out"
    with pytest.raises(ValueError, match=r"no layer named 'hidden.9'.*'hidden.0'"):
        get_layer(model, "hidden.9")
    with pytest.raises(ValueError, match="not a submodule"):
        get_layer(model, nn.Linear(2, 2))


def test_model_raising_in_fit_restores_state(X_frame):
    model = MLP()
    model.train()
    model.fail = True
    with pytest.raises(RuntimeError, match="on purpose"):
        FeatureAblation().fit(model, X_frame)
    assert all(m.training for m in model.modules())


def test_a_module_of_float64_buffers_runs_in_float64():
    # a fixed-coefficient model has no parameters; its buffers give the dtype
    from skattr import ShapleyValues

    class Fixed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer(
                "w", torch.tensor([1.0, 1e-9, 2.0], dtype=torch.float64)
            )

        def forward(self, x):
            return (x @ self.w)[:, None]

    X = torch.tensor([[1.0, 1.0, 1.0]], dtype=torch.float64)
    attr = ShapleyValues(baseline="zeros").fit(Fixed(), X).explain(X)
    assert attr["x1"].iloc[0] == pytest.approx(1e-9, rel=1e-12)  # lost in float32


def test_a_plain_module_does_not_import_skorch():
    # a plain torch user does not pay skorch's import (half a second) on the
    # first call: whether the model is a skorch net or a Pipeline is decided
    # from the modules already imported
    script = """
import numpy as np, pandas as pd, torch, skattr
model = torch.nn.Sequential(torch.nn.Linear(3, 2))
X = pd.DataFrame(np.ones((4, 3), dtype=np.float32), columns=["a", "b", "c"])
for ex in (
    skattr.GradientShap(),
    skattr.FeatureAblation(),
    skattr.ShapleyValueSampling(n_samples=2),
    skattr.KernelShap(n_samples=10),
    skattr.FeaturePermutation(n_repeats=1),
):
    ex.fit(model, X).explain(X)
"""
    assert modules_imported_by(script, ("skorch", "sklearn.pipeline")) == []
    assert modules_imported_by("import skorch", ("skorch",)) == ["skorch"]
