"""Model adapters: one torch function, whatever the user's model is.

A :class:`ModelAdapter` wraps a plain ``torch.nn.Module``, a skorch net or a
scikit-learn ``Pipeline`` that ends in a skorch net, and offers

- ``transform(X)``: the Pipeline's preprocessing (identity otherwise),
- ``forward(Z)``: model-input tensor ``[m, p]`` to output ``[m, k]``, raw or
  through the predict nonlinearity,
- ``evaluating()``: a context in which the module is in eval mode and after
  which its train/eval modes and ``requires_grad`` flags are restored, also
  when the model raises.

Errors about the model are written here.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator

import torch
from torch import nn

from skattr._data import to_numpy


def _identity(y: torch.Tensor) -> torch.Tensor:
    return y


def _sigmoid_or_softmax(y: torch.Tensor) -> torch.Tensor:
    """``output="proba"`` for a plain module: sigmoid for one output, else softmax."""
    return torch.sigmoid(y) if y.shape[-1] == 1 else torch.softmax(y, dim=-1)


def _is_skorch_net(model) -> bool:
    try:
        from skorch import NeuralNet
    except ImportError:  # pragma: no cover - skorch is a dependency
        return False
    return isinstance(model, NeuralNet)


def _is_pipeline(model) -> bool:
    from sklearn.pipeline import Pipeline

    return isinstance(model, Pipeline)


class ModelAdapter:
    """One torch function for a module, a skorch net or a Pipeline.

    Build it with :meth:`from_model`. The adapter holds the module, the
    device, the dtype of the model's inputs, the output nonlinearity and the
    classifier's ``classes_``; it pickles when the model does.
    """

    def __init__(
        self,
        module: nn.Module,
        *,
        device: torch.device,
        dtype: torch.dtype,
        nonlinearity: Callable[[torch.Tensor], torch.Tensor],
        classes=None,
        preprocess=None,
        kind: str = "module",
        user_module: nn.Module | None = None,
    ):
        self.module = module
        self.device = device
        self.dtype = dtype
        self.nonlinearity = nonlinearity
        self.classes = classes
        self.preprocess = preprocess
        self.kind = kind
        #: the user's own module; ``module`` is a copy when ``device`` differs
        self.user_module = module if user_module is None else user_module

    # ------------------------------------------------------------ creation
    @classmethod
    def from_model(cls, model, *, output: str = "raw", device=None) -> ModelAdapter:
        """Adapt ``model``; ``output`` is ``"raw"`` or ``"proba"``.

        ``device`` (a torch device string) runs a copy of the module there when
        it differs from the model's own device; the user's model is not moved.
        """
        preprocess = None
        net = model
        if _is_pipeline(model):
            from skattr._pipeline import split_pipeline

            preprocess, net = split_pipeline(model)
        if _is_skorch_net(net):
            if not getattr(net, "initialized_", False):
                raise ValueError(
                    f"The skorch net {type(net).__name__} is not initialized; call "
                    "net.initialize() or net.fit(X, y) before explaining it."
                )
            module = net.module_
            if not isinstance(module, nn.Module):  # pragma: no cover - skorch ensures
                raise TypeError("The skorch net's module_ is not a torch.nn.Module.")
            own_device = torch.device(net.device)
            nonlinearity = (
                net._get_predict_nonlinearity() if output == "proba" else _identity
            )
            classes = _skorch_classes(net)
            kind = "skorch"
        elif isinstance(net, nn.Module):
            module = net
            own_device = _module_device(module)
            nonlinearity = _identity if output == "raw" else _sigmoid_or_softmax
            classes = None
            kind = "module"
        else:
            raise TypeError(
                "model must be a torch.nn.Module, an initialized skorch net, or a "
                "scikit-learn Pipeline whose last step is a skorch net; got "
                f"{type(model).__module__}.{type(model).__name__}."
            )
        target_device = own_device if device is None else torch.device(device)
        user_module = module
        if target_device != own_device:
            module = copy.deepcopy(module).to(target_device)
        adapter = cls(
            module,
            device=target_device,
            dtype=_module_dtype(module),
            nonlinearity=nonlinearity,
            classes=classes,
            preprocess=preprocess,
            kind=kind,
            user_module=user_module,
        )
        return adapter

    # ------------------------------------------------------------ running
    def transform(self, X):
        """Apply the Pipeline's preprocessing (identity without one)."""
        if self.preprocess is None:
            return X
        if isinstance(X, torch.Tensor):
            X = to_numpy(X)
        return self.preprocess.transform(X)

    def raw_forward(self, Z: torch.Tensor) -> torch.Tensor:
        """The module's output as ``[m, k]``, checked."""
        out = self.module(Z)
        if not isinstance(out, torch.Tensor):
            raise TypeError(
                "The model must return one tensor of shape (n_rows,) or (n_rows, "
                f"n_outputs); it returned a {type(out).__name__}."
            )
        if out.dim() == 1:
            out = out[:, None]
        if out.dim() != 2 or out.shape[0] != Z.shape[0]:
            raise ValueError(
                "The model must return a tensor of shape (n_rows,) or (n_rows, "
                f"n_outputs); for input of shape {tuple(Z.shape)} it returned shape "
                f"{tuple(out.shape)}."
            )
        return out

    def forward(self, Z: torch.Tensor) -> torch.Tensor:
        """Model output ``[m, k]`` for inputs ``Z`` ``[m, p]``, raw or proba."""
        out = self.nonlinearity(self.raw_forward(Z))
        if out.dim() == 1:  # pragma: no cover - defensive, custom nonlinearity
            out = out[:, None]
        return out

    @contextlib.contextmanager
    def evaluating(self, *, freeze_parameters: bool = False) -> Iterator[None]:
        """Run the module in eval mode; restore modes and flags afterwards.

        With ``freeze_parameters=True`` the parameters' ``requires_grad`` is
        switched off meanwhile, so that a backward pass computes input
        gradients only. Both are restored in a ``finally``, so the model is as
        before even when it raises.
        """
        modes = [(m, m.training) for m in self.module.modules()]
        flags = [(p, p.requires_grad) for p in self.module.parameters()]
        try:
            self.module.eval()
            if freeze_parameters:
                for p, _ in flags:
                    p.requires_grad_(False)
            yield
        finally:
            for m, training in modes:
                m.training = training
            for p, flag in flags:
                p.requires_grad_(flag)

    # ------------------------------------------------------------ facts
    def n_features(self) -> int | None:
        """Number of model inputs, when the module's first layer tells it."""
        for m in self.module.modules():
            n = getattr(m, "in_features", None)
            if isinstance(n, int) and n > 0:
                return n
        return None


def _module_device(module: nn.Module) -> torch.device:
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def _module_dtype(module: nn.Module) -> torch.dtype:
    for t in module.parameters():
        if t.is_floating_point():
            return t.dtype
    return torch.get_default_dtype()


def _skorch_classes(net):
    try:
        classes = net.classes_
    except (AttributeError, Exception):  # skorch raises when not inferred
        return None
    return None if classes is None else list(classes)


def layer_names(module: nn.Module) -> list[str]:
    """The dotted names of the module's submodules (``""`` excluded)."""
    return [name for name, _ in module.named_modules() if name]


def check_layer(layer: object) -> None:
    """``layer`` must be a non-empty dotted submodule name or a module."""
    if not (isinstance(layer, nn.Module) or (isinstance(layer, str) and layer)):
        raise TypeError(
            "layer must be a dotted submodule name such as 'hidden.0' or a "
            f"torch.nn.Module of the model; got {layer!r}."
        )


def get_layer(module: nn.Module, layer) -> tuple[str, nn.Module]:
    """Resolve ``layer`` (dotted name or module object) to ``(name, module)``.

    Raises a ``ValueError`` listing the available names when it is not found.
    """
    if isinstance(layer, nn.Module):
        for name, m in module.named_modules():
            if m is layer and name:
                return name, m
        raise ValueError(
            f"The layer {type(layer).__name__} given is not a submodule of the model. "
            f"Available layers: {layer_names(module)}."
        )
    check_layer(layer)
    named = dict(module.named_modules())
    if layer not in named:
        raise ValueError(
            f"The model has no layer named {layer!r}. Available layers: "
            f"{layer_names(module)}."
        )
    return layer, named[layer]
