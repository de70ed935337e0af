"""FeaturePermutation: skattr against scikit-learn (importance) and Captum (explain)."""

from __future__ import annotations

from run import Case

import skattr

N_REPEATS = 5


def cases(w):
    out = []
    n, p = w.X.shape
    # local attribution (Captum's FeaturePermutation) on the rows to explain
    ex = skattr.FeaturePermutation(
        target=w.target, batch_size=w.batch_size, random_state=0
    ).fit(w.model, w.X[:2])
    out.append(
        Case(
            "FeaturePermutation",
            "skattr",
            lambda: ex.explain(w.X),
            rows=n * (p + 1),
        )
    )
    try:
        from captum.attr import FeaturePermutation
    except ImportError:
        pass
    else:
        fp = FeaturePermutation(w.model)
        best = max(1, w.batch_size // n)
        for ppe in sorted({1, best}):
            out.append(
                Case(
                    "FeaturePermutation",
                    f"captum (ppe={ppe})",
                    lambda ppe=ppe: fp.attribute(
                        w.X, target=w.target, perturbations_per_eval=ppe
                    ),
                    rows=n * (p + 1),
                )
            )
    if w.X_all is None:  # permutation importance: W1's labelled rows only
        return out
    X_all, y_all = w.X_all, w.y_all
    m = X_all.shape[0]
    rows = m * (1 + p * N_REPEATS)
    imp = skattr.FeaturePermutation(
        n_repeats=N_REPEATS,
        scoring="accuracy",
        batch_size=w.batch_size,
        random_state=0,
    )
    net = w.skorch_net()
    imp.fit(net, X_all[:2])
    out.append(
        Case(
            "PermutationImportance",
            "skattr",
            lambda: imp.importance(X_all, y_all),
            rows=rows,
        )
    )
    try:
        from sklearn.inspection import permutation_importance
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return out
    X_np = X_all.cpu().numpy()
    out.append(
        Case(
            "PermutationImportance",
            "sklearn (skorch net)",
            lambda: permutation_importance(
                net,
                X_np,
                y_all,
                scoring="accuracy",
                n_repeats=N_REPEATS,
                random_state=0,
            ),
            rows=rows,
        )
    )
    return out
