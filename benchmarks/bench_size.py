"""Benchmark: the size of a 24 h town's site, in files and bytes (issue 15's size budget).

    .venv/bin/python benchmarks/bench_size.py [--json]

Simulates the 24 h ``review-round-stuck`` town (seed 101, cached under the
reportgen cache directory), builds its site and measures it. The entity part
(:func:`entity_part`) counts the town's entity pages (``towns/<id>/e/``) and
the run's episode and finding pages, with the largest page or twin of each,
against the budget: a town directory of at most 40 files and 1.5 MB, and no
page or twin over 500 KB.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from reportgen.diagnose.loader import DiagnosingLoader
from reportgen.replay.loader import ReplayLoader
from reportgen.report.build import build_site
from reportgen.report.site import cache_dir
from reportgen.sim import simulate_town

#: No page or JSON twin may be larger than this, whatever the window's length.
MAX_PAGE_BYTES = 500_000


def town_day() -> Path:
    """The 24 h ``review-round-stuck`` town of seed 101, simulated once and cached."""
    folder = cache_dir() / "bench-size"
    existing = sorted(folder.glob("*.sqlite"))
    if existing:
        return existing[0]
    folder.mkdir(parents=True, exist_ok=True)
    simulate_town("review-round-stuck", seed=101, hours=24, out_dir=folder)
    return sorted(folder.glob("*.sqlite"))[0]


def _files(folder: Path, pattern: str) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.glob(pattern))}


def _part(files: dict[str, int]) -> dict[str, Any]:
    largest = max(files.items(), key=lambda kv: kv[1], default=("", 0))
    return {"files": len(files), "bytes": sum(files.values()), "largest": list(largest)}


def entity_part(site: Path) -> dict[str, Any]:
    """Files and bytes of the entity pages of every town, of the episode and the finding pages."""
    parts = {
        "entities": _part(_files(site, "towns/*/e/*")),
        "episodes": _part(_files(site, "violations/*")),
        "findings": _part(_files(site, "findings/*")),
    }
    town = _part(_files(site, "towns/*/**/*.*"))
    over = [
        name
        for name, size in _files(site, "**/*.*").items()
        if size > MAX_PAGE_BYTES and not name.startswith("assets/")
    ]
    return {**parts, "town_dir": town, "over_500KB": over}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        build_site([town_day()], site, load_run=DiagnosingLoader(ReplayLoader()))
        figures = entity_part(site)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    for name, part in figures.items():
        if name == "over_500KB":
            print(f"{name:<10} {', '.join(part) or 'none'}")
            continue
        largest, size = part["largest"]
        print(
            f"{name:<10} {part['files']:>4} files {part['bytes'] / 1e6:6.2f} MB"
            f"  largest {size / 1e3:7.1f} KB {largest}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
