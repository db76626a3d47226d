"""Run every benchmark and write ``docs/performance.md`` with the machine they ran on.

    .venv/bin/python benchmarks/run.py [--out docs/performance.md] [--towns 25]

Each benchmark module is imported on its own: one that is missing or fails
is reported as skipped (with the reason) and the others still run, so the
figures page can be regenerated while a benchmark is being written. Figures
without the machine are meaningless, so the page starts with the platform,
CPU model, cores and Python version; the date of the run is deliberately
not written (the page changes only when a figure does).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    cpu = platform.processor() or "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    memory = "unknown"
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("MemTotal"):
                memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    return {
        "platform": platform.platform(),
        "CPU": cpu,
        "cores (usable / total)": f"{usable} / {os.cpu_count()}",
        "memory": memory,
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def _engine() -> dict[str, Any]:
    from bench_engine import bench_engine

    return bench_engine()


def _sim() -> dict[str, Any]:
    from bench_sim import bench_sim

    return bench_sim()


def _replay() -> dict[str, Any]:
    from bench_replay import bench_replay

    return bench_replay()


def _diagnose() -> dict[str, Any]:
    from bench_diagnose import bench_diagnose

    return bench_diagnose()


def _size() -> dict[str, Any]:
    from bench_size import every_town

    return every_town()


def _build(towns: int, jobs: int) -> Callable[[], dict[str, Any]]:
    def run() -> dict[str, Any]:
        module = importlib.import_module("bench_build")
        if hasattr(module, "bench_build"):
            return dict(module.bench_build(towns=towns, jobs=jobs))
        # the current script prints one line per size; keep what it says
        days = module.town_days()
        lines = []
        for size in (max(1, towns // 4), towns):
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                module.run(size, jobs, False, days)
            lines.append(" ".join(out.getvalue().split()))
        return {"towns": towns, "jobs": jobs, "runs": lines}

    return run


def run_all(towns: int, jobs: int) -> list[tuple[str, str, dict[str, Any] | None, str]]:
    """(name, what it measures, figures or None, note) for every benchmark."""
    benches: list[tuple[str, str, Callable[[], dict[str, Any]]]] = [
        ("engine", "reconcile + apply of one tick (benchmarks/bench_engine.py)", _engine),
        ("simulator", "a 24 h `healthy-day` town (benchmarks/bench_sim.py)", _sim),
        ("replay", "a 24 h town replayed tick by tick (benchmarks/bench_replay.py)", _replay),
        (
            "diagnosis",
            "`diagnose` of a 24 h town against its build; five healthy days judged healthy "
            "(benchmarks/bench_diagnose.py)",
            _diagnose,
        ),
        (
            "site size",
            "files and bytes under `towns/<dir>/` of a 24 h `review-round-stuck` town by kind, "
            "its single-file bundle, and each of the four 24 h towns in brief "
            "(benchmarks/bench_size.py; budget: a town ≤ 1.5 MB and ≤ 40 files, town page "
            "≤ 150 KB, no file over 500 KB, bundle ≤ 2 MB; before the timeline work the "
            "review-round-stuck day wrote 372 files, 9.0 MB)",
            _size,
        ),
        (
            "site build",
            f"`build_site` over {towns} town-days, {jobs} jobs, each town diagnosed as "
            "`reportgen build` does (benchmarks/bench_build.py; before the timeline work 100 "
            "town-days wrote 878.5 MB in 35,156 files, without their finding pages)",
            _build(towns, jobs),
        ),
    ]
    results: list[tuple[str, str, dict[str, Any] | None, str]] = []
    for name, what, bench in benches:
        print(f"running {name} …", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            figures = bench()
        except ModuleNotFoundError as exc:
            note = f"skipped: module {exc.name} is not available"
            print(f"  {note}", file=sys.stderr)
            results.append((name, what, None, note))
            continue
        except Exception as exc:  # one broken benchmark must not hide the others
            traceback.print_exc()
            results.append((name, what, None, f"skipped: failed ({type(exc).__name__}: {exc})"))
            continue
        took = time.perf_counter() - started
        print(f"  done in {took:.1f} s", file=sys.stderr)
        results.append((name, what, figures, ""))
    return results


def _rows(figures: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    for key, value in figures.items():
        if isinstance(value, dict):
            rows += _rows(value, f"{prefix}{key} · ")
        elif isinstance(value, list):
            rows += [(f"{prefix}{key} [{i + 1}]", str(v)) for i, v in enumerate(value)]
        else:
            rows.append((f"{prefix}{key}", json.dumps(value) if value is None else str(value)))
    return rows


def markdown(
    info: dict[str, str], results: list[tuple[str, str, dict[str, Any] | None, str]]
) -> str:
    lines = [
        "# Performance",
        "",
        "<!-- Written by `.venv/bin/python benchmarks/run.py`; rerun it to update. -->",
        "",
        "Measured with `benchmarks/run.py` on this machine:",
        "",
        "| | |",
        "| --- | --- |",
        *(f"| {k} | {v} |" for k, v in info.items()),
        "",
        "Wall-clock figures vary by a few per cent between runs; compare runs on one machine.",
        "",
    ]
    for name, what, figures, note in results:
        lines += [f"## {name}", "", f"{what}.", ""]
        if figures is None:
            lines += [f"*{note}*", ""]
            continue
        lines += ["| figure | value |", "| --- | --- |"]
        lines += [f"| {k} | {v.replace('|', '/')} |" for k, v in _rows(figures)]
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--towns", type=int, default=100, help="town-days for the site build")
    parser.add_argument("--jobs", type=int, default=2, help="processes for the site build")
    args = parser.parse_args()
    info = machine()
    results = run_all(args.towns, args.jobs)
    text = markdown(info, results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
