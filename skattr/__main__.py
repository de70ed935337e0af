"""Command line: ``python -m skattr demo``."""

from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m skattr", description="skattr commands"
    )
    sub = parser.add_subparsers(dest="command")
    demo = sub.add_parser("demo", help="train a small net and rank its features")
    demo.add_argument("--rows", type=int, default=100, help="held-out rows to explain")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument(
        "--report",
        default="skattr-report",
        help="folder of the HTML audit ('' for none)",
    )
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.command == "demo":
        from skattr._demo import run_demo

        run_demo(n_rows=args.rows, seed=args.seed, report=args.report or None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
