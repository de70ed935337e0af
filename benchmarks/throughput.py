"""Rows explained per second: in memory against Dask, on W2's model.

Run ``make bench`` (after the other harnesses), or alone::

    .venv/bin/python benchmarks/throughput.py            # the issue's sizes
    .venv/bin/python benchmarks/throughput.py --scale 0.01   # a quick look

Two jobs on W2's model (MLP 100 -> 256 -> 256 -> 1, random weights, seed 0;
``torch.randn`` rows, seed 0; zero baseline; batch_size 4,096):
``FeatureAblation`` over 1,000,000 rows and ``ShapleyValueSampling``
(``n_samples=5``) over 100,000 rows. Each job reads its rows from Parquet
(50 files) and writes its attributions to Parquet, and is timed as its user
pays (constructor, ``fit``, the explanation and the write):

- **in memory**: ``pd.read_parquet``, ``explain``, ``DataFrame.to_parquet``;
- **Dask, threads**: ``dd.read_parquet``, ``explain``, ``to_parquet`` on
  Dask's default (threaded) scheduler;
- **Dask, 1 worker** and **Dask, 2 workers**: the same on a
  ``distributed.LocalCluster`` of worker processes with one thread each
  (Dask's workers run torch on one thread), the cluster started beforehand.

The table gives rows per second and each configuration's speed over the
in-memory run and over the 1-worker run (the scaling).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from run import markdown_table, publish  # noqa: E402
from workloads import W2Net  # noqa: E402

import skattr  # noqa: E402

N_FILES = 50


def make_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return W2Net().eval()


def write_rows(folder: Path, n: int) -> None:
    """``n`` rows of ``torch.randn(., 100)`` (seed 0) in ``N_FILES`` Parquet files."""
    X = torch.randn(n, 100, generator=torch.Generator().manual_seed(0)).numpy()
    names = [f"x{i}" for i in range(100)]
    folder.mkdir(parents=True)
    edges = np.linspace(0, n, N_FILES + 1).astype(int)
    for i, (a, b) in enumerate(zip(edges[:-1], edges[1:])):
        frame = pd.DataFrame(X[a:b], columns=names, index=pd.RangeIndex(a, b))
        frame.to_parquet(folder / f"part-{i:03d}.parquet")


def explainer(job: str):
    if job == "FeatureAblation":
        return skattr.FeatureAblation(baseline="zeros", target=0)
    return skattr.ShapleyValueSampling(
        n_samples=5, baseline="zeros", target=0, random_state=0
    )


def in_memory(job: str, rows: Path, out: Path) -> float:
    start = time.perf_counter()
    X = pd.read_parquet(rows)
    attr = explainer(job).fit(make_model(), X.iloc[:1]).explain(X)
    attr.attrs = {}
    attr.to_parquet(out / "memory.parquet")
    return time.perf_counter() - start


def with_dask(job: str, rows: Path, out: Path, name: str, scheduler=None) -> float:
    import dask.dataframe as dd

    start = time.perf_counter()
    X = dd.read_parquet(rows)
    ex = explainer(job).fit(make_model(), X.partitions[0].head(1))
    write = ex.explain(X).to_parquet(out / name, compute=False)
    if scheduler is None:
        write.compute()
    else:
        write.compute(scheduler=scheduler)
    return time.perf_counter() - start


def run(scale: float) -> list[dict]:
    from distributed import Client, LocalCluster

    jobs = [("FeatureAblation", 1_000_000), ("ShapleyValueSampling", 100_000)]
    results = []
    tmp = Path(tempfile.mkdtemp(prefix="skattr-throughput-"))
    try:
        for job, n in jobs:
            n = max(N_FILES * 10, int(n * scale))
            rows = tmp / f"rows-{job}"
            write_rows(rows, n)
            times = {"in memory": in_memory(job, rows, tmp)}
            print(f"{job}: in memory {times['in memory']:.1f} s", flush=True)
            times["Dask, threads"] = with_dask(job, rows, tmp, "threads", "threads")
            print(f"{job}: threads {times['Dask, threads']:.1f} s", flush=True)
            for workers in (1, 2):
                with (
                    LocalCluster(
                        n_workers=workers,
                        threads_per_worker=1,
                        processes=True,
                        host="127.0.0.1",
                        dashboard_address=None,
                    ) as cluster,
                    Client(cluster),
                ):
                    key = f"Dask, {workers} worker{'s' * (workers > 1)}"
                    times[key] = with_dask(job, rows, tmp, f"w{workers}")
                print(f"{job}: {key} {times[key]:.1f} s", flush=True)
            for key, seconds in times.items():
                results.append(
                    {
                        "job": job,
                        "rows": n,
                        "config": key,
                        "seconds": seconds,
                        "rows/s": n / seconds,
                        "x memory": times["in memory"] / seconds,
                        "x 1 worker": times["Dask, 1 worker"] / seconds,
                    }
                )
            shutil.rmtree(rows)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return results


def render(results: list[dict], header: str) -> str:
    columns = ["job", "rows", "configuration", "seconds", "rows/s", "× in memory",
               "× 1 worker"]  # fmt: skip
    rows = [
        [r["job"], f"{r['rows']:,}", r["config"], f"{r['seconds']:.1f}",
         f"{r['rows/s']:,.0f}", f"{r['x memory']:.2f}", f"{r['x 1 worker']:.2f}"]
        for r in results
    ]  # fmt: skip
    return markdown_table(header, columns, rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of rows")
    parser.add_argument("--out", default=str(HERE / "results.md"))
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    results = run(args.scale)
    header = (
        f"## Dask throughput\n\n{time.strftime('%Y-%m-%d')}, torch "
        f"{torch.__version__}, {os.cpu_count()} cores; in memory and Dask's "
        f"threads: {torch.get_num_threads()} torch threads; workers: 1 thread "
        "each. Rows read from Parquet and attributions written to Parquet."
        + (
            f" Rows scaled by {args.scale} (`--scale {args.scale}`): the issue's "
            "sizes are the default."
            if args.scale != 1.0
            else ""
        )
    )
    publish(render(results, header), args.out, "throughput", not args.no_write)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
