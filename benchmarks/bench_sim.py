"""Simulator speed: simulated town-hours per second of wall time for ``healthy-day``.

``healthy-day`` runs about five agents (up to four polecats and the refinery)
through the real engine; the figure covers the whole loop (ticks, API calls,
the world, the per-tick records), not writing the database file.
Run: ``.venv/bin/python benchmarks/bench_sim.py [hours]``.
"""

from __future__ import annotations

import sys
import time
from typing import Any

from reportgen.sim import simulate_town


def bench_sim(hours: float = 24.0, scenario: str = "healthy-day") -> dict[str, Any]:
    """Simulate one town for ``hours``; return the rate and what the run did."""
    t0 = time.perf_counter()
    result = simulate_town(scenario, hours=hours)
    elapsed = time.perf_counter() - t0
    return {
        "name": "sim_town_hours_per_second",
        "scenario": scenario,
        "hours": hours,
        "seconds": round(elapsed, 3),
        "town_hours_per_second": round(hours / elapsed, 2),
        "ticks": result.ticks,
        "ticks_per_second": round(result.ticks / elapsed, 1),
    }


if __name__ == "__main__":
    figures = bench_sim(float(sys.argv[1]) if len(sys.argv) > 1 else 24.0)
    print(
        f"{figures['scenario']}: {figures['town_hours_per_second']} simulated town-hours/s "
        f"({figures['hours']:g} h in {figures['seconds']} s, {figures['ticks_per_second']} ticks/s)"
    )
