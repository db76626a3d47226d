"""Run scenarios to files: the library side of ``reportgen simulate``."""

from __future__ import annotations

from pathlib import Path

from reportgen import progress
from reportgen.errors import BadInputError
from reportgen.sim.event_loop import SimResult, Simulation
from reportgen.sim.scenarios import get_scenario
from reportgen.town.api import TickObserver
from reportgen.town.containers import MODES

MAX_HOURS = 24.0 * 14


def _check(towns: int, hours: float | None, filter_mode: str) -> None:
    if towns < 1:
        raise BadInputError(f"--towns must be at least 1 (got {towns})")
    if hours is not None and not 0 < hours <= MAX_HOURS:
        raise BadInputError(f"--hours must be in (0, {MAX_HOURS:g}] (got {hours:g})")
    if filter_mode not in MODES:
        raise BadInputError(f"unknown container filter mode {filter_mode!r}")


def simulate_town(
    scenario: str,
    *,
    seed: int = 0,
    index: int = 0,
    hours: float | None = None,
    filter_mode: str = "changes",
    out_dir: Path | None = None,
    keep_decisions: bool = False,
    auto_recover: frozenset[int] = frozenset(),
    observers: list[TickObserver] | None = None,
) -> SimResult:
    """Simulate town ``index`` of ``scenario``; write it to ``out_dir`` when given."""
    _check(1, hours, filter_mode)
    sim = Simulation(
        get_scenario(scenario), seed=seed, index=index, hours=hours,
        filter_mode=filter_mode, keep_decisions=keep_decisions, auto_recover=auto_recover,
        observers=observers,
    )  # fmt: skip
    result = sim.run()
    if out_dir is not None:
        sim.write(out_dir)
    sim.town.conn.close()
    return result


def simulate(
    scenario: str,
    out_dir: str | Path,
    *,
    seed: int = 0,
    towns: int = 1,
    hours: float | None = None,
    filter_mode: str = "changes",
    auto_recover: frozenset[int] = frozenset(),
    observers: list[TickObserver] | None = None,
) -> list[SimResult]:
    """Simulate ``towns`` towns of ``scenario`` into ``out_dir/<townId>.sqlite``, one by one."""
    get_scenario(scenario)
    _check(towns, hours, filter_mode)
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise BadInputError(f"--out {out}: not a directory")
    out.mkdir(parents=True, exist_ok=True)
    results = []
    for i in range(towns):
        with progress.step(i, towns, f"town {i + 1}/{towns}" if towns > 1 else ""):
            result = simulate_town(
                scenario, seed=seed, index=i, hours=hours, filter_mode=filter_mode,
                out_dir=out, auto_recover=auto_recover, observers=observers,
            )  # fmt: skip
        results.append(result)
    return results
