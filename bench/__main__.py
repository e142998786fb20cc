"""`make bench`: every figure, `bench/results/latest.json`, and the table.

python -m bench [--quick] [--only signing,cold_start,...] [--out PATH]
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from bench.figures import RESULTS_DIR, Figure, table, write_results

#: Figure modules, in the issue's order; each has `measure(quick: bool) -> list[Figure]`.
MODULES = ("signing", "cold_start", "layer", "cpu", "aws_cost", "utilisation", "latency", "polls", "routing")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run, not a measurement")
    parser.add_argument("--only", default="", help=f"comma-separated subset of {', '.join(MODULES)}")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    chosen = [m for m in MODULES if not args.only or m in args.only.split(",")]
    figures: list[Figure] = []
    for name in chosen:
        module = importlib.import_module(f"bench.{name}")
        print(f"-- {name}", file=sys.stderr, flush=True)
        figures += module.measure(args.quick)
    out = args.out or RESULTS_DIR / ("quick.json" if args.quick else "latest.json")
    write_results(figures, out, extra={"quick": args.quick, "modules": chosen})
    print(table(figures))
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
