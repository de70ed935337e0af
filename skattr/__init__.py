"""skattr: PyTorch attribution methods for tabular models, sklearn-style.

Each explainer is configured in its constructor, bound to a model with
``fit(model, X=None)`` and returns a pandas DataFrame of per-feature
attributions from ``explain(X, y=None)``.
"""

from skattr.explainers import FeatureAblation, KernelShap, Lime

__all__ = [
    "FeatureAblation",
    "KernelShap",
    "Lime",
]

__version__ = "0.1.0.dev0"
