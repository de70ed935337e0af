"""Gradient methods: GradientSHAP (inputs and layers) and neuron gradients.

Every function runs one chunked forward and backward pass over all rows and
samples at once: the gradient of the *sum* of the per-row outputs with
respect to a chunk of inputs (or of layer activations) is every row's own
gradient, because rows do not interact in a model in eval mode. Layer
activations are captured with a forward hook (a forward pre-hook for a
layer's input) that is registered for the whole pass and removed in a
``finally``, also when the model raises.

``forward(Z, rows) -> Tensor[m, k]`` is the model's output for inputs ``Z``
``[m, p]``, where ``rows[i]`` is the explained row that input ``i`` stands
for (``-1``: a baseline row), as for the perturbation methods; ``targets``
``[n]`` holds the output column explained for each row. Randomness is drawn up front from ``generator`` (on its device), so
results do not depend on ``batch_size``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
from torch import nn

from skattr.core.forward import ModelFunction

#: Captum's neuron selector: an int, a tuple of ints and slices (indexing the
#: layer's output without its batch dimension), or a callable that maps the
#: layer's output ``[m, ...]`` to the selected values per row.
NeuronSelector = int | tuple | Callable[[torch.Tensor], torch.Tensor]


class GradientShapResult(NamedTuple):
    """What :func:`gradient_shap` returns."""

    attributions: torch.Tensor  #: ``[n, q]`` float64
    delta: torch.Tensor  #: ``[n]`` float64
    base_values: torch.Tensor  #: ``[n]`` float64
    targets: torch.Tensor  #: ``[n]`` long


class _Capture:
    """What a forward hook saw on one forward call: the layer's output or input."""

    def __init__(self) -> None:
        self.values: list[torch.Tensor] = []

    def take(self) -> torch.Tensor:
        """The single tensor captured since the last call, flattened per row."""
        values, self.values = self.values, []
        if len(values) != 1:
            raise ValueError(
                "The layer must run exactly once per forward call to be attributed; "
                f"it ran {len(values)} times. Choose a layer that the model calls "
                "once."
            )
        return values[0]


@contextlib.contextmanager
def capture_layer(
    layer: nn.Module, *, to_input: bool = False, detach_rest: bool = False
) -> Iterator[_Capture]:
    """Capture ``layer``'s output (or first input) on every forward call.

    The captured tensor is the one the layer produced (or received); the rest
    of the model gets a clone, so that in-place operations downstream do not
    change it and gradients with respect to it reach everything downstream.
    With ``detach_rest=True`` the clone is detached: the rest of the model
    runs without recording autograd, for a gradient of the captured values
    themselves (a neuron's), which the rest of the model does not change.
    Only the forward calls of the thread that entered the context are
    captured: other threads may run the same model meanwhile (Dask's threaded
    scheduler), and their calls pass through untouched. The hook is removed
    on exit, also when the model raises.
    """
    box = _Capture()
    owner = threading.get_ident()

    def keep(t: object) -> torch.Tensor | None:
        if threading.get_ident() != owner:  # another thread's forward
            return None
        if not isinstance(t, torch.Tensor):
            raise TypeError(
                f"The layer's {'input' if to_input else 'output'} must be one tensor "
                f"to be attributed; got {type(t).__name__}."
            )
        box.values.append(t)
        return t.detach().clone() if detach_rest else t.clone()

    if to_input:

        def pre_hook(module, args):
            if threading.get_ident() != owner:
                return None
            if not args:
                raise TypeError("The layer was called without a positional input.")
            return (keep(args[0]), *args[1:])

        handle = layer.register_forward_pre_hook(pre_hook)
    else:

        def hook(module, args, out):
            return keep(out)

        handle = layer.register_forward_hook(hook)
    try:
        yield box
    finally:
        handle.remove()


def _chunks(n_total: int, batch_size: int):
    for start in range(0, n_total, batch_size):
        yield start, min(start + batch_size, n_total)


def _evaluate_with_layer(
    forward: ModelFunction,
    Z: torch.Tensor,
    rows: torch.Tensor,
    layer: nn.Module | None,
    *,
    to_input: bool,
    batch_size: int,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Outputs ``[m, k]`` and flattened layer activations ``[m, q]``, no autograd."""
    outs, acts = [], []
    with contextlib.ExitStack() as stack, torch.no_grad():
        box = (
            None
            if layer is None
            else stack.enter_context(capture_layer(layer, to_input=to_input))
        )
        for start, stop in _chunks(Z.shape[0], batch_size):
            chunk = Z[start:stop]
            outs.append(forward(chunk, rows[start:stop]))
            if box is not None:
                acts.append(box.take().reshape(chunk.shape[0], -1))
    out = torch.cat(outs)
    return out, (torch.cat(acts) if acts else None)


def gradient_shap(
    forward: ModelFunction,
    X: torch.Tensor,
    background: torch.Tensor,
    *,
    targets: torch.Tensor | int | Callable[[torch.Tensor], torch.Tensor],
    n_samples: int,
    stdevs: float,
    multiply_by_inputs: bool,
    batch_size: int,
    generator: torch.Generator,
    layer: nn.Module | None = None,
    attribute_to_layer_input: bool = False,
) -> GradientShapResult:
    """GradientSHAP of the inputs, or of a layer's units, as Captum's.

    For each row ``x`` and each of its ``n_samples`` samples ``s``: a
    background row ``b_s`` drawn uniformly from ``background``, a noisy input
    ``x_s = x + N(0, stdevs^2)`` and a point ``z_s = a_s x_s + (1 - a_s) b_s``
    with ``a_s ~ U(0, 1)``. The attribution is the mean over samples of
    ``grad f(z_s) * (x_s - b_s)`` (inputs) or of
    ``grad_L f(z_s) * (L(x_s) - L(b_s))`` (a layer ``L``: the gradient with
    respect to the layer's activations, scaled by the difference of the
    layer's activations at the input and at the baseline, as Captum's
    ``LayerGradientShap``); with ``multiply_by_inputs=False`` the mean
    gradient alone.

    Parameters
    ----------
    forward : callable
        ``forward(Z, rows) -> Tensor[m, k]``.
    X : Tensor of shape ``[n, p]``
        Rows to explain.
    background : Tensor of shape ``[B, p]``
        The baseline distribution.
    targets : Tensor of shape ``[n]``, long, int or callable
        Output column explained for each row, one column for every row (an
        int: read by slicing, no gathers), or a function that picks them
        from the model's outputs at ``X`` (``[n, k]``), which are computed
        anyway (in the same forward pass as the background rows').
    n_samples : int
        Samples per row.
    stdevs : float
        Standard deviation of the Gaussian noise added to the inputs.
    multiply_by_inputs : bool
        Multiply the gradients by the input (or activation) differences.
    batch_size : int
        Most model rows in one forward and backward call.
    generator : torch.Generator
        Generator of every draw, on the device of ``X``.
    layer : torch.nn.Module, optional
        Attribute to this layer's output (its input with
        ``attribute_to_layer_input=True``) instead of the model's inputs.

    Returns
    -------
    GradientShapResult
        A named tuple of:
    attributions : Tensor of shape ``[n, q]``, float64
        ``q = p`` for the inputs, else the number of the layer's units.
    delta : Tensor of shape ``[n]``, float64
        Convergence delta: the sum of the attributions minus
        ``mean_s f(x_s) - mean_s f(b_s)``, i.e. the mean over samples of
        Captum's per-sample deltas (``f(x_s) = f(x)`` when ``stdevs == 0``).
    base_values : Tensor of shape ``[n]``, float64
        ``mean_s f(b_s)``, the mean output at the drawn baselines.
    targets : Tensor of shape ``[n]``, long
        The output column explained for each row.

    Notes
    -----
    Cost: ``n * n_samples`` model rows forward and backward, plus one
    forward pass (no autograd) over the ``n`` rows and
    ``min(B, n * n_samples)`` background rows; ``stdevs > 0`` adds one over
    the ``n * n_samples`` noisy inputs (for the delta and, for a layer, its
    activations there). A chunk holds the samples of
    ``max(1, batch_size // n_samples)`` whole rows.
    """
    n, p = X.shape
    S = n_samples
    N = n * S
    device, dtype = X.device, X.dtype
    # every draw up front, on the generator's device, independent of the chunking
    draw = {"generator": generator, "device": generator.device}
    b_idx = torch.randint(background.shape[0], (N,), **draw)
    alpha = torch.rand(N, dtype=torch.float64, **draw)
    noise = None
    if stdevs > 0:
        noise = torch.randn(N, p, dtype=torch.float64, **draw)
        noise = noise.mul_(stdevs).to(device, dtype)
    b_idx, alpha = b_idx.to(device), alpha.to(device, dtype)
    fixed = isinstance(targets, int)  # one column for every row

    def at_targets(out: torch.Tensor, t_rows) -> torch.Tensor:
        """``out[i, target of row i]``: a slice for a fixed column."""
        return out[:, targets] if fixed else out.gather(1, t_rows).squeeze(1)

    if background.shape[0] > N:  # evaluate only the background rows drawn
        background, b_idx = background[b_idx], torch.arange(N, device=device)
    to_input = attribute_to_layer_input
    own = torch.arange(n, device=device)
    B = background.shape[0]
    single = B == 1  # one baseline row: broadcast, no gather
    # Small calls (every sample, row and background row in one batch, targets
    # known, no noise): f(x), f(b) and the layer's activations there come from
    # the gradient pass itself, as extra rows of its batch; otherwise from a
    # pass of their own first.
    fold = noise is None and not callable(targets) and N + n + B <= batch_size
    act_x = act_b = None
    if not fold:
        out, act = _evaluate_with_layer(
            forward,
            torch.cat([X, background]),
            torch.cat([own, own.new_full((B,), -1)]),
            layer,
            to_input=to_input,
            batch_size=batch_size,
        )
        out_x, fb = out[:n], out[n:].double()
        act_x, act_b = (None, None) if act is None else (act[:n], act[n:])
        targets = targets(out_x) if callable(targets) else targets
    if not fixed:
        targets = targets.to(device)
    fx64 = None
    totals, gaps, bases = [], [], []  # per chunk of rows
    # chunks of whole rows: each row's samples are reduced within one chunk
    rows_per_chunk = max(1, batch_size // S)
    with contextlib.ExitStack() as stack:
        box = None
        if layer is not None:
            box = stack.enter_context(capture_layer(layer, to_input=to_input))
        for r0, r1 in _chunks(n, rows_per_chunk):
            m, s0, s1 = r1 - r0, r0 * S, r1 * S
            t = None if fixed else targets[r0:r1]
            t_rows = None if fixed else t.repeat_interleave(S)[:, None]
            rows = own[r0:r1].repeat_interleave(S)
            x = X[r0:r1, None, :]  # [m, 1, p], or [m, S, p] with noise
            if noise is not None:
                x = x + noise[s0:s1].view(m, S, p)
            bi = b_idx[s0:s1].view(m, S)
            b = background[:1] if single else background[bi]
            diff = x - b
            a = alpha[s0:s1].view(m, S, 1)
            # Captum's point a * x + (1 - a) * b, written b + a * (x - b)
            point = torch.addcmul(b, a, diff).reshape(m * S, p).requires_grad_(True)
            with torch.enable_grad():
                if fold:  # the rows and the background rows ride along
                    batch = torch.cat([point, X, background])
                    who = torch.cat([rows, own, own.new_full((B,), -1)])
                    every = forward(batch, who)
                    out = at_targets(every[: m * S], t_rows)
                    ends = every[m * S :].detach()
                    out_x, fb = ends[:n], ends[n:].double()
                    if box is None:
                        wrt = point
                    else:
                        whole = box.take()
                        wrt = whole
                        act = whole.detach().reshape(whole.shape[0], -1)[m * S :]
                        act_x, act_b = act[:n], act[n:]
                else:
                    out = at_targets(forward(point, rows), t_rows)
                    wrt = point if box is None else box.take()
                grad = _grad(out, wrt)
            if grad is None:  # the target does not depend on it
                grad = torch.zeros_like(wrt)
            grad = grad[: m * S].reshape(m, S, -1)
            if fx64 is None:
                fx64 = at_targets(out_x, None if fixed else targets[:, None])
                fx64 = fx64.double()
            if noise is None:
                fxs = fx64[r0:r1, None]
                ax = None if act_x is None else act_x[r0:r1, None, :]
            else:
                with torch.no_grad():
                    out_xs = forward(x.reshape(m * S, p), rows)
                    ax = None if box is None else box.take().reshape(m, S, -1)
                fxs = at_targets(out_xs, t_rows).view(m, S).double()
            if multiply_by_inputs:
                if layer is not None:
                    diff = ax - (act_b[:1] if single else act_b[bi])
                contrib = grad * diff
            else:
                contrib = grad
            totals.append(contrib.sum(1, dtype=torch.float64))
            fbs = fb[bi, targets] if fixed else fb[bi, t[:, None]]
            gaps.append((fxs - fbs).sum(1))
            bases.append(fbs.sum(1))
    total, gap, base = (
        parts[0] if len(parts) == 1 else torch.cat(parts)
        for parts in (totals, gaps, bases)
    )
    attributions = total / S
    delta = attributions.sum(1) - gap / S
    if fixed:
        targets = torch.full((n,), targets, dtype=torch.long, device=device)
    return GradientShapResult(attributions, delta, base / S, targets)


def _grad(values: torch.Tensor, wrt: torch.Tensor) -> torch.Tensor | None:
    """Gradient of ``values.sum()`` with respect to ``wrt`` (None: unconnected)."""
    if not values.requires_grad or not wrt.requires_grad:
        return None
    (grad,) = torch.autograd.grad(values.sum(), wrt, allow_unused=True)
    return grad


def select_neuron(activation: torch.Tensor, neuron: NeuronSelector) -> torch.Tensor:
    """The selected neuron's value per row, as Captum's neuron selector.

    An int or a tuple of ints and slices indexes the activation without its
    batch dimension (slices are summed per row); a callable gets the whole
    activation ``[m, ...]``.
    """
    if callable(neuron):
        return neuron(activation)
    index = neuron if isinstance(neuron, tuple) else (neuron,)
    if len(index) > activation.dim() - 1:
        raise ValueError(
            f"neuron={neuron!r} has {len(index)} indices, but the layer's activation "
            f"has shape {tuple(activation.shape[1:])} per row."
        )
    selected = activation[(slice(None), *index)]
    if any(isinstance(i, slice) for i in index):
        selected = selected.reshape(selected.shape[0], -1).sum(1)
    return selected


def neuron_gradient(
    forward: ModelFunction,
    X: torch.Tensor,
    *,
    layer: nn.Module,
    neuron: NeuronSelector,
    attribute_to_neuron_input: bool = False,
    batch_size: int,
) -> torch.Tensor:
    """Gradient of one neuron of ``layer`` with respect to the inputs.

    As Captum's ``NeuronGradient``: the neuron is picked from the layer's
    output (its input with ``attribute_to_neuron_input=True``) by
    :func:`select_neuron`; when the selection holds several values per row
    their sum is differentiated.

    The layers after the neuron's run without autograd
    (``capture_layer(detach_rest=True)``): they do not change its gradient,
    and the model's outputs are still computed (and watched by ``forward``).

    Returns
    -------
    gradients : Tensor of shape ``[n, p]``, in the input's dtype.
    values : Tensor of shape ``[n]``, float64
        The neuron's value at each row (the sum of the selected values),
        read from the same forward call.
    """
    out = torch.empty_like(X)
    value = torch.empty(X.shape[0], dtype=torch.float64, device=X.device)
    own = torch.arange(X.shape[0], device=X.device)
    with capture_layer(
        layer, to_input=attribute_to_neuron_input, detach_rest=True
    ) as box:
        for start, stop in _chunks(X.shape[0], batch_size):
            Z = X[start:stop].detach().requires_grad_(True)
            with torch.enable_grad():
                forward(Z, own[start:stop])
                selected = select_neuron(box.take(), neuron)
                grad = _grad(selected, Z)
            out[start:stop] = 0.0 if grad is None else grad
            selected = selected.detach()
            if selected.dim() > 1:  # several values per row: their sum
                selected = selected.reshape(stop - start, -1).sum(1)
            value[start:stop] = selected
    return out, value
