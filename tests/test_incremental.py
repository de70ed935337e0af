"""The incremental first layer: when it applies, that it changes nothing but time."""

from __future__ import annotations

import threading

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import skattr
from skattr._head import find_affine_head
from skattr.core import incremental
from tests.conftest import MLP


def wide_mlp(p=120, h=6, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(p, h), nn.Tanh(), nn.Linear(h, 2)).eval()


class Custom(nn.Module):
    """A module whose forward starts with its first linear layer (fx-traceable)."""

    def __init__(self, p=120, h=6):
        super().__init__()
        torch.manual_seed(1)
        self.inp = nn.Linear(p, h)
        self.body = nn.Sequential(nn.ReLU(), nn.Linear(h, 3))

    def forward(self, x):
        return self.body(self.inp(x)) * 2.0


@pytest.fixture
def wide():
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.normal(size=(7, 120)).astype(np.float32)).add_prefix("c")


@pytest.fixture
def always(monkeypatch):
    """The incremental path wherever it can apply, whatever it costs."""
    monkeypatch.setattr(incremental, "pays", lambda *args: True)


def _rest_calls(monkeypatch):
    calls = []
    original = skattr._model.ModelCall.rest

    def spy(self, H, rows=None):
        calls.append(H.shape[0])
        return original(self, H, rows)

    monkeypatch.setattr(skattr._model.ModelCall, "rest", spy)
    return calls


# ---------------------------------------------------------------- detection


def test_narrow_first_layers_are_not_even_traced():
    # 30 -> 64 (W1) and 100 -> 256 (W2): the sums cannot pay, no trace at fit
    assert find_affine_head(nn.Sequential(nn.Linear(30, 64), nn.ReLU())) is None
    assert find_affine_head(nn.Sequential(nn.Linear(100, 256), nn.ReLU())) is None
    assert find_affine_head(wide_mlp()) is not None


def test_heads_are_found_in_sequentials_and_traceable_modules(always):
    seq = wide_mlp()
    head = find_affine_head(seq)
    assert head.linear is seq[0]
    x = torch.randn(5, 120)
    torch.testing.assert_close(head.rest(seq[0](x)), seq(x), rtol=0, atol=0)
    custom = Custom()
    head = find_affine_head(custom)
    assert head.linear is custom.inp  # the user's own layer
    torch.testing.assert_close(head.rest(custom.inp(x)), custom(x), rtol=0, atol=0)
    assert find_affine_head(MLP()) is not None  # Linear inside a Sequential
    linear = nn.Linear(120, 2)  # the whole model: a linear (or logistic) model
    head = find_affine_head(linear)
    assert head.linear is linear
    torch.testing.assert_close(head.rest(linear(x)), linear(x), rtol=0, atol=0)


@pytest.mark.parametrize(
    "p, k, target, batch_size, background",
    [
        (400, 3, 2, 4096, 0),  # whole permutations per call
        (3000, 1, None, 512, 0),  # six calls a permutation, its sum carried
        (400, 1, None, 512, 3),  # background rows: calls of segments of states
    ],
)
def test_a_wide_linear_model_takes_the_sums_and_gets_its_exact_values(
    p, k, target, batch_size, background, monkeypatch
):
    """A plain ``nn.Linear`` is its own head: the Shapley values of a linear
    model are ``w_j (x_j - mean b_j)``, whatever the permutations drawn, in
    whole permutations or in segments whose running sum is carried."""
    rng = np.random.default_rng(3)
    X = pd.DataFrame(rng.normal(size=(3, p)).astype(np.float32)).add_prefix("c")
    rows = rng.normal(size=(background, p)).astype(np.float32)
    baseline = pd.DataFrame(rows, columns=X.columns) if background else "zeros"
    model = linear_model(p=p, k=k)
    calls = _rest_calls(monkeypatch)
    # a Captum user's call: the model alone at fit, the named frame at explain
    attr = (
        skattr.ShapleyValueSampling(
            n_samples=4, baseline=baseline, target=target, batch_size=batch_size
        )
        .fit(model)
        .explain(X)
    )
    assert list(attr.columns) == list(X.columns)
    assert calls, "the incremental path was not taken"
    assert max(calls) <= batch_size
    w = model.weight.detach().double().numpy()[target or 0]
    mean = rows.mean(0) if background else 0.0
    truth = (X.to_numpy() - mean) * w
    np.testing.assert_allclose(attr.to_numpy(), truth, rtol=0, atol=1e-6)


class _TwoPaths(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 3), nn.Linear(3, 1)

    def forward(self, x):  # the input feeds another path too
        return self.b(self.a(x)) + x[:, :1]


class _Branching(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 1)

    def forward(self, x):  # control flow on the data: not traceable
        return self.a(x) if bool(x.sum() > 0) else -self.a(x)


class _Scaled(nn.Linear):
    def forward(self, x):  # a subclass that changes forward
        return super().forward(x) * 2


class _Counting(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 1)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.a(x)


def test_no_head_where_the_plain_path_is_the_only_safe_one(always):
    from torch.nn.utils import parametrize

    assert find_affine_head(_TwoPaths()) is None
    assert find_affine_head(_Branching()) is None
    assert find_affine_head(nn.Sequential(_Scaled(4, 2))) is None
    assert find_affine_head(nn.Sequential(nn.ReLU(), nn.Linear(4, 1))) is None
    hooked = nn.Sequential(nn.Linear(4, 2))
    hooked[0].register_forward_hook(lambda m, i, o: o)
    assert find_affine_head(hooked) is None
    rooted = nn.Sequential(nn.Linear(4, 2))
    rooted.register_forward_pre_hook(lambda m, i: None)
    assert find_affine_head(rooted) is None
    para = nn.Sequential(nn.Linear(4, 2))

    class Double(nn.Module):
        def forward(self, w):
            return 2 * w

    parametrize.register_parametrization(para[0], "weight", Double())
    assert find_affine_head(para) is None
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: o)
    try:
        assert find_affine_head(wide_mlp()) is None
    finally:
        handle.remove()


def test_the_probe_leaves_the_users_model_as_it_was(always):
    model = _Counting().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    head = find_affine_head(model)  # traced and proved on a copy
    assert head is not None and head.linear is model.a
    assert model.calls == 0 and model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


# ---------------------------------------------------------------- equality


def _both(make, model, X, y=None):
    with skattr.config_context(incremental_first_layer=True):
        inc = make().fit(model, X).explain(X, y)
    with skattr.config_context(incremental_first_layer=False):
        plain = make().fit(model, X).explain(X, y)
    return inc, plain


def _close(inc, plain):
    scale = plain.abs().to_numpy().max(axis=1, keepdims=True)
    gap = np.abs(inc.to_numpy() - plain.to_numpy())
    assert (gap <= 1e-5 * np.maximum(scale, 1e-12)).all(), gap.max()


GROUPS = np.repeat(np.arange(6), 20)

MAKERS = {
    "svs": lambda **k: skattr.ShapleyValueSampling(n_samples=6, random_state=0, **k),
    "svs-independent": lambda **k: skattr.ShapleyValueSampling(
        n_samples=5, antithetic=False, sampling="independent", random_state=0, **k
    ),
    "ablation": lambda **k: skattr.FeatureAblation(**k),
    "exact-groups": lambda **k: skattr.ShapleyValues(feature_groups=GROUPS, **k),
    "interactions": lambda **k: skattr.ShapleyInteractions(feature_groups=GROUPS, **k),
    # as many pairs as the 120 groups: fewer are refused (underdetermined)
    "kernel": lambda **k: skattr.KernelShap(n_samples=240, random_state=0, **k),
    "permutation": lambda baseline=None, **k: skattr.FeaturePermutation(
        n_repeats=2, random_state=0, **k
    ),
    # groups of 20 columns, whose rows a batch of 997 cuts mid-group
    "permutation-groups": lambda baseline=None, **k: skattr.FeaturePermutation(
        n_repeats=2, feature_groups=GROUPS, random_state=0, **k
    ),
}


def linear_model(p=120, k=2, seed=2):
    torch.manual_seed(seed)
    return nn.Linear(p, k).eval()


@pytest.mark.parametrize("name", list(MAKERS))
@pytest.mark.parametrize(
    "model", [wide_mlp, Custom, linear_model], ids=["sequential", "custom", "linear"]
)
@pytest.mark.parametrize(
    "setting",
    [{}, {"baseline": "background", "batch_size": 997}],
    ids=["one baseline", "background, small batches"],
)
def test_results_equal_the_plain_path(name, model, setting, wide, monkeypatch):
    calls = _rest_calls(monkeypatch)
    params = {"target": 1, "batch_size": setting.get("batch_size", 4096)}
    # FeaturePermutation takes no baseline: its small batches still run
    if setting.get("baseline") == "background" and not name.startswith("permutation"):
        params["baseline"] = wide.iloc[:3] * 0.5
    net = model()
    inc, plain = _both(lambda: MAKERS[name](**params), net, wide)
    if model is linear_model and name == "interactions":
        # a linear model has no interactions: off the diagonal both paths
        # give rounding noise, which a row's own scale cannot measure
        scale = plain.abs().to_numpy().max()
        np.testing.assert_allclose(inc, plain, rtol=0, atol=1e-6 * scale)
    else:
        _close(inc, plain)
    assert calls, "the incremental path was not taken"


@pytest.mark.parametrize("name", ["svs", "ablation", "exact-groups"])
def test_narrow_models_too_when_forced(name, always, monkeypatch, X_frame):
    """W1's and W2's shapes keep the plain path by cost; the sums still agree."""
    calls = _rest_calls(monkeypatch)
    params = {"target": 2, "baseline": X_frame.iloc[:2]}
    if name == "exact-groups":
        params["feature_groups"] = [0, 0, 1, 2, 2]
        inc, plain = _both(lambda: skattr.ShapleyValues(**params), MLP(), X_frame)
    else:
        inc, plain = _both(lambda: MAKERS[name](**params), MLP(), X_frame)
    _close(inc, plain)
    assert calls


def test_a_feature_the_model_ignores_still_gets_exactly_zero(wide, monkeypatch):
    net = wide_mlp()
    ignored = [f"c{i}" for i in (0, 5, *range(60, 120))]
    with torch.no_grad():  # columns the model ignores, often last in a permutation
        net[0].weight[:, [0, 5, *range(60, 120)]] = 0
    calls = _rest_calls(monkeypatch)
    for make in (
        MAKERS["svs"], MAKERS["ablation"], MAKERS["svs-independent"], MAKERS["permutation"]
    ):  # fmt: skip
        attr = make(target=0).fit(net, wide).explain(wide)
        assert (attr[ignored] == 0).all().all()
    groups = np.arange(120) // 20
    groups[[0, 5]] = 6  # a group of two ignored columns
    attr = (
        skattr.ShapleyValues(feature_groups=groups, target=0)
        .fit(net, wide)
        .explain(wide)
    )
    assert (attr["c0+c5"] == 0).all()
    assert calls


def test_scored_permutation_importance_equals_the_plain_path(wide, monkeypatch):
    calls = _rest_calls(monkeypatch)
    y = (wide["c0"] > 0).astype(int).to_numpy()
    make = lambda: skattr.FeaturePermutation(  # noqa: E731
        scoring="accuracy", n_repeats=2, random_state=0, output="proba"
    )
    with skattr.config_context(incremental_first_layer=True):
        inc = make().fit(wide_mlp(), wide).importance(wide, y)
    with skattr.config_context(incremental_first_layer=False):
        plain = make().fit(wide_mlp(), wide).importance(wide, y)
    pd.testing.assert_frame_equal(inc, plain)
    assert calls


def test_model_rows_counted_are_the_documented_cost(wide, monkeypatch):
    calls = _rest_calls(monkeypatch)
    ex = skattr.ShapleyValueSampling(n_samples=4, target=0, random_state=0)
    ex.fit(wide_mlp(), wide)
    with skattr.config_context(incremental_first_layer=True):
        ex.explain(wide)
    assert sum(calls) == ex._model_rows(wide) == 7 * (2 + 4 * 119)


@pytest.mark.parametrize("target", [1, "predicted"])
@pytest.mark.parametrize(
    "kw",
    [{"baseline": "zeros"}, {"tol": 1e-3, "n_samples": 40}],
    ids=["zeros", "background, rounds"],
)
def test_permutations_longer_than_a_batch_carry_their_sums(
    target, kw, wide, monkeypatch
):
    """119 states a permutation (357 rows with 3 background rows) in batches
    of 100: the running sum is carried from call to call, so the values are
    those of whole permutations to the bit, ignored columns still get exactly
    0, and no call exceeds the batch."""
    net = wide_mlp()
    with torch.no_grad():
        net[0].weight[:, 60:] = 0  # ignored columns, often last in a permutation
    params = {"n_samples": 6, "baseline": wide.iloc[:3] * 0.5, **kw}
    make = lambda bs: skattr.ShapleyValueSampling(  # noqa: E731
        target=target, batch_size=bs, random_state=0, **params
    )
    whole = make(4096).fit(net, wide).explain(wide)
    calls = _rest_calls(monkeypatch)
    long = make(100).fit(net, wide).explain(wide)
    assert calls and max(calls) <= 100, "a permutation was not cut into calls"
    pd.testing.assert_frame_equal(long, whole)
    for key in ("base_values", "prediction", "n_samples"):
        pd.testing.assert_series_equal(long.attrs[key], whole.attrs[key])
    assert (long.iloc[:, 60:] == 0).all().all()
    with skattr.config_context(incremental_first_layer=False):
        plain = make(100).fit(net, wide).explain(wide)
    _close(long, plain)


@pytest.mark.parametrize("batch_size", [7, 357, 360, 362, 363])
def test_every_call_fits_the_batch_and_every_round_takes_one_path(
    batch_size, wide, monkeypatch
):
    """A permutation's 119 states against 3 background rows are 357 rows,
    its row's ends 6 more: no call exceeds the batch, whole permutations or
    segments, and the rounds of ``tol`` (the first with the ends, the later
    ones without) take the same path, so that ignored columns keep their
    exact zeros (in batches of 7, the first round once took the plain path
    and the later ones the sums)."""
    net = wide_mlp()
    with torch.no_grad():
        net[0].weight[:, 100:] = 0
    calls = _rest_calls(monkeypatch)
    attr = (
        skattr.ShapleyValueSampling(
            n_samples=40,
            tol=1e-3,
            random_state=0,
            target=1,
            batch_size=batch_size,
            baseline=wide.iloc[:3] * 0.5,
        )  # fmt: skip
        .fit(net, wide)
        .explain(wide)
    )
    assert all(c <= batch_size for c in calls)
    # 7 rows hold no state of 3 background rows and the ends: the plain path
    assert bool(calls) == (batch_size > 7)
    assert (attr.iloc[:, 100:] == 0).all(axis=None)


@pytest.mark.parametrize("name", ["ablation", "exact-groups", "interactions", "kernel"])
def test_tables_longer_than_a_batch_take_several_calls_a_row(name, wide, monkeypatch):
    """A row's coalitions times 3 background rows exceed a batch of 64 (122
    ablations, 64 coalitions of 6 groups, 242 Kernel SHAP coalitions): the
    sums still run, in calls of at most 64 rows, with the values of whole
    rows and of the plain path, and exact zeros where the model ignores a
    group."""
    net = wide_mlp()
    with torch.no_grad():
        net[0].weight[:, 100:] = 0  # the last group of 20 columns is ignored
    params = {"target": 1, "baseline": wide.iloc[:3] * 0.5}
    make = lambda bs: MAKERS[name](batch_size=bs, **params)  # noqa: E731
    whole = make(4096).fit(net, wide).explain(wide)
    calls = _rest_calls(monkeypatch)
    long = make(64).fit(net, wide).explain(wide)
    assert calls and max(calls) <= 64, "a row's coalitions were not cut into calls"
    _close(long, whole)
    with skattr.config_context(incremental_first_layer=False):
        plain = make(64).fit(net, wide).explain(wide)
    _close(long, plain)
    if name in ("ablation", "exact-groups"):
        ignored = long.iloc[:, 100:] if name == "ablation" else long.iloc[:, -1]
        assert (ignored == 0).all(axis=None)


@pytest.mark.parametrize("name", ["ablation", "exact", "kernel"])
def test_a_linear_model_wider_than_a_batch_against_background_rows(name, monkeypatch):
    """Tables of coalitions in calls of 64 rows against 4 background rows, as
    a user calls them (the model alone at fit, a named frame): a linear
    model's values are ``w_j (x_j - mean b_j)`` (ablation too: it is linear)."""
    rng = np.random.default_rng(6)
    X = pd.DataFrame(rng.normal(size=(3, 120)).astype(np.float32)).add_prefix("c")
    background = pd.DataFrame(
        rng.normal(size=(4, 120)).astype(np.float32), columns=X.columns
    )
    model = linear_model(p=120, k=1)
    groups = {f"g{j}": list(X.columns[j::6]) for j in range(6)}  # interleaved
    make = {
        "ablation": lambda: skattr.FeatureAblation(),
        "exact": lambda: skattr.ShapleyValues(feature_groups=groups),
        "kernel": lambda: skattr.KernelShap(n_samples=240, random_state=0),
    }[name]
    calls = _rest_calls(monkeypatch)
    attr = make().set_params(baseline=background, batch_size=64).fit(model).explain(X)
    assert calls and max(calls) <= 64, "a row's coalitions were not cut into calls"
    per_column = (X - background.mean()) * model.weight.detach().double().numpy()[0]
    truth = (
        per_column
        if name != "exact"
        else pd.DataFrame(
            {g: per_column[cols].sum(axis=1) for g, cols in groups.items()}
        )
    )
    assert list(attr.columns) == list(truth.columns)
    np.testing.assert_allclose(attr.to_numpy(), truth.to_numpy(), rtol=0, atol=1e-5)


# ---------------------------------------------------------------- switching off


def test_hooks_or_changed_flags_after_fit_turn_the_plain_path_back_on(
    wide, monkeypatch
):
    calls = _rest_calls(monkeypatch)
    net = wide_mlp()
    ex = skattr.FeatureAblation(target=0).fit(net, wide)
    seen = []
    handle = net[0].register_forward_hook(lambda m, i, o: seen.append(o.shape[0]))
    ex.explain(wide)
    handle.remove()
    assert not calls and sum(seen) == 7 * (120 + 2)  # every row through the layer
    model = MLP()
    ex = skattr.FeatureAblation().fit(model, wide.iloc[:, :5])
    model.fail = True  # a flag its forward branches on
    with pytest.raises(RuntimeError, match="on purpose"):
        ex.explain(wide.iloc[:, :5])


def test_config_context_is_per_thread_and_restored():
    assert skattr.get_config()["incremental_first_layer"]
    seen = {}
    with skattr.config_context(incremental_first_layer=False):
        assert not skattr.get_config()["incremental_first_layer"]
        thread = threading.Thread(target=lambda: seen.update(skattr.get_config()))
        thread.start()
        thread.join()
    assert seen["incremental_first_layer"]  # another thread: its own setting
    assert skattr.get_config()["incremental_first_layer"]
    with pytest.raises(TypeError, match="incremental_first_layer"):
        skattr.set_config(incremental_first_layer="no")


def test_non_finite_outputs_are_still_said(wide):
    net = wide_mlp()
    with torch.no_grad():
        net[2].bias[0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        skattr.ShapleyValueSampling(n_samples=2, target=0).fit(net, wide).explain(wide)


class _Net(nn.Module):
    """The benchmarks' shapes: W1 (30 -> 64 -> 64 -> 2) and W2 (100 -> 256 -> 256 -> 1)."""

    def __init__(self, p, h, k):
        super().__init__()
        torch.manual_seed(0)
        self.hidden = nn.Sequential(
            nn.Linear(p, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU()
        )
        self.out = nn.Linear(h, k)

    def forward(self, x):
        return self.out(self.hidden(x))


@pytest.mark.parametrize("shape", [(30, 64, 2), (100, 256, 1)], ids=["W1", "W2"])
@pytest.mark.parametrize(
    "name", ["svs", "ablation", "exact-groups", "interactions", "permutation"]
)
def test_benchmark_shapes_equal_the_plain_path_when_forced(
    shape, name, always, monkeypatch
):
    p, h, k = shape
    X = pd.DataFrame(np.random.default_rng(2).normal(size=(3, p)).astype(np.float32))
    X = X.add_prefix("x")
    calls = _rest_calls(monkeypatch)
    groups = np.arange(p) * 6 // p
    make = {
        "svs": lambda: skattr.ShapleyValueSampling(
            n_samples=4, random_state=0, target=0
        ),
        "ablation": lambda: skattr.FeatureAblation(target=0),
        "exact-groups": lambda: skattr.ShapleyValues(feature_groups=groups, target=0),
        "interactions": lambda: skattr.ShapleyInteractions(
            feature_groups=groups, target=0
        ),
        "permutation": lambda: skattr.FeaturePermutation(random_state=0, target=0),
    }[name]
    inc, plain = _both(make, _Net(p, h, k), X)
    _close(inc, plain)
    assert calls


def test_a_skorch_net_in_a_pipeline_uses_its_modules_head(wide, monkeypatch):
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler
    from skorch import NeuralNetRegressor

    net = NeuralNetRegressor(wide_mlp, max_epochs=0, train_split=None)
    net.initialize()
    y = np.zeros((len(wide), 2), dtype=np.float32)
    cast = FunctionTransformer(lambda a: np.asarray(a, dtype=np.float32))
    pipe = make_pipeline(StandardScaler(), cast, net).fit(wide, y)
    calls = _rest_calls(monkeypatch)
    inc, plain = _both(lambda: skattr.FeatureAblation(target=1), pipe, wide)
    _close(inc, plain)
    assert calls  # the head of the skorch net's module_, after the scaler


class _ScaledModel(nn.Module):
    """A traced model with a private scale and a config object its forward reads."""

    class Config:
        temperature = 1.0

    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.a, self.b = nn.Linear(120, 6), nn.Linear(6, 1)
        self._scale = 1.0
        self.cfg = self.Config()
        self.cfg.temperature = 1.0

    def forward(self, x):
        return self.b(torch.relu(self.a(x))) * self._scale / self.cfg.temperature


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m.append(nn.Sigmoid()),
        lambda m: m.__setitem__(2, nn.Linear(6, 2)),
        lambda m: m.__setitem__(0, nn.Linear(120, 6)),
    ],
    ids=["appended", "replaced last", "replaced first"],
)
def test_a_model_changed_after_fit_is_run_as_it_is_now(change, wide, monkeypatch):
    calls = _rest_calls(monkeypatch)
    model = wide_mlp()
    ex = skattr.FeatureAblation(target=0).fit(model, wide)
    change(model)
    attr = ex.explain(wide)
    with skattr.config_context(incremental_first_layer=False):
        plain = ex.explain(wide)
    pd.testing.assert_frame_equal(attr, plain)
    assert not calls  # the head of fit's model no longer applies


@pytest.mark.parametrize(
    "change",
    [lambda m: setattr(m, "_scale", 3.0), lambda m: setattr(m.cfg, "temperature", 5.0)],
    ids=["private attribute", "config object"],
)
def test_a_traced_models_attributes_changed_after_fit(change, wide, monkeypatch):
    calls = _rest_calls(monkeypatch)
    model = _ScaledModel()
    ex = skattr.FeatureAblation(target=0).fit(model, wide)
    ex.explain(wide)
    assert calls  # the head applies while nothing changed
    calls.clear()
    change(model)
    attr = ex.explain(wide)
    with skattr.config_context(incremental_first_layer=False):
        plain = ex.explain(wide)
    pd.testing.assert_frame_equal(attr, plain)
    assert not calls
