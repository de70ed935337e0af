"""Dask DataFrames: lazy per-partition explanations, reductions, a cluster.

The truth is the in-memory call: a deterministic method's Dask result must
equal ``explain`` on the concatenated rows, a sampling method's must not
depend on how many workers or threads run it, and the importance tables
must equal those of the concatenated attributions.
"""

import pickle

import numpy as np
import pandas as pd
import pytest
import torch

dask = pytest.importorskip("dask")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")

from skattr import (  # noqa: E402
    FeatureAblation,
    FeaturePermutation,
    GradientShap,
    KernelShap,
    LayerGradientShap,
    Lime,
    NeuronGradient,
    ShapleyInteractions,
    ShapleyValues,
    ShapleyValueSampling,
)
from skattr.dask import explain_with_extras  # noqa: E402
from tests.conftest import (  # noqa: E402
    CATEGORY_INPUTS,
    CategoryNet,
    NaNAtRow,
    category_frame,
)

COLUMNS = ["age", "income", "height", "weight"]


def _net(k=3, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, k)
    )


def _frame(n=60, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame(rng.normal(size=(n, 4)), columns=COLUMNS)
    X.index = pd.RangeIndex(100, 100 + n)  # not 0..n-1: the index must travel
    return X


def _state(model):
    return (
        [p.detach().clone() for p in model.parameters()],
        [p.requires_grad for p in model.parameters()],
        [m.training for m in model.modules()],
    )


def _same_state(a, b):
    return (
        all(torch.equal(x, y) for x, y in zip(a[0], b[0]))
        and a[1] == b[1]
        and a[2] == b[2]
    )


@pytest.fixture(scope="module")
def client():
    """Two worker processes on loopback, one thread each."""
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


DETERMINISTIC = [
    (FeatureAblation, {}),
    (ShapleyValues, {}),
    (NeuronGradient, {"layer": "0", "neuron": 2}),
]


@pytest.mark.parametrize(("cls", "params"), DETERMINISTIC)
def test_cluster_result_equals_in_memory(client, cls, params):
    X = _frame()
    ex = cls(**params).fit(_net(), X)
    lazy = ex.explain(dd.from_pandas(X, npartitions=3))
    got = client.compute(lazy).result()
    expected = ex.explain(X)
    pd.testing.assert_frame_equal(got, expected, check_exact=False, atol=1e-12)
    assert got.index.equals(X.index)
    assert got.dtypes.eq(np.float64).all()


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (ShapleyValueSampling, {"n_samples": 4}),
        (KernelShap, {"n_samples": 10}),
        (FeaturePermutation, {}),
        (GradientShap, {}),
        (Lime, {"n_samples": 20}),
    ],
)
def test_sampling_same_seed_same_result_on_one_or_two_workers(client, cls, params):
    X = _frame()
    ddf = dd.from_pandas(X, npartitions=4)
    ex = cls(random_state=3, **params).fit(_net(), X)
    workers = list(client.scheduler_info()["workers"])
    two = client.compute(ex.explain(ddf)).result()
    one = client.compute(ex.explain(ddf), workers=workers[:1]).result()
    local = ex.explain(ddf).compute(scheduler="sync")
    pd.testing.assert_frame_equal(one, two)
    pd.testing.assert_frame_equal(local, two)
    other = cls(random_state=4, **params).fit(_net(), X).explain(ddf).compute()
    assert not np.allclose(other.to_numpy(), two.to_numpy())  # the seed is used


def test_partitions_draw_their_own_streams():
    # two partitions holding the same rows must not draw the same numbers
    X = _frame(20)
    twice = pd.concat([X, X.set_axis(X.index + 100)])
    ex = ShapleyValueSampling(n_samples=2, random_state=0).fit(_net(), X)
    got = ex.explain(dd.from_pandas(twice, npartitions=2, sort=False)).compute()
    assert not np.allclose(got.iloc[:20].to_numpy(), got.iloc[20:].to_numpy())


def test_sampling_equals_in_memory_partition_by_partition():
    """Partition i's result is the in-memory call with partition i's stream."""
    from skattr._data import derived_seed

    X = _frame(30)
    ex = ShapleyValueSampling(n_samples=4, random_state=5).fit(_net(), X)
    got = ex.explain(dd.from_pandas(X, npartitions=2)).compute()
    seed = ex._seed()
    parts = [X.iloc[:15], X.iloc[15:]]
    frames = [
        ex._explain(p, None, ex._generator(derived_seed(seed, i)))
        for i, p in enumerate(parts)
    ]
    for frame in frames:
        frame.attrs = {}
    expected = pd.concat(frames)
    pd.testing.assert_frame_equal(got, expected)


def test_the_explainer_is_one_task_of_the_graph():
    X = _frame()
    ex = FeatureAblation().fit(_net(), X)
    lazy = ex.explain(dd.from_pandas(X, npartitions=5))
    graph = dict(lazy.__dask_graph__())
    keys = [
        k
        for k in graph
        if str(k[0] if isinstance(k, tuple) else k).startswith("skattr-")
    ]
    assert len(keys) == 1
    held = [v for v in graph.values() if v is ex or getattr(v, "value", None) is ex]
    assert len(held) <= 1


def test_meta_columns_are_strings_and_match_the_result():
    X = _frame()
    net = _net()
    ex = FeatureAblation(feature_groups=np.array([0, 0, 1, 2])).fit(net, X)
    lazy = ex.explain(dd.from_pandas(X, npartitions=2))
    expected = ex.explain(X)
    assert list(lazy.columns) == [str(c) for c in expected.columns]
    assert all(isinstance(c, str) for c in lazy.columns)
    got = lazy.compute()
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy())


def test_target_all_keeps_two_levels_in_meta():
    X = _frame()
    ex = ShapleyValues(target="all").fit(_net(), X)
    lazy = ex.explain(dd.from_pandas(X, npartitions=3))
    assert isinstance(lazy.columns, pd.MultiIndex)
    assert lazy.columns.names == ["output", "feature"]
    assert all(isinstance(v, str) for c in lazy.columns for v in c)
    expected = ex.explain(X)
    got = lazy.compute()
    assert list(got.columns) == [(str(o), f) for o, f in expected.columns]
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), atol=1e-12)
    np.testing.assert_allclose(got["1"].to_numpy(), expected[1].to_numpy(), atol=1e-12)


def test_extras_frame_holds_the_attrs_of_each_row():
    X = _frame()
    ex = ShapleyValueSampling(n_samples=4, random_state=0).fit(_net(), X)
    ddf = dd.from_pandas(X, npartitions=3)
    attr, extras = explain_with_extras(ex, ddf)
    assert list(extras.columns) == list(extras._meta.columns)
    attr, extras = dask.compute(attr, extras)
    pd.testing.assert_frame_equal(attr, ex.explain(ddf).compute())
    assert extras.index.equals(X.index)
    # efficiency through the extras: sum + f(baseline) = f(x)
    np.testing.assert_allclose(
        attr.sum(axis=1) + extras["base_values"], extras["prediction"], atol=1e-6
    )
    assert [c for c in extras.columns if c.startswith("std|")] == [
        f"std|{c}" for c in COLUMNS
    ]
    assert extras["target"].dtype == np.int64
    assert (
        extras["target"]
        == _net()(torch.tensor(X.to_numpy(), dtype=torch.float32)).argmax(1).numpy()
    ).all()


def test_extras_under_target_all():
    X = _frame()
    ex = KernelShap(n_samples=20, target="all").fit(_net(), X)
    attr, extras = explain_with_extras(ex, dd.from_pandas(X, npartitions=2))
    assert "base_values|2" in extras.columns and "std|1|income" in extras.columns
    assert "exact" not in extras.columns  # per call: left out
    a, e = dask.compute(attr, extras)
    memory = ex.explain(X)
    np.testing.assert_allclose(
        e[[f"base_values|{o}" for o in range(3)]].to_numpy(),
        memory.attrs["base_values"].to_numpy(),
    )
    np.testing.assert_allclose(
        e[[f"std|1|{c}" for c in COLUMNS]].to_numpy(), memory.attrs["std"][1]
    )


def test_parquet_round_trip(tmp_path):
    X = _frame()
    X.to_parquet(tmp_path / "rows.parquet")
    ddf = dd.read_parquet(tmp_path / "rows.parquet")
    ex = KernelShap(n_samples=10, random_state=0).fit(_net(), X)
    attr, extras = explain_with_extras(ex, ddf)
    dask.compute(
        attr.to_parquet(tmp_path / "attr", compute=False),
        extras.to_parquet(tmp_path / "extras", compute=False),
    )
    back = dd.read_parquet(tmp_path / "attr").compute()
    pd.testing.assert_frame_equal(back, attr.compute(), check_index_type=False)
    assert list(dd.read_parquet(tmp_path / "extras").columns)[0] == "base_values"


def test_importance_equals_in_memory_table():
    X = _frame()
    ddf = dd.from_pandas(X, npartitions=4)
    for target in (None, "all"):
        ex = ShapleyValues(target=target).fit(_net(), X)
        got = ex.importance(ddf)
        expected = ex.importance(X)
        assert list(got.index) == list(expected.index)
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), atol=1e-12)
        assert got.attrs["n_rows"] == len(X)


def test_importance_skips_empty_partitions():
    X = _frame()
    ddf = dd.from_pandas(X, npartitions=4)
    kept = ddf[ddf.age > 10]  # keeps nothing from any partition...
    rows = dd.concat([kept, ddf.partitions[1]])  # ...but one whole partition
    ex = FeatureAblation().fit(_net(), X)
    got = ex.importance(rows)
    expected = ex.importance(ddf.partitions[1].compute())
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), atol=1e-12)
    assert len(ex.explain(rows).compute()) == len(ddf.partitions[1].compute())
    with pytest.raises(ValueError, match="every partition"):
        ex.importance(kept)


def test_weighted_permutation_importance_equals_weighted_table():
    X = _frame()
    w = pd.Series(np.linspace(0.5, 2.0, len(X)), index=X.index)
    frame = X.assign(w=w)
    ddf = dd.from_pandas(frame, npartitions=3)
    Xd, wd = ddf[COLUMNS], ddf["w"]
    ex = FeaturePermutation(n_repeats=2, random_state=0).fit(_net(), X)
    got = ex.importance(Xd, sample_weight=wd)
    attr = ex.explain(Xd).compute()
    # the weighted statistics, written out in pandas (not the code under test)
    share = (w / w.sum()).loc[attr.index]
    magnitude = attr.abs()
    importance = magnitude.mul(share, axis=0).sum()
    std = np.sqrt(magnitude.sub(importance, axis=1).pow(2).mul(share, axis=0).sum())
    mean = attr.mul(share, axis=0).sum()
    expected = pd.DataFrame({"importance": importance, "std": std, "mean": mean})
    assert sorted(got.index) == sorted(expected.index)
    np.testing.assert_allclose(
        got.loc[expected.index, ["importance", "std", "mean"]].to_numpy(),
        expected.to_numpy(),
        atol=1e-12,
    )
    assert (np.diff(got["importance"].to_numpy()) <= 0).all()  # ranked


def test_scored_permutation_importance_on_a_linear_model():
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[3.0, -1.0, 0.0, 0.5]]))
    X = _frame(400)
    y = pd.Series(
        net(torch.tensor(X.to_numpy(), dtype=torch.float32)).detach().numpy().ravel()
        + 0.1,
        index=X.index,
    )
    ddf = dd.from_pandas(X.assign(y=y), npartitions=4)
    ex = FeaturePermutation(
        n_repeats=5, scoring="neg_mean_squared_error", random_state=0
    ).fit(net, X)
    got = ex.importance(ddf[COLUMNS], ddf["y"])
    memory = ex.importance(X, y)
    # a mean over rows: the partitions' weighted scores are the whole frame's
    assert got.attrs["baseline_score"] == pytest.approx(memory.attrs["baseline_score"])
    assert got.attrs["n_rows"] == 400
    assert list(got.index) == ["age", "income", "weight", "height"]
    assert got.loc["height", "importance"] == pytest.approx(0.0, abs=1e-6)
    # E[drop_j] = 2 w_j^2 var(x_j) for a linear model, within sampling error
    expected = 2 * np.array([9.0, 1.0, 0.0, 0.25]) * X.var(ddof=0).to_numpy()
    np.testing.assert_allclose(
        got.loc[COLUMNS, "importance"], expected, rtol=0.25, atol=1e-6
    )
    with pytest.raises(ValueError, match="importance\\(X, y\\)"):
        ex.importance(ddf[COLUMNS])
    with pytest.raises(ValueError, match="sample the frame"):
        ex.importance(ddf[COLUMNS], ddf["y"], max_samples=10)


def test_target_true_takes_a_dask_series():
    X = _frame()
    y = pd.Series(np.arange(len(X)) % 3, index=X.index)
    ddf = dd.from_pandas(X.assign(label=y), npartitions=3)
    ex = FeatureAblation(target="true").fit(_net(), X)
    got = ex.explain(ddf[COLUMNS], ddf["label"]).compute()
    pd.testing.assert_frame_equal(got, ex.explain(X, y))
    imp = ex.importance(ddf[COLUMNS], ddf["label"])
    np.testing.assert_allclose(imp.to_numpy(), ex.importance(X, y).to_numpy())


def test_model_inputs_model_with_a_category_column():
    X = category_frame(30)
    ex = FeatureAblation(model_inputs=CATEGORY_INPUTS, baseline="median").fit(
        CategoryNet(), X
    )
    lazy = ex.explain(dd.from_pandas(X, npartitions=3))
    assert list(lazy.columns) == ["a", "b", "kind"]
    pd.testing.assert_frame_equal(lazy.compute(), ex.explain(X))


def test_a_bad_partition_is_named():
    X = _frame()
    X.iloc[35, 1] = np.nan  # in the second of three partitions of 20 rows
    ex = FeatureAblation().fit(_net(), _frame())
    lazy = ex.explain(dd.from_pandas(X, npartitions=3))  # lazy: nothing read yet
    with pytest.raises(ValueError, match=r"partition 1 .*NaN"):
        lazy.compute(scheduler="sync")


def test_a_bad_partition_is_named_on_the_cluster(client):
    X = _frame()
    X.iloc[5, 0] = np.inf
    ex = ShapleyValues().fit(_net(), _frame())
    with pytest.raises(ValueError, match=r"partition 0 .*inf"):
        client.compute(ex.explain(dd.from_pandas(X, npartitions=2))).result()


def test_a_model_returning_nan_in_one_partition_is_named():
    X = _frame()
    X.iloc[50, 0] = 1000.0
    ex = FeatureAblation().fit(NaNAtRow(n_in=len(COLUMNS)), _frame())
    with pytest.raises(ValueError, match=r"partition 2 .*non-finite"):
        ex.explain(dd.from_pandas(X, npartitions=3)).compute(scheduler="sync")


def test_columns_are_checked_before_any_partition_is_read():
    X = _frame()
    ex = FeatureAblation().fit(_net(), X)
    with pytest.raises(ValueError, match="same order"):
        ex.explain(
            dd.from_pandas(X[["age", "height", "income", "weight"]], npartitions=2)
        )
    with pytest.raises(ValueError, match="target=7"):
        ex.set_params(target=7).explain(dd.from_pandas(X, npartitions=2))
    with pytest.raises(ValueError, match="true labels"):
        ex.set_params(target="true").explain(dd.from_pandas(X, npartitions=2))


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda ex, X, d: ex.explain(d, X["age"].to_numpy()), "Dask Series aligned"),
        (lambda ex, X, d: ex.explain(X, d["age"]), "give X as a Dask DataFrame"),
        (
            lambda ex, X, d: ex.explain(d, dd.from_pandas(X["age"], npartitions=3)),
            "partitions",
        ),
        (lambda ex, X, d: ex.explain(d["age"]), "Dask Series"),
        (lambda ex, X, d: ex.explain(d.to_dask_array()), "from_dask_array"),
        (
            lambda ex, X, d: ex.explain(d, d["age"].to_dask_array()),
            "Dask Series aligned",
        ),
        (lambda ex, X, d: ex.fit(_net(), d), "in-memory rows"),
    ],
)
def test_mixed_or_wrong_dask_inputs_are_refused(call, match):
    X = _frame()
    ex = FeatureAblation().fit(_net(), X)
    with pytest.raises((TypeError, ValueError), match=match):
        call(ex, X, dd.from_pandas(X, npartitions=2))


def test_interactions_are_refused_on_dask():
    X = _frame()
    ex = ShapleyInteractions().fit(_net(), X)
    with pytest.raises(ValueError, match="row MultiIndex"):
        ex.explain(dd.from_pandas(X, npartitions=2))
    with pytest.raises(ValueError, match="row MultiIndex"):
        ex.importance(dd.from_pandas(X, npartitions=2))


@pytest.mark.parametrize(
    ("cls", "params"),
    [
        (FeatureAblation, {}),
        (ShapleyValueSampling, {"n_samples": 2, "random_state": 0}),
        (KernelShap, {"n_samples": 10, "random_state": 0}),
        (LayerGradientShap, {"layer": "0", "random_state": 0}),
        (NeuronGradient, {"layer": "1", "neuron": 0}),
        (GradientShap, {"random_state": 0}),
    ],
)
def test_threaded_scheduler_equals_sequential_and_leaves_the_model(cls, params):
    X = _frame(80)
    net = _net()
    net.train()
    before = _state(net)
    ex = cls(**params).fit(net, X)
    ddf = dd.from_pandas(X, npartitions=8)
    threaded = ex.explain(ddf).compute(scheduler="threads", num_workers=4)
    sequential = ex.explain(ddf).compute(scheduler="sync")
    pd.testing.assert_frame_equal(threaded, sequential)
    assert _same_state(before, _state(net))


def test_a_fitted_explainer_pickles_after_dask_calls():
    X = _frame()
    ex = LayerGradientShap(layer="0", random_state=0).fit(_net(), X)
    ddf = dd.from_pandas(X, npartitions=2)
    first = ex.explain(ddf).compute(scheduler="threads")
    again = pickle.loads(pickle.dumps(ex))
    pd.testing.assert_frame_equal(again.explain(ddf).compute(), first)


def test_y_must_follow_the_rows_of_X():
    X = _frame()
    y = pd.Series(np.arange(len(X)) % 3, index=X.index)
    shuffled = dd.from_pandas(
        y.sample(frac=1.0, random_state=0).reset_index(drop=True), npartitions=3
    )
    ex = FeatureAblation(target="true").fit(_net(), X)
    with pytest.raises(ValueError, match="y is not indexed like X"):
        ex.explain(dd.from_pandas(X, npartitions=3), shuffled).compute(scheduler="sync")


def test_one_row_partitions_are_left_out_of_the_score():
    X = _frame(21)
    y = pd.Series(np.arange(21) % 3, index=X.index)
    frame = X.assign(y=y)
    parts = [frame.iloc[:10], frame.iloc[10:11], frame.iloc[11:]]
    ddf = dd.concat([dd.from_pandas(p, npartitions=1) for p in parts])
    ex = FeaturePermutation(scoring="accuracy", random_state=0).fit(_net(), X)
    table = ex.importance(ddf[COLUMNS], ddf["y"])
    assert table.attrs["n_rows"] == 20
    with pytest.raises(ValueError, match=r"partition 1 .*at least 2 rows"):
        FeaturePermutation().fit(_net(), X).explain(ddf[COLUMNS]).compute()


def test_only_one_row_partitions_are_not_called_an_empty_frame():
    # every partition has a row but none has two: nothing can be shuffled,
    # and the error says so (it used to say the frame had 0 rows)
    X = _frame(3)
    y = pd.Series([0, 1, 2], index=X.index)
    frame = X.assign(y=y)
    ddf = dd.concat(
        [dd.from_pandas(frame.iloc[i : i + 1], npartitions=1) for i in range(3)]
    )
    ex = FeaturePermutation(scoring="accuracy", random_state=0).fit(_net(), X)
    with pytest.raises(ValueError, match="no partition of X has 2 rows or more"):
        ex.importance(ddf[COLUMNS], ddf["y"])
    empty = ddf[ddf.age > 1e9]  # no row at all: called empty
    with pytest.raises(ValueError, match="every partition .* has 0 rows"):
        ex.importance(empty[COLUMNS], empty["y"])


def test_settings_travel_with_the_graph(monkeypatch):
    import skattr
    import skattr.dask as skdask

    seen = []
    original = skdask._run_partition

    def spy(*args, **kwargs):
        seen.append(skattr.get_config()["incremental_first_layer"])
        return original(*args, **kwargs)

    monkeypatch.setattr(skdask, "_run_partition", spy)
    X = _frame()
    ex = FeatureAblation().fit(_net(), X)
    with skattr.config_context(incremental_first_layer=False):
        lazy = ex.explain(dd.from_pandas(X, npartitions=3))
    lazy.compute(scheduler="threads")
    assert seen == [False] * 3


def test_dask_frames_of_every_recent_dask_are_told():
    from skattr._data import is_dask

    class Frame:  # as dask 2024.x named its frames
        __module__ = "dask_expr._collection"

        def __dask_graph__(self):
            return {}

    assert is_dask(Frame())
    assert not is_dask(pd.DataFrame())


def test_the_documented_flattening_writes_target_all_to_parquet(tmp_path):
    X = _frame()
    ex = FeatureAblation(target="all").fit(_net(), X)
    attr = ex.explain(dd.from_pandas(X, npartitions=2))
    attr.columns = ["|".join(c) for c in attr.columns]  # as docs/dask.md shows
    attr.to_parquet(tmp_path / "flat")
    back = dd.read_parquet(tmp_path / "flat").compute()
    assert list(back.columns)[:2] == ["0|age", "0|income"]
    np.testing.assert_allclose(back.to_numpy(), ex.explain(X).to_numpy())


def test_parameters_refused_for_the_columns_are_refused_when_planned():
    # checks of the parameters against the columns run when the call is
    # planned, before any partition is read, with the in-memory message (not
    # at compute, blamed on a partition)
    X = _frame(20)
    ddf = dd.from_pandas(X, npartitions=2)
    net = _net()
    for ex, match in (
        (KernelShap(n_samples=6, target=0), r"KernelShap\(n_samples=6\)"),
        (ShapleyValues(max_groups=3, target=0), "max_groups=3"),
    ):
        ex.fit(net, X)
        with pytest.raises(ValueError, match=match):
            ex.explain(ddf)
