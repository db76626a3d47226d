"""Does a fleet's nightly fit GitHub Pages? Measure a published tree and extrapolate.

    python scripts/site_budget.py PAGES_DIR [--towns 100] [--nights 90] [--full-runs 4]
        [--budget-mb 1000] [--scale 1] [--full-town-mb MB]

PAGES_DIR is a tree ``scripts/nightly.sh`` published (with at least one
full and one thinned run). The per-town sizes are measured there; ``--scale``
multiplies them (e.g. from short towns to a day) and ``--full-town-mb``
replaces the measured full per-town size by a modelled one. Exit 1 when the
extrapolation is over the budget. See docs/nightly.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reportgen.report import budget


def main(argv: list[str]) -> int:
    """Print the measured sizes and the extrapolation; 1 when over budget."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pages", type=Path)
    parser.add_argument("--towns", type=int, default=100)
    parser.add_argument("--nights", type=int, default=90)
    parser.add_argument("--full-runs", type=int, default=4)
    parser.add_argument("--budget-mb", type=float, default=budget.DEFAULT_BUDGET / 1e6)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--full-town-mb", type=float, default=None)
    args = parser.parse_args(argv)
    measured = budget.measure(args.pages)
    plan = budget.extrapolate(
        measured,
        towns=args.towns,
        nights=args.nights,
        full_runs=args.full_runs,
        scale=args.scale,
        full_town_bytes=None if args.full_town_mb is None else int(args.full_town_mb * 1e6),
    )
    limit = int(args.budget_mb * 1e6)
    print(f"{args.towns} towns x {args.nights} nights, {args.full_runs} full runs")
    print(budget.report(measured, plan, limit))
    return 0 if plan.total_bytes <= limit else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
