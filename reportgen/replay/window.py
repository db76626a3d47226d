"""A window tick by tick: replayed and compared with the record, or the record as it is.

:func:`replay_window` re-runs every tick of the window and compares each
with its recording (the first divergence); :func:`recorded_window` shows
the recorded ticks without re-running them. Both return the
:class:`~reportgen.town_run.TownRun` the report reads;
:func:`replay_window_state` and :func:`recorded_window_state` also return the
state at the window's end that the run was read against, so that a caller
judging the window (:mod:`reportgen.diagnose`) never loads it a second time.

Without a journal (an upstream dump) there is nothing to replay: the window
is the dump's own history (:mod:`reportgen.replay.history`), with no ticks.
Only when asked for (``simulate``) are ticks simulated on the dump's stored
state, labelled so (fidelity ``simulated``): it removes the window's events,
then ticks on the alarm cadence from ``from`` to ``to`` with a
:class:`~reportgen.town.effects.NullWorld`, re-inserting each event (pending,
with its own id and time) at the first tick at or after its ``created_at``.
An event whose ``created_at`` is not in upstream's form has no such tick: it
is quarantined at ``from`` (:func:`~reportgen.replay.state.quarantine_noncanonical`).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from reportgen import gcpause, progress
from reportgen.errors import BadWindowError
from reportgen.replay.compare import compare_ticks
from reportgen.replay.entities import bead_events_in, collect_entities, town_name_of
from reportgen.replay.fidelity import (
    LATEST_ENTITIES_CAVEAT,
    RECORDED_CAVEAT,
    SIMULATED,
    SIMULATED_CAVEAT,
)
from reportgen.replay.history import history_window_state, source_history
from reportgen.replay.source import Source, Window, check_window, open_source
from reportgen.replay.state import (
    ReplayedTick,
    TownState,
    memory,
    quarantine_noncanonical,
    quarantined_rows,
    state_at,
)
from reportgen.town import checkpoints
from reportgen.town.effects import NullWorld
from reportgen.town.record import load_ticks, stored_tick, tick_record
from reportgen.town.schema import table_exists
from reportgen.town.tick import ModelStopwatch
from reportgen.town_run import TownRun


def replay_window(
    db: str | Path,
    start: str,
    end: str,
    names: tuple[str, str] = ("--from", "--to"),
    *,
    auto_recover: frozenset[int] | None = None,
    simulate: bool = False,
) -> TownRun:
    """Seed deliverable 2: the window tick by tick, compared with the recorded ticks.

    This is what the report reads (:class:`~reportgen.town_run.TownRun`).
    ``auto_recover`` replays every tick with that recovery setting instead of
    the recorded one (a "what if recovery had been on" replay: it diverges).
    A source with no journal has no ticks to replay: the run holds its history,
    and ``simulate`` adds ticks simulated on its stored state (see the module).
    The cyclic garbage collector is paused meanwhile (:mod:`reportgen.gcpause`).
    """
    return replay_window_state(db, start, end, names, auto_recover=auto_recover,
                               simulate=simulate)[0]  # fmt: skip


def replay_window_state(
    db: str | Path,
    start: str,
    end: str,
    names: tuple[str, str] = ("--from", "--to"),
    *,
    auto_recover: frozenset[int] | None = None,
    simulate: bool = False,
) -> tuple[TownRun, sqlite3.Connection]:
    """:func:`replay_window`, and the state at the window's end to judge it on.

    With a journal that is the replayed state (what the ticks left). Without
    one it is the file's tables as stored (simulated ticks do not leave the
    town's state).
    """
    opened = open_source(db, copy=False)
    if not opened.journaled and not simulate:
        return history_window_state(opened, start, end, names)
    opened.conn.close()
    with gcpause.paused():
        return _replay_window(db, start, end, names, auto_recover)


def _replay_window(
    db: str | Path,
    start: str,
    end: str,
    names: tuple[str, str],
    auto_recover: frozenset[int] | None,
) -> tuple[TownRun, sqlite3.Connection]:
    source = open_source(db)
    window = check_window(source, start, end, names)
    set_aside: list[dict[str, Any]] = []
    history: list[dict[str, Any]] = []
    if source.journaled:
        with progress.step(0, 2, "state at the window's start"):  # one bar, not two
            state = state_at(source, window.start)
        state.auto_recover = auto_recover
        with progress.step(1, 2, "the window"):
            state.advance(window.end, keep_ticks=True)
        caveat = None
    else:
        history = source_history(source, window)
        state = state_at(source, None)
        state.auto_recover = auto_recover
        state.fidelity = SIMULATED
        set_aside = quarantine_noncanonical(state, window)
        _simulate_ticks(state, window)
        caveat = SIMULATED_CAVEAT.format(name=source.name)
    recorded = recorded_ticks(source, [t.seq for t in state.ticks]) if source.journaled else {}
    divergence, compared = compare_ticks(state.ticks, recorded)
    ticks = [t.record for t in state.ticks]
    run = TownRun(
        town_id=source.town_id,
        source=source.name,
        window_from=window.start,
        window_to=window.end,
        fidelity=state.fidelity,
        caveat=caveat,
        ticks=ticks,
        entities=collect_entities(state.conn, ticks),
        bead_events=bead_events_in(state.conn, window),
        quarantined=set_aside + [q for t in ticks for q in quarantined_rows(t["events"], t["at"])],
        divergence=divergence,
        compared_ticks=compared,
        journal_inputs=state.inputs,
        history=history,
        town_name=town_name_of(source),
    )
    return run, (state.conn if source.journaled else source.conn)


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
    return source.manifest is None or table_exists(source.conn, "rg_end_state")


def end_state_conn(source: Source, window: Window) -> sqlite3.Connection | None:
    """The state at the window's end, when the source holds it (else ``None``): a town
    database's own tables, or a bundle's stored end state restored in memory."""
    if not _holds_end_state(source, window):
        return None
    if source.manifest is None:
        return source.conn
    end = checkpoints.end_state(source.conn)
    if end is None:
        return None
    conn = memory(source)
    checkpoints.restore(conn, end.state)
    return conn


def _record_complete(source: Source, window: Window) -> bool:
    """Every tick the journal ran in the window has its record (and there is one)."""
    if not table_exists(source.conn, "rg_ticks"):
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
    return recorded_window_state(db, start, end, names)[0]


def recorded_window_state(
    db: str | Path, start: str, end: str, names: tuple[str, str] = ("--from", "--to")
) -> tuple[TownRun, sqlite3.Connection | None]:
    """:func:`recorded_window`, and the state the file holds for the window's end
    (:func:`end_state_conn`; ``None`` when it holds none: the entities are then the
    file's latest)."""
    source = open_source(db, copy=False)
    window = check_window(source, start, end, names)
    ticks = load_ticks(source.conn, window.start, window.end)
    if not ticks:
        raise BadWindowError(
            f"{source.name}: no recorded ticks between {window.start} and {window.end}; "
            "build with --ticks replay to replay the window"
        )
    caveat = RECORDED_CAVEAT
    held = end_state_conn(source, window)
    state = source.conn if held is None else held
    if held is None:
        caveat += LATEST_ENTITIES_CAVEAT
    run = TownRun(
        town_id=source.town_id,
        source=source.name,
        window_from=window.start,
        window_to=window.end,
        fidelity="recorded",
        caveat=caveat,
        ticks=ticks,
        entities=collect_entities(state, ticks),
        bead_events=bead_events_in(state, window),
        quarantined=[q for t in ticks for q in quarantined_rows(t["events"], t["at"])],
        town_name=town_name_of(source),
    )
    return run, held


def _simulate_ticks(state: TownState, window: Window) -> None:
    """Tick on the alarm cadence over the stored (current) state, re-inserting the window's
    events: synthetic ticks, only ever run when asked for (``--ticks simulate``)."""
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
    if not seqs or not table_exists(source.conn, "rg_ticks"):
        return {}
    rows = source.conn.execute(
        "SELECT seq, record FROM rg_ticks WHERE seq >= ? AND seq <= ? ORDER BY seq",
        (min(seqs), max(seqs)),
    ).fetchall()
    return {int(r[0]): stored_tick(source.conn, r[0], r[1]) for r in rows}
