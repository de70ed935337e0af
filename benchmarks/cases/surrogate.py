"""KernelShap and Lime: skattr against Captum, SHAP's KernelExplainer and lime.

W1: 100 rows, 200 samples per row, every implementation on every row.
skattr is timed as its user pays (constructor, ``fit`` and ``explain`` on the
named DataFrame), Captum as constructor and ``attribute``.
W2 and W3 (GPU): 500 samples per row; skattr explains all 2,000 (20,000)
rows, the peers (which fit one surrogate per row in Python) 5 rows, scaled
to all rows (the note gives seconds per explained row).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from run import Case

import skattr

#: rows timed for the per-row peers on W2 (scaled to all rows)
PEER_ROWS = {"W1": None, "W2": 5, "W3": 5}
N_SAMPLES = {"W1": 200, "W2": 500, "W3": 500}


def cases(w):
    if w.name not in N_SAMPLES:
        return []
    n, p = w.X.shape
    s = N_SAMPLES[w.name]
    rows = n * (1 + s)
    k = PEER_ROWS[w.name] or n
    Xp = w.X[:k]
    scale = n / k
    note = "" if k == n else f"{k} of {n} rows, scaled"

    def peer(method, impl, fn):
        per_row = f"; s/row = time / {n}" if k != n else ""
        return Case(method, impl, fn, rows=rows, scale=scale, note=note + per_row)

    out = []
    common = {
        "n_samples": s,
        "baseline": "zeros",
        "target": w.target,
        "batch_size": w.batch_size,
        "random_state": 0,
    }
    X = w.frame

    def ours(cls):
        return lambda: cls(**common).fit(w.model, X).explain(X)

    ours_rows = n * (s + 2)  # with the full and the empty coalition
    out.append(Case("KernelShap", "skattr", ours(skattr.KernelShap), rows=ours_rows))
    out.append(Case("Lime", "skattr", ours(skattr.Lime), rows=ours_rows))
    out += _captum(w, Xp, s, peer)
    out += _shap(w, Xp, s, peer)
    out += _lime_package(w, Xp, s, peer)
    return out


def _captum(w, Xp, s, peer):
    try:
        from captum.attr import KernelShap, Lime
    except ImportError:
        return []
    out = []
    for method, cls in (("KernelShap", KernelShap), ("Lime", Lime)):
        # Captum fits one row at a time; its best setting evaluates all of a
        # row's samples in one forward call
        for ppe in (1, s):

            def run(cls=cls, ppe=ppe):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    return cls(w.model).attribute(
                        Xp,
                        baselines=w.baseline,
                        target=w.target,
                        n_samples=s,
                        perturbations_per_eval=ppe,
                    )

            out.append(peer(method, f"captum (ppe={ppe})", run))
    return out


def _predict(w):
    def predict(X: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            Z = torch.as_tensor(np.asarray(X), dtype=torch.float32, device=w.device)
            return w.model(Z)[:, w.target].cpu().numpy()

    return predict


def _shap(w, Xp, s, peer):
    try:
        import shap
    except ImportError:
        return []
    explainer = shap.KernelExplainer(_predict(w), w.baseline.cpu().numpy())
    Xn = Xp.cpu().numpy()

    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return explainer.shap_values(Xn, nsamples=s, silent=True)

    return [peer("KernelShap", "shap KernelExplainer", run)]


def _lime_package(w, Xp, s, peer):
    try:
        from lime.lime_tabular import LimeTabularExplainer
    except ImportError:
        return []
    background = (w.X_all if w.X_all is not None else w.X).cpu().numpy()
    explainer = LimeTabularExplainer(
        background, mode="regression", discretize_continuous=False, random_state=0
    )
    predict = _predict(w)
    Xn = Xp.cpu().numpy()
    p = Xn.shape[1]

    def run():
        return [
            explainer.explain_instance(x, predict, num_features=p, num_samples=s)
            for x in Xn
        ]

    return [peer("Lime", "lime LimeTabularExplainer", run)]
