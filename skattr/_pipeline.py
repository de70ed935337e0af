"""scikit-learn Pipelines ending in a skorch net: preprocessing and groups."""

from __future__ import annotations


def split_pipeline(pipeline):
    """Split a fitted Pipeline into its preprocessing and its final net."""
    if len(pipeline.steps) < 1:
        raise ValueError("The Pipeline has no steps.")
    net = pipeline.steps[-1][1]
    preprocess = pipeline[:-1] if len(pipeline.steps) > 1 else None
    return preprocess, net
