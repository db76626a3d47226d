"""Benchmark: ``build_site`` over 100 simulated town-days on both cores.

    .venv/bin/python benchmarks/bench_build.py [--towns 100] [--jobs 2] [--replay]

Simulating a 24 h town takes ~6 s, so the benchmark simulates a few distinct
24 h towns once (cached under the reportgen cache directory) and serves each
of the N sources from one of them under its own town id. By default a
source is loaded from its *recorded* ticks (what replay compares against), so
the figure is the report's own cost: load, episodes, view-models, charts,
rendering and writing. ``--replay`` loads every source through the real
``reportgen.replay.replay_window`` instead (re-running the engine tick by
tick, ~8 s per town-day), which measures the whole pipeline.

Prints wall time, files and bytes written, and peak RSS of the parent and of
the worker processes at N/4 and N towns (memory must stay flat in N).
"""

from __future__ import annotations

import argparse
import dataclasses
import resource
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import report_fixtures as rf

from reportgen.report.build import ReplayLoader, build_site
from reportgen.report.site import cache_dir
from reportgen.runmodel import TownRun
from reportgen.sim import simulate_town

SCENARIOS = ("healthy-day", "review-round-stuck", "working-agent-no-hook", "multi-pr-rig")


def town_days() -> list[Path]:
    """Four distinct simulated 24 h towns, cached across benchmark runs."""
    folder = cache_dir() / "bench-town-days"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, scenario in enumerate(SCENARIOS):
        marker = folder / f"{scenario}.path"
        if not marker.exists():
            result = simulate_town(scenario, seed=100 + i, hours=24, out_dir=folder)
            assert result.path is not None
            marker.write_text(result.path.name, encoding="utf-8")
        paths.append(folder / marker.read_text(encoding="utf-8"))
    return paths


@dataclasses.dataclass(frozen=True)
class CopiesLoader:
    """Serves ``bench-NNN.sqlite`` from town-day ``NNN % K`` under the town id ``bench-NNN``."""

    days: tuple[Path, ...]
    replay: bool = False

    def __call__(self, source: Path, window_from: str | None, window_to: str | None) -> TownRun:
        number = int(source.stem.split("-")[1])
        real = self.days[number % len(self.days)]
        if self.replay:
            run = ReplayLoader()(real, window_from, window_to)
        else:
            conn = sqlite3.connect(real)
            conn.row_factory = sqlite3.Row
            first, last = conn.execute("SELECT min(at), max(at) FROM rg_ticks").fetchone()
            run = rf.run_from_db(conn, str(real), first, last)
            conn.close()
        run.town_id = source.stem
        return run


def peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def run(towns: int, jobs: int, replay: bool, days: list[Path]) -> None:
    sources = [Path(f"bench-{i:03d}.sqlite") for i in range(towns)]
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        summary = build_site(
            sources, Path(tmp) / "site", load_run=CopiesLoader(tuple(days), replay), jobs=jobs
        )
        elapsed = time.perf_counter() - start
    own, children = peak_rss_mb()
    print(
        f"{towns:4d} town-days  jobs={jobs}  {'replay' if replay else 'recorded'}: "
        f"{elapsed:6.1f} s  ({elapsed / towns:.2f} s/town)  {summary.ticks} ticks  "
        f"{summary.files} files  {summary.bytes / 1e6:.0f} MB  "
        f"peak RSS parent {own:.0f} MB, largest worker {children:.0f} MB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--towns", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--replay", action="store_true")
    args = parser.parse_args()
    days = town_days()
    run(max(1, args.towns // 4), args.jobs, args.replay, days)
    run(args.towns, args.jobs, args.replay, days)


if __name__ == "__main__":
    main()
