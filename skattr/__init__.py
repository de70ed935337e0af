"""skattr: PyTorch attribution methods for tabular models, sklearn-style.

Each explainer is configured in its constructor, bound to a model with
``fit(model, X=None)`` and returns a pandas DataFrame of per-feature
attributions from ``explain(X, y=None)``.
"""

from skattr._config import config_context, get_config, set_config
from skattr._results import concat
from skattr._shap import to_shap
from skattr.explainers import (
    FeatureAblation,
    FeaturePermutation,
    GradientShap,
    KernelShap,
    LayerGradientShap,
    Lime,
    NeuronGradient,
    ShapleyInteractions,
    ShapleyValues,
    ShapleyValueSampling,
)

__all__ = [
    "FeatureAblation",
    "FeaturePermutation",
    "GradientShap",
    "KernelShap",
    "LayerGradientShap",
    "Lime",
    "NeuronGradient",
    "ShapleyInteractions",
    "ShapleyValueSampling",
    "ShapleyValues",
    "concat",
    "config_context",
    "get_config",
    "set_config",
    "to_shap",
]

__version__ = "0.1.0.dev0"

#: submodules loaded on first use (``skattr.plot.bar``), so that ``import
#: skattr`` does not import what they need (matplotlib, dask)
_SUBMODULES = ("dask", "plot", "report")


def __getattr__(name: str):
    if name in _SUBMODULES:
        import importlib

        try:
            return importlib.import_module(f"skattr.{name}")
        except ImportError as exc:  # an optional dependency: hasattr says False
            raise AttributeError(
                f"skattr.{name} needs a package that is not installed ({exc})."
            ) from exc
    raise AttributeError(f"module 'skattr' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SUBMODULES])
