"""Diagnosis: its cost per town against the build's, and ``healthy-day`` healthy over five days.

    .venv/bin/python benchmarks/bench_diagnose.py [--hours 24] [--seeds 5]

Simulates ``healthy-day`` for ``--hours`` with seeds 0 … ``--seeds``−1 (not
timed) and checks that every one is judged healthy with no warning and no
critical finding: the full version of the check the test suite runs over
4 h and 2 h (``tests/test_diagnose_scenarios.py``). Then, on the seed-0
town, times (best of three, ``perf_counter``):

* ``load``: the town's window loaded as ``reportgen build`` loads it
  (:class:`~reportgen.replay.loader.ReplayLoader`, its recorded ticks);
* ``build``: ``build_site`` of that one town into a fresh site (load,
  episodes, pages, writing; one process, not incremental), with the plain
  loader and with the judging one ``reportgen build`` uses
  (:class:`~reportgen.diagnose.loader.DiagnosingLoader`): the difference is
  what diagnosis adds to a build;
* ``diagnose``: :func:`reportgen.diagnose.diagnose` on the same town, on
  its own: opening the file and loading the window's ticks and end state
  (about what ``load`` costs), then judging;
* ``judge``: the detectors alone on the loaded window (time parsing caches
  emptied first), which is what a diagnosis adds to a build that has
  already loaded the ticks.

Target: judging costs at most 10 % of the town's build. Nothing measured is
written anywhere but stdout.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reportgen.diagnose import diagnose
from reportgen.diagnose.registry import CRITICAL, WARNING
from reportgen.sim import simulate_town

TARGET_SHARE = 0.10


def _best(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def _judge(path: Path) -> float:
    """Load the window as ``diagnose`` does, untimed; the seconds the detectors take."""
    from reportgen.diagnose.diagnose import end_state, judge, window_input
    from reportgen.diagnose.registry import DEFAULT_CONFIG
    from reportgen.replay.loader import ReplayLoader
    from reportgen.town import clock

    loaded = ReplayLoader().load(path, None, None)
    with end_state(path, loaded) as state:
        inp = window_input(loaded.run, state, DEFAULT_CONFIG, str(path))
        clock.to_ms.cache_clear()
        started = time.perf_counter()
        judge(inp)
        return time.perf_counter() - started


def _verdicts(paths: list[Path]) -> list[dict[str, Any]]:
    out = []
    for seed, path in enumerate(paths):
        d = diagnose(path)
        bad = [f"{f.severity} {f.kind}" for f in d.findings if f.severity in (CRITICAL, WARNING)]
        out.append({"seed": seed, "verdict": str(d.verdict), "ticks": d.ticks, "bad": bad})
    return out


def bench_diagnose(hours: float = 24.0, seeds: int = 5) -> dict[str, Any]:
    """Simulate, check the verdicts, time load / build / diagnose of the seed-0 town."""
    from reportgen.diagnose.loader import DiagnosingLoader
    from reportgen.replay.loader import ReplayLoader
    from reportgen.report.build import build_site

    logging.disable(logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        towns = root / "towns"
        towns.mkdir()
        paths = []
        for seed in range(seeds):
            result = simulate_town("healthy-day", seed=seed, hours=hours, out_dir=towns)
            assert result.path is not None
            paths.append(result.path)
        verdicts = _verdicts(paths)
        town = paths[0]
        load = _best(lambda: ReplayLoader()(town, None, None))
        sites = iter(range(100))

        def build_with(loader: Any) -> Callable[[], Any]:
            return lambda: build_site(
                [town], root / f"site{next(sites)}", incremental=False, jobs=1, load_run=loader
            )

        build = _best(build_with(ReplayLoader()))
        judged_build = _best(build_with(DiagnosingLoader(ReplayLoader())))
        diag = _best(lambda: diagnose(town))
        judging = min(_judge(town) for _ in range(3))
    share = judging / build
    return {
        "scenario": "healthy-day",
        "hours": hours,
        "seeds": seeds,
        "all_healthy": all(v["verdict"] == "healthy" and not v["bad"] for v in verdicts),
        "verdicts": [f"seed {v['seed']}: {v['verdict']} ({v['ticks']} ticks)" for v in verdicts],
        "load_seconds": round(load, 3),
        "build_seconds": round(build, 3),
        "build_with_diagnosis_seconds": round(judged_build, 3),
        "diagnosis_adds_to_build": round(judged_build / build - 1, 4),
        "diagnose_seconds": round(diag, 3),
        "judge_seconds": round(judging, 4),
        "judge_share_of_build": round(share, 4),
        "diagnose_share_of_build": round(diag / build, 4),
        "target_share": TARGET_SHARE,
        "meets_target": share <= TARGET_SHARE,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    print(json.dumps(bench_diagnose(args.hours, args.seeds), indent=2))


if __name__ == "__main__":
    main()
