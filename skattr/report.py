"""An audit a person reads: several explainers, how far they agree, one HTML file.

:func:`audit` runs a set of explainers on the same rows (every output at
once), and writes ``path/index.html`` (one self-contained file: tables and
images embedded, nothing fetched from the network) with the CSV of every
attribution table beside it (and Parquet when pyarrow is installed). It
returns an :class:`AuditReport` holding the same tables as DataFrames.
"""

from __future__ import annotations

import base64
import contextlib
import html
import io
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone

from skattr.explainers._base import rank_attributions


def default_explainers(random_state=0, n_columns=None) -> dict:
    """The default set: perturbation and gradient methods that finish in
    seconds on a few hundred rows of a small net.

    KernelShap evaluates 256 coalitions per row, or ``4 * n_columns`` where
    that is more: two coalition pairs per column (fewer than one pair per
    column is refused).
    """
    from skattr import (
        FeatureAblation,
        FeaturePermutation,
        GradientShap,
        KernelShap,
        ShapleyValueSampling,
    )

    return {
        "ShapleyValueSampling": ShapleyValueSampling(
            n_samples=25, random_state=random_state
        ),
        "KernelShap": KernelShap(
            n_samples=max(256, 4 * (n_columns or 0)), random_state=random_state
        ),
        "FeatureAblation": FeatureAblation(),
        "FeaturePermutation": FeaturePermutation(
            n_repeats=3, random_state=random_state
        ),
        "GradientShap": GradientShap(n_samples=20, random_state=random_state),
    }


@dataclass
class AuditReport:
    """What :func:`audit` computed, as DataFrames, and where it wrote them."""

    path: Path  #: the folder written
    index: Path  #: its ``index.html``
    importance: pd.DataFrame  #: features x methods: share of each method's total
    spread: pd.DataFrame  #: per method: mean |attribution|, its std and standard error
    agreement: pd.DataFrame  #: Spearman rank correlation between the methods
    overlap: pd.DataFrame  #: share of the top-k features two methods have in common
    efficiency: pd.DataFrame  #: max |sum - (f(x) - f(baseline))| of efficient methods
    methods: pd.DataFrame  #: settings, model rows and seconds of each method
    per_output: dict  #: method -> importance with a column per output
    attributions: dict  #: method -> the ``explain`` result
    skipped: dict = field(default_factory=dict)  #: method -> why it did not run


def audit(
    model,
    X,
    y=None,
    *,
    explainers=None,
    background=None,
    path="skattr-report",
    top_k: int = 5,
    n_waterfalls: int = 3,
    show_progress: bool = True,
    title: str = "skattr audit",
) -> AuditReport:
    """Explain ``model`` on ``X`` with several methods and write an HTML audit.

    Parameters
    ----------
    model : torch.nn.Module, skorch net, Pipeline or callable
        The model, as for every explainer's ``fit``.
    X : DataFrame
        The rows to explain.
    y : array-like, default=None
        True labels, for a scorer or ``target="true"`` explainers.
    explainers : dict, default=None
        ``{name: explainer}`` (unfitted, cloned here); ``None`` uses
        :func:`default_explainers`. Explainers whose ``target`` is the
        default explain every output (``target="all"``).
    background : DataFrame, default=None
        The data given to each ``fit``: the columns, and the values of
        ``baseline="auto"`` (its mean) for the explainers that keep that
        default; ``None`` uses ``X``. For SHAP's average over background
        rows, give explainers whose ``baseline`` is a frame of those rows.
    path : str or Path, default="skattr-report"
        The folder written: ``index.html``, one CSV per method's
        attributions, ``importance.csv``.
    top_k : int, default=5
        The size of the top lists compared in the overlap table.
    n_waterfalls : int, default=3
        The rows with the largest predictions drawn as waterfalls.
    show_progress : bool, default=True
        One tqdm bar over the methods.
    title : str, default="skattr audit"

    Returns
    -------
    AuditReport
    """
    from tqdm.auto import tqdm

    if explainers is None:
        explainers = default_explainers(n_columns=np.shape(X)[1])
    else:
        explainers = dict(explainers)
    background = X if background is None else background
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    attributions, per_output, rows, skipped = {}, {}, [], {}
    for name, explainer in tqdm(
        explainers.items(), desc="audit", disable=not show_progress, leave=True
    ):
        ex = clone(explainer)
        params = ex.get_params()
        if "target" in params and params["target"] is None:
            ex.set_params(target="all")
        start = time.perf_counter()
        try:
            ex.fit(model, background)
            attr = ex.explain(X, y)
        except (TypeError, ValueError) as exc:  # e.g. gradients of a coded input
            skipped[name] = str(exc).split("\n")[0]
            continue
        seconds = time.perf_counter() - start
        imp = rank_attributions(attr)
        attributions[name] = attr
        per_output[name] = imp
        shown = {
            k: v
            for k, v in ex.get_params().items()
            if k in ("n_samples", "n_repeats", "baseline", "target", "tol")
            and not isinstance(v, (pd.DataFrame, np.ndarray))
        }
        rows.append(
            {
                "method": name,
                "settings": ", ".join(f"{k}={v!r}" for k, v in shown.items()),
                "model rows": ex._model_rows(X),
                "seconds": seconds,
            }
        )
    if not attributions:
        raise ValueError(f"No explainer could run on this model: {skipped}.")
    methods = pd.DataFrame(rows).set_index("method")
    importance, spread = _importance(per_output, attributions)
    agreement = importance.drop(columns="mean rank").corr(method="spearman")
    overlap = _overlap(importance.drop(columns="mean rank"), top_k)
    efficiency = _efficiency(attributions)
    report = AuditReport(
        out, out / "index.html", importance, spread, agreement, overlap,
        efficiency, methods, per_output, attributions, skipped,
    )  # fmt: skip
    _write_tables(report)
    report.index.write_text(_html(report, title, top_k, n_waterfalls))
    return report


# ---------------------------------------------------------------- tables
def _importance(per_output: dict, attributions: dict):
    shares, spread = {}, []
    for name, imp in per_output.items():
        shares[name] = imp["importance"] / imp["importance"].sum()
        n = len(attributions[name])
        spread.append(
            pd.DataFrame(
                {
                    "method": name,
                    "feature": imp.index,
                    "importance": imp["importance"].to_numpy(),
                    "std": imp["std"].to_numpy(),
                    "standard error": imp["std"].to_numpy() / np.sqrt(n),
                }
            )
        )
    table = pd.DataFrame(shares)
    table.insert(0, "mean rank", table.rank(ascending=False).mean(axis=1))
    table.index.name = "feature"
    spread = pd.concat(spread).set_index(["method", "feature"])
    return table.sort_values("mean rank"), spread


def _overlap(importance: pd.DataFrame, k: int) -> pd.DataFrame:
    names = list(importance.columns)
    top = {n: set(importance[n].nlargest(k).index) for n in names}
    k = min(k, len(importance))
    return pd.DataFrame(
        [[len(top[a] & top[b]) / k for b in names] for a in names],
        index=names,
        columns=names,
    )


def _efficiency(attributions: dict) -> pd.DataFrame:
    """Max |row sum - (f(x) - f(baseline))| of the methods that claim it."""
    rows = {}
    for name, attr in attributions.items():
        if "prediction" not in attr.attrs or "base_values" not in attr.attrs:
            continue
        gap = attr.attrs["prediction"] - attr.attrs["base_values"]
        if isinstance(attr.columns, pd.MultiIndex):
            sums = attr.T.groupby(level=0, sort=False).sum().T
        else:
            sums = attr.sum(axis=1)
        rows[name] = float(np.abs(np.asarray(sums) - np.asarray(gap)).max())
    return pd.DataFrame({"max |sum - (f(x) - f(baseline))|": rows})


def _write_tables(report: AuditReport) -> None:
    report.importance.to_csv(report.path / "importance.csv")
    for name, attr in report.attributions.items():
        # the values alone: per-row extras are not columns of the table, and
        # copying the frame would deep-copy them first
        flat = pd.DataFrame(
            attr.to_numpy(), index=attr.index, columns=attr.columns, copy=False
        )
        if isinstance(flat.columns, pd.MultiIndex):
            flat.columns = [f"{o}|{f}" for o, f in flat.columns]
        flat.to_csv(report.path / f"attributions_{name}.csv")
        # Parquet too when pyarrow (or fastparquet) is installed
        with contextlib.suppress(ImportError):
            flat.to_parquet(report.path / f"attributions_{name}.parquet")


# ---------------------------------------------------------------- HTML
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 70em;
       color: #222; line-height: 1.4; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em;
     border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th { background: #f4f4f4; } td:first-child, th:first-child { text-align: left; }
.note { color: #555; font-size: 0.9em; }
img { max-width: 100%; }
"""


def _png(ax) -> str:
    import matplotlib.pyplot as plt

    figure = ax.figure
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _table(frame: pd.DataFrame, fmt: str = ".4f") -> str:
    return frame.to_html(float_format=lambda v: format(v, fmt), border=0)


def _html(report: AuditReport, title: str, top_k: int, n_waterfalls: int) -> str:
    from skattr import plot

    best = report.importance.index[:10]
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f"<p class='note'>{len(next(iter(report.attributions.values())))} rows "
        f"explained by {len(report.attributions)} methods. Importance is each "
        "method's mean |attribution| as a share of its total; the mean rank "
        "orders the features.</p>",
        "<h2>Global importance</h2>",
        _table(report.importance),
        "<h2>Spread and standard errors</h2>",
        "<p class='note'>Per method, the standard deviation of |attribution| "
        "over the rows and the standard error of its mean, in the order of "
        "the table above.</p>",
        _table(_wide_spread(report)),
        "<h2>Agreement between methods</h2>",
        "<p class='note'>Spearman rank correlation of the importances, and "
        f"the share of the top {top_k} features two methods have in common.</p>",
        "<p class='note'>Rank correlation:</p>",
        _table(report.agreement),
        f"<p class='note'>Top-{top_k} overlap:</p>",
        _table(report.overlap),
    ]
    if len(report.efficiency):
        parts += [
            "<h2>Efficiency</h2>",
            "<p class='note'>Rows of Shapley values sum to f(x) - f(baseline); "
            "the largest gap over rows and outputs.</p>",
            _table(report.efficiency, ".1e"),
        ]
    first = next(iter(report.per_output))
    parts += [
        f"<h2>Per output ({html.escape(first)})</h2>",
        _png(plot.bar(report.per_output[first])),
    ]
    waterfalls = _waterfalls(report, n_waterfalls)
    if waterfalls:
        parts += ["<h2>The largest local explanations</h2>", *waterfalls]
    parts += ["<h2>Methods</h2>", _table(report.methods)]
    if report.skipped:
        skipped = pd.DataFrame({"why": report.skipped})
        parts += ["<h2>Methods not run</h2>", _table(skipped)]
    parts.append(f"<p class='note'>Top features: {', '.join(map(str, best))}.</p>")
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>\n{body}\n</body></html>\n"
    )


def _wide_spread(report: AuditReport) -> pd.DataFrame:
    """The spread as features x (method, statistic), features ranked."""
    wide = report.spread[["std", "standard error"]].unstack("method")
    wide = wide.swaplevel(axis=1)
    methods = list(report.per_output)
    wide = wide[[(m, c) for m in methods for c in ("std", "standard error")]]
    wide.columns = pd.MultiIndex.from_tuples(
        [(m, "std" if c == "std" else "s.e.") for m, c in wide.columns]
    )
    return wide.reindex(report.importance.index)


def _waterfalls(report: AuditReport, n: int) -> list[str]:
    from skattr import plot

    for name, attr in report.attributions.items():
        if "prediction" not in attr.attrs:
            continue
        prediction, base = attr.attrs["prediction"], attr.attrs["base_values"]
        if isinstance(attr.columns, pd.MultiIndex):
            output = (prediction - base).abs().max().idxmax()
            one = attr[output].copy()
            one.attrs = {"prediction": prediction[output], "base_values": base[output]}
        else:
            output, one = None, attr
        gap = (one.attrs["prediction"] - one.attrs["base_values"]).abs()
        out = []
        for label in gap.nlargest(n).index:
            ax = plot.waterfall(one.loc[[label]], max_display=8)
            which = "" if output is None else f", output {output}"
            ax.set_title(f"{name}: row {label}{which}")
            out.append(_png(ax))
        return out
    return []
