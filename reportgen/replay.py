"""State at a time, dry-run, replay-events and tick-by-tick window replay.

Upstream's ``debugReplayEvents`` re-applied a window's events on top of the
*live* state and warned that the result was approximate. Here a window is
replayed from the state as it was at its start, so the timeline is what
production did, and every output says how exact it is:

``exact``
    The source has an input journal (``rg_journal``): the state at T is the
    newest checkpoint at or before T (:mod:`reportgen.checkpoints`; a bundle's
    base state; or the empty town) plus every journal row after it up to T.
    Tick rows are re-run with the world's recorded answers
    (:class:`~reportgen.town.worldlog.ReplayWorld`) and the recorded
    container-filter mode, so each replayed tick can be compared with the
    recorded one (``rg_ticks``).
``approximate``
    The source has no journal (an upstream dump): it cannot be rewound. The
    state is the database as it is now; replay-events re-applies every event
    with ``from <= created_at <= to`` on top of it (upstream's behaviour), and
    the tick replay removes those events, then ticks on the alarm cadence from
    ``from`` to ``to`` with a :class:`~reportgen.town.effects.NullWorld`,
    re-inserting each event (pending, with its own id and time) at the first
    tick at or after its ``created_at``. A caveat says so in every output.

Times: "the state at T" is the town just before the alarm at T fires:
every journal row with ``at < T``, plus the rows at ``T`` journaled before a
tick at ``T``. So ``dry_run(now=T)`` decides what the tick at T decided (its
container pre-phase aside), ``replay_events(from, T)`` reconciles that same
state, and a tick-by-tick window ``[from, to]`` starts there and replays
every row up to and including ``to`` (both end ticks included).

Wall clock: ``wallClockMs`` is a measurement, not a decision. Replays always
run the deterministic :class:`~reportgen.town.tick.ModelStopwatch` (a replay
never reads the clock, so its output is reproducible). When a recorded tick's
``wallClockMs`` is exactly the model's value for its metrics, the recording
was modelled too (a simulated town) and the field is compared like any
other; otherwise the recording measured real time: the field is left out of
the comparison and the replayed tick carries the recorded measurement.

Nothing here writes to its input: sources are read through an in-memory copy
(:func:`reportgen.town.db.load_copy`) and the work happens in another
in-memory database.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reportgen import checkpoints, gcpause, jsonio
from reportgen.errors import BadInputError, BadWindowError, NotATownDatabaseError
from reportgen.runmodel import Divergence, EntityInfo, TownRun
from reportgen.town import clock, events, reconciler, store
from reportgen.town.api import Town
from reportgen.town.config import TownConfig
from reportgen.town.context import Action, EngineError, TownCtx
from reportgen.town.db import configure, load_copy, open_readonly
from reportgen.town.effects import NullWorld
from reportgen.town.record import COMPARED_FIELDS, load_ticks, tick_record
from reportgen.town.schema import missing_tables
from reportgen.town.tick import ContainerFilter, ModelStopwatch, TickResult
from reportgen.town.worldlog import Mismatch, ReplayWorld

EXACT = "exact"
APPROXIMATE = "approximate"

#: The table that marks a file as an export bundle (see :mod:`reportgen.export`).
MANIFEST_TABLE = "manifest"
BUNDLE_FORMAT = "reportgen-bundle"

#: Tables that hold history, not state: dropped from a working copy so that
#: the replay's own journal, tick records and world log start empty.
HISTORY_TABLES = (
    "rg_journal",
    "rg_ticks",
    "rg_world_log",
    "rg_analytics",
    "rg_checkpoints",
    "rg_window_events",
    MANIFEST_TABLE,
)

APPROXIMATE_CAVEAT = (
    "approximate: {name} has no input journal, so the state at the window start cannot be "
    "rebuilt; the window's events were re-applied on top of the database's current state "
    "(as upstream's replay-events does), so actions and state may differ from what "
    "production did"
)
APPROXIMATE_TICKS_CAVEAT = (
    "; ticks ran on the alarm cadence from the window start with a null world (no container "
    "or SCM answers) and each event re-inserted at its time; wallClockMs is modelled"
)
REWIND_CAVEAT = (
    "approximate: {name} has no input journal and holds data newer than {at}; the current "
    "state was used at that time"
)

#: Columns that hold times; the newest of them is "now" for a database at rest.
_TIME_COLUMNS = (
    ("town_events", "created_at"),
    ("town_events", "processed_at"),
    ("beads", "updated_at"),
    ("beads", "created_at"),
    ("bead_events", "created_at"),
    ("agent_metadata", "last_activity_at"),
)


# --------------------------------------------------------------------------- times


def _table_names(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _extreme_timestamp(conn: Any, func: str) -> str | None:
    have = _table_names(conn)
    found: list[str] = []
    for table, column in _TIME_COLUMNS:
        if table not in have:
            continue
        row = conn.execute(f"SELECT {func}({column}) FROM {table}").fetchone()
        value = row[0] if row else None
        if isinstance(value, str) and not clock.is_nan(value):
            found.append(clock.normalize(value))
    if not found:
        return None
    return max(found) if func == "max" else min(found)


def newest_timestamp(conn: Any) -> str | None:
    """The newest ISO timestamp the database holds (the default ``now``; never the wall clock)."""
    return _extreme_timestamp(conn, "max")


def oldest_timestamp(conn: Any) -> str | None:
    """The oldest ISO timestamp the database holds (the start of its data)."""
    return _extreme_timestamp(conn, "min")


def parse_time(value: str, what: str) -> str:
    """Normalise a user-supplied ISO time, or fail naming the option."""
    try:
        return clock.normalize(value)
    except (ValueError, OverflowError) as exc:
        raise BadWindowError(f"{what}: not an ISO-8601 time: {value!r}") from exc


# --------------------------------------------------------------------------- sources


@dataclass
class Source:
    """A town database or an export bundle, read through an in-memory copy."""

    path: Path
    conn: sqlite3.Connection
    manifest: dict[str, Any] | None
    journaled: bool

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def kind(self) -> str:
        return "bundle" if self.manifest is not None else "town"

    @property
    def fidelity(self) -> str:
        return EXACT if self.journaled else APPROXIMATE

    @property
    def town_id(self) -> str:
        value = store.town_id(self.conn)
        if not value and self.manifest is not None:
            value = str(self.manifest.get("town_id") or "")
        return value

    def journal_range(self) -> tuple[str, str] | None:
        if not self.journaled:
            return None
        row = self.conn.execute("SELECT min(at), max(at) FROM rg_journal").fetchone()
        return str(row[0]), str(row[1])

    def data_range(self) -> tuple[str, str] | None:
        """The times the source can answer for: ``(first, last)``."""
        if self.manifest is not None:
            base_at = self.manifest.get("base_at") or None
            first = (
                self.manifest["from"] if base_at is None else min(base_at, self.manifest["from"])
            )
            if self.journaled:
                journal = self.journal_range()
                if journal is not None and not base_at:
                    first = min(first, journal[0])
            return str(first), str(self.manifest["to"])
        if self.journaled:
            return self.journal_range()
        first, last = oldest_timestamp(self.conn), newest_timestamp(self.conn)
        return None if first is None or last is None else (first, last)

    def default_now(self) -> str | None:
        """The time a source "is at": a bundle's ``to``, else its newest timestamp."""
        if self.manifest is not None:
            return str(self.manifest["to"])
        newest = newest_timestamp(self.conn)
        journal = self.journal_range()
        if journal is not None and (newest is None or journal[1] > newest):
            newest = journal[1]
        return newest


def read_manifest(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """A bundle's manifest (decoded values), or ``None`` for a town database."""
    if MANIFEST_TABLE not in _table_names(conn):
        return None
    manifest = {str(k): jsonio.loads(v) for k, v in conn.execute("SELECT key, value FROM manifest")}
    if manifest.get("format") != BUNDLE_FORMAT:
        return None
    return manifest


def open_source(path: str | Path, *, copy: bool = True) -> Source:
    """Open a town database or bundle read-only: an in-memory copy (which replay may
    change freely), or with ``copy=False`` the file itself opened ``mode=ro`` (for
    readers that never write, without the cost of copying the file)."""
    conn = load_copy(path) if copy else _open_town_readonly(path)
    journaled = "rg_journal" in _table_names(conn) and (
        conn.execute("SELECT 1 FROM rg_journal LIMIT 1").fetchone() is not None
    )
    return Source(Path(path), conn, read_manifest(conn), journaled)


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True)
class Window:
    start: str
    end: str


def check_window(
    source: Source, start: str, end: str, names: tuple[str, str] = ("--from", "--to")
) -> Window:
    """Parse and check a window; every failure is a :class:`BadWindowError` naming the problem."""
    lo = parse_time(start, names[0])
    hi = parse_time(end, names[1])
    if lo > hi:
        raise BadWindowError(f"{names[0]} {lo} is after {names[1]} {hi}")
    data = source.data_range()
    if data is None:
        raise BadWindowError(f"{source.name}: the database holds no timestamps")
    first, last = data
    if hi < first or lo > last:
        raise BadWindowError(
            f"window {lo} .. {hi} is outside the data of {source.name} ({first} .. {last})"
        )
    if source.manifest is not None and (lo < first or hi > last):
        raise BadWindowError(
            f"window {lo} .. {hi} is not inside bundle {source.name} ({first} .. {last})"
        )
    return Window(lo, hi)


# --------------------------------------------------------------------------- state at a time


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
        return [JournalRow(int(r[0]), str(r[1]), str(r[2]), jsonio.loads(r[3])) for r in rows]

    def advance(self, until: str, *, alarm: bool = False, keep_ticks: bool = False) -> None:
        """Re-run every journal row after this state up to ``until``.

        With ``alarm``, stop just before a tick at ``until``: the state at
        ``until`` as the alarm firing then would find it.
        """
        for row in self.journal_rows(until):
            if alarm and row.call == "tick" and row.at == until:
                return
            tick = self.apply(row)
            if keep_ticks and tick is not None:
                self.ticks.append(tick)

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


def _memory() -> sqlite3.Connection:
    return configure(sqlite3.connect(":memory:"))


def _replay_town(conn: sqlite3.Connection) -> Town:
    """A town over a working copy: journaled (for tick keys), without checkpoints, and
    without history (the replayed tick records are kept in memory by the replay)."""
    return Town(conn, checkpoint_interval_ms=None, history=False)


def _empty_town_state(source: Source) -> checkpoints.State:
    """The empty town a journal starts from, when the database has no creation checkpoint."""
    conn = _memory()
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
    conn = _memory()
    source.conn.backup(conn)
    configure(conn)
    have = _table_names(conn)
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
    conn = _memory()
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


def _quarantined(outcomes: list[dict[str, Any]], at: str) -> list[dict[str, Any]]:
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


# --------------------------------------------------------------------------- dry-run


def dry_run(
    db: str | Path,
    *,
    now: str | None = None,
    config: dict[str, Any] | None = None,
    draining: bool | None = None,
) -> dict[str, Any]:
    """Drain pending events and reconcile once on the state at ``now``; upstream's response.

    Nothing is written to ``db``. ``now`` defaults to the source's newest
    timestamp (the state as it is). New ids come from the town's own id
    counters, so the actions are exactly those the next tick would emit.
    """
    source = open_source(db)
    at = parse_time(now, "--now") if now is not None else source.default_now()
    if at is None:
        raise BadInputError(f"{db}: the database holds no timestamps; pass --now")
    newest = source.default_now() or ""
    rewind = now is not None and (at <= newest if source.journaled else at < newest)
    state = state_at(source, at if rewind else None)
    ctx = state.ctx(at)
    if config is not None:
        ctx.config = TownConfig.parse(config)
    if draining is not None:
        ctx.draining = draining
    drained = events.drain_events(ctx)
    actions = reconciler.reconcile(ctx)
    result: dict[str, Any] = {
        "actions": actions,
        "metrics": {
            "actionsEmitted": len(actions),
            "actionsByType": dict(Counter(a["type"] for a in actions)),
            "pendingEventCount": events.pending_event_count(ctx),
            "eventsDrained": drained.drained,
        },
        "fidelity": EXACT,
    }
    if rewind and state.fidelity == APPROXIMATE:
        result["fidelity"] = APPROXIMATE
        result["caveat"] = REWIND_CAVEAT.format(name=source.name, at=at)
    return result


# --------------------------------------------------------------------------- replay-events


def replay_events(
    db: str | Path, start: str, end: str, names: tuple[str, str] = ("--from", "--to")
) -> dict[str, Any]:
    """Seed deliverable 1: the state at ``start``, the window's inputs and events, one reconcile.

    Returns ``{"eventsReplayed", "actions", "stateSnapshot", "fidelity",
    "caveat"?, "quarantined"}``; the actions are not applied. Exact sources
    re-run every journal row of the window (ticks included, with their
    recorded world answers), then drain what is pending and reconcile at
    ``end``; ``eventsReplayed`` counts the events drained on the way.
    """
    source = open_source(db)
    window = check_window(source, start, end, names)
    if source.journaled:
        result = _replay_events_exact(source, window)
    else:
        result = _replay_events_approximate(source, window)
    return result


def _replay_events_exact(source: Source, window: Window) -> dict[str, Any]:
    state = state_at(source, window.start)
    state.advance(window.end, alarm=True, keep_ticks=True)
    quarantined: list[dict[str, Any]] = []
    replayed = 0
    for tick in state.ticks:
        replayed += tick.record["metrics"]["eventsDrained"]
        quarantined += _quarantined(tick.record["events"], tick.record["at"])
    ctx = state.ctx(window.end)
    drained = events.drain_events(ctx)
    quarantined += _quarantined([o.__dict__ for o in drained.outcomes], window.end)
    actions = reconciler.reconcile(ctx)
    return {
        "eventsReplayed": replayed + drained.drained,
        "actions": actions,
        "stateSnapshot": state_snapshot(state.conn),
        "fidelity": EXACT,
        "quarantined": quarantined,
    }


def _replay_events_approximate(source: Source, window: Window) -> dict[str, Any]:
    """Upstream's ``debugReplayEvents``: re-apply the window's events on the current state."""
    state = state_at(source, None)
    ctx = state.ctx(window.end)
    rows = ctx.all(
        """SELECT event_id, event_type, agent_id, bead_id, payload, created_at, processed_at
           FROM town_events WHERE created_at >= ? AND created_at <= ?
           ORDER BY created_at ASC, event_id ASC""",
        (window.start, window.end),
    )
    quarantined: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    for row in rows:
        parsed = events.parse_event_row(row)
        if isinstance(parsed, str):
            quarantined.append(
                {"at": str(row["created_at"]), "event_id": str(row["event_id"]),
                 "event_type": str(row["event_type"]), "reason": parsed}
            )  # fmt: skip
            continue
        try:
            events.apply_event(ctx, parsed)
        except (EngineError, sqlite3.Error) as exc:
            failed.append({"event_id": parsed.event_id, "error": str(exc)})
    actions = reconciler.reconcile(ctx)
    result: dict[str, Any] = {
        "eventsReplayed": len(rows),
        "actions": actions,
        "stateSnapshot": state_snapshot(state.conn),
        "fidelity": APPROXIMATE,
        "caveat": state.caveat,
        "quarantined": quarantined,
    }
    if failed:
        result["failedEvents"] = failed
    return result


# --------------------------------------------------------------------------- tick replay


def replay_window(
    db: str | Path,
    start: str,
    end: str,
    names: tuple[str, str] = ("--from", "--to"),
    *,
    auto_recover: frozenset[int] | None = None,
) -> TownRun:
    """Seed deliverable 2: the window tick by tick, compared with the recorded ticks.

    This is what the report reads (:class:`~reportgen.runmodel.TownRun`).
    ``auto_recover`` replays every tick with that recovery setting instead of
    the recorded one (a "what if recovery had been on" replay: it diverges).
    The cyclic garbage collector is paused meanwhile (:mod:`reportgen.gcpause`).
    """
    with gcpause.paused():
        return _replay_window(db, start, end, names, auto_recover)


def _replay_window(
    db: str | Path,
    start: str,
    end: str,
    names: tuple[str, str],
    auto_recover: frozenset[int] | None,
) -> TownRun:
    source = open_source(db)
    window = check_window(source, start, end, names)
    if source.journaled:
        state = state_at(source, window.start)
        state.auto_recover = auto_recover
        state.advance(window.end, keep_ticks=True)
        caveat = None
    else:
        state = state_at(source, None)
        state.auto_recover = auto_recover
        _tick_approximately(state, window)
        caveat = (state.caveat or "") + APPROXIMATE_TICKS_CAVEAT
    recorded = recorded_ticks(source, [t.seq for t in state.ticks]) if source.journaled else {}
    divergence, compared = compare_ticks(state.ticks, recorded)
    ticks = [t.record for t in state.ticks]
    return TownRun(
        town_id=source.town_id,
        source=source.name,
        window_from=window.start,
        window_to=window.end,
        fidelity=state.fidelity,
        caveat=caveat,
        ticks=ticks,
        entities=collect_entities(state.conn, ticks),
        bead_events=bead_events_in(state.conn, window),
        quarantined=[q for t in ticks for q in _quarantined(t["events"], t["at"])],
        divergence=divergence,
        compared_ticks=compared,
        journal_inputs=state.inputs,
    )


def _open_town_readonly(path: str | Path) -> sqlite3.Connection:
    conn = open_readonly(path)
    missing = missing_tables(conn)
    if missing:
        conn.close()
        raise NotATownDatabaseError(
            f"{path}: not a town database (missing table(s): {', '.join(missing)})"
        )
    return conn


RECORDED_CAVEAT = (
    "Shown as recorded: the engine did not re-run these ticks, so nothing was checked for "
    "divergence (`reportgen build --ticks replay` re-runs and compares them)."
)
LATEST_ENTITIES_CAVEAT = (
    " Entity titles and statuses are as the file holds them, not as of the window's end."
)


def record_serves(source: Source, window: Window) -> bool:
    """Whether the window's recorded ticks can stand for a replay of it (``--ticks auto``):
    the source holds the state at the window's end and a record of every tick."""
    return _holds_end_state(source, window) and _record_complete(source, window)


def _holds_end_state(source: Source, window: Window) -> bool:
    """A journaled source whose window reaches its last journal row, and that is either a
    town database (its tables are that state) or a bundle with its end state stored."""
    journal = source.journal_range()
    if journal is None or window.end < journal[1]:
        return False
    return source.manifest is None or not missing_tables(source.conn, ("rg_end_state",))


def _end_state_conn(source: Source, window: Window) -> sqlite3.Connection | None:
    """The state at the window's end, when the source holds it (else ``None``)."""
    if not _holds_end_state(source, window):
        return None
    if source.manifest is None:
        return source.conn
    end = checkpoints.end_state(source.conn)
    if end is None:
        return None
    conn = _memory()
    checkpoints.restore(conn, end.state)
    return conn


def _record_complete(source: Source, window: Window) -> bool:
    """Every tick the journal ran in the window has its record (and there is one)."""
    if "rg_ticks" not in _table_names(source.conn):
        return False
    missing = source.conn.execute(
        """SELECT count(*) FROM rg_journal j
           WHERE j.call = 'tick' AND j.at >= ? AND j.at <= ?
             AND NOT EXISTS (SELECT 1 FROM rg_ticks t WHERE t.seq = j.seq)""",
        (window.start, window.end),
    ).fetchone()
    recorded = source.conn.execute(
        "SELECT 1 FROM rg_ticks WHERE at >= ? AND at <= ? LIMIT 1", (window.start, window.end)
    ).fetchone()
    return int(missing[0]) == 0 and recorded is not None


def recorded_window(
    db: str | Path, start: str, end: str, names: tuple[str, str] = ("--from", "--to")
) -> TownRun:
    """The window's *recorded* ticks (``rg_ticks``) as a :class:`TownRun`, without replaying.

    Fast (no engine run): what the town recorded when it ran. ``replay_window``
    is the verified path; this one says it was not verified, and says when
    the entities are shown as the database has them now rather than as of
    the window's end (see :func:`record_serves`).
    """
    source = open_source(db, copy=False)
    window = check_window(source, start, end, names)
    ticks = load_ticks(source.conn, window.start, window.end)
    if not ticks:
        raise BadWindowError(
            f"{source.name}: no recorded ticks between {window.start} and {window.end}; "
            "build with --ticks replay to replay the window"
        )
    caveat = RECORDED_CAVEAT
    state = _end_state_conn(source, window)
    if state is None:
        state, caveat = source.conn, caveat + LATEST_ENTITIES_CAVEAT
    return TownRun(
        town_id=source.town_id,
        source=source.name,
        window_from=window.start,
        window_to=window.end,
        fidelity="recorded",
        caveat=caveat,
        ticks=ticks,
        entities=collect_entities(state, ticks),
        bead_events=bead_events_in(state, window),
        quarantined=[q for t in ticks for q in _quarantined(t["events"], t["at"])],
    )


def _tick_approximately(state: TownState, window: Window) -> None:
    """Tick on the alarm cadence over the current state, re-inserting the window's events."""
    conn = state.conn
    cursor = conn.execute(
        """SELECT event_id, event_type, agent_id, bead_id, payload, created_at
           FROM town_events WHERE created_at >= ? AND created_at <= ?
           ORDER BY created_at ASC, event_id ASC""",
        (window.start, window.end),
    )
    pending = [tuple(r) for r in cursor.fetchall()]
    conn.executemany("DELETE FROM town_events WHERE event_id = ?", [(r[0],) for r in pending])
    now, seq = window.start, 0
    while now <= window.end:
        due = [r for r in pending if r[5] <= now]
        pending = pending[len(due) :]
        conn.executemany(
            "INSERT OR REPLACE INTO town_events (event_id, event_type, agent_id, bead_id, "
            "payload, created_at, processed_at) VALUES (?, ?, ?, ?, ?, ?, NULL)",
            due,
        )
        result = state.town.tick(
            now,
            NullWorld(),
            stopwatch=ModelStopwatch(),
            auto_recover=state.auto_recover or frozenset(),
        )
        seq = state.town.last_seq()
        state.ticks.append(ReplayedTick(seq, result, tick_record(result), []))
        now = result.next_tick_at


def recorded_ticks(source: Source, seqs: list[int]) -> dict[int, dict[str, Any]]:
    """The recorded tick records for the given journal positions (those that exist)."""
    if not seqs or "rg_ticks" not in _table_names(source.conn):
        return {}
    rows = source.conn.execute(
        "SELECT seq, record FROM rg_ticks WHERE seq >= ? AND seq <= ? ORDER BY seq",
        (min(seqs), max(seqs)),
    ).fetchall()
    return {int(r[0]): jsonio.loads(r[1]) for r in rows}


def modelled_wall_clock(metrics: dict[str, Any]) -> float:
    """What :class:`ModelStopwatch` gives for these metrics."""
    return ModelStopwatch().elapsed_ms(TickResult(now="", draining=False, metrics=metrics))


def is_modelled(record: dict[str, Any]) -> bool:
    """Whether a recorded tick's ``wallClockMs`` came from the model (a simulated town)."""
    metrics = record.get("metrics") or {}
    try:
        return bool(metrics.get("wallClockMs") == modelled_wall_clock(metrics))
    except (KeyError, TypeError):
        return False


def first_difference(recorded: Any, replayed: Any, path: str) -> tuple[str, Any, Any] | None:
    """The first place two JSON values differ: ``(path, recorded, replayed)``, or ``None``."""
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        for key in list(recorded) + [k for k in replayed if k not in recorded]:
            if key not in recorded or key not in replayed:
                return f"{path}.{key}", recorded.get(key), replayed.get(key)
            found = first_difference(recorded[key], replayed[key], f"{path}.{key}")
            if found is not None:
                return found
        return None
    if isinstance(recorded, list) and isinstance(replayed, list):
        if len(recorded) != len(replayed):
            return path, recorded, replayed
        for i, (a, b) in enumerate(zip(recorded, replayed, strict=True)):
            found = first_difference(a, b, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if isinstance(recorded, bool) or isinstance(replayed, bool):
        same = type(recorded) is type(replayed) and recorded == replayed
    else:
        same = recorded == replayed
    return None if same else (path, recorded, replayed)


def compare_tick(recorded: dict[str, Any], tick: ReplayedTick) -> Divergence | None:
    """The first field where a replayed tick differs from its recording (see the module doc)."""
    replayed = tick.record
    at = str(recorded.get("at", replayed["at"]))
    if recorded.get("at") != replayed["at"]:
        return Divergence(at, "at", recorded.get("at"), replayed["at"])
    if not is_modelled(recorded):
        replayed["metrics"]["wallClockMs"] = recorded.get("metrics", {}).get("wallClockMs")
    # the quick check that settles almost every tick; a difference in text goes field by field
    if not tick.mismatches and jsonio.same_text(
        [recorded.get(n) for n in COMPARED_FIELDS], [replayed.get(n) for n in COMPARED_FIELDS]
    ):
        return None
    for name in COMPARED_FIELDS:
        found = first_difference(recorded.get(name), replayed.get(name), name)
        if found is not None:
            return Divergence(at, found[0], found[1], found[2])
    if tick.mismatches:
        m = tick.mismatches[0]
        return Divergence(at, f"world[{m.position}]", m.expected, m.got)
    return None


def compare_ticks(
    ticks: list[ReplayedTick], recorded: dict[int, dict[str, Any]]
) -> tuple[Divergence | None, int]:
    """First divergence over the window and how many ticks had a recording to compare."""
    first: Divergence | None = None
    compared = 0
    for tick in ticks:
        record = recorded.get(tick.seq)
        if record is None:
            continue
        compared += 1
        found = compare_tick(record, tick)
        if first is None and found is not None:
            first = found
    return first, compared


# --------------------------------------------------------------------------- entities


#: ``*_id`` keys that do not name a bead or an agent.
_NOT_ENTITIES = ("event_id", "rig_id", "rig_ids", "nudge_id", "wasteland_id", "item_id")


def _ids_in(value: Any, key: str = "") -> list[tuple[str, str]]:
    """``(key, id)`` for every ``*_id`` / ``*_ids`` string value in a JSON value."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            found += _ids_in(v, str(k))
    elif isinstance(value, list):
        for v in value:
            found += _ids_in(v, key)
    elif (
        isinstance(value, str)
        and value
        and key.endswith(("_id", "_ids"))
        and not key.startswith(_NOT_ENTITIES)
    ):
        found.append((key, value))
    return found


def collect_entities(
    conn: sqlite3.Connection, ticks: list[dict[str, Any]]
) -> dict[str, EntityInfo]:
    """Every bead and agent named by the window's events, actions or violations."""
    ids: dict[str, str] = {}
    for t in ticks:
        for key, value in _ids_in([t["events"], t["actions"], t["violations"]]):
            ids.setdefault(value, key)
    entities: dict[str, EntityInfo] = {}
    for entity_id in sorted(ids):
        info = _entity(conn, entity_id, ids[entity_id])
        if info is not None:
            entities[entity_id] = info
    return entities


def _entity(conn: sqlite3.Connection, entity_id: str, key: str) -> EntityInfo | None:
    bead = conn.execute(
        "SELECT type, title, status, rig_id, assignee_agent_bead_id, labels FROM beads "
        "WHERE bead_id = ?",
        (entity_id,),
    ).fetchone()
    agent = conn.execute(
        "SELECT role, identity, status, current_hook_bead_id FROM agent_metadata WHERE bead_id = ?",
        (entity_id,),
    ).fetchone()
    if agent is not None:
        return EntityInfo(
            id=entity_id,
            kind="agent",
            type=str(agent["role"]),
            title=str(bead["title"]) if bead is not None else str(agent["identity"]),
            status=str(agent["status"]),
            rig_id=None if bead is None else bead["rig_id"],
            extra={"identity": agent["identity"], "hook": agent["current_hook_bead_id"]},
        )
    if bead is not None:
        return EntityInfo(
            id=entity_id,
            kind="bead",
            type=str(bead["type"]),
            title=str(bead["title"]),
            status=str(bead["status"]),
            rig_id=bead["rig_id"],
            extra={"assignee": bead["assignee_agent_bead_id"], "labels": bead["labels"]},
        )
    kind = "agent" if "agent" in key else "bead"
    return EntityInfo(id=entity_id, kind=kind, type="", title="(deleted)", status=None)


def bead_events_in(conn: sqlite3.Connection, window: Window) -> list[dict[str, Any]]:
    """``bead_events`` rows created in the window, in time order."""
    rows = conn.execute(
        "SELECT * FROM bead_events WHERE created_at >= ? AND created_at <= ? "
        "ORDER BY created_at, bead_event_id",
        (window.start, window.end),
    ).fetchall()
    return [dict(r) for r in rows]


# --------------------------------------------------------------------------- views


def tick_view(record: dict[str, Any]) -> dict[str, Any]:
    """One tick as ``replay --ticks --json`` shows it."""
    m = record["metrics"]
    return {
        "at": record["at"],
        "eventsDrained": m["eventsDrained"],
        "eventsByType": dict(Counter(e["event_type"] for e in record["events"])),
        "actions": record["actions"],
        "sideEffects": {
            "attempted": m["sideEffectsAttempted"],
            "succeeded": m["sideEffectsSucceeded"],
            "failed": m["sideEffectsFailed"],
        },
        "violations": record["violations"],
        "wallClockMs": m["wallClockMs"],
        "pendingEventCount": m["pendingEventCount"],
    }


def summary(run: TownRun) -> dict[str, Any]:
    """Totals over the window's ticks."""
    metrics = [t["metrics"] for t in run.ticks]
    by_type: Counter[str] = Counter()
    for m in metrics:
        by_type.update(m["actionsByType"])
    return {
        "ticks": len(run.ticks),
        "eventsDrained": sum(m["eventsDrained"] for m in metrics),
        "actionsEmitted": sum(m["actionsEmitted"] for m in metrics),
        "actionsByType": dict(sorted(by_type.items())),
        "sideEffectsAttempted": sum(m["sideEffectsAttempted"] for m in metrics),
        "sideEffectsSucceeded": sum(m["sideEffectsSucceeded"] for m in metrics),
        "sideEffectsFailed": sum(m["sideEffectsFailed"] for m in metrics),
        "invariantViolations": sum(m["invariantViolations"] for m in metrics),
        "ticksWithViolations": sum(1 for m in metrics if m["invariantViolations"]),
        "quarantined": len(run.quarantined),
        "journalInputs": run.journal_inputs,
    }


def ticks_json(run: TownRun) -> dict[str, Any]:
    """The ``replay --ticks --json`` response."""
    out: dict[str, Any] = {
        "townId": run.town_id,
        "source": run.source,
        "from": run.window_from,
        "to": run.window_to,
        "fidelity": run.fidelity,
    }
    if run.caveat:
        out["caveat"] = run.caveat
    div = run.divergence
    out |= {
        "ticks": [tick_view(t) for t in run.ticks],
        "summary": summary(run),
        "quarantined": run.quarantined,
        "comparison": {
            "comparedTicks": run.compared_ticks,
            "divergence": None
            if div is None
            else {
                "tickAt": div.tick_at,
                "field": div.field,
                "recorded": div.recorded,
                "replayed": div.replayed,
            },
        },
    }
    return out


def actions_line(actions: list[Action]) -> str:
    return ", ".join(f"{t}×{n}" for t, n in Counter(a["type"] for a in actions).items())
