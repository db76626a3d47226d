"""Replay speed: a 24 h ``healthy-day`` town replayed tick by tick, in multiples of real time.

Target: at least 10,000x (a town-day in at most 8.64 s). The simulation is
not timed; the replay is (``replay_window`` over the whole day: opening the
file, rebuilding the state, every tick with its recorded world answers, and
the comparison with the recorded ticks). ``perf_counter`` measures; nothing
measured is stored in a deterministic output.

Run: ``.venv/bin/python benchmarks/bench_replay.py``
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

from reportgen.replay import open_source, replay_window
from reportgen.sim import simulate_town
from reportgen.town import clock

TARGET_SPEEDUP = 10_000.0


def bench_replay(hours: float = 24.0, seed: int = 0) -> dict[str, Any]:
    """Simulate ``healthy-day`` for ``hours``, replay it, and report the speed."""
    with tempfile.TemporaryDirectory() as tmp:
        result = simulate_town("healthy-day", seed=seed, hours=hours, out_dir=Path(tmp))
        assert result.path is not None
        journal = open_source(result.path).journal_range()
        assert journal is not None
        started = time.perf_counter()
        run = replay_window(result.path, journal[0], journal[1])
        seconds = time.perf_counter() - started
    simulated_s = (clock.to_ms(journal[1]) - clock.to_ms(journal[0])) / 1000
    speedup = simulated_s / seconds
    return {
        "scenario": "healthy-day",
        "simulated_hours": round(simulated_s / 3600, 3),
        "ticks": len(run.ticks),
        "replay_seconds": round(seconds, 3),
        "ms_per_tick": round(seconds * 1000 / max(1, len(run.ticks)), 4),
        "speedup": round(speedup, 1),
        "target": TARGET_SPEEDUP,
        "meets_target": speedup >= TARGET_SPEEDUP,
        "divergence": None if run.divergence is None else run.divergence.field,
    }


def main() -> None:
    print(json.dumps(bench_replay(), indent=2))


if __name__ == "__main__":
    main()
