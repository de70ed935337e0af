"""FeatureAblation: skattr against Captum (default and best perturbations_per_eval).

Every implementation is timed as its user pays: skattr's constructor, ``fit``
and ``explain`` on the named DataFrame; Captum's constructor and
``attribute`` on the frame converted to a tensor.
"""

from __future__ import annotations

from run import Case

import skattr


def cases(w):
    n, p = w.X.shape
    X = w.frame

    def ours():
        ex = skattr.FeatureAblation(
            baseline="zeros", target=w.target, batch_size=w.batch_size
        )
        return ex.fit(w.model, X).explain(X)

    # every group ablated, with f(x) and f(baseline) in the same pass
    out = [Case("FeatureAblation", "skattr", ours, rows=n * (p + 2))]
    try:
        from captum.attr import FeatureAblation
    except ImportError:
        return out
    # Captum evaluates perturbations_per_eval features of the whole batch per call
    best = max(1, w.batch_size // n)
    for ppe in sorted({1, best}):
        out.append(
            Case(
                "FeatureAblation",
                f"captum (ppe={ppe})",
                lambda ppe=ppe: FeatureAblation(w.model).attribute(
                    w.tensor(X),
                    baselines=w.baseline,
                    target=w.target,
                    perturbations_per_eval=ppe,
                ),
                rows=n * (p + 1),
            )
        )
    return out
