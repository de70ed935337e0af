"""skattr benchmark harness: skattr against its peers and the forward floor.

Run ``make bench`` (CPU, W1 and W2), or as a plain script on a GPU machine::

    python benchmarks/run.py --device cuda            # W1, W2 and W3

Each method contributes cases from a module in ``benchmarks/cases/``: a
function ``cases(workload) -> list[Case]``. For every method the harness
times each implementation as its user pays (skattr: constructor, ``fit`` and
``explain`` on a named DataFrame; a peer: its constructor and call), the
median of ``--repeats`` runs after a warm-up, and
the floor (plain forward passes over the same number of model rows, in chunks
of ``batch_size``; forward plus backward for gradient methods), prints one
table per workload with the ratios to the floor and to skattr, and writes it
to ``benchmarks/results.md`` (one section per device).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import platform
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # skattr from the checkout, without install
sys.path.insert(0, str(HERE))

from workloads import WORKLOADS, Workload  # noqa: E402


@dataclass
class Case:
    """One implementation of one method on one workload."""

    method: str  #: e.g. "FeatureAblation"
    impl: str  #: "skattr", "captum (ppe=1)", "sklearn", ...
    run: object  #: callable with no arguments
    rows: int  #: model rows evaluated (the floor's size)
    grad: bool = False  #: floor is forward + backward
    note: str = ""  #: e.g. "5 of 2000 rows, scaled"
    scale: float = 1.0  #: multiply the measured time (a subset timed)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


#: a call this fast is repeated until the repeats take about this many seconds
#: (at most ``MAX_REPEATS`` calls): the median of a few millisecond calls
#: moves by 20 % from one run to the next on a shared 2-core machine
FILL = 1.0
MAX_REPEATS = 200


def time_it(fn, device: torch.device, repeats: int, budget: float = 20.0) -> float:
    """Median wall seconds of ``fn()`` after one warm-up call.

    At least ``repeats`` calls (more for a fast call, see :data:`FILL`), as
    many as ``budget`` seconds allow.
    """
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    first = max(time.perf_counter() - t0, 1e-9)
    wanted = max(repeats, min(MAX_REPEATS, int(FILL / first)))
    n = max(1, min(wanted, int(budget / first)))
    times = []
    for _ in range(n):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def floor_fn(w: Workload, rows: int, grad: bool):
    """Plain forward (or forward+backward) over ``rows`` rows in chunks."""
    bs = w.batch_size
    chunk = torch.randn(min(bs, rows), w.X.shape[1], device=w.device)
    sizes = [bs] * (rows // bs) + ([rows % bs] if rows % bs else [])

    def run():
        for s in sizes:
            if grad:
                z = chunk[:s].detach().requires_grad_(True)
                w.model(z)[:, w.target].sum().backward()
            else:
                with torch.no_grad():
                    w.model(chunk[:s])

    return run


def load_cases(
    w: Workload, methods: list[str] | None, impls: list[str] | None = None
) -> list[Case]:
    out: list[Case] = []
    for info in sorted(
        pkgutil.iter_modules([str(HERE / "cases")]), key=lambda m: m.name
    ):
        module = importlib.import_module(f"cases.{info.name}")
        # a module says on which workloads it runs (default: W1, W2, W3)
        if w.name not in getattr(module, "WORKLOADS", ("W1", "W2", "W3")):
            continue
        for case in module.cases(w):
            if methods is not None and not any(
                m.lower() in case.method.lower() for m in methods
            ):
                continue
            if impls is not None and not any(
                i.lower() in case.impl.lower() for i in impls
            ):
                continue
            out.append(case)
    return out


def run_workload(w: Workload, methods, repeats: int, impls=None) -> list[dict]:
    rows = []
    by_method: dict[str, list[Case]] = {}
    for case in load_cases(w, methods, impls):
        by_method.setdefault(case.method, []).append(case)
    for method, cases in by_method.items():
        timed = []
        for case in cases:
            try:
                seconds = time_it(case.run, w.device, repeats) * case.scale
            except Exception as exc:  # a peer missing or failing: report, go on
                print(
                    f"  {method} / {case.impl}: skipped ({type(exc).__name__}: {exc})"
                )
                continue
            timed.append((case, seconds))
            print(
                f"  {w.name} {method:24s} {case.impl:28s} {seconds * 1e3:10.2f} ms",
                flush=True,
            )
        skattr = next((s for c, s in timed if c.impl == "skattr"), None)
        floors = {}
        for case, seconds in timed:
            key = (case.rows, case.grad)
            if key not in floors:
                floors[key] = time_it(
                    floor_fn(w, case.rows, case.grad), w.device, repeats
                )
            floor = floors[key]
            rows.append(
                {
                    "workload": w.name,
                    "method": method,
                    "impl": case.impl,
                    "seconds": seconds,
                    "floor": floor,
                    "x_floor": seconds / floor,
                    "x_skattr": None if skattr is None else seconds / skattr,
                    "rows": case.rows,
                    "note": case.note,
                }
            )
    return rows


def markdown_table(header: str, columns: list[str], rows: list[list]) -> str:
    """``header``, then a Markdown table of ``rows`` (cells already formatted)
    under ``columns``; a column whose name starts with ``>`` is right-aligned."""
    names = [c.lstrip(">") for c in columns]
    rule = ["---:" if c.startswith(">") else "---" for c in columns]
    lines = [header, "", "| " + " | ".join(names) + " |", "|" + "|".join(rule) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def publish(table: str, out: str, section: str, write: bool = True) -> None:
    """Print ``table`` and, with ``write``, put it in ``out``'s ``section``."""
    print()
    print(table)
    if write:
        write_results(Path(out), section, table)


def render(rows: list[dict], header: str) -> str:
    columns = ["workload", "method", "implementation", ">seconds", ">model rows",
               ">floor s", ">× floor", ">× skattr", "note"]  # fmt: skip
    return markdown_table(
        header,
        columns,
        [
            [
                r["workload"],
                r["method"],
                r["impl"],
                f"{r['seconds']:.4f}",
                f"{r['rows']:,}",
                f"{r['floor']:.4f}",
                f"{r['x_floor']:.2f}",
                "" if r["x_skattr"] is None else f"{r['x_skattr']:.1f}",
                r["note"],
            ]
            for r in rows
        ],  # fmt: skip
    )


def write_results(path: Path, device_key: str, section: str) -> None:
    start, end = f"<!-- results:{device_key} -->", f"<!-- end:{device_key} -->"
    text = (
        path.read_text()
        if path.exists()
        else (
            "# Benchmark results\n\nWritten by `benchmarks/run.py` (`make bench`). "
            "`× floor`: seconds over the forward floor (plain forward passes over the "
            "same number of model rows; forward+backward for gradient methods). "
            "`× skattr`: seconds over skattr's seconds (above 1: skattr is faster).\n\n"
        )
    )
    block = f"{start}\n{section}{end}\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1].lstrip("\n")
        text = before + block + after
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workloads", default=None, help="comma list, e.g. W1,W2")
    parser.add_argument(
        "--methods", default=None, help="comma list of method substrings"
    )
    parser.add_argument(
        "--impls", default=None, help="comma list of implementation substrings"
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(HERE / "results.md"))
    parser.add_argument(
        "--section",
        default=None,
        help="the results.md section written (default: the device type); "
        "use another name for a partial run",
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    names = (
        args.workloads.split(",")
        if args.workloads
        else (["W1", "W2", "W3", "W4"] if device.type == "cuda" else ["W1", "W2", "W4"])
    )
    methods = args.methods.split(",") if args.methods else None
    impls = args.impls.split(",") if args.impls else None
    all_rows = []
    for name in names:
        print(f"{name} on {device}", flush=True)
        all_rows += run_workload(WORKLOADS[name](device), methods, args.repeats, impls)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    header = (
        f"## {device.type.upper()}{f' ({gpu})' if gpu else ''}\n\n"
        f"{time.strftime('%Y-%m-%d')}, torch {torch.__version__}, "
        f"{platform.processor() or platform.machine()}, "
        f"{torch.get_num_threads()} threads"
        + (f", methods: {args.methods}" if args.methods else "")
        + (f", implementations: {args.impls}" if args.impls else "")
    )
    table = render(all_rows, header)
    publish(table, args.out, args.section or device.type)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
