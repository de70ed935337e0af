"""Accuracy per model evaluation: Shapley estimators against exact values.

Run ``make bench`` (it runs this after the speed harness), or alone::

    .venv/bin/python benchmarks/quality.py                 # every game and budget
    .venv/bin/python benchmarks/quality.py --games wine --impls skattr --seeds 2

Each *game* is a model, rows to explain and background rows whose exact
Shapley values skattr's ``ShapleyValues`` computes from all ``2^g``
coalitions. Each estimator runs at budgets of ``2g+2``, ``4g``, ``10g``,
``25g``, ``100g`` and ``2^g`` coalition evaluations per explained row: the
model rows it evaluates, counted by a wrapper around the model, divided by
the number of background rows and explained rows (the count is checked, and
reported). The error of one row is ``|phi_hat - phi|^2 / |phi|^2``; the table
gives its median over rows and seeds, and the seconds per explained row.

Every peer sees the same game: the features it leaves out are marked (NaN)
and the wrapper fills them from each background row and averages the outputs
(the interventional value skattr computes), so that one baseline row and a
background distribution are handled alike by every implementation.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # skattr from the checkout
sys.path.insert(0, str(HERE))

from run import publish  # noqa: E402

import skattr  # noqa: E402

BUDGETS = ("2g+2", "4g", "10g", "25g", "100g", "2^g")


# ---------------------------------------------------------------- games


@dataclass
class Game:
    name: str
    description: str
    model: nn.Module  #: float64, eval mode, one output column per class
    X: torch.Tensor  #: [n, g] rows to explain, float64
    background: torch.Tensor  #: [B, g], float64
    target: int
    exact: torch.Tensor | None = None  #: [n, g], filled by exact_values

    @property
    def g(self) -> int:
        return self.X.shape[1]

    def budget(self, label: str) -> int:
        g = self.g
        return {
            "2g+2": 2 * g + 2,
            "4g": 4 * g,
            "10g": 10 * g,
            "25g": 25 * g,
            "100g": 100 * g,
            "2^g": 2**g,
        }[label]


def _mlp(g: int, k: int, hidden: int = 32) -> nn.Module:
    return nn.Sequential(
        nn.Linear(g, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
        nn.Linear(hidden, k),
    )  # fmt: skip


def _train(model, X, y, *, classify: bool, epochs: int = 300) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(epochs):
        opt.zero_grad()
        out = model(X)
        if classify:
            loss = nn.functional.cross_entropy(out, y)
        else:
            loss = nn.functional.mse_loss(out[:, 0], y)
        loss.backward()
        opt.step()
    return model.double().eval()


def _standardise(X: np.ndarray) -> torch.Tensor:
    return torch.as_tensor((X - X.mean(0)) / X.std(0), dtype=torch.float32)


def wine_game(n_rows: int, background: int) -> Game:
    """MLP 13 -> 32 -> 32 -> 3 on the wine data, class 1's logit."""
    from sklearn.datasets import load_wine

    data = load_wine()
    X = _standardise(data.data)
    torch.manual_seed(0)
    model = _train(_mlp(13, 3), X, torch.as_tensor(data.target), classify=True)
    rows = torch.randperm(len(X), generator=torch.Generator().manual_seed(1))
    Xd = X.double()
    if background == 1:
        bg, name, what = Xd.mean(0, keepdim=True), "wine", "the mean row"
    else:
        bg = Xd[rows[n_rows : n_rows + background]]
        name, what = "wine-bg", f"{background} background rows"
    return Game(
        name,
        f"MLP 13→32→32→3 trained on `load_wine` (13 features), class 1's logit; {what}",
        model,
        Xd[rows[:n_rows]],
        bg,
        1,
    )


def diabetes_game(n_rows: int) -> Game:
    """MLP 10 -> 32 -> 32 -> 1 regression on the diabetes data."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    X = _standardise(data.data)
    y = torch.as_tensor((data.target - data.target.mean()) / data.target.std())
    torch.manual_seed(0)
    model = _train(_mlp(10, 1), X, y.float(), classify=False)
    rows = torch.randperm(len(X), generator=torch.Generator().manual_seed(1))
    Xd = X.double()
    return Game(
        "diabetes",
        "MLP 10→32→32→1 regressor trained on `load_diabetes` (10 features); the mean row",
        model,
        Xd[rows[:n_rows]],
        Xd.mean(0, keepdim=True),
        0,
    )


class HighOrder(nn.Module):
    """12 features; products of 3, 4 and 5 features plus a smooth main effect.

    ``f(x) = sum_j c_j prod_{i in T_j} x_i + 0.5 sum_i sin(x_i)`` with ten
    random terms ``T_j`` of sizes 3 to 5 (fixed seed).
    """

    def __init__(self, g: int = 12, terms: int = 10):
        super().__init__()
        rng = np.random.default_rng(3)
        mask = np.zeros((terms, g))
        for j in range(terms):
            size = 3 + j % 3
            mask[j, rng.choice(g, size, replace=False)] = 1.0
        self.register_buffer("mask", torch.as_tensor(mask))
        self.register_buffer("coef", torch.as_tensor(rng.normal(size=terms)))

    def forward(self, x):
        # prod over each term's features: x where in the term, 1 elsewhere
        factors = torch.where(self.mask.bool()[None], x[:, None, :], 1.0)
        return (factors.prod(-1) @ self.coef + 0.5 * torch.sin(x).sum(1))[:, None]


def interaction_game(n_rows: int) -> Game:
    gen = torch.Generator().manual_seed(2)
    X = torch.randn(n_rows, 12, generator=gen, dtype=torch.float64) * 1.5
    return Game(
        "high-order",
        "12 features, ten random 3- to 5-way products plus 0.5·Σ sin(x_i); rows ~ N(0, 1.5²); baseline zeros",
        HighOrder().double().eval(),
        X,
        torch.zeros(1, 12, dtype=torch.float64),
        0,
    )


def make_games(names, n_rows: int) -> list[Game]:
    makers = {
        "wine": lambda: wine_game(n_rows, 1),
        "wine-bg": lambda: wine_game(n_rows, 20),
        "diabetes": lambda: diabetes_game(n_rows),
        "high-order": lambda: interaction_game(n_rows),
    }
    return [makers[name]() for name in names]


def exact_values(game: Game) -> torch.Tensor:
    ex = skattr.ShapleyValues(
        baseline=game.background.numpy(), target=game.target, batch_size=2**16
    )
    attr = ex.fit(game.model).explain(game.X.numpy())
    return torch.as_tensor(attr.to_numpy())


# ---------------------------------------------------------------- the counted game


#: what Captum's baselines hold for a left-out feature (Captum mixes input
#: and baseline arithmetically, so NaN would spread to the kept features)
LEFT_OUT = 1e30


class Counted:
    """The game's model as a function of marked rows, counting model rows.

    ``f(Z)`` for ``Z`` ``[m, g]`` with NaN where a feature is left out: each
    NaN is filled from every background row, the target output averaged over
    them. ``rows`` counts the model rows, ``B`` per marked row.
    """

    def __init__(self, game: Game):
        self.game = game
        self.rows = 0

    def torch(self, Z: torch.Tensor) -> torch.Tensor:
        Z = Z.to(torch.float64)
        bg = self.game.background
        B = bg.shape[0]
        out = torch.isnan(Z) | (Z.abs() >= LEFT_OUT)
        full = torch.where(out[:, None, :], bg[None], Z[:, None, :])
        self.rows += full.shape[0] * B
        with torch.no_grad():
            out = self.game.model(full.reshape(-1, Z.shape[1]))[:, self.game.target]
        return out.reshape(-1, B).mean(1)

    def numpy(self, Z: np.ndarray) -> np.ndarray:
        return self.torch(torch.as_tensor(np.asarray(Z, dtype=np.float64))).numpy()


def _counted_module(counter: Counted) -> nn.Module:
    class Wrapped(nn.Module):
        def __init__(self):
            super().__init__()
            # a float64 buffer: skattr runs the game in float64, as the peers
            self.register_buffer(
                "dtype_of_inputs", torch.zeros((), dtype=torch.float64)
            )

        def forward(self, x):
            counter.rows += x.shape[0]
            t = counter.game.target
            return counter.game.model(x.double())[:, t : t + 1]

    return Wrapped()


# ---------------------------------------------------------------- estimators


@dataclass
class Estimator:
    """One implementation: ``run(game, counter, budget, seed) -> [n, g]``."""

    name: str
    run: object
    min_budget: int = 0  #: budgets below it are skipped (in units of g: see fits)

    def fits(self, game: Game, budget: int) -> bool:
        return budget >= self.min_budget_of(game)

    def min_budget_of(self, game: Game) -> int:
        return self.min_budget(game.g) if callable(self.min_budget) else 0


def _skattr(cls, params_of):
    def run(game, counter, budget, seed):
        params = params_of(game, budget)
        if params is None:
            return None
        ex = cls(
            baseline=game.background.numpy(),
            target=0,
            random_state=seed,
            batch_size=2**16,
            **params,
        )
        attr = ex.fit(_counted_module(counter)).explain(game.X.numpy())
        return torch.as_tensor(attr.to_numpy())

    return run


def _svs_params(antithetic: bool, **extra):
    def params(game, budget):
        # 2 + P (g - 1) coalitions per row
        P = (budget - 2) // (game.g - 1)
        if antithetic:
            P -= P % 2
        if P < 1:
            return None
        return {"n_samples": int(P), "antithetic": antithetic, **extra}

    return params


def _kernel_params(**extra):
    def params(game, budget):
        return {"n_samples": int(budget - 2), **extra}

    return params


def _captum_svs(game, counter, budget, seed):
    from captum.attr import ShapleyValueSampling

    g = game.g
    P = (budget - 1) // g  # one baseline evaluation, then g per permutation
    if P < 1:
        return None
    torch.manual_seed(seed)
    X = game.X
    base = torch.full((1, g), LEFT_OUT, dtype=torch.float64)
    sv = ShapleyValueSampling(counter.torch)
    out = [
        sv.attribute(
            X[i : i + 1], baselines=base, n_samples=P, perturbations_per_eval=g
        )
        for i in range(X.shape[0])
    ]
    return torch.cat(out).detach()


def _captum_kernel(game, counter, budget, seed):
    from captum.attr import KernelShap

    torch.manual_seed(seed)
    X = game.X
    base = torch.full((1, game.g), LEFT_OUT, dtype=torch.float64)
    ks = KernelShap(counter.torch)
    out = [
        ks.attribute(
            X[i : i + 1], baselines=base, n_samples=budget, perturbations_per_eval=256
        )
        for i in range(X.shape[0])
    ]
    return torch.cat(out).detach()


def _shap_permutation(game, counter, budget, seed):
    import shap

    g = game.g
    masker = shap.maskers.Independent(np.full((1, g), np.nan), max_samples=1)
    ex = shap.PermutationExplainer(counter.numpy, masker, seed=seed)
    # 2 g + 1 evaluations per forward-and-back permutation (minus shared ends)
    if budget < 2 * g + 1:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = ex(game.X.numpy(), max_evals=budget, silent=True)
    return torch.as_tensor(out.values)


def _shap_kernel(l1_reg):
    def run(game, counter, budget, seed):
        import shap

        g = game.g
        np.random.seed(seed)  # noqa: NPY002 - KernelExplainer draws from numpy's global state
        ex = shap.KernelExplainer(counter.numpy, np.full((1, g), np.nan))
        counter.rows = 0  # the explainer's f(background) at construction is not a row's
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            values = ex.shap_values(
                game.X.numpy(), nsamples=budget - 1, l1_reg=l1_reg, silent=True
            )
        return torch.as_tensor(np.asarray(values))

    return run


def estimators() -> list[Estimator]:
    S, K = skattr.ShapleyValueSampling, skattr.KernelShap
    return [
        Estimator("skattr ShapleyValueSampling", _skattr(S, _svs_params(True))),
        Estimator(
            "skattr ShapleyValueSampling (antithetic=False)",
            _skattr(S, _svs_params(False)),
        ),
        Estimator("skattr KernelShap", _skattr(K, _kernel_params())),
        Estimator(
            "skattr KernelShap (regression='linear')",
            _skattr(K, _kernel_params(regression="linear")),
        ),
        Estimator(
            "skattr KernelShap (sampling='kernel')",
            _skattr(K, _kernel_params(sampling="kernel")),
        ),
        Estimator("captum ShapleyValueSampling", _captum_svs),
        Estimator("captum KernelShap", _captum_kernel),
        Estimator("shap PermutationExplainer", _shap_permutation),
        Estimator("shap KernelExplainer (l1_reg=False)", _shap_kernel(False)),
        Estimator("shap KernelExplainer (default)", _shap_kernel("auto")),
    ]


# ---------------------------------------------------------------- measuring


def normalised_error(est: torch.Tensor, exact: torch.Tensor) -> torch.Tensor:
    return ((est - exact) ** 2).sum(1) / (exact**2).sum(1)


def measure(game: Game, est: Estimator, label: str, seeds: int) -> dict | None:
    budget = game.budget(label)
    errors, seconds, per_row = [], 0.0, []
    n = game.X.shape[0]
    for seed in range(seeds):
        counter = Counted(game)
        t0 = time.perf_counter()
        try:
            phi = est.run(game, counter, budget, seed)
        except Exception as exc:  # a peer that refuses a budget: report, go on
            print(f"    {est.name} at {label}: skipped ({type(exc).__name__}: {exc})")
            return None
        seconds += time.perf_counter() - t0
        if phi is None:
            return None
        B = game.background.shape[0]
        per_row.append(counter.rows / (n * B))
        errors.append(normalised_error(phi.double(), game.exact))
    err = torch.cat(errors)
    return {
        "game": game.name,
        "budget": label,
        "impl": est.name,
        "evals": float(np.mean(per_row)),
        "budget_evals": budget,
        "median": float(err.median()),
        "mean": float(err.mean()),
        "ms_per_row": 1e3 * seconds / (seeds * n),
    }


def render(rows: list[dict], games: list[Game], header: str) -> str:
    lines = [header, ""]
    for game in games:
        lines.append(f"- **{game.name}**: {game.description}")
    lines += [
        "",
        "Median normalised error `|φ̂ − φ|² / |φ|²` over rows and seeds "
        "(evaluations per row in parentheses where they differ from the budget, "
        "marked † where they exceed it: a peer whose smallest step is larger; "
        "such cells are left out of the ratios); **bold**: the best of each "
        "column within the budget.",
        "",
    ]
    for game in games:
        mine = [r for r in rows if r["game"] == game.name]
        labels = [b for b in BUDGETS if any(r["budget"] == b for r in mine)]
        impls = list(dict.fromkeys(r["impl"] for r in mine))
        best = {
            b: min(
                (r["median"] for r in mine if r["budget"] == b and within(r)),
                default=None,
            )
            for b in labels
        }
        lines.append(f"### {game.name} (g = {game.g})")
        lines.append("")
        heads = [f"{b} = {game.budget(b):,}" for b in labels]
        lines.append("| implementation | " + " | ".join(heads) + " | ms/row at 100g |")
        lines.append("|---|" + "---:|" * (len(labels) + 1))
        for impl in impls:
            cells = []
            ms = ""
            for b in labels:
                r = next(
                    (r for r in mine if r["impl"] == impl and r["budget"] == b), None
                )
                if r is None:
                    cells.append("—")
                    continue
                text = f"{r['median']:.2e}"
                if r["median"] == best[b]:
                    text = f"**{text}**"
                if abs(r["evals"] - r["budget_evals"]) > 0.5:
                    text += f" ({r['evals']:.0f}{'' if within(r) else '†'})"
                cells.append(text)
                if b == "100g":
                    ms = f"{r['ms_per_row']:.1f}"
            lines.append(f"| {impl} | " + " | ".join(cells) + f" | {ms} |")
        lines.append("")
        lines.append(ratio_line(mine, labels))
        lines.append("")
    return "\n".join(lines) + "\n"


def within(r: dict) -> bool:
    """Whether an implementation kept to the budget (2% slack)."""
    return r["evals"] <= 1.02 * r["budget_evals"]


def ratio_line(rows: list[dict], labels: list[str]) -> str:
    """Best peer's error over skattr's best error, per budget, among the
    implementations that kept to the budget."""
    parts = []
    for b in labels:
        at = [r for r in rows if r["budget"] == b and within(r)]
        ours = [r["median"] for r in at if r["impl"].startswith("skattr")]
        theirs = [r["median"] for r in at if not r["impl"].startswith("skattr")]
        if not ours or not theirs:
            continue
        o, t = min(ours), min(theirs)
        parts.append(
            f"{b}: {'exact' if o < 1e-20 and t < 1e-20 else f'{t / max(o, 1e-300):.2f}×'}"
        )
    return "Best peer's error / skattr's best error: " + ", ".join(parts) + "."


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--games", default="wine,wine-bg,diabetes,high-order")
    parser.add_argument("--budgets", default=",".join(BUDGETS))
    parser.add_argument("--impls", default=None, help="comma list of substrings")
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=str(HERE / "results.md"))
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--json", default=None, help="also dump the raw rows here")
    parser.add_argument(
        "--reuse",
        default=None,
        help="a --json file of an earlier run: its rows for implementations "
        "not run now are kept (e.g. peers measured once)",
    )
    args = parser.parse_args(argv)
    torch.set_default_dtype(torch.float32)
    games = make_games(args.games.split(","), args.rows)
    impls = args.impls.split(",") if args.impls else None
    chosen = [
        e
        for e in estimators()
        if impls is None or any(i.lower() in e.name.lower() for i in impls)
    ]
    rows = []
    for game in games:
        game.exact = exact_values(game)
        print(f"{game.name}: g = {game.g}, {game.X.shape[0]} rows", flush=True)
        for label in args.budgets.split(","):
            for est in chosen:
                r = measure(game, est, label, args.seeds)
                if r is None:
                    continue
                rows.append(r)
                print(
                    f"  {label:5s} {est.name:48s} {r['median']:.3e} "
                    f"(evals/row {r['evals']:.0f}, {r['ms_per_row']:.1f} ms/row)",
                    flush=True,
                )
    header = (
        f"## Accuracy per evaluation\n\n{time.strftime('%Y-%m-%d')}, "
        f"torch {torch.__version__}, {args.rows} rows × {args.seeds} seeds per cell"
    )
    if args.reuse:
        import json

        ran = {(r["game"], r["impl"]) for r in rows}
        rows += [
            r
            for r in json.loads(Path(args.reuse).read_text())
            if (r["game"], r["impl"]) not in ran
            and r["game"] in {g.name for g in games}
        ]
    if args.json:
        import json

        Path(args.json).write_text(json.dumps(rows, indent=1))
    table = render(rows, games, header)
    publish(table, args.out, "quality", not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
