"""The discrete-event loop: the real engine's ticks on a simulated clock, plus the world around it.

Between ticks, tasks on the :class:`~reportgen.sim.queue.Agenda` (users
slinging work, agent processes heartbeating and finishing, evictions) call
the :class:`~reportgen.town.api.Town` API at their own times. Ticks run at
each tick's ``next_tick_at`` (5 s with active work, 5 min idle); a call that
inserts an event pulls a later tick in to ``now + 5 s``, as upstream's
``armAlarmIfNeeded`` / ``escalateToActiveCadence`` do.

Everything random comes from one ``random.Random`` per town, seeded from the
scenario, the seed and the town's index, and nothing iterates in hash order,
so the same arguments give byte-identical databases.
"""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import tempfile
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from reportgen import progress
from reportgen.sim.container import SimContainer
from reportgen.sim.github import SimGitHub
from reportgen.sim.queue import Agenda
from reportgen.sim.users import schedule_users
from reportgen.sim.world import SimWorld
from reportgen.town import clock, store
from reportgen.town.api import TickObserver, Town
from reportgen.town.config import resolve, rig_config_text
from reportgen.town.db import configure
from reportgen.town.status import ACTIVE_ALARM_INTERVAL_MS
from reportgen.town.tick import ContainerFilter, ModelStopwatch, TickResult

if TYPE_CHECKING:
    from reportgen.sim.scenarios import Scenario

#: Every simulated town starts at this time (a Monday morning).
START = "2026-03-16T08:00:00.000Z"
ORG = "acme"


def _digest(scenario: str, seed: int, index: int) -> bytes:
    return hashlib.sha256(f"{scenario}:{seed}:{index}".encode()).digest()


def town_id_for(scenario: str, seed: int, index: int) -> str:
    """The town id of town ``index`` of a run: a UUID derived from the run's arguments."""
    return str(uuid.UUID(bytes=_digest(scenario, seed, index)[:16], version=4))


def town_name_for(scenario: str, index: int) -> str:
    """The name of town ``index`` of a run: its scenario's, then ``-2``, ``-3`` … for the others."""
    return scenario if index == 0 else f"{scenario}-{index + 1}"


def town_rng(scenario: str, seed: int, index: int) -> random.Random:
    """The town's only random stream (an int seed: independent of ``PYTHONHASHSEED``)."""
    return random.Random(int.from_bytes(_digest(scenario, seed, index)[16:], "big"))


@dataclass
class SimResult:
    """What one simulated town did (also printed by ``reportgen simulate``)."""

    town_id: str
    scenario: str
    seed: int
    hours: float
    filter_mode: str
    ticks: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    violations: Counter[int] = field(default_factory=Counter)
    #: Container answers the pre-phase got, and ``container_status`` events that became rows.
    observed: int = 0
    inserted: int = 0
    #: Per-tick action lists (kept only when asked for, to compare runs).
    decisions: list[list[dict[str, object]]] | None = None
    path: Path | None = None

    def add(self, result: TickResult) -> None:
        self.ticks += 1
        self.actions.update(str(a["type"]) for a in result.actions)
        self.violations.update(int(v["invariant"]) for v in result.violations)
        self.observed += result.container.observed
        drained = result.drain.outcomes if result.drain is not None else []
        self.inserted += len({o.event_id for o in drained if o.event_type == "container_status"})
        if self.decisions is not None:
            self.decisions.append(list(result.actions))


class Simulation:
    """One simulated town: its database, its world, its agenda and its clock."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        seed: int = 0,
        index: int = 0,
        hours: float | None = None,
        filter_mode: str = "changes",
        keep_decisions: bool = False,
        start: str = START,
        auto_recover: frozenset[int] = frozenset(),
        observers: list[TickObserver] | None = None,
    ) -> None:
        self.scenario = scenario
        self.knobs = scenario
        self.rng = town_rng(scenario.name, seed, index)
        self.town_id = town_id_for(scenario.name, seed, index)
        hours = scenario.hours if hours is None else hours
        self.start_ms = clock.to_ms(start)
        self.end_ms = self.start_ms + int(hours * clock.HOUR_MS)
        self.now_ms = self.start_ms
        self.next_tick_ms = self.start_ms
        #: No alarm fires before this time (an alarm outage, :func:`~reportgen.sim.incidents.alarm_outage`).
        self.alarm_blocked_until_ms = 0
        conn = configure(sqlite3.connect(":memory:"))
        self.town = Town.create(conn, self.town_id, dict(scenario.config))
        store.put_town_name(conn, town_name_for(scenario.name, index))
        self.town.observers = list(observers or [])
        self.auto_recover = auto_recover
        add_work_indexes(conn)
        self.agenda = Agenda()
        self.container = SimContainer(self.rng, scenario.container_unknown_prob)
        self.github = SimGitHub(scenario.github, self.rng)
        self.world = SimWorld(self)
        self.filter = ContainerFilter(filter_mode)
        self.stopwatch = ModelStopwatch()
        self.titles = 0
        self.rig_ids: list[str] = []
        self._repos: dict[str, str] = {}
        self.result = SimResult(self.town_id, scenario.name, seed, hours, filter_mode)
        if keep_decisions:
            self.result.decisions = []

    # ---------------------------------------------------------------- helpers for tasks

    def poke(self, ms: int) -> None:
        """An event was inserted at ``ms``: the next tick runs at ``ms + 5 s`` at the latest."""
        self.next_tick_ms = min(self.next_tick_ms, ms + ACTIVE_ALARM_INTERVAL_MS)

    def repo(self, rig_id: str) -> str:
        return self._repos.get(rig_id, f"{ORG}/unknown")

    def pr_strategy(self, rig_id: str) -> bool:
        """Whether the rig merges through pull requests (rig override, then town config)."""
        text = rig_config_text(self.town.conn, rig_id)
        return bool(resolve(text, self.town.config, "merge_strategy") == "pr")

    # ---------------------------------------------------------------- the loop

    def setup(self) -> None:
        at = clock.iso(self.start_ms)
        for rig in self.scenario.rigs:
            rig_id = self.town.add_rig(
                at, rig.name, git_url=f"https://github.com/{ORG}/{rig.name}.git",
                config=dict(rig.config) if rig.config else None,
            )  # fmt: skip
            self.rig_ids.append(rig_id)
            self._repos[rig_id] = f"{ORG}/{rig.name}"
        schedule_users(self)
        for incident in self.scenario.incidents:
            incident(self)

    def run(self) -> SimResult:
        """Set the town up and run it to the end time; the database stays in memory."""
        self.setup()
        while True:
            tick_ms = max(self.next_tick_ms, self.alarm_blocked_until_ms)
            nxt = self.agenda.next_ms()
            if nxt is not None and nxt <= tick_ms and nxt <= self.end_ms:
                ms, task = self.agenda.pop()
                self.now_ms = ms
                task(ms)
                continue
            if tick_ms > self.end_ms:
                break
            self.next_tick_ms = tick_ms
            self._tick()
        self.town.save_counters()
        self.town.conn.commit()
        span = self.end_ms - self.start_ms
        progress.report(span, span, clock.iso(self.end_ms))
        return self.result

    def _tick(self) -> None:
        self.now_ms = self.next_tick_ms
        result = self.town.tick(
            clock.iso(self.now_ms),
            self.world,
            containers=self.world,
            container_filter=self.filter,
            stopwatch=self.stopwatch,
            auto_recover=self.auto_recover,
        )
        self.result.add(result)
        self.next_tick_ms = clock.to_ms(result.next_tick_at)
        progress.report(self.now_ms - self.start_ms, self.end_ms - self.start_ms, result.now)

    def write(self, out_dir: Path) -> Path:
        """Write the town to ``out_dir/<townId>.sqlite`` atomically (temp file, then rename)."""
        path = out_dir / f"{self.town_id}.sqlite"
        drop_work_indexes(self.town.conn)
        write_database(self.town.conn, path)
        self.result.path = path
        return path


#: Indexes the simulation adds while it runs and drops before writing. Every tick
#: looks up the agent's pending ``container_status`` event and prunes old events;
#: upstream's indexes make both scan every event row, so an unfiltered day slows
#: to a crawl. Every engine query on ``town_events`` that returns several rows
#: orders them, so the indexes change no decision; dropping them keeps the
#: written schema upstream's.
WORK_INDEXES = {
    "rg_sim_pending_by_agent": "town_events(agent_id, event_type) WHERE processed_at IS NULL",
    "rg_sim_events_created": "town_events(created_at)",
}


def add_work_indexes(conn: sqlite3.Connection) -> None:
    for name, target in WORK_INDEXES.items():
        conn.execute(f"CREATE INDEX {name} ON {target}")


def drop_work_indexes(conn: sqlite3.Connection) -> None:
    for name in WORK_INDEXES:
        conn.execute(f"DROP INDEX IF EXISTS {name}")


def write_database(conn: sqlite3.Connection, path: Path) -> None:
    """``VACUUM INTO`` a temp file beside ``path``, then rename it over ``path``.

    ``VACUUM INTO`` writes a compact copy whose bytes depend only on the
    database's content, which keeps simulated files byte-identical.
    """
    conn.commit()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    os.unlink(tmp)
    try:
        conn.execute("VACUUM INTO ?", (tmp,))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
