"""Sources (a town database or an export bundle), their times, and windows.

A source is read through an in-memory copy (:func:`reportgen.town.db.load_copy`)
that replay may change freely, or opened read-only in place for readers that
never write. Nothing here writes to the file.
"""

from __future__ import annotations

import heapq
import itertools
import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from reportgen import jsonio
from reportgen.errors import BadInputError, BadWindowError, NotATownDatabaseError
from reportgen.replay.fidelity import APPROXIMATE, EXACT
from reportgen.town import clock, store
from reportgen.town.db import load_copy, open_readonly
from reportgen.town.schema import missing_tables

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

#: Columns that hold times (table, row key, column); the newest plausible one is "now" for
#: a database at rest.
TIME_COLUMNS = (
    ("town_events", "event_id", "created_at"),
    ("town_events", "event_id", "processed_at"),
    ("beads", "bead_id", "updated_at"),
    ("beads", "bead_id", "created_at"),
    ("bead_events", "bead_event_id", "created_at"),
    ("agent_metadata", "bead_id", "last_activity_at"),
)
#: The input journal's times (a journaled town's last input is as new as its data).
JOURNAL_TIME = ("rg_journal", "seq", "at")

#: The newest timestamp is implausible when it is more than this after the next newest
#: (a clock glitch, a typo, a sentinel such as ``9999-12-31``): defaults ignore it.
PLAUSIBLE_GAP_MS = 24 * clock.HOUR_MS
#: The default window: the last 24 h of a source's data.
DEFAULT_WINDOW_MS = 24 * clock.HOUR_MS

_CANONICAL_GLOB = (
    "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z"
)


@dataclass(frozen=True)
class StoredTime:
    """One stored timestamp and where it is (what a warning about it names)."""

    table: str
    key: str
    column: str
    value: str


@dataclass(frozen=True)
class Newest:
    """The newest plausible timestamp of a database, and the newer ones set aside."""

    at: str | None
    dropped: tuple[StoredTime, ...] = ()


# --------------------------------------------------------------------------- times


def table_names(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _ms(value: object) -> int | None:
    """Epoch ms of a stored value, or ``None`` when it is not a timestamp."""
    t = clock.try_ms(value)
    return None if math.isnan(t) else int(t)


def _descending(conn: Any, table: str, column: str) -> Iterator[tuple[int, str]]:
    """The distinct timestamps of one column, newest first, as ``(ms, stored text)``.

    Text in upstream's form sorts in time order, so those come from SQL a value at a
    time (``max`` below the last one: the usual answer takes two or three queries,
    however large the table); the rare other forms are read and sorted here.
    """
    col = f'"{column}"'

    def canonical() -> Iterator[tuple[int, str]]:
        bound: object = "\uffff"
        while isinstance(bound, str):
            row = conn.execute(
                f'SELECT max({col}) FROM "{table}" WHERE {col} GLOB ? AND {col} < ?',
                (_CANONICAL_GLOB, bound),
            ).fetchone()
            bound = row[0] if row else None
            ms = _ms(bound)
            if ms is not None:
                yield ms, str(bound)

    others = conn.execute(
        f'SELECT DISTINCT {col} FROM "{table}" WHERE {col} IS NOT NULL AND NOT ({col} GLOB ?)',
        (_CANONICAL_GLOB,),
    ).fetchall()
    parsed = sorted(
        ((ms, str(r[0])) for r in others if (ms := _ms(r[0])) is not None), reverse=True
    )
    return heapq.merge(canonical(), parsed, reverse=True)


def _tagged(conn: Any, where: tuple[str, str, str]) -> Iterator[Any]:
    """One column's times, newest first, each tagged with the column (for merging)."""
    for ms, text in _descending(conn, where[0], where[2]):
        yield ms, text, where


def _rows_holding(conn: Any, where: tuple[str, str, str], value: str) -> list[StoredTime]:
    table, key, column = where
    rows = conn.execute(
        f'SELECT "{key}" FROM "{table}" WHERE "{column}" = ? ORDER BY 1', (value,)
    ).fetchall()
    return [StoredTime(table, str(r[0]), column, value) for r in rows]


def newest_plausible(conn: Any, *, journal: bool = False) -> Newest:
    """The newest timestamp the database holds, setting implausible ones aside.

    While the newest distinct time is more than :data:`PLAUSIBLE_GAP_MS` after
    the next newest, it is dropped (and listed in ``dropped``, row by row): one
    far-future value must not move "now" (and the default window) years ahead.
    ``journal`` counts the input journal's times too. Never the wall clock.
    """
    have = table_names(conn)
    wanted = (*TIME_COLUMNS, JOURNAL_TIME) if journal else TIME_COLUMNS
    streams = [_tagged(conn, where) for where in wanted if where[0] in have]
    times = itertools.groupby(heapq.merge(*streams, reverse=True), key=lambda t: t[0])
    top = next(times, None)
    if top is None:
        return Newest(None)
    dropped: list[StoredTime] = []
    top_ms, top_items = top[0], list(top[1])
    for ms, items in times:
        if top_ms - ms <= PLAUSIBLE_GAP_MS:
            break
        for _, text, where in top_items:
            dropped += _rows_holding(conn, where, text)
        top_ms, top_items = ms, list(items)
    return Newest(clock.iso(top_ms), tuple(dropped))


def newest_timestamp(conn: Any) -> str | None:
    """The newest plausible ISO timestamp the database holds (see :func:`newest_plausible`)."""
    return newest_plausible(conn).at


def oldest_timestamp(conn: Any) -> str | None:
    """The oldest ISO timestamp the database holds (the start of its data)."""
    have = table_names(conn)
    found: list[str] = []
    for table, _, column in TIME_COLUMNS:
        if table not in have:
            continue
        row = conn.execute(f'SELECT min("{column}") FROM "{table}"').fetchone()
        value = row[0] if row else None
        if isinstance(value, str) and not clock.is_nan(value):
            found.append(clock.normalize(value))
    return min(found) if found else None


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
        """The town's id: stored in the file, else its bundle's manifest, else the file's stem.

        Upstream keeps the id outside SQLite, so every upstream dump has none:
        the file name is then the only thing that tells two dumps apart.
        """
        return town_id_of(self.conn, self.manifest, self.path)

    def journal_range(self) -> tuple[str, str] | None:
        if not self.journaled:
            return None
        row = self.conn.execute("SELECT min(at), max(at) FROM rg_journal").fetchone()
        return str(row[0]), str(row[1])

    @cached_property
    def newest(self) -> Newest:
        """The newest plausible timestamp (journal included) and the values set aside."""
        return newest_plausible(self.conn, journal=self.journaled)

    def data_range(self) -> tuple[str, str] | None:
        """The times the source can answer for: ``(first, last)`` (last: plausible)."""
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
        first, last = oldest_timestamp(self.conn), self.newest.at
        return None if first is None or last is None else (first, last)

    def default_now(self) -> str | None:
        """The time a source "is at": a bundle's ``to``, else its newest plausible timestamp."""
        if self.manifest is not None:
            return str(self.manifest["to"])
        return self.newest.at


def town_id_of(conn: sqlite3.Connection, manifest: dict[str, Any] | None, path: Path) -> str:
    """The one rule for a source's town id (see :attr:`Source.town_id`)."""
    value = store.town_id(conn)
    if not value and manifest is not None:
        value = str(manifest.get("town_id") or "")
    return value or path.stem


def read_manifest(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """A bundle's manifest (decoded values), or ``None`` for a town database."""
    if MANIFEST_TABLE not in table_names(conn):
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


@dataclass(frozen=True)
class ChosenWindow:
    """The time (``start == end``) or window a command used, why, and what it set aside.

    Library code returns it; the command line says it on stderr, so that a
    default taken from the data is never silent.
    """

    start: str
    end: str
    reason: str
    dropped: tuple[StoredTime, ...] = ()


def choose_now(source: Source, given: str | None, option: str = "--now") -> ChosenWindow:
    """The time to work at: ``given`` (never adjusted), else the time the source is at."""
    if given is not None:
        at = parse_time(given, option)
        return ChosenWindow(at, at, f"given by {option}")
    if source.manifest is not None:
        at = str(source.manifest["to"])
        return ChosenWindow(at, at, f"end of bundle {source.name}")
    newest = source.newest
    if newest.at is None:
        raise BadInputError(f"{source.path}: the database holds no timestamps; pass {option}")
    reason = f"newest plausible timestamp in {source.name}"
    return ChosenWindow(newest.at, newest.at, reason, newest.dropped)


def given_window(start: str, end: str, names: tuple[str, str] = ("--from", "--to")) -> ChosenWindow:
    """A window given in full: parsed, never adjusted."""
    lo, hi = parse_time(start, names[0]), parse_time(end, names[1])
    return ChosenWindow(lo, hi, f"given by {names[0]} and {names[1]}")


def choose_window(
    source: Source,
    start: str | None,
    end: str | None,
    names: tuple[str, str] = ("--from", "--to"),
) -> ChosenWindow:
    """A window: the bounds given (never adjusted), the missing ones from the data.

    The default end is :func:`choose_now`'s; the default start is
    :data:`DEFAULT_WINDOW_MS` before it, but not before the source's first timestamp.
    """
    if start is not None and end is not None:
        return given_window(start, end, names)
    data = source.data_range()
    if data is None:
        raise BadInputError(f"{source.path}: the database holds no timestamps")
    now = choose_now(source, end, names[1])
    if start is not None:
        lo, first = parse_time(start, names[0]), f"from {names[0]}"
    else:
        span = clock.to_ms(now.end) - DEFAULT_WINDOW_MS
        lo, first = clock.iso(max(clock.to_ms(data[0]), span)), "the last 24 h"
    upto = names[1] if end is not None else f"the {now.reason}"
    return ChosenWindow(lo, now.end, f"{first} up to {upto}", now.dropped)


# --------------------------------------------------------------------------- state at a time


def _open_town_readonly(path: str | Path) -> sqlite3.Connection:
    conn = open_readonly(path)
    missing = missing_tables(conn)
    if missing:
        conn.close()
        raise NotATownDatabaseError(
            f"{path}: not a town database (missing table(s): {', '.join(missing)})"
        )
    return conn
