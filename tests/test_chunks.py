"""Rows explained in chunks: memory bounded by the chunk, results as they should be.

A method whose intermediate results grow with rows times samples explains
at most ``_rows_per_chunk`` rows at a time (``ROW_BUDGET`` values). The
tests shrink the budget so that a few rows make several chunks.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import skattr
from skattr.explainers import _base
from tests.conftest import MLP, NaNAtRow, modules_imported_by


@pytest.fixture
def X():
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        rng.normal(size=(23, 5)), columns=[f"f{i}" for i in range(5)]
    ).set_axis([f"r{i}" for i in range(23)])


@pytest.fixture
def net():
    return MLP().double()


def _small_chunks(monkeypatch, ex):
    """Shrink the budget until ``ex`` explains 23 rows in chunks of 3 to 8."""
    budget = 1
    monkeypatch.setattr(_base, "ROW_BUDGET", budget)
    while ex._rows_per_chunk(ex._fit_layout) < 4:
        budget *= 2
        monkeypatch.setattr(_base, "ROW_BUDGET", budget)
    assert 3 <= ex._rows_per_chunk(ex._fit_layout) <= 8


@pytest.mark.parametrize(
    "make",
    [
        lambda: skattr.KernelShap(n_samples=20, random_state=0),
        lambda: skattr.KernelShap(n_samples=20, random_state=0, tol=0.05),
        lambda: skattr.KernelShap(n_samples=20, random_state=0, target="all"),
        lambda: skattr.ShapleyValues(),
        lambda: skattr.FeatureAblation(target="all"),
    ],
)
def test_chunks_change_nothing_where_the_draws_are_shared(monkeypatch, X, net, make):
    """KernelShap's pairs are shared by every row: each chunk draws the same
    ones, so the result equals the one-chunk call; exact values are exact."""
    ex = make().fit(net, X)
    whole = ex.explain(X)
    _small_chunks(monkeypatch, ex)
    chunked = ex.explain(X)
    pd.testing.assert_frame_equal(chunked, whole, check_exact=False, atol=1e-12)
    for key, value in whole.attrs.items():
        if isinstance(value, (pd.DataFrame, pd.Series)):
            pd.testing.assert_index_equal(chunked.attrs[key].index, value.index)
            np.testing.assert_allclose(
                np.asarray(chunked.attrs[key], dtype=float),
                np.asarray(value, dtype=float),
                atol=1e-12,
            )
        else:
            assert chunked.attrs[key] == value


@pytest.mark.parametrize(
    "make",
    [
        lambda b: skattr.ShapleyValueSampling(
            n_samples=4, random_state=0, batch_size=b
        ),
        lambda b: skattr.Lime(n_samples=30, random_state=0, batch_size=b),
    ],
)
def test_chunked_draws_are_reproducible_and_do_not_follow_batch_size(
    monkeypatch, X, net, make
):
    ex = make(4096).fit(net, X)
    _small_chunks(monkeypatch, ex)
    first = ex.explain(X)
    pd.testing.assert_frame_equal(ex.explain(X), first)
    other = make(7).fit(net, X).explain(X)
    pd.testing.assert_frame_equal(other, first, check_exact=False, atol=1e-10)
    # chunks draw their own streams: no two chunks repeat each other's draws
    if isinstance(ex, skattr.ShapleyValueSampling):
        twice = pd.concat([X.iloc[:4]] * 6).set_axis([f"s{i}" for i in range(24)])
        values = ex.explain(twice).to_numpy()
        assert not np.allclose(values[:4], values[-4:])
        # efficiency holds row by row in every chunk
        np.testing.assert_allclose(
            first.sum(axis=1) + first.attrs["base_values"],
            first.attrs["prediction"],
            atol=1e-9,
        )


def test_a_non_finite_output_in_a_later_chunk_names_its_row(monkeypatch, X):
    bad = X.copy()
    bad.iloc[19, 0] = 1000.0
    ex = skattr.KernelShap(n_samples=20, random_state=0).fit(NaNAtRow(), X)
    _small_chunks(monkeypatch, ex)
    with pytest.raises(ValueError, match=r"For 1 of the 23 rows .*first rows: 'r19'\)"):
        ex.explain(bad)


def test_chunk_sizes_follow_the_samples_not_batch_size(X, net):
    small = skattr.KernelShap(n_samples=20, batch_size=1).fit(net, X)
    large = skattr.KernelShap(n_samples=2000, batch_size=1).fit(net, X)
    assert small._rows_per_chunk(small._fit_layout) > large._rows_per_chunk(
        large._fit_layout
    )
    again = skattr.KernelShap(n_samples=20, batch_size=4096).fit(net, X)
    assert again._rows_per_chunk(again._fit_layout) == small._rows_per_chunk(
        small._fit_layout
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda t: skattr.ShapleyValueSampling(n_samples=4, random_state=0, target=t),
        lambda t: skattr.Lime(n_samples=30, random_state=0, target=t),
    ],
)
def test_target_all_draws_as_each_label_across_chunks(monkeypatch, X, net, make):
    ex = make("all").fit(net, X)
    _small_chunks(monkeypatch, ex)
    every = ex.explain(X)
    for label in range(3):
        one = make(label).fit(net, X).explain(X)
        np.testing.assert_allclose(every[label].to_numpy(), one.to_numpy(), atol=1e-9)


def test_lime_chunks_count_the_gram_matrices_of_their_rows(net):
    # with fewer samples than groups each row's Lasso holds more in its
    # [g, g] Gram matrices (about four of them) than in its samples
    g = 40
    wide = pd.DataFrame(
        np.random.default_rng(0).normal(size=(5, g)),
        columns=[f"c{i}" for i in range(g)],
    )
    model = torch.nn.Linear(g, 2).double()
    ex = skattr.Lime(n_samples=10).fit(model, wide)
    layout = ex._fit_layout
    rows = ex._rows_per_chunk(layout)
    assert rows * 4 * g * g * layout.n_outputs <= _base.ROW_BUDGET


def test_explaining_imports_no_symbolic_shapes():
    # torch.unravel_index's first call imports torch's symbolic shapes and
    # sympy: about 40 MiB of peak memory and a third of a second that every
    # gathered chunk of coalitions used to pay
    names = ("sympy", "torch.fx.experimental.symbolic_shapes")
    control = "import torch\ntorch.unravel_index(torch.tensor([3]), (2, 2))"
    if not modules_imported_by(control, names):
        pytest.skip("this torch's unravel_index imports neither: nothing to avoid")
    script = """
import numpy as np, pandas as pd, torch
import skattr
X = pd.DataFrame(np.random.default_rng(0).normal(size=(6, 5)), columns=list("abcde"))
net = torch.nn.Sequential(torch.nn.Linear(5, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2)).double()
for ex in (
    skattr.ShapleyValueSampling(n_samples=4, batch_size=3, random_state=0),
    skattr.KernelShap(n_samples=20, batch_size=3, random_state=0),
    skattr.Lime(n_samples=20, batch_size=3, random_state=0),
    skattr.FeatureAblation(batch_size=3),
):
    ex.fit(net, X).explain(X)
"""
    assert modules_imported_by(script, names) == []


def test_the_finiteness_probe_reads_a_large_result_in_chunks(monkeypatch, X):
    # the probe of the attributions goes through the result a few rows at a
    # time (it used to copy it whole): a NaN gradient in the last row is found
    from skattr import _model

    class Root(torch.nn.Module):  # d sqrt(x^2) / dx is NaN at 0
        def forward(self, x):
            return torch.sqrt(x**2).sum(1, keepdim=True)

    bad = X.copy()
    bad.iloc[-1, 2] = 0.0
    monkeypatch.setattr(_model, "_PROBE_VALUES", 5)  # one row of 5 at a time
    ex = skattr.GradientShap(baseline="zeros", random_state=0).fit(Root(), X)
    sizes = []
    isfinite = np.isfinite

    def recording(a, *args, **kwargs):
        sizes.append(np.size(a))
        return isfinite(a, *args, **kwargs)

    monkeypatch.setattr(np, "isfinite", recording)
    ex.explain(X)
    assert sizes.count(5) >= len(X)  # the result, row by row
    monkeypatch.setattr(np, "isfinite", isfinite)
    with pytest.raises(ValueError, match=r"For 1 of the 23 rows .*'r22'"):
        ex.explain(bad)
