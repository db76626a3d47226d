"""Benchmark: how many bytes and files one 24 h town writes, by kind, and its single-file bundle.

    .venv/bin/python benchmarks/bench_size.py [--scenario review-round-stuck | --all] [--json]

The town is the 24 h ``review-round-stuck`` day of :mod:`bench_build` (seed
101, cached). It is built as ``reportgen build`` builds it, then every file
under ``towns/<dir>/`` is counted by kind: the town page and its JSON twin,
the timeline's data files (``timeline/``: the largest one matters, each must
stay under 500 KB), entity pages and their twins (``e/``), and the rest
(episodes' and findings' pages live outside the town's folder and are
counted apart). The single-file bundle of the same town is built too. The
budget (docs/performance.md): a town ≤ 1.5 MB and ≤ 40 files under its
folder, town page ≤ 150 KB, no file over 500 KB, bundle ≤ 2 MB with the
Vega bundle inline. ``--all`` measures each of the four 24 h towns of
:mod:`bench_build` and prints one line per town.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

from bench_build import SCENARIOS, town_days

from reportgen.diagnose.loader import DiagnosingLoader
from reportgen.replay.loader import ReplayLoader
from reportgen.report.build import build_site
from reportgen.report.single_file import build_single_file


def kind_of(relpath: str) -> str:
    """Which kind of file a path under ``towns/<dir>/`` is."""
    if relpath in ("index.html", "index.json"):
        return {"index.html": "town page", "index.json": "town twin"}[relpath]
    if relpath.startswith("timeline/"):
        return "timeline data"
    if relpath.startswith("e/"):
        return "entity twins" if relpath.endswith(".json") else "entity pages"
    if relpath.startswith("ticks-"):
        return "tick pages (old)"
    return "other"


def town_sizes(town: Path) -> dict[str, dict[str, int]]:
    """Files, bytes and the largest file per kind under a town's folder (and in total)."""
    kinds: dict[str, dict[str, int]] = defaultdict(lambda: {"files": 0, "bytes": 0, "largest": 0})
    for path in sorted(p for p in town.rglob("*") if p.is_file()):
        size = path.stat().st_size
        for key in (kind_of(path.relative_to(town).as_posix()), "total"):
            kinds[key]["files"] += 1
            kinds[key]["bytes"] += size
            kinds[key]["largest"] = max(kinds[key]["largest"], size)
    return dict(sorted(kinds.items()))


def bench_size(scenario: str = "review-round-stuck") -> dict[str, Any]:
    """Build one 24 h town's site and bundle; their sizes by kind."""
    source = town_days()[SCENARIOS.index(scenario)]
    load = DiagnosingLoader(ReplayLoader())
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        build_site([source], site, load_run=load, jobs=1, incremental=False)
        (town,) = (site / "towns").iterdir()
        bundle = Path(tmp) / "incident.html"
        bundle_bytes = build_single_file([source], bundle, load_run=load)
        outside = {
            folder: sum(p.stat().st_size for p in (site / folder).rglob("*") if p.is_file())
            for folder in ("violations", "findings")
            if (site / folder).exists()
        }
        return {
            "scenario": f"{scenario}, 24 h",
            "town": town_sizes(town),
            "episode and finding pages (outside the town's folder)": outside,
            "single-file bundle bytes": bundle_bytes,
        }


def every_town() -> dict[str, Any]:
    """The review-round-stuck town by kind, and each of the four 24 h towns in brief."""
    every = {scenario: bench_size(scenario) for scenario in SCENARIOS}
    brief = {
        scenario: {
            "files": f["town"]["total"]["files"],
            "bytes": f["town"]["total"]["bytes"],
            "largest file": f["town"]["total"]["largest"],
            "town page": f["town"]["town page"]["bytes"],
            "episode and finding pages": sum(
                f["episode and finding pages (outside the town's folder)"].values()
            ),
            "bundle": f["single-file bundle bytes"],
        }
        for scenario, f in every.items()
    }
    return {**every["review-round-stuck"], "every 24 h town": brief}


def summary_line(figures: dict[str, Any]) -> str:
    """One town's budget figures on one line."""
    town = figures["town"]
    outside = sum(figures["episode and finding pages (outside the town's folder)"].values())
    return (
        f"{figures['scenario']:28} towns/<dir>/: {town['total']['files']:3} files "
        f"{town['total']['bytes'] / 1e6:5.2f} MB (largest {town['total']['largest'] / 1e3:5.1f} KB,"
        f" town page {town['town page']['bytes'] / 1e3:5.1f} KB)  episode+finding pages "
        f"{outside / 1e6:4.2f} MB  bundle {figures['single-file bundle bytes'] / 1e6:4.2f} MB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scenario", default="review-round-stuck", choices=SCENARIOS)
    parser.add_argument("--all", action="store_true", help="every 24 h town, one line each")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.all:
        every = [bench_size(scenario) for scenario in SCENARIOS]
        for figures in every:
            print(summary_line(figures))
        if args.json:
            print(json.dumps(every, indent=2))
        return 0
    figures = bench_size(args.scenario)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"towns/<dir>/ of a {figures['scenario']} town:")
    for kind, row in figures["town"].items():
        print(
            f"  {kind:18} {row['files']:5} files {row['bytes']:10} bytes (largest {row['largest']})"
        )
    for folder, size in figures["episode and finding pages (outside the town's folder)"].items():
        print(f"  {folder + '/':18} {size:10} bytes")
    print(f"single-file bundle {figures['single-file bundle bytes']} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
