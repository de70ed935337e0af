"""Pure torch core of skattr: tensors in, tensors out.

Nothing in this package imports pandas, scikit-learn or skorch. Every
algorithm is a function that takes a scalar-per-row function ``f`` (or a
module for gradient methods), the input tensor, the baseline tensor, the
feature groups and a :class:`torch.Generator`, and returns tensors.
"""
