"""FeatureAblation: skattr against Captum (default and best perturbations_per_eval)."""

from __future__ import annotations

from run import Case

import skattr


def cases(w):
    n, p = w.X.shape
    ex = skattr.FeatureAblation(
        baseline="zeros", target=w.target, batch_size=w.batch_size
    )
    ex.fit(w.model, w.X[:1])
    out = [Case("FeatureAblation", "skattr", lambda: ex.explain(w.X), rows=n * (p + 1))]
    try:
        from captum.attr import FeatureAblation
    except ImportError:
        return out
    fa = FeatureAblation(w.model)
    # Captum evaluates perturbations_per_eval features of the whole batch per call
    best = max(1, w.batch_size // n)
    for ppe in sorted({1, best}):
        out.append(
            Case(
                "FeatureAblation",
                f"captum (ppe={ppe})",
                lambda ppe=ppe: fa.attribute(
                    w.X,
                    baselines=w.baseline,
                    target=w.target,
                    perturbations_per_eval=ppe,
                ),
                rows=n * (p + 1),
            )
        )
    return out
