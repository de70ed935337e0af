"""GradientShap, LayerGradientShap and NeuronGradient against Captum and closed forms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from torch import nn

from skattr import GradientShap, LayerGradientShap, NeuronGradient
from tests.conftest import MLP, make_linear

captum_attr = pytest.importorskip("captum.attr")


def _tensor(X_frame):
    return torch.tensor(X_frame.to_numpy())


# ---------------------------------------------------------------- NeuronGradient
SELECTORS = [
    2,
    (1,),
    (slice(1, 3),),
    (slice(None, None, 2),),
    lambda act: act[:, 0] * act[:, 2],
]


@pytest.mark.parametrize("layer", ["hidden.0", "hidden.1", "out"])
@pytest.mark.parametrize("to_input", [False, True])
@pytest.mark.parametrize("neuron", SELECTORS, ids=lambda s: repr(s)[:20])
def test_neuron_gradient_equals_captum(mlp, X_frame, layer, to_input, neuron):
    X = _tensor(X_frame)
    ours = NeuronGradient(
        layer=layer, neuron=neuron, attribute_to_neuron_input=to_input
    )
    got = ours.fit(mlp, X_frame).explain(X_frame)
    module = dict(mlp.named_modules())[layer]
    ref = captum_attr.NeuronGradient(mlp, module).attribute(
        X.clone(), neuron_selector=neuron, attribute_to_neuron_input=to_input
    )
    np.testing.assert_array_equal(got.to_numpy(), ref.double().numpy())
    assert list(got.index) == list(X_frame.index)


def test_neuron_gradient_is_the_weight_row_of_a_linear_layer(mlp, X_frame):
    got = NeuronGradient(layer="hidden.0", neuron=4).fit(mlp, X_frame).explain(X_frame)
    w = mlp.hidden[0].weight[4].detach().double().numpy()
    np.testing.assert_allclose(got.to_numpy(), np.tile(w, (len(X_frame), 1)))
    # the neuron's value per row, from the same forward call
    with torch.no_grad():
        want = mlp.hidden[0](torch.tensor(X_frame.to_numpy()))[:, 4].double()
    np.testing.assert_allclose(got.attrs["activation"], want.numpy(), rtol=1e-6)
    assert got.attrs["activation"].index.equals(X_frame.index)


def test_neuron_gradient_on_a_skorch_net_names_layers_in_module_(breast_cancer_net):
    net, X, _ = breast_cancer_net
    X = X.iloc[:20]
    got = NeuronGradient(layer="1", neuron=(slice(0, 8),)).fit(net, X).explain(X)
    ref = captum_attr.NeuronGradient(net.module_, net.module_[1]).attribute(
        torch.tensor(X.to_numpy()), neuron_selector=(slice(0, 8),)
    )
    np.testing.assert_array_equal(got.to_numpy(), ref.double().numpy())
    assert list(got.columns) == list(X.columns)


@pytest.mark.parametrize(
    "neuron, error, match",
    [
        (8, ValueError, "out of range"),
        ((0, 1), ValueError, "2 indices"),
        ("a", TypeError, "neuron must be"),
        (True, TypeError, "neuron must be"),
        ((), TypeError, "neuron must be"),
    ],
)
def test_neuron_errors(mlp, X_frame, neuron, error, match):
    with pytest.raises(error, match=match):
        NeuronGradient(layer="hidden.0", neuron=neuron).fit(mlp, X_frame)


class _Grid(nn.Module):
    """A layer of 2 x 4 units per row, then a sum."""

    def __init__(self, n_in):
        super().__init__()
        self.grid = nn.Sequential(nn.Linear(n_in, 8), nn.Unflatten(1, (2, 4)))

    def forward(self, x):
        return self.grid(x).sum((1, 2))[:, None]


def test_an_int_neuron_on_a_layer_of_several_dimensions_is_refused(X_frame):
    # neuron=1 on units of shape (2, 4) differentiated the sum of a[:, 1, :]
    # without a word (Captum refuses it); a layer method labels unit (0, 1)
    # as [1], and neuron=5 was refused as out of range
    torch.manual_seed(0)
    model = _Grid(X_frame.shape[1])
    for neuron, unit in ((1, r"\(0, 1\)"), (5, r"\(1, 1\)")):
        with pytest.raises(ValueError, match=f"1 index.*neuron={unit}"):
            NeuronGradient(layer="grid", neuron=neuron).fit(model, X_frame)
    got = NeuronGradient(layer="grid", neuron=(1, 1)).fit(model, X_frame)
    weight = model.grid[0].weight[5].detach().double().numpy()  # unit (1, 1)
    np.testing.assert_allclose(got.explain(X_frame).to_numpy()[0], weight, rtol=1e-6)
    summed = NeuronGradient(layer="grid", neuron=(1, slice(None))).fit(model, X_frame)
    rows = model.grid[0].weight[4:].detach().sum(0).double().numpy()
    np.testing.assert_allclose(summed.explain(X_frame).to_numpy()[0], rows, rtol=1e-5)


def test_neuron_callable_must_return_a_tensor(mlp, X_frame):
    with pytest.raises(TypeError, match="must return a tensor"):
        NeuronGradient(layer="hidden.0", neuron=lambda act: 3.0).fit(mlp, X_frame)


def test_neuron_gradient_fits_without_X(mlp, X_frame):
    got = (
        NeuronGradient(layer="hidden.0", neuron=1).fit(mlp).explain(X_frame.to_numpy())
    )
    assert got.shape == X_frame.shape


# ---------------------------------------------------------------- layers by name
@pytest.mark.parametrize("cls", [LayerGradientShap, NeuronGradient])
def test_wrong_layer_name_lists_available_layers(cls, mlp, X_frame):
    extra = {"neuron": 0} if cls is NeuronGradient else {}
    with pytest.raises(ValueError, match=r"hidden\.9.*'hidden\.0', 'hidden\.1', 'out'"):
        cls(layer="hidden.9", **extra).fit(mlp, X_frame)
    with pytest.raises(TypeError, match="layer must be"):
        cls(layer=3, **extra).fit(mlp, X_frame)
    with pytest.raises(ValueError, match="not a submodule"):
        cls(layer=nn.Linear(2, 2), **extra).fit(mlp, X_frame)


def test_module_object_is_resolved_to_its_name(mlp, X_frame):
    ex = LayerGradientShap(layer=mlp.hidden[1], random_state=0).fit(mlp, X_frame)
    assert ex.layer_ == "hidden.1"
    assert ex.get_params()["layer"] is mlp.hidden[1]
    by_name = LayerGradientShap(layer="hidden.1", random_state=0).fit(mlp, X_frame)
    np.testing.assert_array_equal(
        ex.explain(X_frame).to_numpy(), by_name.explain(X_frame).to_numpy()
    )
    assert list(ex.explain(X_frame).columns) == [f"hidden.1[{i}]" for i in range(8)]


@pytest.mark.parametrize("cls", [LayerGradientShap, NeuronGradient])
def test_a_clone_keeps_a_layer_given_as_a_module(cls, mlp, X_frame):
    # scikit-learn's clone deep-copied the layer, and the clone's fit then
    # refused it as no submodule of the model (any tool that clones: a grid
    # search, cross_validate)
    extra = {"neuron": 2} if cls is NeuronGradient else {"random_state": 0}
    ex = cls(layer=mlp.hidden[1], **extra)
    twin = clone(ex)
    assert twin.layer is mlp.hidden[1] and twin is not ex
    np.testing.assert_array_equal(
        twin.fit(mlp, X_frame).explain(X_frame).to_numpy(),
        ex.fit(mlp, X_frame).explain(X_frame).to_numpy(),
    )
    by_name = clone(cls(layer="hidden.1", **extra))
    assert by_name.layer == "hidden.1"


# ---------------------------------------------------------------- GradientShap
@pytest.mark.parametrize("multiply", [True, False])
@pytest.mark.parametrize("baseline_as", ["array", "frame"])
@pytest.mark.parametrize("target", [1, None])
def test_gradient_shap_equals_captum_on_linear_model(
    X_frame, multiply, baseline_as, target
):
    torch.manual_seed(1)
    model = nn.Linear(5, 3)
    X = _tensor(X_frame)
    b = torch.randn(1, 5)
    baseline = b.numpy() if baseline_as == "array" else X_frame.iloc[:1] * 0 + b.numpy()
    ex = GradientShap(
        n_samples=7,
        baseline=baseline,
        target=target,
        multiply_by_inputs=multiply,
        random_state=0,
    )
    got = ex.fit(model, X_frame).explain(X_frame)
    # target=None on a multi-output model: each row's predicted class
    ref_target = 1 if target == 1 else model(X).argmax(1).tolist()
    assert len(set(got.attrs["target"])) > 1 or target == 1
    np.testing.assert_array_equal(
        got.attrs["target"], np.broadcast_to(ref_target, len(X))
    )
    cap = captum_attr.GradientShap(model, multiply_by_inputs=multiply)
    ref, delta = cap.attribute(
        X, baselines=b, n_samples=7, target=ref_target, return_convergence_delta=True
    )
    np.testing.assert_allclose(
        got.to_numpy(), ref.double().numpy(), rtol=1e-5, atol=1e-6
    )
    if multiply:  # delta = mean of Captum's per-sample deltas
        np.testing.assert_allclose(
            got.attrs["delta"].to_numpy(),
            delta.reshape(len(X), 7).double().mean(1).numpy(),
            atol=1e-5,
        )


@pytest.mark.parametrize("layer, to_input", [("hidden.1", False), ("out", True)])
@pytest.mark.parametrize("multiply", [True, False])
def test_layer_gradient_shap_equals_captum_when_linear_after_layer(
    mlp, X_frame, layer, to_input, multiply
):
    X = _tensor(X_frame)
    b = torch.linspace(-1, 1, 5)[None]
    ex = LayerGradientShap(
        layer=layer,
        n_samples=6,
        baseline=b.numpy(),
        target=2,
        multiply_by_inputs=multiply,
        attribute_to_layer_input=to_input,
        random_state=0,
    )
    got = ex.fit(mlp, X_frame).explain(X_frame)
    module = dict(mlp.named_modules())[layer]
    cap = captum_attr.LayerGradientShap(mlp, module, multiply_by_inputs=multiply)
    ref, delta = cap.attribute(
        X,
        baselines=b,
        n_samples=6,
        target=2,
        return_convergence_delta=True,
        attribute_to_layer_input=to_input,
    )
    np.testing.assert_allclose(
        got.to_numpy(), ref.double().numpy(), rtol=1e-5, atol=1e-6
    )
    assert list(got.columns) == [f"{layer}[{i}]" for i in range(8)]
    if multiply:
        np.testing.assert_allclose(
            got.attrs["delta"].to_numpy(),
            delta.reshape(len(X), 6).double().mean(1).numpy(),
            atol=1e-5,
        )


def test_layer_gradient_shap_on_a_skorch_net_equals_captum(breast_cancer_net):
    net, X, _ = breast_cancer_net
    X = X.iloc[:15]
    ex = LayerGradientShap(layer="1", baseline="zeros", target=1, random_state=0)
    got = ex.fit(net, X).explain(X)  # "1": the ReLU of module_, linear after it
    cap = captum_attr.LayerGradientShap(net.module_, net.module_[1])
    ref = cap.attribute(
        torch.tensor(X.to_numpy()), baselines=torch.zeros(1, 30), n_samples=5, target=1
    )
    np.testing.assert_allclose(got.to_numpy(), ref.double().numpy(), atol=1e-6)
    assert list(got.columns) == [f"1[{i}]" for i in range(16)]
    assert list(got.attrs["target"].unique()) == [1]  # class label 1


def test_gradient_shap_converges_to_w_times_x_minus_mean_background(X_frame):
    w = np.array([1.0, -2.0, 0.0, 0.5, 3.0])
    model = make_linear(w, bias=0.7)
    background = X_frame.iloc[:8]
    X = X_frame.iloc[8:]
    exact = w * (X.to_numpy() - background.to_numpy().mean(0))
    errors = []
    for n_samples in (10, 4000):
        ex = GradientShap(n_samples=n_samples, random_state=0).fit(model, background)
        attr = ex.explain(X)
        assert attr["f2"].abs().max() == 0.0  # an ignored feature gets exactly 0
        # linear model: every sample is exact, so the delta vanishes
        assert attr.attrs["delta"].abs().max() < 1e-5
        errors.append(np.abs(attr.to_numpy() - exact).max())
    assert errors[1] < errors[0] / 4
    assert errors[1] < 0.15


def test_baseline_distribution_precedence(mlp, X_frame):
    auto = GradientShap().fit(mlp, X_frame)
    torch.testing.assert_close(auto.baseline_, _tensor(X_frame))
    zeros = GradientShap(baseline="zeros").fit(mlp, X_frame)
    assert zeros.baseline_.shape == (1, 5) and zeros.baseline_.abs().sum() == 0
    rows = GradientShap(baseline=X_frame.iloc[:3]).fit(mlp, X_frame)
    torch.testing.assert_close(rows.baseline_, _tensor(X_frame.iloc[:3]))
    # no X: the width comes from explain's X, and so does the zero background
    unfitted = GradientShap().fit(mlp)
    assert not hasattr(unfitted, "baseline_")
    assert GradientShap(baseline=np.zeros(5)).fit(mlp).baseline_.abs().sum() == 0


@pytest.mark.parametrize("cls", [GradientShap, LayerGradientShap])
def test_delta_shrinks_with_n_samples(cls, mlp, X_frame):
    extra = {"layer": "hidden.0"} if cls is LayerGradientShap else {}
    small = cls(n_samples=4, random_state=0, **extra).fit(mlp, X_frame)
    large = cls(n_samples=1600, random_state=0, **extra).fit(mlp, X_frame)
    d_small = small.explain(X_frame).attrs["delta"].abs().mean()
    d_large = large.explain(X_frame).attrs["delta"].abs().mean()
    assert d_large < d_small / 4


@pytest.mark.parametrize("stdevs", [0.0, 0.3])
def test_delta_and_base_values_are_consistent(mlp, X_frame, stdevs):
    ex = GradientShap(n_samples=4, stdevs=stdevs, random_state=0, target=0)
    attr = ex.fit(mlp, X_frame).explain(X_frame)
    fx = mlp(_tensor(X_frame))[:, 0].detach().double().numpy()
    gap = attr.sum(1) - attr.attrs["delta"] + attr.attrs["base_values"]
    if stdevs == 0:
        np.testing.assert_allclose(gap.to_numpy(), fx, atol=1e-5)
    else:  # mean f at the noisy inputs: near f(x), not equal
        assert not np.allclose(gap.to_numpy(), fx, atol=1e-5)
        assert np.abs(gap.to_numpy() - fx).max() < 1.0


@pytest.mark.parametrize("cls", [GradientShap, LayerGradientShap])
def test_noise_does_not_depend_on_batch_size(cls, mlp, X_frame):
    extra = {"layer": "hidden.0"} if cls is LayerGradientShap else {}
    a = cls(stdevs=0.5, random_state=3, **extra).fit(mlp, X_frame).explain(X_frame)
    b = cls(stdevs=0.5, random_state=3, batch_size=5, **extra).fit(mlp, X_frame)
    b = b.explain(X_frame)
    np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.attrs["delta"], b.attrs["delta"], atol=1e-5)
    c = cls(stdevs=0.0, random_state=3, **extra).fit(mlp, X_frame).explain(X_frame)
    assert not np.allclose(a.to_numpy(), c.to_numpy())


def test_feature_groups_sum_attributions(mlp, X_frame):
    groups = {"ab": ["f0", "f3"], "cd": ["f2", "f4"]}
    plain = GradientShap(random_state=0).fit(mlp, X_frame).explain(X_frame)
    grouped = GradientShap(feature_groups=groups, random_state=0).fit(mlp, X_frame)
    grouped = grouped.explain(X_frame)
    assert list(grouped.columns) == ["ab", "cd", "f1"]
    np.testing.assert_allclose(grouped["ab"], plain["f0"] + plain["f3"], atol=1e-6)
    np.testing.assert_allclose(grouped["cd"], plain["f2"] + plain["f4"], atol=1e-6)
    np.testing.assert_allclose(grouped["f1"], plain["f1"])


@pytest.mark.parametrize(
    "params, error",
    [
        ({"n_samples": 0}, ValueError),
        ({"stdevs": -1.0}, ValueError),
        ({"multiply_by_inputs": "yes"}, TypeError),
    ],
)
def test_shap_param_errors(mlp, X_frame, params, error):
    with pytest.raises(error, match=next(iter(params))):
        GradientShap(**params).fit(mlp, X_frame)
    with pytest.raises(error, match=next(iter(params))):
        LayerGradientShap(layer="out", **params).fit(mlp, X_frame)


# ---------------------------------------------------------------- model state
class FailingMLP(MLP):
    """Raises on the ``fail_at``-th forward call, or on any call under autograd."""

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.fail_at = None
        self.fail_on_grad = False

    def forward(self, x):
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError("model failure on purpose")
        if self.fail_on_grad and x.requires_grad:
            raise RuntimeError("model failure on purpose")
        return super().forward(x)


def _state(model):
    return (
        [m.training for m in model.modules()],
        [p.requires_grad for p in model.parameters()],
        [
            (len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks))
            for m in model.modules()
        ],
    )


EXPLAINERS = [
    (GradientShap, {}),
    (LayerGradientShap, {"layer": "hidden.0"}),
    (LayerGradientShap, {"layer": "out", "attribute_to_layer_input": True}),
    (LayerGradientShap, {"layer": "hidden.1", "stdevs": 0.2}),
    (NeuronGradient, {"layer": "hidden.1", "neuron": 0}),
    (NeuronGradient, {"layer": "out", "neuron": 0, "attribute_to_neuron_input": True}),
]


@pytest.mark.parametrize("cls, params", EXPLAINERS, ids=lambda v: str(v)[:40])
def test_hooks_flags_and_modes_restored_when_the_model_raises(cls, params, X_frame):
    model = FailingMLP()
    model.train()
    model.hidden[1].eval()
    model.out.weight.requires_grad_(False)
    state = _state(model)
    ex = cls(**params).fit(model, X_frame)
    model.calls = 0
    ex.explain(X_frame)
    assert _state(model) == state
    n_calls = model.calls
    # fail in each forward call of explain in turn, then in the autograd pass
    for fail_at in range(1, n_calls + 2):
        model.calls = 0
        model.fail_at = fail_at if fail_at <= n_calls else None
        model.fail_on_grad = fail_at > n_calls
        with pytest.raises(RuntimeError, match="on purpose"):
            ex.explain(X_frame)
        assert _state(model) == state
        assert all(p.grad is None for p in model.parameters())


def test_explain_works_under_no_grad(mlp, X_frame):
    ex = GradientShap(random_state=0).fit(mlp, X_frame)
    a = ex.explain(X_frame)
    with torch.no_grad():
        b = ex.explain(X_frame)
    np.testing.assert_array_equal(a.to_numpy(), b.to_numpy())


def test_layer_called_twice_is_refused(X_frame):
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(5, 5)
            self.out = nn.Linear(5, 1)

        def forward(self, x):
            return self.out(self.lin(self.lin(x)))

    model = Twice()
    with pytest.raises(ValueError, match="ran 2 times"):
        LayerGradientShap(layer="lin").fit(model, X_frame)
    assert not model.lin._forward_hooks


@pytest.mark.parametrize("layer", [None, "hidden.1"])
@pytest.mark.parametrize("stdevs", [0.0, 0.3])
@pytest.mark.parametrize("n_background, batch_size", [(1, 4096), (4, 4096), (4, 7)])
def test_a_fixed_target_column_is_sliced_as_the_per_row_targets_gather(
    mlp, X_frame, layer, stdevs, n_background, batch_size
):
    # the core takes an int for one column of every row (sliced) and a [n]
    # tensor of columns (gathered); with the same draws both give the same
    # attributions, deltas and base values, on the folded pass (one batch)
    # and on the chunked one (small batch_size, noise)
    from skattr.core.gradients import gradient_shap

    X = _tensor(X_frame)
    background = torch.randn(
        n_background, X.shape[1], generator=torch.Generator().manual_seed(1)
    )
    module = dict(mlp.named_modules())[layer] if layer else None
    for p in mlp.parameters():
        p.requires_grad_(False)

    def run(targets):
        return gradient_shap(
            lambda Z, rows: mlp(Z),
            X,
            background,
            targets=targets,
            n_samples=3,
            stdevs=stdevs,
            multiply_by_inputs=True,
            batch_size=batch_size,
            generator=torch.Generator().manual_seed(0),
            layer=module,
        )

    sliced = run(2)
    gathered = run(torch.full((X.shape[0],), 2, dtype=torch.long))
    for a, b in zip(sliced, gathered):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert sliced.targets.tolist() == [2] * X.shape[0]
    other = run(torch.full((X.shape[0],), 0, dtype=torch.long))
    assert not torch.equal(sliced.attributions, other.attributions)


@pytest.mark.parametrize(
    "cls, layer", [(GradientShap, {}), (LayerGradientShap, {"layer": "hidden.1"})]
)
@pytest.mark.parametrize("stdevs, batch_size", [(0.0, 4096), (0.3, 7)])
def test_a_fixed_target_is_the_true_label_of_every_row(
    mlp, X_frame, cls, layer, stdevs, batch_size
):
    """As a user calls it: ``target=2`` (one column for every row, sliced)
    and ``target="true"`` with every label 2 (gathered per row) give the
    same attributions and extras, to the bit, with a background of rows."""

    def explain(target, y=None):
        ex = cls(
            target=target,
            baseline=X_frame.iloc[:4],
            n_samples=3,
            stdevs=stdevs,
            batch_size=batch_size,
            random_state=0,
            **layer,
        )
        return ex.fit(mlp, X_frame).explain(X_frame, y)

    fixed = explain(2)
    true = explain("true", np.full(len(X_frame), 2))
    np.testing.assert_array_equal(fixed.to_numpy(), true.to_numpy())
    for key in ("delta", "base_values", "target"):
        np.testing.assert_array_equal(fixed.attrs[key], true.attrs[key])
    assert not np.array_equal(explain(0).to_numpy(), fixed.to_numpy())


def test_a_callable_neuron_gives_values_per_row(mlp, X_frame):
    # a selector summing over the rows gave the same gradient, and then a
    # bare reshape error once the neuron's value per row was read
    with pytest.raises(ValueError, match=r"values per row.*shape \(\)"):
        NeuronGradient(layer="hidden.0", neuron=lambda a: a[:, 1].sum()).fit(
            mlp, X_frame
        )
    per_row = NeuronGradient(layer="hidden.0", neuron=lambda a: a[:, 1:3])
    both = NeuronGradient(layer="hidden.0", neuron=(slice(1, 3),))
    got = per_row.fit(mlp, X_frame).explain(X_frame)
    want = both.fit(mlp, X_frame).explain(X_frame)
    pd.testing.assert_frame_equal(got, want)
