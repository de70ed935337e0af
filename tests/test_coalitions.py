"""The coalition function every perturbation method is built on, and the
shape of the package around it."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from skattr import (
    FeatureAblation,
    GradientShap,
    KernelShap,
    Lime,
    NeuronGradient,
    ShapleyValues,
    ShapleyValueSampling,
)
from skattr.core.coalitions import MaskTable, PermutationStates, coalition_values
from tests.conftest import MLP

PACKAGE = Path(__file__).resolve().parent.parent / "skattr"


def _brute_force(model, X, baseline, masks_per_row, targets):
    """v(S) by hand: one input per (row, coalition, background row)."""
    n = X.shape[0]
    out = np.zeros((n, masks_per_row.shape[1], targets.shape[1]))
    with torch.no_grad():
        for r in range(n):
            for j, mask in enumerate(masks_per_row[r]):
                values = [
                    model(torch.where(mask, X[r], b)[None])[0, targets[r]].double()
                    for b in baseline
                ]
                out[r, j] = torch.stack(values).mean(0).numpy()
    return out


@pytest.mark.parametrize("batch_size", [7, 4096])  # gathered triples / whole rows
@pytest.mark.parametrize("shared", [True, False])
def test_coalition_values_equal_brute_force(batch_size, shared):
    torch.manual_seed(0)
    model = MLP().eval()
    X = torch.randn(4, 5)
    baseline = torch.randn(2, 5)
    groups = torch.tensor([0, 1, 1, 2, 0])  # columns 0 and 4 together
    gen = torch.Generator().manual_seed(1)
    table = torch.rand((3, 3) if shared else (4, 3, 3), generator=gen) < 0.5
    targets = torch.tensor([[0, 2], [1, 1], [2, 0], [0, 1]])  # two outputs a row
    cv = coalition_values(
        lambda Z, rows: model(Z),
        X,
        baseline,
        MaskTable(table, groups=groups),
        targets=targets,
        batch_size=batch_size,
    )
    per_row = table.expand(4, 3, 3) if shared else table
    expected = _brute_force(model, X, baseline, per_row[..., groups], targets)
    np.testing.assert_allclose(cv.values.numpy(), expected, rtol=1e-6, atol=1e-6)
    full = torch.ones(4, 1, 5, dtype=torch.bool)
    np.testing.assert_allclose(
        cv.fx.numpy(), _brute_force(model, X, baseline, full, targets)[:, 0], atol=1e-6
    )
    np.testing.assert_allclose(
        cv.fb.numpy(), _brute_force(model, X, baseline, ~full, targets)[:, 0], atol=1e-6
    )


def test_permutation_states_are_the_inner_states():
    rank = torch.tensor([[[2, 0, 1]]], dtype=torch.int16)  # order: 1, 2, 0
    states = PermutationStates(rank, groups=torch.tensor([0, 1, 2]))
    masks = states.group_masks(torch.tensor([0, 0]), torch.tensor([0, 1]))
    assert masks.tolist() == [[False, True, False], [False, True, True]]
    assert states.rows_weights(0, 1, torch.float32).tolist() == [
        [[0.0, 1.0, 0.0], [0.0, 1.0, 1.0]]
    ]
    assert states.rows_groups(0, 1).tolist() == masks[None].tolist()


def test_targets_picked_after_evaluation_cost_no_extra_rows():
    """A picker gets every output at the rows; the coalitions are evaluated once."""
    model = MLP().eval()
    rows_seen = []

    def f(Z, rows):
        rows_seen.append(Z.shape[0])
        return model(Z)

    X, baseline = torch.randn(3, 5), torch.zeros(1, 5)
    table = torch.eye(5, dtype=torch.bool)
    cv = coalition_values(
        f,
        X,
        baseline,
        MaskTable(table, groups=torch.arange(5)),
        targets=lambda outputs: outputs.argmax(1, keepdim=True),
        batch_size=4096,
    )
    assert sum(rows_seen) == 3 + 3 * (5 + 2)  # the rows, then coalitions with ends
    with torch.no_grad():
        assert cv.targets[:, 0].tolist() == model(X).argmax(1).tolist()


class _Ignores2(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(5, 64), torch.nn.Tanh(), torch.nn.Linear(64, 3)
        )

    def forward(self, x):
        return self.net(x * torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0]))


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize(
    "cls", [FeatureAblation, ShapleyValueSampling, ShapleyValues, KernelShap]
)
def test_an_ignored_feature_gets_exactly_zero_for_few_rows(cls, n):
    # f(x) and f(baseline) come from the same pass as the other coalitions,
    # so identical inputs give identical outputs, even for a one-row call
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(n, 5)).astype(np.float32), columns=list("abcde"))
    baseline = rng.normal(size=5).astype(np.float32)
    attr = cls(baseline=baseline).fit(_Ignores2(), X).explain(X)
    tolerance = 1e-12 if cls is KernelShap else 0.0  # a float64 solve
    assert (attr["c"].abs() <= tolerance).all()


def test_gradient_shap_uses_its_baseline_(X_frame):
    """baseline_ is the distribution the draws come from, exactly."""
    model = MLP()
    auto = GradientShap(random_state=0).fit(model, X_frame)
    torch.testing.assert_close(
        auto.baseline_, torch.tensor(X_frame.to_numpy(), dtype=torch.float32)
    )
    given = GradientShap(baseline=X_frame, random_state=0).fit(model, X_frame)
    pd.testing.assert_frame_equal(auto.explain(X_frame), given.explain(X_frame))


def test_a_method_without_baseline_has_no_baseline_(X_frame):
    ex = NeuronGradient(layer="hidden.0", neuron=1).fit(MLP(), X_frame)
    assert not hasattr(ex, "baseline_") and ex.layer_shape_ == (8,)


def test_lime_similarity_sees_only_the_perturbed_inputs(X_frame):
    seen = []

    def similarity(x, inputs, z):
        seen.append(inputs.shape[0])
        return torch.ones(inputs.shape[0])

    Lime(n_samples=9, similarity_func=similarity, random_state=0).fit(
        MLP(), X_frame
    ).explain(X_frame)
    assert sum(seen) == len(X_frame) * 9


# ---------------------------------------------------------------- the package


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_imports_go_down_only():
    core = list((PACKAGE / "core").glob("*.py"))
    for path in core:
        outside = {
            m
            for m in _imports(path)
            if m.split(".")[0]
            not in (
                "torch",
                "math",
                "collections",
                "dataclasses",
                "itertools",
                "threading",
            )
            and m not in ("__future__", "typing", "contextlib")
            and not m.startswith("skattr.core")
        }
        assert not outside, f"{path.name} imports {outside}"
    assert not {m for m in _imports(PACKAGE / "_pipeline.py") if "skattr" in m}
    for low in ("_data.py", "_model.py", "_pipeline.py"):
        assert not {m for m in _imports(PACKAGE / low) if "explainers" in m}
    assert "skattr._model" not in _imports(PACKAGE / "_data.py")


def test_every_method_declares_its_extras_and_space():
    from skattr.explainers._base import EXTRA_KINDS

    for cls in itertools.chain(
        [FeatureAblation, ShapleyValueSampling, ShapleyValues, KernelShap, Lime],
        [GradientShap, NeuronGradient],
    ):
        assert set(cls._extras.values()) <= set(EXTRA_KINDS)
        assert cls._space in ("groups", "inputs", "units")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_permutation_states_stay_exact_in_half_precision(dtype):
    """Ranks above 256 (bfloat16) or 2048 (float16) are not exact in those
    dtypes: the states must still take exactly the groups of lower rank."""
    g = 3000
    rank = torch.randperm(g, generator=torch.Generator().manual_seed(0))
    rank = rank.to(torch.int16)[None, None, :]
    states = PermutationStates(rank, groups=torch.arange(g))
    weights = states.rows_weights(0, 1, dtype)[0]  # [g - 1 states, g columns]
    expected = rank[0, 0][None, :] < torch.arange(1, g)[:, None]
    assert torch.equal(weights.bool(), expected)
    assert torch.equal(weights.sum(1), torch.arange(1, g).to(dtype))
