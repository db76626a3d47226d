"""``reportgen export``: a window of a town as one self-contained, reproducible SQLite file.

A bundle is itself a town database (dry-run, replay and the server open it
like one) holding exactly what replaying the window needs:

``manifest``
    ``key``/``value`` rows (values are JSON): ``format``, ``bundle_version``,
    ``town_id``, ``from``, ``to``, ``base_seq``, ``base_at``, ``fidelity``,
    ``caveat``, ``source_name``, ``source_sha256``, ``schema_version``,
    ``reportgen_version`` and row counts.
upstream tables + ``rg_town_state``, ``rg_container_last``, ``rg_quarantine``
    The *base state*: for a journaled town, the newest checkpoint before
    ``from`` (or the empty town); for a database without journal, its current
    state (``approximate``, as every replay of it).
``rg_journal``, ``rg_world_log``
    Every journal row after the base up to ``to``, and the world's recorded
    answers for those ticks.
``rg_ticks``
    The recorded tick records after the base up to ``to`` (so a replay of any
    sub-window can be compared).
``rg_window_events``
    The source's ``town_events`` rows created between the base time (``from``
    for an approximate bundle) and ``to``, as they were at export. An
    approximate bundle leaves out the rows whose ``created_at`` is not in
    upstream's form and records them in ``rg_quarantine`` with the reason
    (:func:`~reportgen.replay.state.noncanonical_events`).
``rg_end_state``
    For a journaled town, the state after the window's last journal row
    (one checkpoint-format row), so that ``reportgen build`` can show the
    recorded ticks with the entities as they were at ``to`` without
    replaying the window. Optional: a bundle without it is replayed.

The same source and window give a byte-identical file: rows are inserted in
key order, the manifest holds no time of the export run, and the file is
vacuumed. It is written to a temporary file beside ``out`` and moved into
place, so a reader never sees half a bundle. The source is only read.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlite_utils

from reportgen import __version__, jsonio
from reportgen.errors import BadInputError
from reportgen.replay.entities import town_name_of
from reportgen.replay.fidelity import APPROXIMATE_CAVEAT
from reportgen.replay.source import (
    BUNDLE_FORMAT,
    MANIFEST_TABLE,
    Source,
    Window,
    check_window,
    open_source,
)
from reportgen.replay.state import base_for, noncanonical_events, state_after
from reportgen.town import checkpoints
from reportgen.town.db import check_json_rows
from reportgen.town.record import TICKS_INDEX
from reportgen.town.schema import (
    JOURNAL_DDL,
    SCHEMA_VERSION,
    TICKS_DDL,
    WORLD_LOG_DDL,
    table_exists,
)

BUNDLE_VERSION = 1

WINDOW_EVENTS_DDL = """
CREATE TABLE rg_window_events (
  event_id text primary key,
  event_type text,
  agent_id text,
  bead_id text,
  payload text,
  created_at text,
  processed_at text
)
"""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def export(
    db: str | Path,
    start: str,
    end: str,
    out: str | Path,
    names: tuple[str, str] = ("--from", "--to"),
) -> dict[str, Any]:
    """Write the bundle for ``[start, end]`` of ``db`` to ``out``; return its manifest."""
    src_path, out_path = Path(db), Path(out)
    if out_path.exists() and out_path.resolve() == src_path.resolve():
        raise BadInputError(f"--out {out}: refusing to overwrite the source database")
    source = open_source(src_path)
    window = check_window(source, start, end, names)
    base = base_for(source, window.start) if source.journaled else None
    if base is not None and table_exists(
        source.conn, "rg_ticks"
    ):  # copied, not decoded: check them
        check_json_rows(
            source.conn, "rg_ticks", ("seq",), "record", "seq > ? AND at <= ?",
            (base.seq, window.end),
        )  # fmt: skip
    state = base.state if base is not None else checkpoints.snapshot(source.conn)
    end_state = _end_state(source, window) if source.journaled else None
    manifest = _manifest(source, window, base, src_path)
    set_aside = [] if source.journaled else noncanonical_events(source.conn, window)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out_path.name}.", dir=out_path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        tmp.unlink()
        counts = _write(tmp, source, window, (base, state, end_state), manifest, set_aside)
        os.replace(tmp, out_path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    quarantined = [{"at": window.start, **row} for row in set_aside]
    return manifest | counts | {"quarantined": quarantined}


def _end_state(source: Source, window: Window) -> checkpoints.Checkpoint:
    """The state after the window's last journal row (what replaying the window leaves)."""
    after = state_after(source, window.end)
    return checkpoints.Checkpoint(after.seq, window.end, checkpoints.snapshot(after.conn))


def _manifest(
    source: Source, window: Window, base: checkpoints.Checkpoint | None, src_path: Path
) -> dict[str, Any]:
    return {
        "format": BUNDLE_FORMAT,
        "bundle_version": BUNDLE_VERSION,
        "town_id": source.town_id,
        "town_name": town_name_of(source),
        "from": window.start,
        "to": window.end,
        "base_seq": None if base is None else base.seq,
        "base_at": None if base is None else base.at,
        "fidelity": source.fidelity,
        "caveat": None if source.journaled else APPROXIMATE_CAVEAT.format(name=source.name),
        "source_name": source.name,
        "source_kind": source.kind,
        "source_sha256": file_sha256(src_path),
        "schema_version": SCHEMA_VERSION,
        "reportgen_version": __version__,
    }


def _rows(conn: sqlite3.Connection, sql: str, params: tuple[Any, ...]) -> Iterator[dict[str, Any]]:
    cursor = conn.execute(sql, params)
    columns = [d[0] for d in cursor.description]
    for row in cursor:
        yield dict(zip(columns, row, strict=True))


def _write(
    path: Path,
    source: Source,
    window: Window,
    states: tuple[checkpoints.Checkpoint | None, checkpoints.State, checkpoints.Checkpoint | None],
    manifest: dict[str, Any],
    set_aside: list[dict[str, Any]],
) -> dict[str, Any]:
    """Write the bundle: ``states`` is (base checkpoint, base state, end state)."""
    base, state, end = states
    conn = sqlite3.connect(path)
    try:
        db = sqlite_utils.Database(conn)
        checkpoints.restore(conn, state, str(source.path))
        counts = _write_history(db, source, window, base, {row["event_id"] for row in set_aside})
        counts["quarantined"] = _quarantine(conn, set_aside, window.start)
        if end is not None:
            checkpoints.store_end_state(conn, end)
        manifest_rows = [
            {"key": k, "value": jsonio.canonical(v, compact=False)}
            for k, v in sorted((manifest | {"counts": counts}).items())
        ]
        db.table(MANIFEST_TABLE).insert_all(manifest_rows, pk="key")
        conn.commit()
        conn.execute("VACUUM")
    finally:
        conn.close()
    return {"counts": counts}


def _quarantine(conn: sqlite3.Connection, rows: list[dict[str, Any]], at: str) -> int:
    """Record the window's events whose time is not in upstream's form in ``rg_quarantine``
    (they stay in the base state, where every replay of the bundle sets them aside again)."""
    conn.executemany(
        "INSERT OR REPLACE INTO rg_quarantine (event_id, event_type, reason, quarantined_at) "
        "VALUES (?, ?, ?, ?)",
        [(r["event_id"], r["event_type"], r["reason"], at) for r in rows],
    )
    return len(rows)


def _write_history(
    db: sqlite_utils.Database,
    source: Source,
    window: Window,
    base: checkpoints.Checkpoint | None,
    set_aside: set[str],
) -> dict[str, int]:
    """The journal, world log, recorded ticks and the window's events (without ``set_aside``)."""
    src = source.conn
    conn = db.conn
    for ddl in (JOURNAL_DDL, WORLD_LOG_DDL, TICKS_DDL, TICKS_INDEX, WINDOW_EVENTS_DDL):
        conn.execute(ddl)
    if base is not None:
        after = (base.seq, window.end)
        journal = _rows(
            src, "SELECT seq, at, call, args FROM rg_journal WHERE seq > ? AND at <= ? "
            "ORDER BY seq", after,
        )  # fmt: skip
        db.table("rg_journal").insert_all(journal, batch_size=2000)
        last = conn.execute("SELECT max(seq) FROM rg_journal").fetchone()[0] or base.seq
        if table_exists(src, "rg_world_log"):
            world = _rows(
                src, "SELECT tick_seq, n, method, args, answer FROM rg_world_log "
                "WHERE tick_seq > ? AND tick_seq <= ? ORDER BY tick_seq, n", (base.seq, last),
            )  # fmt: skip
            db.table("rg_world_log").insert_all(world, batch_size=2000)
        if table_exists(src, "rg_ticks"):
            ticks = _rows(
                src, "SELECT seq, at, record FROM rg_ticks WHERE seq > ? AND seq <= ? "
                "ORDER BY seq", (base.seq, last),
            )  # fmt: skip
            db.table("rg_ticks").insert_all(ticks, batch_size=2000)
    events_from = window.start if base is None else base.at
    events = _rows(
        src, "SELECT event_id, event_type, agent_id, bead_id, payload, created_at, processed_at "
        "FROM town_events WHERE created_at >= ? AND created_at <= ? "
        "ORDER BY created_at, event_id", (events_from, window.end),
    )  # fmt: skip
    kept = (row for row in events if row["event_id"] not in set_aside)
    db.table("rg_window_events").insert_all(kept, batch_size=2000)
    return {
        "journal": _count(conn, "rg_journal"),
        "world_log": _count(conn, "rg_world_log"),
        "ticks": _count(conn, "rg_ticks"),
        "window_events": _count(conn, "rg_window_events"),
    }


def _count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0])
