"""The incremental first layer: each perturbation method with it and without it.

On W2 (100 -> 256 -> 256 -> 1) and the wide W4 (500 -> 64 -> 64 -> 1, 400
rows): ShapleyValueSampling with ``n_samples=10``, FeatureAblation,
FeaturePermutation (one repeat) and exact ShapleyValues over 10 groups of
equal width. On W4 also ShapleyValueSampling against 10 background rows,
on the first 20 rows: a permutation's 499 states times 10 rows exceed a
batch of 4,096, so the sums are carried from call to call.
``skattr`` is the default (the incremental first layer where its cost rule
says it pays), ``skattr (plain path)`` the same call under
``skattr.config_context(incremental_first_layer=False)``; the floor is the
naive one, every perturbed row through the whole model. Timed as the user
pays.
"""

from __future__ import annotations

import numpy as np
from run import Case

import skattr

WORKLOADS = ("W2", "W3", "W4")
N_SAMPLES = 10
N_GROUPS = 10
#: W4's Shapley sampling against background rows: that many of each
BACKGROUND = 10
LONG_ROWS = 20


def cases(w):
    n, p = w.X.shape
    X = w.frame
    common = {"baseline": "zeros", "target": w.target, "batch_size": w.batch_size}
    groups = np.arange(p) * N_GROUPS // p
    methods = {
        f"ShapleyValueSampling (n_samples={N_SAMPLES}, incremental)": (
            lambda: skattr.ShapleyValueSampling(
                n_samples=N_SAMPLES, random_state=0, **common
            ),
            n * (2 + N_SAMPLES * (p - 1)),
        ),
        "FeatureAblation (incremental)": (
            lambda: skattr.FeatureAblation(**common),
            n * (p + 2),
        ),
        "FeaturePermutation (incremental)": (
            lambda: skattr.FeaturePermutation(
                target=w.target, batch_size=w.batch_size, random_state=0
            ),
            n * (1 + p),
        ),
        f"ShapleyValues ({N_GROUPS} groups, incremental)": (
            lambda: skattr.ShapleyValues(feature_groups=groups, **common),
            n * 2**N_GROUPS,
        ),
    }
    frames = dict.fromkeys(methods, X)
    if w.name == "W4":
        method = (
            f"ShapleyValueSampling (n_samples={N_SAMPLES}, {BACKGROUND} background "
            f"rows, {LONG_ROWS} rows, incremental)"
        )
        background = X.iloc[-BACKGROUND:]
        methods[method] = (
            lambda: skattr.ShapleyValueSampling(
                n_samples=N_SAMPLES,
                baseline=background,
                target=w.target,
                batch_size=w.batch_size,
                random_state=0,
            ),
            LONG_ROWS * BACKGROUND * (2 + N_SAMPLES * (p - 1)),
        )
        frames[method] = X.iloc[:LONG_ROWS]
    out = []
    for method, (make, rows) in methods.items():

        def default(make=make, X=frames[method]):
            return make().fit(w.model, X).explain(X)

        def plain(make=make, X=frames[method]):
            with skattr.config_context(incremental_first_layer=False):
                return make().fit(w.model, X).explain(X)

        out.append(Case(method, "skattr", default, rows=rows))
        out.append(Case(method, "skattr (plain path)", plain, rows=rows))
    return out
