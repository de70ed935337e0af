"""The affine head of a model: its first layer, when it is a plain ``nn.Linear``.

Perturbation methods evaluate rows that differ from a neighbour in one
feature group only. When the model's input goes into one ``nn.Linear`` and
nowhere else, the pre-activations of a perturbed row are the neighbour's
plus one group's contribution, ``W[:, S] (x_S - b_S)``, and the rest of the
network runs on them as usual (:mod:`skattr.core.incremental`). This module
decides when that is exactly what the model computes, and never assumes:

- an ``nn.Linear`` itself (a linear or logistic model on raw outputs):
  the rest is the identity;
- an ``nn.Sequential`` (not a subclass) whose first module is an
  ``nn.Linear``: the rest is the ``nn.Sequential`` of the others;
- any other module that ``torch.fx`` can trace, whose input has exactly one
  use, a call of an ``nn.Linear`` submodule: the rest is the traced graph
  with that call's output as its input (the same submodules, shared);
- in both cases the linear layer is exactly ``nn.Linear`` (no subclass), not
  parametrized, without hooks, and neither the model nor torch has module
  hooks that the rest would skip; a compiled module, a callable, a model
  with several inputs (``model_inputs``) or one that fails to trace uses
  the plain path.

:func:`find_affine_head` returns an :class:`AffineHead` or ``None``;
:meth:`AffineHead.usable` checks the hooks again at each call (a hook
registered after ``fit`` turns the plain path back on).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from skattr.core import incremental


@dataclass(frozen=True, eq=False)
class AffineHead:
    """A model split after its first ``nn.Linear``."""

    linear: nn.Linear  #: the first layer (the model's own, shared)
    rest: nn.Module  #: pre-activations ``[m, h]`` -> the model's output
    root: nn.Module  #: the model itself (for its hooks)
    #: a fingerprint of the model when the head was found (its modules, their
    #: tensors and attributes): a trace bakes the branches they decide into
    #: the rest, and the rest holds the modules of that moment
    state: tuple = ()

    @property
    def weight(self) -> torch.Tensor:
        return self.linear.weight

    @property
    def bias(self) -> torch.Tensor | None:
        return self.linear.bias

    def usable(self) -> bool:
        """No hook (on the layer, the model, or torch's global ones) and no
        parametrization appeared since the head was found, and the model's
        fingerprint is the same: no module added, removed or replaced, no
        parameter or buffer replaced, no attribute changed (a flag or a
        scale its ``forward`` may use, also one level down in an object
        attribute). Values of tensors may change in place: the rest shares
        them."""
        return (
            not (_has_hooks(self.linear) or _has_hooks(self.root) or _global_hooks())
            and not _parametrized(self.linear)
            and _fingerprint(self.root) == self.state
        )


def find_affine_head(module: nn.Module) -> AffineHead | None:
    """The affine head of ``module``, or ``None`` (use the plain path).

    The core checks that the layer takes as many inputs as its rows have.
    A model whose first ``nn.Linear`` is too narrow for the incremental sums
    to pay anywhere (:func:`skattr.core.incremental.pays`) is not looked at
    further: tracing and proving a split costs a few milliseconds per fit.
    """
    if _compiled(module) or _has_hooks(module) or _global_hooks():
        return None
    first_linear = next((m for m in module.modules() if isinstance(m, nn.Linear)), None)
    cheapest = min(incremental.PASSES.values())
    if first_linear is None or not incremental.pays(
        first_linear.in_features, first_linear.out_features, cheapest
    ):
        return None
    if type(module) is nn.Linear:  # the whole model is one affine layer
        first, rest = module, nn.Identity()
    elif type(module) is nn.Sequential:
        if len(module) == 0:
            return None
        first = module[0]
        rest = nn.Sequential(*list(module)[1:]) if len(module) > 1 else nn.Identity()
    else:
        found = _trace(module)
        if found is None:
            return None
        first, rest = found
    if not _plain_linear(first):
        return None
    return AffineHead(first, rest, module, _fingerprint(module))


#: ``nn.Module``'s own bookkeeping, compared through the modules and tensors
_INTERNAL = frozenset(
    {
        "training",
        "_parameters",
        "_buffers",
        "_modules",
        "_non_persistent_buffers_set",
        "_backward_pre_hooks",
        "_backward_hooks",
        "_is_full_backward_hook",
        "_forward_hooks",
        "_forward_hooks_with_kwargs",
        "_forward_hooks_always_called",
        "_forward_pre_hooks",
        "_forward_pre_hooks_with_kwargs",
        "_state_dict_hooks",
        "_state_dict_pre_hooks",
        "_load_state_dict_pre_hooks",
        "_load_state_dict_post_hooks",
    }
)


def _fingerprint(module: nn.Module) -> tuple:
    """What the model is made of: every module (name, object, type), every
    parameter and buffer object, and every other attribute (plain values as
    they are, containers of them too, other objects by identity and their
    plain attributes one level down)."""
    out = []
    for name, sub in module.named_modules():
        out.append((name, id(sub), type(sub)))
        for key, t in list(sub._parameters.items()) + list(sub._buffers.items()):
            out.append((name, key, id(t)))
        for key, value in vars(sub).items():
            if key in _INTERNAL:
                continue
            out.append((name, key, _value(value)))
    return tuple(out)


def _value(value, depth: int = 0):
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return value
    if isinstance(value, (tuple, list, frozenset, set)) and depth < 2:
        return (type(value), tuple(_value(v, depth + 1) for v in value))
    if isinstance(value, dict) and depth < 2:
        return (dict, tuple((k, _value(v, depth + 1)) for k, v in value.items()))
    if isinstance(value, (torch.Tensor, nn.Module)) or depth > 0:
        return id(value)
    fields = getattr(value, "__dict__", None)
    if isinstance(fields, dict):  # an object: its identity and plain fields
        return (id(value), tuple((k, _value(v, 1)) for k, v in fields.items()))
    return id(value)


def _plain_linear(layer) -> bool:
    return (
        type(layer) is nn.Linear and not _has_hooks(layer) and not _parametrized(layer)
    )


def _has_hooks(module: nn.Module) -> bool:
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or getattr(module, "_backward_pre_hooks", None)
        or getattr(module, "_forward_hooks_with_kwargs", None)
    )


def _global_hooks() -> bool:
    from torch.nn.modules import module as m

    names = (
        "_global_forward_hooks",
        "_global_forward_pre_hooks",
        "_global_backward_hooks",
        "_global_backward_pre_hooks",
    )
    return any(bool(getattr(m, name, None)) for name in names)


def _parametrized(layer: nn.Module) -> bool:
    from torch.nn.utils import parametrize

    return parametrize.is_parametrized(layer)


def _compiled(module: nn.Module) -> bool:
    return hasattr(module, "_orig_mod") or type(module).__name__ == "OptimizedModule"


#: modules with more parameters are not traced (the probe copies the model)
_TRACE_MAX_PARAMETERS = 20_000_000


def _trace(module: nn.Module):
    """``(first layer, rest)`` from an ``fx`` trace, when the input's only use
    is one call of a submodule; ``None`` when untraceable or otherwise.

    The trace runs on a copy of the model (tracing executes its ``forward``,
    whose side effects must not touch the user's model), and the split is
    proved on that copy: the rest after the first layer gives the model's
    own outputs, to the bit, on random rows. The rest returned calls the
    user's own submodules.
    """
    import copy

    from torch import fx

    if sum(p.numel() for p in module.parameters()) > _TRACE_MAX_PARAMETERS:
        return None
    try:
        clone = copy.deepcopy(module)
        graph = fx.symbolic_trace(clone).graph
    except Exception:  # control flow, unsupported ops, uncopyable: the plain path
        return None
    inputs = [node for node in graph.nodes if node.op == "placeholder"]
    if len(inputs) != 1:
        return None
    users = list(inputs[0].users)
    if len(users) != 1 or users[0].op != "call_module" or users[0].kwargs:
        return None
    call = users[0]
    if list(call.args) != [inputs[0]]:
        return None
    # the rest: the same graph, with the layer's output as its input
    rest_graph = fx.Graph()
    env = {}
    pre = rest_graph.placeholder("pre_activations")
    for node in graph.nodes:
        if node is inputs[0]:
            continue
        env[node] = (
            pre if node is call else rest_graph.node_copy(node, lambda n: env[n])
        )
    try:
        first_clone = clone.get_submodule(call.target)
        if not _plain_linear(first_clone) or not _same(
            clone, first_clone, fx.GraphModule(clone, rest_graph)
        ):
            return None
        return module.get_submodule(call.target), fx.GraphModule(module, rest_graph)
    except Exception:  # pragma: no cover - defensive: the plain path
        return None


def _same(model: nn.Module, first: nn.Linear, rest: nn.Module) -> bool:
    """The model and ``rest(first(x))`` agree exactly on random rows (a copy)."""
    weight = first.weight
    x = torch.randn(
        4, first.in_features, generator=torch.Generator().manual_seed(0)
    ).to(weight.device, weight.dtype)
    model.eval()
    with torch.no_grad():
        whole, split = model(x), rest(first(x))
    return (
        isinstance(whole, torch.Tensor)
        and isinstance(split, torch.Tensor)
        and whole.shape == split.shape
        and bool(torch.equal(whole, split))
    )
