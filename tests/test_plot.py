"""skattr.plot, rendered headless: what was drawn is what was computed."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import skattr  # noqa: E402
from skattr import plot  # noqa: E402
from tests.conftest import MLP, make_linear  # noqa: E402


@pytest.fixture
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        rng.normal(size=(20, 5)).astype(np.float32), columns=list("abcde")
    )


@pytest.fixture(autouse=True)
def _close():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def test_bar_heights_are_the_importances(frame):
    imp = skattr.ShapleyValues(target=1).fit(MLP(), frame).importance(frame)
    ax = plot.bar(imp, max_display=3)
    widths = [p.get_width() for p in ax.patches]
    np.testing.assert_allclose(widths, imp["importance"].iloc[:3][::-1])
    assert [t.get_text() for t in ax.get_yticklabels()] == list(imp.index[:3][::-1])


def test_bar_per_output(frame):
    imp = skattr.ShapleyValues(target="all").fit(MLP(), frame).importance(frame)
    ax = plot.bar(imp)
    assert len(ax.patches) == 3 * 5
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"0", "1", "2"}


def test_bar_of_attributions_draws_their_importance(frame):
    # SHAP's bar plot takes the attributions; given them, bar drew the first
    # rows' raw values under "mean |attribution|", each feature as an output
    for target, bars in ((1, 5), ("all", 3 * 5)):
        attr = skattr.ShapleyValues(target=target).fit(MLP(), frame).explain(frame)
        imp = skattr.ShapleyValues(target=target).fit(MLP(), frame).importance(frame)
        drawn = [p.get_width() for p in plot.bar(attr).patches]
        expected = [p.get_width() for p in plot.bar(imp).patches]
        assert len(drawn) == bars
        np.testing.assert_allclose(drawn, expected)


def test_beeswarm_draws_every_row_of_every_feature(frame):
    attr = skattr.FeatureAblation(target=0).fit(MLP(), frame).explain(frame)
    ax = plot.beeswarm(attr, frame, max_display=4)
    counts = [len(c.get_offsets()) for c in ax.collections]
    assert counts == [20] * 4
    with pytest.raises(ValueError, match="Select one"):
        plot.beeswarm(
            skattr.FeatureAblation(target="all").fit(MLP(), frame).explain(frame), frame
        )


def test_waterfall_ends_at_the_prediction(frame):
    attr = skattr.ShapleyValues(target=2).fit(MLP(), frame).explain(frame)
    ax = plot.waterfall(attr.iloc[3], max_display=3)
    ends = [p.get_x() + p.get_width() for p in ax.patches]
    starts = [p.get_x() for p in ax.patches]
    assert starts[0] == pytest.approx(attr.attrs["base_values"].iloc[3], abs=1e-6)
    assert ends[-1] == pytest.approx(attr.attrs["prediction"].iloc[3], abs=1e-5)
    assert len(ax.patches) == 4  # three features and the other two merged
    one = plot.waterfall(attr.iloc[[3]])
    assert len(one.patches) == 5
    ablation = skattr.FeatureAblation(target=2).fit(MLP(), frame).explain(frame)
    with pytest.raises(ValueError, match="sum to f\\(x\\) - f\\(baseline\\)"):
        plot.waterfall(ablation.iloc[0])


def test_dependence_numeric_and_categorical(frame):
    attr = skattr.FeatureAblation(target=0).fit(MLP(), frame).explain(frame)
    ax = plot.dependence(attr, frame, "b")
    np.testing.assert_allclose(ax.collections[0].get_offsets()[:, 0], frame["b"])
    np.testing.assert_allclose(ax.collections[0].get_offsets()[:, 1], attr["b"])
    labels = frame.assign(b=np.where(frame["b"] > 0, "high", "low"))
    ax = plot.dependence(attr, labels, "b")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["high", "low"]
    with pytest.raises(ValueError, match="not a column"):
        plot.dependence(attr, frame, "zz")


def test_each_plot_draws_on_the_axes_given(frame):
    import matplotlib.pyplot as plt

    _, ax = plt.subplots()
    imp = skattr.ShapleyValues(target=0).fit(MLP(), frame).importance(frame)
    assert plot.bar(imp, ax=ax) is ax


def test_to_shap_for_shap_users(frame):
    import shap

    attr = skattr.ShapleyValues(target=1).fit(MLP(), frame).explain(frame)
    expl = skattr.to_shap(attr, frame)
    np.testing.assert_array_equal(expl.values, attr.to_numpy())
    np.testing.assert_array_equal(expl.base_values, attr.attrs["base_values"])
    np.testing.assert_array_equal(expl.data, frame.to_numpy())
    assert list(expl.feature_names) == list("abcde")
    shap.plots.waterfall(expl[0], show=False)  # SHAP's own plots draw it
    every = skattr.ShapleyValues(target="all").fit(MLP(), frame).explain(frame)
    many = skattr.to_shap(every, frame)
    assert many.values.shape == (20, 5, 3)
    np.testing.assert_array_equal(many.values[:, :, 1], every[1].to_numpy())
    np.testing.assert_array_equal(many.base_values[:, 2], every.attrs["base_values"][2])


def test_interactions_heat_map_is_the_mean_absolute_matrix(frame):
    attr = skattr.ShapleyInteractions(target=1).fit(MLP(), frame).explain(frame)
    ax = plot.interactions(attr, max_display=4)
    grid = ax.images[0].get_array()
    names = [t.get_text() for t in ax.get_yticklabels()]
    assert len(names) == 4 and [t.get_text() for t in ax.get_xticklabels()] == names
    cube = np.abs(attr.to_numpy().reshape(20, 5, 5)).mean(0)
    idx = [list(attr.columns).index(n) for n in names]
    np.testing.assert_allclose(grid, cube[np.ix_(idx, idx)])
    phi = np.abs(attr.to_numpy().reshape(20, 5, 5).sum(2)).mean(0)
    assert list(np.argsort(-phi)[:4]) == idx  # largest Shapley values first
    one = plot.interactions(attr, row=3)
    values = one.images[0].get_array()
    assert values.shape == (5, 5) and np.allclose(values, values.T)
    assert one.images[0].get_clim()[0] == -one.images[0].get_clim()[1]  # centred
    with pytest.raises(ValueError, match="ShapleyInteractions"):
        plot.interactions(
            skattr.ShapleyValues(target=1).fit(MLP(), frame).explain(frame)
        )


def _efficiency_gap(expl, prediction):
    """Largest |values summed + base value - prediction| over the rows."""
    axes = tuple(range(1, expl.values.ndim))
    return np.abs(expl.values.sum(axes) + expl.base_values - prediction).max()


def test_to_shap_matches_extras_and_X_to_rows_by_label(frame):
    # pandas copies attrs whole into a sorted or sliced result: read by
    # position, each row got another row's base value (a gap of 0.1 here),
    # or 20 base values for 8 rows
    attr = skattr.ShapleyValues(target="predicted").fit(MLP(), frame).explain(frame)
    prediction = attr.attrs["prediction"]
    for part in (attr.sort_values("a"), attr[attr["a"] > 0], attr.iloc[::-1]):
        expl = skattr.to_shap(part, frame)
        assert len(expl.base_values) == len(part)
        assert _efficiency_gap(expl, prediction.loc[part.index].to_numpy()) < 1e-5
        np.testing.assert_array_equal(expl.data, frame.loc[part.index].to_numpy())
    with pytest.raises(ValueError, match="in another order than X's"):
        skattr.to_shap(attr.sort_values("a"), frame.set_axis(range(100, 120)))
    # a labelled frame in another order than the result: matched by label
    named = frame.set_axis([f"r{i}" for i in range(20)])
    attr_named = skattr.ShapleyValues(target=1).fit(MLP(), named).explain(named)
    expl = skattr.to_shap(attr_named, named.iloc[::-1])
    np.testing.assert_array_equal(expl.data, named.to_numpy())
    with pytest.raises(ValueError, match="X has no row labelled"):
        skattr.to_shap(attr_named, named.iloc[:5])
    # an array beside a result of a frame's labels in another order than
    # explain returned them (sorted): taken in its order, each row got
    # another row's features (a gap of 0.15 between values + base and the
    # model at the data); its extras still hold explain's order
    for shuffled in (attr_named.sort_values("a"), attr_named.iloc[::-1]):
        with pytest.raises(ValueError, match="another order than explain"):
            skattr.to_shap(shuffled, named.to_numpy())
        with pytest.raises(ValueError, match="another order than explain"):
            plot.dependence(shuffled, named.to_numpy(), "a")
    # NeuronGradient's result keeps explain's order in its activations (it
    # had no per-row extras, and a sorted one beside an array paired rows
    # with others' features); a frame rebuilt without attrs keeps none
    grads = skattr.NeuronGradient(layer="hidden.0", neuron=1).fit(MLP(), named)
    plain = grads.explain(named)
    ax = plot.dependence(plain, named.to_numpy(), "a")  # as explained
    np.testing.assert_allclose(ax.collections[0].get_offsets()[:, 0], named["a"])
    with pytest.raises(ValueError, match="another order than explain"):
        plot.dependence(plain.iloc[::-1], named.to_numpy(), "a")
    rebuilt = pd.DataFrame(plain.to_numpy(), index=plain.index, columns=plain.columns)
    with pytest.raises(ValueError, match="no per-row extras"):
        plot.dependence(rebuilt, named.to_numpy(), "a")
    ax = plot.dependence(rebuilt.iloc[::-1], named, "a")  # a frame: by label
    np.testing.assert_allclose(ax.collections[0].get_offsets()[:, 0], named["a"][::-1])
    # repeated labels (a pd.concat of two frames of one index): the whole
    # result takes an array in its order; no part of it can be told from
    # another (rows [3, 0] and [3, 4] are both labelled r3, r0: a match in
    # turn paired rows [3, 0] wrongly)
    twice = pd.concat([named.iloc[:4], named.iloc[4:8].set_axis(named.index[:4])])
    res = skattr.ShapleyValues(baseline=0.0).fit(MLP(), twice).explain(twice)
    ax = plot.dependence(res, twice.to_numpy(), "a")
    np.testing.assert_allclose(ax.collections[0].get_offsets()[:, 0], twice["a"])
    for picked in ([3, 0], [3, 4], list(range(8))[::-1]):
        with pytest.raises(ValueError, match="labels named more than once"):
            plot.dependence(res.iloc[picked], twice.to_numpy()[picked], "a")
    # in explain's order, filtered or not, an array is taken in its order
    kept = attr_named[attr_named["a"] > 0]
    expl = skattr.to_shap(kept, named[attr_named["a"] > 0].to_numpy())
    np.testing.assert_array_equal(expl.data, named.loc[kept.index].to_numpy())
    # an array's result (rows 0..n-1 in order) takes X's rows in their order
    # when X's labels are others (X_test explained as an array: refused when
    # matched by label); an array X is read at the result's labels, also
    # for a sorted result
    w = np.array([1.0, -2.0, 0.5, 3.0, 0.0])
    linear = make_linear(w)
    X = frame.iloc[5:15]
    arr = skattr.ShapleyValues(baseline=0.0).fit(linear, X).explain(X.to_numpy())
    for given in (X, X.to_numpy()):
        expl = skattr.to_shap(arr, given)
        np.testing.assert_allclose(expl.values, w * expl.data, atol=1e-5)
    ax = plot.dependence(arr, X.to_numpy(), "a")
    np.testing.assert_allclose(ax.collections[0].get_offsets()[:, 0], X["a"])
    # an array beside a result labelled by positions in another order: a
    # sorted array result, or a frame whose labels look like positions
    with pytest.raises(ValueError, match="X is an array.*cannot be told"):
        skattr.to_shap(arr.sort_values("a"), X.to_numpy())
    small = frame.iloc[[0, 2, 1]]  # a frame labelled 0, 2, 1
    res = skattr.ShapleyValues(baseline=0.0).fit(linear, small).explain(small)
    with pytest.raises(ValueError, match="X is an array.*cannot be told"):
        plot.dependence(res, small.to_numpy(), "a")
    # labels 0..n-1 in another order beside a result labelled 0..n-1 in
    # order: a reordered frame (by label) or an array of its rows (by
    # position) cannot be told apart, and each guess paired other rows
    for reordered in (frame.sort_values("a"), frame.sample(frac=1, random_state=1)):
        with pytest.raises(ValueError, match="which one cannot be told"):
            skattr.to_shap(attr, reordered)
    # one output of a target="all" result: its attrs hold every output's
    every = skattr.ShapleyValues(target="all").fit(MLP(), frame).explain(frame)
    with pytest.raises(ValueError, match="one output of a target='all' result"):
        skattr.to_shap(every[0])
    # a label named twice cannot say which row of a reordered result is meant
    twice = frame.set_axis(["p", "q"] * 10)
    dup = skattr.ShapleyValues(target=0).fit(MLP(), twice).explain(twice)
    assert (
        _efficiency_gap(skattr.to_shap(dup), dup.attrs["prediction"].to_numpy()) < 1e-5
    )
    with pytest.raises(ValueError, match=r"names \['p', 'q'\] more than once"):
        skattr.to_shap(dup.iloc[::-1])


def test_to_shap_gives_interaction_values_as_matrices(frame):
    # SHAP's layout of interaction values, [n, g, g]: each row's matrix sums
    # to f(x) - f(baseline); before, [n * g, g] values with n base values
    attr = skattr.ShapleyInteractions(target=1).fit(MLP(), frame).explain(frame)
    expl = skattr.to_shap(attr)
    assert expl.values.shape == (20, 5, 5)
    np.testing.assert_array_equal(expl.values[3], attr.to_numpy()[15:20])
    assert _efficiency_gap(expl, attr.attrs["prediction"].to_numpy()) < 1e-5
    rows = attr.index.get_level_values(0).unique()
    picked = attr.loc[[rows[7], rows[2]]]
    part = skattr.to_shap(picked)
    np.testing.assert_array_equal(part.values, expl.values[[7, 2]])
    np.testing.assert_array_equal(part.base_values, expl.base_values[[7, 2]])
    every = skattr.ShapleyInteractions(target="all").fit(MLP(), frame).explain(frame)
    assert skattr.to_shap(every).values.shape == (20, 5, 5, 3)
    with pytest.raises(ValueError, match="whole matrices"):
        skattr.to_shap(attr.iloc[:7])


def test_waterfall_of_a_sorted_result_and_of_one_output(frame):
    attr = skattr.ShapleyValues(target=2).fit(MLP(), frame).explain(frame)
    label = attr.index[attr["a"].argmax()]
    for row in (attr.sort_values("a").iloc[-1], attr.sort_values("a").iloc[[-1]]):
        ax = plot.waterfall(row)
        assert ax.patches[0].get_x() == pytest.approx(
            attr.attrs["base_values"].loc[label], abs=1e-6
        )
    every = skattr.ShapleyValues(target="all").fit(MLP(), frame).explain(frame)
    for row in (every.iloc[4], every[2].iloc[4], every[2].iloc[[4]]):
        with pytest.raises(ValueError, match=r"output=, one of \[0, 1, 2\]"):
            plot.waterfall(row)
        ax = plot.waterfall(row, output=2, max_display=5)
        ends = [p.get_x() + p.get_width() for p in ax.patches]
        assert ax.patches[0].get_x() == pytest.approx(
            every.attrs["base_values"][2].iloc[4], abs=1e-6
        )
        assert ends[-1] == pytest.approx(every.attrs["prediction"][2].iloc[4], abs=1e-5)
    twice = frame.set_axis(["p", "q"] * 10)
    dup = skattr.ShapleyValues(target=0).fit(MLP(), twice).explain(twice)
    with pytest.raises(ValueError, match=r"names \['p', 'q'\] more than once"):
        plot.waterfall(dup.iloc[2])


def test_beeswarm_and_dependence_match_X_to_rows_by_label(frame):
    attr = skattr.FeatureAblation(target=0).fit(MLP(), frame).explain(frame)
    part = attr.sort_values("b").iloc[:12]
    ax = plot.dependence(part, frame, "b")
    np.testing.assert_allclose(
        ax.collections[0].get_offsets()[:, 0], frame.loc[part.index, "b"]
    )


def test_bar_of_interactions_draws_the_pairs(frame):
    # the interactions result, given to bar, was ranked as if each
    # (row, feature) line were a row of attributions
    ex = skattr.ShapleyInteractions(target=1).fit(MLP(), frame)
    attr, imp = ex.explain(frame), ex.importance(frame)
    for given in (attr, imp):
        ax = plot.bar(given, max_display=4)
        widths = [p.get_width() for p in ax.patches]
        np.testing.assert_allclose(widths, imp["importance"].iloc[:4][::-1])
        labels = [t.get_text() for t in ax.get_yticklabels()]
        assert labels == [f"{a} × {b}" for a, b in imp.index[:4][::-1]]
        assert ax.get_xlabel() == "mean |interaction|"


def test_waterfall_refuses_an_output_for_a_single_output_row(frame):
    attr = skattr.ShapleyValues(target=2).fit(MLP(), frame).explain(frame)
    with pytest.raises(ValueError, match="leave output out"):
        plot.waterfall(attr.iloc[0], output=3)


def test_interactions_are_read_as_whole_matrices_in_any_line_order(frame):
    # plot.interactions and bar (rank_pairs) reshaped the lines as they came:
    # after a sort or a reversal, heat map and ranking were of shuffled cells
    attr = skattr.ShapleyInteractions(target=1).fit(MLP(), frame).explain(frame)
    imp = skattr.plot.bar(attr).patches
    grid = plot.interactions(attr).images[0].get_array()
    for shuffled in (attr.sort_values("a"), attr.iloc[::-1]):
        np.testing.assert_allclose(
            [p.get_width() for p in plot.bar(shuffled).patches],
            [p.get_width() for p in imp],
        )
        np.testing.assert_allclose(
            plot.interactions(shuffled).images[0].get_array(), grid
        )
    with pytest.raises(ValueError, match="whole matrices"):
        plot.interactions(attr.iloc[2:18])


def test_submodules_are_reached_from_the_package_without_importing_them_first():
    # `import skattr; skattr.plot.bar(...)` raised AttributeError: the
    # submodules are loaded on first use, and plain `import skattr` still
    # imports neither matplotlib nor dask
    from tests.conftest import modules_imported_by

    script = (
        "import sys, skattr\n"
        "assert not {'matplotlib', 'dask'} & set(sys.modules), 'imported'\n"
        "skattr.plot.bar, skattr.report.audit"
    )
    assert modules_imported_by(script, ("skattr.plot", "skattr.report")) == [
        "skattr.plot",
        "skattr.report",
    ]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        skattr.nope  # noqa: B018
