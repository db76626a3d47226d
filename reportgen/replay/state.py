"""The state of a town at a time: a working copy rebuilt from a checkpoint and the journal.

Times: "the state at T" is the town just before the alarm at T fires:
every journal row with ``at < T``, plus the rows at ``T`` journaled before a
tick at ``T``. So ``dry_run(now=T)`` decides what the tick at T decided (its
container pre-phase aside), ``replay_events(from, T)`` reconciles that same
state, and a tick-by-tick window ``[from, to]`` starts there and replays
every row up to and including ``to`` (both end ticks included).

``exact`` sources (with an input journal, ``rg_journal``) start from the
newest checkpoint at or before T (:mod:`reportgen.town.checkpoints`; a
bundle's base state; or the empty town) and re-run every journal row after
it up to T, ticks playing back the world's recorded answers
(:class:`~reportgen.town.worldlog.ReplayWorld`) with the recorded
container-filter mode. ``approximate`` sources (no journal: an upstream
dump) cannot be rewound; their state is the database as it is now.

The work happens in an in-memory database nobody else sees.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from reportgen import progress
from reportgen.replay.fidelity import APPROXIMATE, APPROXIMATE_CAVEAT, EXACT
from reportgen.replay.source import HISTORY_TABLES, Source, Window
from reportgen.town import checkpoints, clock, events, store
from reportgen.town.api import Town
from reportgen.town.context import TownCtx
from reportgen.town.db import memory_db, stored_json
from reportgen.town.record import tick_record
from reportgen.town.schema import table_names
from reportgen.town.tick import ContainerFilter, ModelStopwatch, TickResult
from reportgen.town.worldlog import Mismatch, ReplayWorld


@dataclass
class JournalRow:
    seq: int
    at: str
    call: str
    args: dict[str, Any]


@dataclass
class ReplayedTick:
    """One re-run tick: its journal position, result, and any world-call mismatches."""

    seq: int
    result: TickResult
    record: dict[str, Any]
    mismatches: list[Mismatch]


@dataclass
class TownState:
    """A working town (an in-memory database nobody else sees) at a point of the history."""

    source: Source
    conn: sqlite3.Connection
    town: Town
    fidelity: str
    caveat: str | None
    seq: int = 0
    ticks: list[ReplayedTick] = field(default_factory=list)
    #: Journal rows re-run since the state was built (not counting those before it).
    inputs: int = 0
    #: Auto-recovery to apply on every replayed tick (``None``: as each tick recorded it).
    auto_recover: frozenset[int] | None = None

    def ctx(self, at: str) -> TownCtx:
        return self.town.ctx(at)

    def journal_rows(self, until: str) -> list[JournalRow]:
        """Journal rows after this state with ``at <= until``."""
        if not self.source.journaled:
            return []
        rows = self.source.conn.execute(
            "SELECT seq, at, call, args FROM rg_journal WHERE seq > ? AND at <= ? ORDER BY seq",
            (self.seq, until),
        ).fetchall()
        conn = self.source.conn
        return [
            JournalRow(
                int(r[0]),
                str(r[1]),
                str(r[2]),
                stored_json(conn, r[3], "rg_journal", f"seq {r[0]}", "args", dict),
            )
            for r in rows
        ]

    def advance(self, until: str, *, alarm: bool = False, keep_ticks: bool = False) -> None:
        """Re-run every journal row after this state up to ``until``.

        With ``alarm``, stop just before a tick at ``until``: the state at
        ``until`` as the alarm firing then would find it. Each row re-run is
        reported to :mod:`reportgen.progress` (this is where a long replay spends its time).
        """
        rows = self.journal_rows(until)
        for done, row in enumerate(rows, start=1):
            if alarm and row.call == "tick" and row.at == until:
                return
            tick = self.apply(row)
            if keep_ticks and tick is not None:
                self.ticks.append(tick)
            progress.report(done, len(rows), row.at)

    def apply(self, row: JournalRow) -> ReplayedTick | None:
        """Re-run one journal row; a tick plays back the world's recorded answers."""
        self._align(row.seq)
        if row.call != "tick":
            self.town.replay_call(row.at, row.call, row.args)
            self.seq = row.seq
            self.inputs += 1
            return None
        world = ReplayWorld.load(self.source.conn, row.seq)
        polled = any(entry[0] == "container_status" for entry in world.entries)
        options: dict[str, Any] = {}
        if self.auto_recover is not None:
            options["auto_recover"] = self.auto_recover
        elif "auto_recover" in row.args:
            options["auto_recover"] = frozenset(int(n) for n in row.args["auto_recover"])
        result = self.town.tick(
            row.at,
            world,
            containers=world if polled else None,
            container_filter=ContainerFilter(str(row.args.get("container_filter", "upstream"))),
            stopwatch=ModelStopwatch(),
            **options,
        )
        self.seq = row.seq
        return ReplayedTick(row.seq, result, tick_record(result), list(world.mismatches))

    def _align(self, seq: int) -> None:
        """Make the working journal's next ``seq`` equal the source's, so tick keys agree."""
        if self.town.last_seq() < seq - 1:
            self.conn.execute(
                "INSERT INTO rg_journal (seq, at, call, args) VALUES (?, '', '(gap)', '{}')",
                (seq - 1,),
            )


def memory(source: Source) -> sqlite3.Connection:
    """An empty working copy, named after ``source`` (values it holds came from there)."""
    return memory_db(str(source.path))


def _replay_town(conn: sqlite3.Connection) -> Town:
    """A town over a working copy: journaled (for tick keys), without checkpoints, and
    without history (the replayed tick records are kept in memory by the replay)."""
    return Town(conn, checkpoint_interval_ms=None, history=False)


def _empty_town_state(source: Source) -> checkpoints.State:
    """The empty town a journal starts from, when the database has no creation checkpoint."""
    conn = memory(source)
    checkpoints.restore(conn, {})
    for key in (store.TOWN_ID, "id_namespace", store.TOWN_CONFIG):
        value = store.get(source.conn, key)
        if value is not None:
            store.put(conn, key, value)
    return checkpoints.snapshot(conn)


def base_for(source: Source, t: str | None) -> checkpoints.Checkpoint:
    """Where rebuilding the state at ``t`` starts: a checkpoint, the bundle base, or empty.

    A checkpoint is the state after a tick at its ``at``, so it must be
    strictly older than ``t`` (the state at ``t`` precedes a tick at ``t``).
    """
    if t is not None:
        found = checkpoints.newest_before(source.conn, t, inclusive=False)
        if found is not None:
            return found
    elif checkpoints.has_table(source.conn):
        found = checkpoints.newest_before(source.conn, "\uffff")
        if found is not None:
            return found
    if source.manifest is not None:
        seq = int(source.manifest.get("base_seq") or 0)
        at = str(source.manifest.get("base_at") or "")
        return checkpoints.Checkpoint(seq, at, checkpoints.snapshot(source.conn))
    return checkpoints.Checkpoint(0, checkpoints.CREATION_AT, _empty_town_state(source))


def _working_copy(source: Source) -> sqlite3.Connection:
    conn = memory(source)
    source.conn.backup(conn)
    have = table_names(conn)
    for table in HISTORY_TABLES:
        if table in have:
            conn.execute(f'DROP TABLE "{table}"')
    return conn


def state_at(source: Source, t: str | None) -> TownState:
    """The town as it was at ``t``, just before an alarm at ``t`` (see the module docstring).

    ``t=None`` is the source's own end: the current state of a town database,
    a bundle's state at its ``to``. Without a journal the state is the current
    one whatever ``t`` is (``fidelity`` approximate).
    """
    if not source.journaled:
        conn = _working_copy(source)
        caveat = APPROXIMATE_CAVEAT.format(name=source.name)
        return TownState(source, conn, _replay_town(conn), APPROXIMATE, caveat)
    state = _rebuilt(source, base_for(source, t))
    if t is None:
        state.advance("\uffff")
    else:
        state.advance(t, alarm=True)
    state.inputs = 0
    return state


def state_after(source: Source, t: str) -> TownState:
    """The town just after every journal row at or before ``t`` (a window's end state:
    what a tick-by-tick replay of a window ending at ``t`` leaves). Needs a journal."""
    state = _rebuilt(source, base_for(source, t))
    state.advance(t)
    state.inputs = 0
    return state


def _rebuilt(source: Source, base: checkpoints.Checkpoint) -> TownState:
    conn = memory(source)
    checkpoints.restore(conn, base.state)
    return TownState(source, conn, _replay_town(conn), EXACT, None, seq=base.seq)


# --------------------------------------------------------------------------- snapshots


def state_snapshot(conn: sqlite3.Connection) -> dict[str, list[dict[str, Any]]]:
    """Agents and non-terminal beads, as upstream's replay-events ``stateSnapshot``."""
    agents = conn.execute(
        """SELECT am.bead_id, b.title AS name, am.role, am.identity, am.status,
                  am.current_hook_bead_id, am.dispatch_attempts, am.last_activity_at, b.rig_id
           FROM agent_metadata am LEFT JOIN beads b ON b.bead_id = am.bead_id
           ORDER BY am.bead_id"""
    ).fetchall()
    beads = conn.execute(
        """SELECT bead_id, type, status, title, assignee_agent_bead_id, rig_id,
                  parent_bead_id, labels, dispatch_attempts, updated_at
           FROM beads WHERE status NOT IN ('closed', 'failed') AND type != 'agent'
           ORDER BY type, status, bead_id"""
    ).fetchall()
    return {
        "agents": [dict(r) for r in agents],
        "nonTerminalBeads": [dict(r) for r in beads],
    }


def quarantined_rows(outcomes: list[dict[str, Any]], at: str) -> list[dict[str, Any]]:
    return [
        {
            "at": at,
            "event_id": o["event_id"],
            "event_type": o["event_type"],
            "reason": o["error"],
        }
        for o in outcomes
        if o["outcome"] == events.QUARANTINED
    ]


# --------------------------------------------------------------------------- event times


def noncanonical_events(conn: sqlite3.Connection, window: Window | None) -> list[dict[str, Any]]:
    """``town_events`` rows whose ``created_at`` is not in upstream's form, that a replay
    would reach: every pending row (the next drain takes it), and with a ``window`` the
    rows whose time falls in it as text or as a time (a window replay re-applies those).

    Such a row sorts by its text, not its time: a replay would drain it at the
    wrong tick (an offset) or at the first one (NULL, garbage). Each comes with
    the reason, naming the value.
    """
    rows = conn.execute(
        f"""SELECT event_id, event_type, created_at, processed_at FROM town_events
            WHERE {clock.NOT_CANONICAL_SQL.format(column="created_at")} ORDER BY event_id"""
    ).fetchall()
    found: list[dict[str, Any]] = []
    for event_id, event_type, created_at, processed_at in rows:
        reason = clock.canonical_problem(created_at, "created_at")
        if reason is None or not (processed_at is None or _in_window(created_at, window)):
            continue
        found.append({"event_id": str(event_id), "event_type": str(event_type), "reason": reason})
    return found


def _in_window(value: object, window: Window | None) -> bool:
    if window is None or not isinstance(value, str):
        return False
    if window.start <= value <= window.end:
        return True
    t = clock.try_ms(value)
    return not math.isnan(t) and clock.to_ms(window.start) <= t <= clock.to_ms(window.end)


def quarantine_noncanonical(state: TownState, window: Window) -> list[dict[str, Any]]:
    """Quarantine :func:`noncanonical_events` in a working copy, at the window's start.

    Each row is recorded in ``rg_quarantine`` with its reason and taken out of
    the copy's ``town_events``, so that neither the drain nor the window's
    selection by time can reach it. Returns them as quarantine entries
    (``at``, ``event_id``, ``event_type``, ``reason``), as the drain reports its own.
    """
    found = noncanonical_events(state.conn, window)
    ctx = state.ctx(window.start)
    for row in found:
        events.quarantine(ctx, row["event_id"], row["event_type"], row["reason"])
        ctx.run("DELETE FROM town_events WHERE event_id = ?", (row["event_id"],))
    return [{"at": window.start, **row} for row in found]


# --------------------------------------------------------------------------- dry-run
