"""The least a library must do per call: hand-written minimum implementations.

W1's fixed-cost targets (issue 13) compare skattr, as its user pays, with
the forward floor and with Captum. These cases measure what those targets
leave room for: one method written out by hand for W1's exact setting,
doing only what any library that takes the user's DataFrame must do, with
no parameter checks, no general layout and no extras beyond the ones skattr
returns. Their ``× floor`` is the best ratio an implementation can reach on
this machine; their ``× skattr`` (below 1) says how far skattr is from it.

Each minimum, like skattr:

- turns the named DataFrame into a float32 tensor and checks that it is
  finite (at ``fit`` and again at ``explain``) and that the names match;
- runs one probe forward at ``fit`` (the number of outputs; NeuronGradient:
  the layer's shape);
- saves the model's modes (and, for the gradients, its parameters'
  ``requires_grad``), puts it in eval mode and restores both afterwards;
- watches the outputs for non-finite values and checks the result;
- returns a DataFrame indexed like ``X`` with the result's columns and
  skattr's ``attrs`` (GradientShap: ``delta``, ``base_values`` and
  ``target``; ShapleyValueSampling: ``base_values``, ``prediction``,
  ``std``, ``ci95``, ``n_draws``, ``n_samples`` and ``target``;
  NeuronGradient: ``activation``).

They draw skattr's own random numbers (its seed of ``random_state=0``;
Shapley sampling's stratified ranks and error bars from skattr's own
functions), so that ``tests/test_benchmark_minimum.py`` can hold each to
skattr's results. NeuronGradient's minimum records autograd through the
layers after the neuron, which skattr does not (no difference measured at
W1's size). They are measuring instruments for W1 only (a zero baseline
row, a fixed target, no feature groups), not alternative implementations.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from run import Case

from cases.gradients import N_SAMPLES, NEURON, NEURON_LAYER
from cases.shapley import N_PERMUTATIONS
from skattr.core.shapley import _draw_ranks
from skattr.explainers._base import interval_halfwidth

WORKLOADS = ("W1",)
#: ShapleyValueSampling's antithetic pairs: skattr rounds ``n_samples`` up
#: to an even number of permutations
PAIRS = -(-N_PERMUTATIONS // 2)
#: the torch seed skattr draws from ``random_state=0`` (``_seed_of``): the
#: minimums draw skattr's own numbers
SEED = int(np.random.RandomState(0).randint(0, np.iinfo(np.int32).max))


def _checked(frame: pd.DataFrame) -> torch.Tensor:
    arr = frame.to_numpy(np.float32, copy=True)
    if not np.isfinite(arr).all():
        raise ValueError("X holds NaN or infinity")
    return torch.from_numpy(arr)


class _Held:
    """The model in eval mode, its parameters frozen if asked; restored on exit."""

    def __init__(self, model: torch.nn.Module, freeze: bool):
        self.model, self.freeze = model, freeze

    def __enter__(self):
        self.modes = [(m, m.training) for m in self.model.modules()]
        self.flags = [
            p for p in self.model.parameters() if p.requires_grad and self.freeze
        ]
        self.model.eval()
        for p in self.flags:
            p.requires_grad_(False)

    def __exit__(self, *exc):
        for p in self.flags:
            p.requires_grad_(True)
        for m, mode in self.modes:
            m.training = mode


def _frame(values: torch.Tensor, X: pd.DataFrame, rows: dict) -> pd.DataFrame:
    result = values.double().numpy()
    if not np.isfinite(result).all():
        raise ValueError("non-finite attributions")
    out = pd.DataFrame(result, index=X.index, columns=X.columns, copy=False)
    for key, value in rows.items():
        out.attrs[key] = pd.Series(value, index=X.index, name=key, copy=False)
    return out


def _outputs_finite(seen: torch.Tensor) -> None:
    if not bool(torch.isfinite(seen)):
        raise ValueError("the model returned NaN or infinity")


def cases(w):
    model, X, target = w.model, w.frame, w.target
    n, p = w.X.shape
    base = w.baseline

    def gradient_shap():
        _checked(X)  # fit: the background check; the baseline is given
        names = X.columns
        with _Held(model, freeze=False), torch.no_grad():
            model(base)  # the probe: the number of outputs
        x = _checked(X)  # explain
        assert X.columns.equals(names)
        g = torch.Generator().manual_seed(SEED)
        S = N_SAMPLES
        with _Held(model, freeze=True):
            # skattr's draws: a background row per sample, then the points
            torch.randint(base.shape[0], (n * S,), generator=g)
            alpha = torch.rand(n * S, dtype=torch.float64, generator=g)
            diff = x[:, None, :] - base
            point = torch.addcmul(base, alpha.float().view(n, S, 1), diff)
            point = point.reshape(n * S, p).requires_grad_(True)
            out = model(torch.cat([point, x, base]))  # f(x), f(b) ride along
            seen = (out.detach() * 0).sum()
            (grad,) = torch.autograd.grad(out[: n * S, target].sum(), point)
        attr = (grad.view(n, S, p) * diff).sum(1, dtype=torch.float64) / S
        ends = out[n * S :, target].detach().double()
        _outputs_finite(seen)
        return _frame(
            attr,
            X,
            {
                "delta": (attr.sum(1) - (ends[:n] - ends[n])).numpy(),
                "base_values": np.full(n, ends[n].item()),
                "target": np.full(n, target),
            },
        )

    def neuron_gradient():
        layer = dict(model.named_modules())[NEURON_LAYER]
        box = []
        hook = layer.register_forward_hook(lambda module, args, out: box.append(out))
        try:
            x1 = _checked(X)[:1]  # fit
            names = X.columns
            with _Held(model, freeze=False), torch.no_grad():
                model(x1)  # the probe: outputs and the layer's shape
                box.pop()
            x = _checked(X).requires_grad_(True)  # explain
            assert X.columns.equals(names)
            with _Held(model, freeze=True):
                out = model(x)
                seen = (out.detach() * 0).sum()
                neuron = box.pop()[:, NEURON]
                (grad,) = torch.autograd.grad(neuron.sum(), x)
        finally:
            hook.remove()
        _outputs_finite(seen)
        return _frame(grad, X, {"activation": neuron.detach().double().numpy()})

    def shapley_value_sampling():
        _checked(X)  # fit
        names = X.columns
        with _Held(model, freeze=False), torch.no_grad():
            model(base)  # the probe
        x = _checked(X)  # explain
        assert X.columns.equals(names)
        # skattr's draws: stratified blocks of rotations, each with its reverse
        g = torch.Generator().manual_seed(SEED)
        rank = _draw_ranks(n, PAIRS, p, True, "stratified", g).float()
        P, inner = 2 * PAIRS, p - 1
        steps = torch.arange(1, p, dtype=torch.float32)[None, None, :, None]
        per_row = P * inner + 2
        rows = max(1, w.batch_size // per_row)
        values = torch.empty(n, per_row)
        seen = torch.zeros(())
        with _Held(model, freeze=False), torch.no_grad():
            for a in range(0, n, rows):
                z = min(n, a + rows)
                m = z - a
                Z = x.new_empty(m, per_row, p)
                weights = (steps - rank[a:z, :, None, :]).clamp_(0, 1)
                Z[:, 1:-1] = torch.lerp(
                    base, x[a:z, None, :], weights.reshape(m, P * inner, p)
                )
                Z[:, 0], Z[:, -1] = base, x[a:z]
                out = model(Z.reshape(-1, p))
                seen += (out * 0).sum()
                values[a:z] = out[:, target].view(m, per_row)
        _outputs_finite(seen)
        v = values.double()
        fb, fx = v[:, 0], v[:, -1]
        states = torch.cat(
            [fb[:, None, None].expand(n, P, 1), v[:, 1:-1].view(n, P, inner)]
            + [fx[:, None, None].expand(n, P, 1)],
            2,
        )
        by_group = states.diff(dim=2).gather(2, rank.long())  # [n, P, p]
        draws = by_group.view(n, PAIRS, 2, p).mean(2)  # a pair counts once
        mean = draws.mean(1)
        m2 = ((draws - mean[:, None]) ** 2).sum(1)
        std = (m2 / ((PAIRS - 1) * PAIRS)).sqrt()
        frame = _frame(
            mean,
            X,
            {
                "base_values": fb.numpy(),
                "prediction": fx.numpy(),
                "n_draws": np.full(n, PAIRS),
                "n_samples": np.full(n, P),
                "target": np.full(n, target),
            },
        )
        for key, cells in (("std", std), ("ci95", interval_halfwidth(std, PAIRS - 1))):
            frame.attrs[key] = pd.DataFrame(
                cells.numpy(), index=X.index, columns=X.columns, copy=False
            )
        return frame

    impl = "hand-written minimum"
    note = "the least any library does per call (benchmarks/cases/minimum.py)"
    return [
        Case(
            "GradientShap",
            impl,
            gradient_shap,
            rows=n * N_SAMPLES,
            grad=True,
            note=note,
        ),
        Case("NeuronGradient", impl, neuron_gradient, rows=n, grad=True, note=note),
        Case(
            "ShapleyValueSampling",
            impl,
            shapley_value_sampling,
            rows=n * (2 + 2 * PAIRS * (p - 1)),
            note=f"{2 * PAIRS} permutations; {note}",
        ),
    ]
