"""Scripted towns for the replay, export and server tests (plus checks of the script itself).

Until the simulator (``reportgen.sim``) can be used, these towns are driven
through :class:`reportgen.town.api.Town` directly: a rig, a few slung beads,
agents that heartbeat every 30 s and finish their work after two minutes
(``agent_done`` with a PR that the scripted world reports merged), and
optionally one agent whose heartbeat stops at a known time. Everything runs
on the alarm's own cadence (``next_tick_at``) with the model stopwatch, as a
simulated town does.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from support.worlds import RecordingWorld

from reportgen.town import checkpoints, clock
from reportgen.town.api import Town
from reportgen.town.db import configure
from reportgen.town.effects import PRStatus
from reportgen.town.tick import ModelStopwatch

T0 = "2026-03-01T00:00:00.000Z"
TOWN_ID = "town-replay-test"


def at(seconds: float, base: str = T0) -> str:
    return clock.iso(clock.to_ms(base) + int(seconds * 1000))


@dataclass
class Containers:
    """Container answers: ``running`` for live agents, ``exited`` once an agent is dead."""

    dead: set[str] = field(default_factory=set)

    def status(self, agent_id: str, now: str) -> tuple[str, str | None]:
        return ("exited", "killed") if agent_id in self.dead else ("running", None)


@dataclass
class Script:
    """What happens in the scripted town (times in seconds after :data:`T0`)."""

    beads: list[tuple[float, str]] = field(
        default_factory=lambda: [(1, "Fix the parser"), (400, "Add a flag"), (1300, "Docs")]
    )
    #: The first polecat stops heartbeating (silently: its container keeps running).
    silent_after: float | None = None
    work_seconds: float = 120
    end: float = 1800
    checkpoint_minutes: int = 10


@dataclass
class Built:
    path: Path
    silent_agent: str | None
    silent_at: str | None
    ticks: int


def build_town(path: Path, script: Script | None = None) -> Built:
    """Write a scripted, fully journaled town database to ``path``."""
    script = script or Script()
    conn = configure(sqlite3.connect(path))
    town = Town.create(conn, TOWN_ID, {})
    town.checkpoint_interval_ms = script.checkpoint_minutes * clock.MINUTE_MS
    rig = town.add_rig(at(0), "repo1", git_url="https://github.com/acme/repo1")
    world = RecordingWorld(pr_status_answers=PRStatus.found("merged"))
    containers = Containers()
    pending = sorted(script.beads)
    started: dict[str, str] = {}
    beats: dict[str, str] = {}
    silent: str | None = None
    silent_at: str | None = None
    done: set[str] = set()
    now, ticks, n_pr = at(0), 0, 0
    while now <= at(script.end):
        while pending and at(pending[0][0]) <= now:
            _, title = pending.pop(0)
            town.sling_bead(now, rig, title)
        working = conn.execute(
            "SELECT bead_id, role, current_hook_bead_id FROM agent_metadata "
            "WHERE status = 'working' ORDER BY bead_id"
        ).fetchall()
        for agent_id, role, hook in working:
            started.setdefault(agent_id, now)
            if silent is None and script.silent_after is not None and role == "polecat":
                silent = agent_id
            if agent_id == silent and now >= at(script.silent_after or 0):
                silent_at = silent_at or beats.get(agent_id, now)
                continue
            if clock.to_ms(now) - clock.to_ms(beats.get(agent_id, started[agent_id])) >= 30_000:
                town.heartbeat(now, agent_id)
                beats[agent_id] = now
            key = f"{agent_id}:{hook}"
            elapsed = clock.to_ms(now) - clock.to_ms(started[agent_id])
            if (
                role == "polecat"
                and hook
                and key not in done
                and elapsed >= script.work_seconds * 1000
            ):
                n_pr += 1
                town.agent_done(now, agent_id, branch=f"gt/work-{n_pr}",
                                pr_url=f"https://github.com/acme/repo1/pull/{n_pr}")  # fmt: skip
                done.add(key)
        result = town.tick(now, world, containers=containers, stopwatch=ModelStopwatch())
        ticks += 1
        now = result.next_tick_at
    conn.commit()
    conn.close()
    return Built(path, silent, silent_at, ticks)


def test_scripted_town_is_journaled_with_checkpoints(tmp_path: Path) -> None:
    built = build_town(tmp_path / "town.sqlite")
    conn = sqlite3.connect(built.path)
    calls = dict(conn.execute("SELECT call, count(*) FROM rg_journal GROUP BY call").fetchall())
    assert calls["tick"] == built.ticks
    assert calls["sling_bead"] == 3 and calls["agent_done"] >= 3
    assert checkpoints.count(conn) >= 3  # creation + one per 10 simulated minutes
    merged = conn.execute("SELECT count(*) FROM beads WHERE status = 'closed'").fetchone()[0]
    assert merged >= 3


def test_the_same_script_gives_the_same_bytes(tmp_path: Path) -> None:
    a = build_town(tmp_path / "a.sqlite")
    b = build_town(tmp_path / "b.sqlite")
    assert a.path.read_bytes() == b.path.read_bytes()
