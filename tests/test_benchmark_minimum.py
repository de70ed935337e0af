"""The benchmark's hand-written minimums compute what skattr computes.

``benchmarks/cases/minimum.py`` is a yardstick for W1's fixed-cost targets:
if a minimum did less than its method, the benchmark would promise a speed
no implementation can reach. Each is checked here against skattr on W1.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import skattr

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def w1_minimum():
    sys.path.insert(0, str(BENCH))
    try:
        from cases import minimum
        from workloads import w1
    finally:
        sys.path.remove(str(BENCH))
    w = w1(torch.device("cpu"))
    return w, {case.method: case.run for case in minimum.cases(w)}


def test_neuron_gradient_minimum_is_skattr_to_the_bit(w1_minimum):
    w, run = w1_minimum
    ours = skattr.NeuronGradient(layer="hidden.0", neuron=3).fit(w.model, w.frame)
    expected = ours.explain(w.frame)
    got = run["NeuronGradient"]()
    np.testing.assert_array_equal(got.to_numpy(), expected.to_numpy())
    assert list(got.columns) == list(expected.columns)


def test_shapley_sampling_minimum_estimates_the_same_values(w1_minimum):
    w, run = w1_minimum
    got = run["ShapleyValueSampling"]()
    ref = skattr.ShapleyValueSampling(
        n_samples=400, baseline="zeros", target=w.target, random_state=0
    ).fit(w.model, w.frame)
    ref = ref.explain(w.frame)
    # the ends are the model at the baseline and at x, as skattr's
    np.testing.assert_allclose(got.attrs["base_values"], ref.attrs["base_values"])
    np.testing.assert_allclose(got.attrs["prediction"], ref.attrs["prediction"])
    # efficiency: each row sums to f(x) - f(b)
    gap = got.attrs["prediction"] - got.attrs["base_values"]
    np.testing.assert_allclose(got.sum(axis=1), gap, atol=1e-6)
    # within the sampling error of 26 permutations of skattr's 400
    error = np.abs(got.to_numpy() - ref.to_numpy()).mean()
    assert error < 3 * got.attrs["std"].to_numpy().mean()
    assert (got.attrs["n_draws"] == 13).all()


def test_gradient_shap_minimum_is_skattr_with_the_same_draws(w1_minimum):
    w, run = w1_minimum
    got = run["GradientShap"]()
    ours = skattr.GradientShap(
        n_samples=5, baseline=w.baseline, target=w.target, random_state=0
    ).fit(w.model, w.frame)
    expected = ours.explain(w.frame)
    np.testing.assert_allclose(
        got.to_numpy(), expected.to_numpy(), rtol=1e-5, atol=1e-7
    )
    for key in ("delta", "base_values", "target"):
        np.testing.assert_allclose(got.attrs[key], expected.attrs[key], atol=1e-5)
