"""The benchmark's hand-written minimums compute what skattr computes.

``benchmarks/cases/minimum.py`` is a yardstick for W1's fixed-cost targets:
if a minimum did less than its method, the benchmark would promise a speed
no implementation can reach. Each is held here to skattr called with the
benchmark's settings (``benchmarks/cases/gradients.py`` and ``shapley.py``),
on W1.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import skattr

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    """W1, the benchmark's settings and its minimums, imported from
    ``benchmarks/`` with ``sys.path`` and the imported modules restored."""
    before = set(sys.modules)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH))
        from cases import gradients, minimum, shapley
        from workloads import w1

        yield w1(torch.device("cpu")), gradients, shapley, minimum
    for name in set(sys.modules) - before:
        if name.split(".")[0] in ("run", "workloads", "cases"):
            del sys.modules[name]


def _minimum(minimum, w, method):
    return next(c for c in minimum.cases(w) if c.method == method).run()


def _same(got, expected, rtol):
    assert list(got.columns) == list(expected.columns)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=rtol)
    assert set(got.attrs) == set(expected.attrs)
    for key, value in expected.attrs.items():
        np.testing.assert_allclose(
            np.asarray(got.attrs[key], dtype=float),
            np.asarray(value, dtype=float),
            rtol=rtol,
            err_msg=key,
        )


def test_neuron_gradient_minimum_is_skattr_to_the_bit(bench):
    w, gradients, _, minimum = bench
    ex = skattr.NeuronGradient(
        layer=gradients.NEURON_LAYER, neuron=gradients.NEURON, batch_size=w.batch_size
    )
    expected = ex.fit(w.model, w.frame).explain(w.frame)
    _same(_minimum(minimum, w, "NeuronGradient"), expected, rtol=0)


def test_gradient_shap_minimum_is_skattr_with_the_same_draws(bench):
    w, gradients, _, minimum = bench
    ex = skattr.GradientShap(
        n_samples=gradients.N_SAMPLES,
        baseline=w.baseline,
        target=w.target,
        batch_size=w.batch_size,
        random_state=0,
    )
    expected = ex.fit(w.model, w.frame).explain(w.frame)
    _same(_minimum(minimum, w, "GradientShap"), expected, rtol=1e-5)


def test_shapley_sampling_minimum_is_skattr_with_the_same_draws(bench):
    """On fewer rows than skattr explains in one chunk (whose draws then come
    from the call's own generator, as the minimum's): the same permutations,
    values, error bars and counts."""
    w, _, shapley, minimum = bench
    w40 = dataclasses.replace(w, X=w.X[:40])
    ex = skattr.ShapleyValueSampling(
        n_samples=shapley.N_PERMUTATIONS,
        baseline="zeros",
        target=w.target,
        batch_size=w.batch_size,
        random_state=0,
    ).fit(w.model, w40.frame)
    assert ex._rows_per_chunk(ex._fit_layout) >= 40  # one chunk
    expected = ex.explain(w40.frame)
    got = _minimum(minimum, w40, "ShapleyValueSampling")
    _same(got, expected, rtol=1e-9)
    # the efficiency a Shapley estimate keeps: each row sums to f(x) - f(b)
    gap = got.attrs["prediction"] - got.attrs["base_values"]
    np.testing.assert_allclose(got.sum(axis=1), gap, atol=1e-9)
