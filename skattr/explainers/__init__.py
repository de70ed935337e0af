"""Explainers: thin scikit-learn classes over the torch core."""

from skattr.explainers._ablation import FeatureAblation
from skattr.explainers._base import BaseExplainer
from skattr.explainers._surrogate import KernelShap, Lime

__all__ = ["BaseExplainer", "FeatureAblation", "KernelShap", "Lime"]
