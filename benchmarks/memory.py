"""Peak memory of ``explain`` against ``n_samples`` and rows.

Run ``make bench`` (after the other harnesses), or alone::

    .venv/bin/python benchmarks/memory.py
    .venv/bin/python benchmarks/memory.py --quick      # smaller sizes

Each configuration runs in a fresh process: it builds the model and the rows
(a float32 DataFrame), notes its resident memory (RSS), runs constructor,
``fit`` and ``explain`` with ``batch_size=4096``, and reports the **added
peak**: the process's peak RSS (``getrusage``) less the RSS before
``explain`` (for the ``n_samples`` series the median of three processes:
their small peaks vary by some MiB from one process to the next). The output itself (the result ``[n, g]`` in float64 and its
``attrs``) is given beside it: the goal is a peak that stays flat as
``n_samples`` grows tenfold and grows with the rows only by the output.

Two series:

- **n_samples**, on W2's model (MLP 100 -> 256 -> 256 -> 1) and 200 rows:
  ShapleyValueSampling 5 -> 50 permutations, KernelShap 200 -> 2,000
  coalitions (with its default cubic regression and with the linear one),
  Lime 50 -> 500 samples;
- **rows**, on an MLP 10 -> 16 -> 1 (random weights, seed 0), so that a
  million rows take seconds: FeatureAblation, ShapleyValueSampling
  (``n_samples=2``), KernelShap (``n_samples=64``) and Lime
  (``n_samples=32``) on 10,000, 100,000 and 1,000,000 rows.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from run import markdown_table, publish  # noqa: E402

MiB = 1024 * 1024


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def child(spec: dict) -> dict:
    """One configuration, in this (fresh) process."""
    import numpy as np
    import pandas as pd
    import torch

    import skattr

    torch.manual_seed(0)
    if spec["model"] == "W2":
        from workloads import W2Net

        model, p = W2Net().eval(), 100
    else:
        p = 10
        model = torch.nn.Sequential(
            torch.nn.Linear(p, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1)
        ).eval()
    n = spec["rows"]
    X = pd.DataFrame(
        torch.randn(n, p, generator=torch.Generator().manual_seed(0)).numpy(),
        columns=[f"x{i}" for i in range(p)],
    )
    cls = getattr(skattr, spec["method"])
    params = {"batch_size": 4096, "baseline": "zeros", "target": 0}
    if spec.get("n_samples") is not None:
        params["n_samples"] = spec["n_samples"]
    if spec["method"] != "FeatureAblation":
        params["random_state"] = 0
    params.update(spec.get("params", {}))
    before = _rss()
    start = time.perf_counter()
    attr = cls(**params).fit(model, X.iloc[:1]).explain(X)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    output = attr.memory_usage(deep=True).sum()
    for value in attr.attrs.values():
        if isinstance(value, (pd.DataFrame, pd.Series)):
            output += (
                value.memory_usage(deep=True).sum()
                if value.ndim == 2
                else (value.memory_usage(deep=True))
            )
    del np
    return {
        **spec,
        "added_peak_mib": max(0, peak - before) / MiB,
        "output_mib": output / MiB,
        "seconds": seconds,
    }


def run(spec: dict, repeats: int = 1) -> dict:
    """``spec`` in ``repeats`` fresh processes: the run of the median peak."""
    results = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, __file__, "--child", json.dumps(spec)],
            capture_output=True,
            text=True,
            check=True,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    results.sort(key=lambda r: r["added_peak_mib"])
    return results[len(results) // 2]


def series(quick: bool) -> list[dict]:
    scale = 10 if quick else 1
    specs = []
    for method, values, params in (
        ("ShapleyValueSampling", (5, 50), {}),
        ("KernelShap", (200, 2000), {}),
        ("KernelShap", (200, 2000), {"regression": "linear"}),
        ("Lime", (50, 500), {}),
    ):
        for s in values:
            specs.append(
                {"series": "n_samples", "model": "W2", "method": method,
                 "rows": 200, "n_samples": s, "params": params}
            )  # fmt: skip
    for method, s in (
        ("FeatureAblation", None),
        ("ShapleyValueSampling", 2),
        ("KernelShap", 64),
        ("Lime", 32),
    ):
        for rows in (10_000, 100_000, 1_000_000):
            specs.append(
                {"series": "rows", "model": "small", "method": method,
                 "rows": rows // scale, "n_samples": s}
            )  # fmt: skip
    return specs


def render(results: list[dict], header: str) -> str:
    columns = ["series", "method", "rows", "n_samples", "added peak (MiB)",
               "output (MiB)", "seconds"]  # fmt: skip
    rows = []
    for r in results:
        params = "".join(f" ({k}={v!r})" for k, v in r.get("params", {}).items())
        rows.append(
            [
                r["series"],
                r["method"] + params,
                f"{r['rows']:,}",
                "—" if r["n_samples"] is None else f"{r['n_samples']:,}",
                f"{r['added_peak_mib']:.0f}",
                f"{r['output_mib']:.0f}",
                f"{r['seconds']:.1f}",
            ]  # fmt: skip
        )
    return markdown_table(header, columns, rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true", help="a tenth of the rows")
    parser.add_argument("--out", default=str(HERE / "results.md"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return 0
    import torch

    results = []
    for spec in series(args.quick):
        # the small runs vary by some MiB from process to process: the median
        # of three
        results.append(run(spec, 3 if spec["series"] == "n_samples" else 1))
        r = results[-1]
        print(
            f"{r['method']} rows={r['rows']} n_samples={r['n_samples']}: "
            f"+{r['added_peak_mib']:.0f} MiB peak, output {r['output_mib']:.0f} MiB, "
            f"{r['seconds']:.1f} s",
            flush=True,
        )
    header = (
        f"## Peak memory\n\n{time.strftime('%Y-%m-%d')}, torch {torch.__version__}, "
        "batch_size 4,096; added peak: peak RSS less RSS before the call"
    )
    publish(render(results, header), args.out, "memory", not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
