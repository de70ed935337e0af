"""Explainers: thin scikit-learn classes over the torch core."""

from skattr.explainers._ablation import FeatureAblation
from skattr.explainers._base import BaseExplainer
from skattr.explainers._gradients import GradientShap, LayerGradientShap, NeuronGradient
from skattr.explainers._interactions import ShapleyInteractions
from skattr.explainers._permutation import FeaturePermutation
from skattr.explainers._shapley import ShapleyValues, ShapleyValueSampling
from skattr.explainers._surrogate import KernelShap, Lime

__all__ = [
    "BaseExplainer",
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
]
