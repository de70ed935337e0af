"""Pairwise Shapley interactions: skattr against shapiq (time and error).

Run ``make bench`` (after the speed and accuracy harnesses), or alone::

    .venv/bin/python benchmarks/interactions.py

Two workloads of 100 rows: W1's breast-cancer MLP with its seven feature
groups (``workloads.W1_GROUPS``, 2^7 coalitions per row), and an MLP
12 -> 32 -> 32 -> 1 (random weights, seed 0) on standard normal rows with a
zero baseline (2^12 coalitions per row). For each:

- skattr's exact ``ShapleyInteractions`` and, on the same rows, exact
  ``ShapleyValues`` (the issue's bound: at most 1.5 times its time);
- shapiq's ``ExactComputer`` (SII), one game per row, timed on a subset of
  rows and scaled;
- at a budget of a quarter of the coalitions, skattr's sampled mode and
  shapiq's approximators of SII (SHAPIQ, SVARM-IQ, permutation sampling,
  KernelSHAP-IQ, the inconsistent KernelSHAP-IQ): the median over rows of
  ``|Φ̂ − Φ|² / |Φ|²`` over the pairs' interactions, and the seconds.

skattr is timed as its user pays (constructor, ``fit`` and ``explain`` on a
DataFrame); shapiq as its calls on a game function that runs the same model
on the coalitions' inputs (numpy in, numpy out).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from run import publish  # noqa: E402
from workloads import W1_GROUPS, w1, w1_group_mask  # noqa: E402

import skattr  # noqa: E402

APPROXIMATORS = (
    "SHAPIQ",
    "SVARMIQ",
    "PermutationSamplingSII",
    "KernelSHAPIQ",
    "InconsistentKernelSHAPIQ",
)


def workloads():
    cpu = torch.device("cpu")
    w = w1(cpu)
    names = w.feature_names
    mask = w1_group_mask(names)
    groups = {
        name: [names[i] for i in np.flatnonzero(mask == j)]
        for j, name in enumerate(W1_GROUPS)
    }
    yield {
        "name": "W1, 7 groups",
        "model": w.model,
        "X": pd.DataFrame(w.X.numpy(), columns=names),
        "groups": groups,
        "mask": mask,
        "target": 1,
    }
    torch.manual_seed(0)
    mlp = nn.Sequential(
        nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 1)
    ).eval()  # fmt: skip
    X = torch.randn(100, 12, generator=torch.Generator().manual_seed(0))
    yield {
        "name": "MLP, 12 features",
        "model": mlp,
        "X": pd.DataFrame(X.numpy(), columns=[f"x{i}" for i in range(12)]),
        "groups": None,
        "mask": np.arange(12),
        "target": 0,
    }


def seconds(fn, repeats=25, budget=3.0):
    """The least of up to ``repeats`` timings (fewer when one takes long)."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    times = []
    for _ in range(max(1, min(repeats, int(budget / max(first, 1e-9))))):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def pairs_of(cube):
    """``[n, g, g]`` SHAP matrices -> ``[n, pairs]`` whole interactions."""
    g = cube.shape[1]
    i, j = np.triu_indices(g, 1)
    return 2 * cube[:, i, j]


def error(est, exact):
    return float(np.median(((est - exact) ** 2).sum(1) / (exact**2).sum(1)))


def game_for(w, x):
    """shapiq's game of one row: coalitions of groups -> the target output."""
    model, mask, target = w["model"], w["mask"], w["target"]
    x = torch.as_tensor(x, dtype=torch.float32)

    def game(coalitions):
        cols = torch.as_tensor(np.asarray(coalitions)[:, mask])
        with torch.no_grad():
            return model(torch.where(cols, x, 0.0))[:, target].double().numpy()

    return game


def run(w, subset: int):
    X, g = w["X"], len(set(w["mask"].tolist()))
    n = len(X)
    common = {"baseline": 0.0, "target": w["target"], "feature_groups": w["groups"]}
    rows = []

    def skattr_exact():
        ex = skattr.ShapleyInteractions(**common).fit(w["model"], X)
        return ex.explain(X)

    t_ours, attr = seconds(skattr_exact)
    exact = pairs_of(attr.to_numpy().reshape(n, g, g))
    t_sv, _ = seconds(
        lambda: skattr.ShapleyValues(**common).fit(w["model"], X).explain(X)
    )
    rows.append(("skattr ShapleyInteractions (exact)", 2**g, t_ours, 0.0, ""))
    rows.append(
        (
            "skattr ShapleyValues (exact, values only)",
            2**g,
            t_sv,
            None,
            f"interactions / values: {t_ours / t_sv:.2f}×",
        )
    )
    import shapiq

    xs = X.to_numpy()[:subset]

    def shapiq_exact():
        out = []
        for x in xs:
            iv = shapiq.ExactComputer(game_for(w, x), n_players=g)(index="SII", order=2)
            out.append([iv[(i, j)] for i, j in zip(*np.triu_indices(g, 1))])
        return np.asarray(out)

    t, got = seconds(shapiq_exact, repeats=1)
    rows.append(
        (
            "shapiq ExactComputer (SII)",
            2**g,
            t * n / subset,
            error(got, exact[:subset]),
            f"{subset} of {n} rows, scaled",
        )
    )
    budget = 2**g // 4
    t, attr = seconds(
        lambda: (
            skattr.ShapleyInteractions(n_samples=budget - 2, random_state=0, **common)
            .fit(w["model"], X)
            .explain(X)
        )
    )
    rows.append(
        (
            "skattr ShapleyInteractions (n_samples)",
            budget,
            t,
            error(pairs_of(attr.to_numpy().reshape(n, g, g)), exact),
            "",
        )
    )
    for name in APPROXIMATORS:
        cls = getattr(shapiq, name)

        def approx(cls=cls):
            out = []
            for x in xs:
                ap = cls(n=g, max_order=2, index="SII", random_state=0)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    iv = ap.approximate(budget, game_for(w, x))
                out.append([iv[(i, j)] for i, j in zip(*np.triu_indices(g, 1))])
            return np.asarray(out)

        try:
            t, got = seconds(approx, repeats=1)
        except Exception as exc:  # an approximator that refuses: report, go on
            print(f"  shapiq {name}: skipped ({type(exc).__name__}: {exc})")
            continue
        rows.append(
            (
                f"shapiq {name} (SII)",
                budget,
                t * n / subset,
                error(got, exact[:subset]),
                f"{subset} of {n} rows, scaled",
            )
        )
    for r in rows:
        print(f"  {w['name']:18s} {r[0]:45s} {r[2]:8.3f} s  error {r[3]}", flush=True)
    return rows


def render(results, header):
    lines = [
        header,
        "",
        "| workload | implementation | coalitions per row | seconds (100 rows) | error | note |",
        "|---|---|---:|---:|---:|---|",
    ]
    for name, rows in results:
        for impl, budget, secs, err, note in rows:
            e = "" if err is None else ("exact" if err == 0.0 else f"{err:.2e}")
            lines.append(
                f"| {name} | {impl} | {budget:,} | {secs:.3f} | {e} | {note} |"
            )
    lines.append("")
    lines.append(
        "Error: median over rows of `|Φ̂ − Φ|² / |Φ|²` over the pairs' interactions, "
        "against skattr's exact values (shapiq's exact computation agrees to 1e-10 in "
        "`tests/test_interactions.py`)."
    )
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--subset", type=int, default=10, help="rows shapiq is timed on"
    )
    parser.add_argument("--out", default=str(HERE / "results.md"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    results = [(w["name"], run(w, args.subset)) for w in workloads()]
    header = (
        f"## Shapley interactions\n\n{time.strftime('%Y-%m-%d')}, torch "
        f"{torch.__version__}, {torch.get_num_threads()} threads; 100 rows per workload"
    )
    table = render(results, header)
    publish(table, args.out, "interactions", not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
