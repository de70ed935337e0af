"""Gradient methods: skattr against Captum and SHAP's GradientExplainer.

GradientShap and LayerGradientShap use ``n_samples=5`` and the workload's zero
baseline (one background row); their floor is forward plus backward over
``n * n_samples`` rows. NeuronGradient's floor is forward plus backward over
the ``n`` rows. skattr is timed as its user pays (constructor, ``fit`` and
``explain`` on the named DataFrame), Captum as constructor and ``attribute``
on the frame converted to a tensor.
"""

from __future__ import annotations

from run import Case

import skattr

N_SAMPLES = 5
LAYER = "hidden.1"  # the first ReLU of W1Net and W2Net
NEURON_LAYER = "hidden.0"
NEURON = 3
SHAP_ROWS = 20  # SHAP's GradientExplainer loops over rows: time a subset


def cases(w):
    n, _ = w.X.shape
    X = w.frame
    common = {"target": w.target, "batch_size": w.batch_size, "random_state": 0}

    def gs():
        ex = skattr.GradientShap(n_samples=N_SAMPLES, baseline=w.baseline, **common)
        return ex.fit(w.model, X).explain(X)

    def lgs():
        ex = skattr.LayerGradientShap(
            layer=LAYER, n_samples=N_SAMPLES, baseline=w.baseline, **common
        )
        return ex.fit(w.model, X).explain(X)

    def ng():
        ex = skattr.NeuronGradient(
            layer=NEURON_LAYER, neuron=NEURON, batch_size=w.batch_size
        )
        return ex.fit(w.model, X).explain(X)

    rows = n * N_SAMPLES
    out = [
        Case("GradientShap", "skattr", gs, rows=rows, grad=True),
        Case("LayerGradientShap", "skattr", lgs, rows=rows, grad=True),
        Case("NeuronGradient", "skattr", ng, rows=n, grad=True),
    ]
    layer = dict(w.model.named_modules())[LAYER]
    neuron_layer = dict(w.model.named_modules())[NEURON_LAYER]
    try:
        from captum.attr import GradientShap, LayerGradientShap, NeuronGradient
    except ImportError:
        pass
    else:
        out += [
            Case(
                "GradientShap",
                "captum",
                lambda: GradientShap(w.model).attribute(
                    w.tensor(X),
                    baselines=w.baseline,
                    n_samples=N_SAMPLES,
                    target=w.target,
                ),
                rows=rows,
                grad=True,
            ),
            Case(
                "LayerGradientShap",
                "captum",
                lambda: LayerGradientShap(w.model, layer).attribute(
                    w.tensor(X),
                    baselines=w.baseline,
                    n_samples=N_SAMPLES,
                    target=w.target,
                ),
                rows=rows,
                grad=True,
            ),
            Case(
                "NeuronGradient",
                "captum",
                lambda: NeuronGradient(w.model, neuron_layer).attribute(
                    w.tensor(X), neuron_selector=NEURON
                ),
                rows=n,
                grad=True,
            ),
        ]
    try:
        import shap
    except ImportError:
        return out
    explainer = shap.GradientExplainer(w.model, w.baseline)
    m = min(SHAP_ROWS, n)
    out.append(
        Case(
            "GradientShap",
            "shap GradientExplainer",
            lambda: explainer.shap_values(w.X[:m], nsamples=N_SAMPLES, rseed=0),
            rows=rows,
            grad=True,
            note=f"{m} of {n} rows, scaled; all outputs",
            scale=n / m,
        )
    )
    return out
