"""Benchmark: ``build_site`` over N simulated town-days with 1 and 2 processes.

    .venv/bin/python benchmarks/bench_build.py [--towns 10 100] [--jobs 1 2] [--replay]

Simulating a 24 h town takes ~6 s, so the benchmark simulates four distinct
24 h towns once (cached under the reportgen cache directory) and serves each
of the N sources from one of them under its own town id (source ``i`` is
town-day ``i % 4``; a placeholder file per source gives each its own
checksum, so incremental rebuilds work as for real sources).

By default a source is loaded as ``reportgen build`` loads it (``--ticks
auto``): these towns hold a complete record of their ticks, so the figure is
the report's own cost: load, episodes, view-models, charts, rendering and
writing. ``--replay`` loads every source as ``reportgen build --ticks replay``
does instead, re-running the engine tick by tick and comparing every tick
with the record.

Each configuration runs in a fresh process so that peak RSS (of the parent,
and of the largest worker) belongs to that build alone. After the cold
build, the same build is run again to time an incremental rebuild (every
town skipped). Prints one line per configuration and, with ``--json``, the
figures as JSON.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from reportgen.diagnose.diagnose import end_state
from reportgen.diagnose.loader import diagnose_run
from reportgen.replay.loader import ReplayLoader
from reportgen.report.build import build_site
from reportgen.report.executors import ProcessExecutor
from reportgen.report.site import cache_dir
from reportgen.sim import simulate_town
from reportgen.town_run import TownRun

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

    @property
    def cache_key(self) -> str:
        return f"bench-copies:replay={self.replay}:{[str(d) for d in self.days]}"

    def __call__(self, source: Path, window_from: str | None, window_to: str | None) -> TownRun:
        number = int(source.stem.split("-")[1])
        real = self.days[number % len(self.days)]
        # The same loaders as `reportgen build` and `reportgen build --ticks replay`, and the
        # same diagnosis (`DiagnosingLoader`), made under the copy's own town id (episode ids,
        # and so which episodes are expected, depend on it).
        loaded = ReplayLoader(ticks="replay" if self.replay else "auto").load(
            real, window_from, window_to
        )
        loaded.run.town_id = source.stem
        with end_state(real, loaded) as state:
            loaded.run.diagnosis = diagnose_run(loaded.run, state)
        return loaded.run


def peak_rss_mb() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return own, children


def measure(towns: int, jobs: int, replay: bool, days: list[Path], work: Path) -> dict[str, Any]:
    """Cold build, then an incremental rebuild, of ``towns`` sources with ``jobs`` processes.

    Everything is written under ``work``, which the caller deletes only after
    the last configuration: ext4 allocates inodes slowly for a few minutes after
    a mass deletion (it skips recently deleted ones), so deleting one
    configuration's 35,000 files before the next one runs slowed the next one
    by up to a fifth.
    """
    loader = CopiesLoader(tuple(days), replay)
    folder = work / "sources"
    folder.mkdir(parents=True)
    sources = []
    for i in range(towns):
        source = folder / f"bench-{i:04d}.sqlite"
        source.write_text(f"{source.name} → {days[i % len(days)].name}\n", encoding="utf-8")
        sources.append(source)
    out = work / "site"
    executor = ProcessExecutor(jobs)
    start = time.perf_counter()
    cold = build_site(sources, out, load_run=loader, executor=executor)
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    warm = build_site(sources, out, load_run=loader, executor=executor)
    rebuild = time.perf_counter() - start
    own, children = peak_rss_mb()
    return {
        "towns": towns,
        "jobs": jobs,
        "load": "replay" if replay else "auto",
        "seconds": round(elapsed, 2),
        "towns_per_second": round(towns / elapsed, 2),
        "ticks": cold.ticks,
        "files": cold.files,
        "mb_written": round(cold.bytes / 1e6, 1),
        "mb_per_town": round(cold.bytes / 1e6 / towns, 2),
        "files_per_town": round(cold.files / towns, 1),
        "rebuild_seconds": round(rebuild, 2),
        "rebuild_skipped": warm.skipped,
        "peak_rss_parent_mb": round(own),
        "peak_rss_worker_mb": round(children),
    }


def line(r: dict[str, Any]) -> str:
    return (
        f"{r['towns']:5d} town-days  jobs={r['jobs']}  {r['load']}: {r['seconds']:7.1f} s  "
        f"{r['towns_per_second']:5.2f} towns/s  {r['files_per_town']:.0f} files, "
        f"{r['mb_per_town']:.1f} MB per town  rebuild {r['rebuild_seconds']:.1f} s "
        f"({r['rebuild_skipped']} skipped)  peak RSS parent {r['peak_rss_parent_mb']} MB, "
        f"largest worker {r['peak_rss_worker_mb']} MB"
    )


def in_subprocess(towns: int, jobs: int, replay: bool, work: Path) -> dict[str, Any]:
    """One configuration in a fresh interpreter (so its peak RSS is its own)."""
    args = [sys.executable, __file__, "--one", "--towns", str(towns), "--jobs", str(jobs)]
    args += ["--work", str(work / f"{towns}-{jobs}-{'replay' if replay else 'auto'}")]
    done = subprocess.run(
        args + (["--replay"] if replay else []), check=True, capture_output=True, text=True
    )
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    return result


def bench_build(towns: int = 100, jobs: int = 2) -> dict[str, Any]:
    """Figures for ``benchmarks/run.py``: ``towns`` town-days with 1 and ``jobs`` processes."""
    town_days()
    with tempfile.TemporaryDirectory() as work:
        one = in_subprocess(towns, 1, False, Path(work))
        many = in_subprocess(towns, jobs, False, Path(work))
    return {"1 process": one, f"{jobs} processes": many, "speed-up": speedup(one, many)}


def speedup(one: dict[str, Any], many: dict[str, Any]) -> float:
    return round(float(one["seconds"]) / float(many["seconds"]), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--towns", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--replay", action="store_true")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    days = town_days()
    if args.one:
        print(json.dumps(measure(args.towns[0], args.jobs[0], args.replay, days, args.work)))
        return
    with tempfile.TemporaryDirectory() as work:
        results = run_all(args, Path(work))
    if args.json:
        print(json.dumps(results, indent=2))


def run_all(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    results = []
    for towns in args.towns:
        runs = [in_subprocess(towns, jobs, args.replay, work) for jobs in args.jobs]
        for r in runs:
            print(line(r), flush=True)
        if len(runs) > 1:
            print(f"      speed-up {args.jobs[0]} → {args.jobs[-1]}: {speedup(runs[0], runs[-1])}×")
        results += runs
    return results


if __name__ == "__main__":
    main()
