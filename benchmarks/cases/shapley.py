"""Shapley values: skattr against Captum's ShapleyValueSampling and ShapleyValues.

ShapleyValueSampling at 25 permutations per row on W1 and W2 (Captum at its
default ``perturbations_per_eval=1`` and at its best, every feature of a
permutation in one call). skattr's antithetic default rounds 25 up to 13
pairs (26 permutations); the ``antithetic=False`` row uses exactly 25.
ShapleyValues on W1's 7 feature groups (W1 only): Captum's exact method
walks all 7! orderings, so only its first 10 rows are timed and scaled to
the 100; the note gives each implementation's largest error against a
float64 reference computed here from the subset formula.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import torch
from run import Case
from workloads import w1_group_mask

import skattr

N_PERMUTATIONS = 25
CAPTUM_EXACT_ROWS = 10


def cases(w):
    return _sampling_cases(w) + (_exact_cases(w) if w.name == "W1" else [])


def _sampling_cases(w):
    n, g = w.X.shape
    X = w.frame
    out = []
    for antithetic in (True, False):

        def ours(antithetic=antithetic):
            ex = skattr.ShapleyValueSampling(
                n_samples=N_PERMUTATIONS,
                antithetic=antithetic,
                baseline="zeros",
                target=w.target,
                batch_size=w.batch_size,
                random_state=0,
            )
            return ex.fit(w.model, X).explain(X)

        P = N_PERMUTATIONS + (N_PERMUTATIONS % 2 if antithetic else 0)
        out.append(
            Case(
                "ShapleyValueSampling",
                "skattr" if antithetic else "skattr (antithetic=False)",
                ours,
                rows=n * (2 + P * (g - 1)),
                note=f"{P} permutations",
            )
        )
    try:
        from captum.attr import ShapleyValueSampling
    except ImportError:
        return out
    # W2: Captum on a tenth of the rows, scaled (its cost is linear in rows)
    m = n if n <= 500 else n // 10
    Xm = X.iloc[:m]
    best = max(1, min(g, w.batch_size // m))
    for ppe in sorted({1, best}):
        out.append(
            Case(
                "ShapleyValueSampling",
                f"captum (ppe={ppe})",
                lambda ppe=ppe: ShapleyValueSampling(w.model).attribute(
                    w.tensor(Xm),
                    baselines=w.baseline,
                    target=w.target,
                    n_samples=N_PERMUTATIONS,
                    perturbations_per_eval=ppe,
                ),
                rows=n * (1 + N_PERMUTATIONS * g),
                scale=n / m,
                note="" if m == n else f"{m} of {n} rows, scaled",
            )
        )
    return out


def _exact_cases(w):
    n = w.X.shape[0]
    mask = w1_group_mask(w.feature_names)
    g = int(mask.max()) + 1
    X = w.frame

    def ours():
        ex = skattr.ShapleyValues(
            feature_groups=mask,
            baseline="zeros",
            target=w.target,
            batch_size=w.batch_size,
        )
        return ex.fit(w.model, X).explain(X)

    reference = _reference_float64(w, mask)
    err = np.abs(ours().to_numpy() - reference).max()
    out = [
        Case(
            "ShapleyValues (7 groups)",
            "skattr",
            ours,
            rows=n * 2**g,
            note=f"max error {err:.1e} vs float64 reference",
        )
    ]
    try:
        from captum.attr import ShapleyValues
    except ImportError:
        return out
    sv = ShapleyValues(w.model)
    X = w.X[:CAPTUM_EXACT_ROWS]
    feature_mask = torch.as_tensor(mask, device=w.device)[None]

    def captum(ppe):
        return sv.attribute(
            X,
            baselines=w.baseline,
            target=w.target,
            feature_mask=feature_mask,
            perturbations_per_eval=ppe,
        )

    theirs = captum(1)[:, np.unique(mask, return_index=True)[1]]
    err = np.abs(theirs.double().cpu().numpy() - reference[:CAPTUM_EXACT_ROWS]).max()
    for ppe in (1, g):
        out.append(
            Case(
                "ShapleyValues (7 groups)",
                f"captum (ppe={ppe})",
                lambda ppe=ppe: captum(ppe),
                rows=n * (1 + math.factorial(g) * g),
                scale=n / CAPTUM_EXACT_ROWS,
                note=f"{CAPTUM_EXACT_ROWS} of {n} rows, scaled; "
                f"max error {err:.1e} vs float64 reference",
            )
        )
    return out


def _reference_float64(w, mask: np.ndarray) -> np.ndarray:
    """Exact Shapley values of a float64 copy of the model, subset by subset."""
    import copy

    model = copy.deepcopy(w.model).double().cpu()
    X = w.X.double().cpu()
    b = w.baseline.double().cpu()
    g = int(mask.max()) + 1
    columns = torch.as_tensor(mask)
    value = {}
    with torch.no_grad():
        for size in range(g + 1):
            for S in itertools.combinations(range(g), size):
                inside = torch.isin(columns, torch.tensor(S, dtype=torch.long))
                Z = torch.where(inside, X, b)
                value[S] = model(Z)[:, w.target].numpy()
    phi = np.zeros((X.shape[0], g))
    for j in range(g):
        others = [k for k in range(g) if k != j]
        for size in range(g):
            weight = (
                math.factorial(size) * math.factorial(g - size - 1) / math.factorial(g)
            )
            for S in itertools.combinations(others, size):
                phi[:, j] += weight * (value[tuple(sorted(S + (j,)))] - value[S])
    return phi
