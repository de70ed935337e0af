"""FeaturePermutation: skattr against scikit-learn (importance) and Captum (explain).

skattr is timed as its user pays (constructor, ``fit`` and ``explain`` or
``importance`` on the named DataFrame), Captum as constructor and
``attribute`` on the frame converted to a tensor.
"""

from __future__ import annotations

from run import Case

import skattr

N_REPEATS = 5


def cases(w):
    out = []
    n, p = w.X.shape
    # local attribution (Captum's FeaturePermutation) on the rows to explain
    X = w.frame

    def ours():
        ex = skattr.FeaturePermutation(
            target=w.target, batch_size=w.batch_size, random_state=0
        )
        return ex.fit(w.model, X).explain(X)

    out.append(Case("FeaturePermutation", "skattr", ours, rows=n * (p + 1)))
    try:
        from captum.attr import FeaturePermutation
    except ImportError:
        pass
    else:
        best = max(1, w.batch_size // n)
        for ppe in sorted({1, best}):
            out.append(
                Case(
                    "FeaturePermutation",
                    f"captum (ppe={ppe})",
                    lambda ppe=ppe: FeaturePermutation(w.model).attribute(
                        w.tensor(X), target=w.target, perturbations_per_eval=ppe
                    ),
                    rows=n * (p + 1),
                )
            )
    if w.X_all is None:  # permutation importance: W1's labelled rows only
        return out
    X_all, y_all = w.frame_all, w.y_all
    m = X_all.shape[0]
    rows = m * (1 + p * N_REPEATS)
    net = w.skorch_net()

    def importance():
        imp = skattr.FeaturePermutation(
            n_repeats=N_REPEATS,
            scoring="accuracy",
            batch_size=w.batch_size,
            random_state=0,
        )
        return imp.fit(net, X_all).importance(X_all, y_all)

    out.append(Case("PermutationImportance", "skattr", importance, rows=rows))

    def scorer_per_copy():
        # a callable scorer: scikit-learn's accuracy scorer called on every
        # permuted copy (the path without the vectorised scores)
        from sklearn.metrics import get_scorer

        imp = skattr.FeaturePermutation(
            n_repeats=N_REPEATS,
            scoring=get_scorer("accuracy"),
            batch_size=w.batch_size,
            random_state=0,
        )
        return imp.fit(net, X_all).importance(X_all, y_all)

    out.append(
        Case(
            "PermutationImportance",
            "skattr (scorer per copy)",
            scorer_per_copy,
            rows=rows,
            note="what the vectorised accuracy saves",
        )
    )
    try:
        from sklearn.inspection import permutation_importance
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return out
    X_np = X_all.to_numpy()
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
