"""Sources (a town database or an export bundle), their times, and windows.

A source is read through an in-memory copy (:func:`reportgen.town.db.load_copy`)
that replay may change freely, or opened read-only in place for readers that
never write (:func:`reportgen.town.db.open_town`). Nothing here writes to the
file or beside it.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportgen.errors import BadWindowError
from reportgen.replay.fidelity import APPROXIMATE, EXACT
from reportgen.town import clock, store
from reportgen.town.db import load_copy, open_town, stored_json

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


def table_names(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _extreme_timestamp(conn: Any, func: str) -> str | None:
    have = table_names(conn)
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
    if MANIFEST_TABLE not in table_names(conn):
        return None
    manifest = {
        str(k): stored_json(conn, v, MANIFEST_TABLE, f"key {k}", "value")
        for k, v in conn.execute("SELECT key, value FROM manifest")
    }
    if manifest.get("format") != BUNDLE_FORMAT:
        return None
    return manifest


def open_source(path: str | Path, *, copy: bool = True) -> Source:
    """Open a town database or bundle read-only: an in-memory copy (which replay may
    change freely), or with ``copy=False`` the file itself opened ``mode=ro`` (for
    readers that never write, without the cost of copying the file)."""
    conn = load_copy(path) if copy else open_town(path)
    journaled = "rg_journal" in table_names(conn) and (
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
