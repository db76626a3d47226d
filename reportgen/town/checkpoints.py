"""Periodic full-state checkpoints, so rebuilding the state at a time T is cheap.

Replay rebuilds "the state at T" by re-running the input journal. Re-running
a long history from the empty town would make every replay as slow as the
whole history, so the engine stores a checkpoint — every table that affects
behaviour, serialised — at the first tick of each checkpoint interval
(:data:`DEFAULT_INTERVAL_MS`, one simulated hour, aligned to the clock), plus
one of the empty town at creation (``seq`` 0, ``at`` ``""``). The state at T
is then the newest checkpoint at or before T plus the journal rows after it.

A checkpoint is the state *after* journal row ``seq`` (a tick, which has
just persisted the id counters). What it holds: upstream's tables and
reportgen's behaviour-bearing ``rg_`` tables (:data:`STATE_TABLES`) — not the
journal, world log, tick records, analytics or other checkpoints, which are
history rather than state. Rows keep their ``rowid`` so a restored table
has the same physical order as the original, and queries without an
``ORDER BY`` answer in the same order after a restore.

The serialisation is canonical JSON compressed with zlib, so the same state
always gives the same bytes (simulated databases stay byte-identical).
"""

from __future__ import annotations

import base64
import sqlite3
import zlib
from dataclasses import dataclass
from typing import Any

from reportgen import jsonio
from reportgen.errors import BadRowError
from reportgen.town import clock
from reportgen.town.db import bad_value, input_name, stored_json
from reportgen.town.schema import (
    CHECKPOINTS_DDL,
    END_STATE_DDL,
    UPSTREAM_TABLES,
    create_upstream_tables,
    ensure_reportgen_tables,
    table_exists,
    table_names,
)

#: Default spacing of checkpoints, in simulated time.
DEFAULT_INTERVAL_MS = 60 * clock.MINUTE_MS

#: Every table whose content can change what the engine does next.
STATE_TABLES: tuple[str, ...] = (
    *UPSTREAM_TABLES,
    "rg_town_state",
    "rg_container_last",
    "rg_quarantine",
)


#: ``at`` of the checkpoint taken at creation: sorts before every ISO time.
CREATION_AT = ""

State = dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Checkpoint:
    """The state after journal row ``seq`` (time ``at``)."""

    seq: int
    at: str
    state: State


def _encode_value(value: Any) -> Any:
    if isinstance(value, bytes):
        return {"$b64": base64.b64encode(value).decode("ascii")}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and "$b64" in value:
        return base64.b64decode(value["$b64"], validate=True)
    return value


def snapshot(conn: sqlite3.Connection, tables: tuple[str, ...] = STATE_TABLES) -> State:
    """Every row of ``tables`` (those that exist), with rowids, in rowid order."""
    have = set(table_names(conn))
    state: State = {}
    for table in tables:
        if table not in have:
            continue
        cursor = conn.execute(f'SELECT rowid AS "__rowid", * FROM "{table}" ORDER BY rowid')
        columns = [d[0] for d in cursor.description][1:]
        rows = [[_encode_value(v) for v in row] for row in cursor.fetchall()]
        state[table] = {"columns": columns, "rows": rows}
    return state


def encode(state: State) -> bytes:
    """Canonical bytes for a state (same state → same bytes)."""
    text = jsonio.canonical(state, ascii=False)
    return zlib.compress(text.encode("utf-8"), 6)


def load_stored(conn: sqlite3.Connection, table: str, seq: Any, blob: Any) -> State:
    """A state stored in ``table`` (``rg_checkpoints``, ``rg_end_state``), decoded and checked.

    Every way the stored value can be unreadable (NULL, not zlib, not UTF-8
    JSON, not a state, a bad base64 value) is an error naming the file,
    table, ``seq`` and field, before anything is restored from it.
    """
    where = f"seq {seq}"
    if not isinstance(blob, bytes):
        got = "NULL" if blob is None else f"{type(blob).__name__}, not a blob"
        raise bad_value(conn, table, where, "state", f"is not a compressed state (got {got})")
    try:
        text = zlib.decompress(blob)
    except zlib.error as exc:
        raise bad_value(conn, table, where, "state", f"is not zlib-compressed ({exc})") from exc
    state: State = stored_json(conn, text, table, where, "state", dict)
    for name, data in state.items():
        try:
            width = len(data["columns"]) + 1
            for row in data["rows"]:
                if len(row) != width:
                    raise ValueError("a row does not match the columns")
                for v in row:
                    _decode_value(v)
        except (KeyError, TypeError, ValueError) as exc:  # binascii.Error is a ValueError
            problem = f"is not a valid state (table {name}: {type(exc).__name__}: {exc})"
            raise bad_value(conn, table, where, "state", problem) from exc
    return state


def restore(conn: sqlite3.Connection, state: State, origin: str | None = None) -> None:
    """Materialise ``state`` into a fresh ``conn`` (commits: use it on a new database).

    Creates upstream's and reportgen's tables first, so an empty state gives
    an empty town. Foreign keys are not checked during the load: the rows
    were consistent (or not) in the original, and are copied as they were.
    A NULL where the schema forbids one (a loose dump) is an error naming
    ``origin`` (default: the input ``conn`` was made from), the row and field.
    """
    create_upstream_tables(conn)
    ensure_reportgen_tables(conn)
    conn.commit()  # the foreign_keys pragma is a no-op inside a transaction
    fk = conn.execute("PRAGMA foreign_keys").fetchone()[0]
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        for table in sorted(state):
            columns = state[table]["columns"]
            names = ", ".join(['"rowid"', *(f'"{c}"' for c in columns)])
            marks = ", ".join("?" for _ in range(len(columns) + 1))
            rows = state[table]["rows"]
            try:
                conn.executemany(
                    f'INSERT INTO "{table}" ({names}) VALUES ({marks})',
                    ([_decode_value(v) for v in row] for row in rows),
                )
            except sqlite3.IntegrityError as exc:
                raise _null_error(origin or input_name(conn), table, columns, rows, exc) from exc
        conn.commit()
    finally:
        conn.execute(f"PRAGMA foreign_keys = {'ON' if fk else 'OFF'}")


def _null_error(
    origin: str, table: str, columns: list[str], rows: list[list[Any]], exc: sqlite3.Error
) -> Exception:
    """The row a ``NOT NULL constraint failed: table.column`` error is about, named."""
    column = str(exc).rpartition(".")[2]
    if not str(exc).startswith("NOT NULL"):
        return exc
    if column not in columns:
        return BadRowError(f"{origin}: {table}: the rows have no {column} (it may not be NULL)")
    index = columns.index(column) + 1
    row = next(r for r in rows if r[index] is None)
    key = f" ({columns[0]} {row[1]!r})" if columns and columns[0] != column else ""
    return BadRowError(f"{origin}: {table} rowid {row[0]}{key}: {column} is NULL")


def ensure_table(conn: sqlite3.Connection) -> None:
    conn.execute(CHECKPOINTS_DDL)


def has_table(conn: sqlite3.Connection) -> bool:
    return table_exists(conn, "rg_checkpoints")


def store(conn: sqlite3.Connection, seq: int, at: str) -> None:
    """Store the current state as the checkpoint after journal row ``seq``."""
    ensure_table(conn)
    conn.execute(
        "INSERT OR REPLACE INTO rg_checkpoints (seq, at, state) VALUES (?, ?, ?)",
        (seq, at, encode(snapshot(conn))),
    )


def _bucket(at: str, interval_ms: int) -> int:
    return clock.to_ms(at) // interval_ms


def is_due(conn: sqlite3.Connection, at: str, interval_ms: int) -> bool:
    """True at the first tick of a new interval since the last checkpoint.

    The reference is the newest real checkpoint, else the first journal row
    (the creation checkpoint has no time): intervals are aligned to the
    clock, so checkpoints land at the first tick after each whole hour.
    """
    ensure_table(conn)
    row = conn.execute(
        "SELECT at FROM rg_checkpoints WHERE at != ? ORDER BY seq DESC LIMIT 1", (CREATION_AT,)
    ).fetchone()
    if row is None:
        row = conn.execute("SELECT at FROM rg_journal ORDER BY seq LIMIT 1").fetchone()
        if row is None:
            return False
    return _bucket(at, interval_ms) > _bucket(str(row[0]), interval_ms)


def maybe_store(conn: sqlite3.Connection, seq: int, at: str, interval_ms: int | None) -> bool:
    """Store a checkpoint after tick ``seq`` when one is due; returns whether it did."""
    if interval_ms is None or not is_due(conn, at, interval_ms):
        return False
    store(conn, seq, at)
    return True


def newest_before(conn: sqlite3.Connection, t: str, *, inclusive: bool = True) -> Checkpoint | None:
    """The newest checkpoint with ``at <= t`` (``at < t`` when not ``inclusive``)."""
    if not has_table(conn):
        return None
    op = "<=" if inclusive else "<"
    row = conn.execute(
        f"SELECT seq, at, state FROM rg_checkpoints WHERE at {op} ? ORDER BY seq DESC LIMIT 1",
        (t,),
    ).fetchone()
    if row is None:
        return None
    return Checkpoint(int(row[0]), str(row[1]), load_stored(conn, "rg_checkpoints", row[0], row[2]))


def store_end_state(conn: sqlite3.Connection, end: Checkpoint) -> None:
    conn.execute(END_STATE_DDL)
    conn.execute("DELETE FROM rg_end_state")
    conn.execute(
        "INSERT INTO rg_end_state (seq, at, state) VALUES (?, ?, ?)",
        (end.seq, end.at, encode(end.state)),
    )


def end_state(conn: sqlite3.Connection) -> Checkpoint | None:
    """The stored end state (``rg_end_state``), if the database has one."""
    if not table_exists(conn, "rg_end_state"):
        return None
    row = conn.execute("SELECT seq, at, state FROM rg_end_state").fetchone()
    if row is None:
        return None
    return Checkpoint(int(row[0]), str(row[1]), load_stored(conn, "rg_end_state", row[0], row[2]))


def count(conn: sqlite3.Connection) -> int:
    if not has_table(conn):
        return 0
    return int(conn.execute("SELECT count(*) FROM rg_checkpoints").fetchone()[0])
