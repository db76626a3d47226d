"""Sources (a town database or an export bundle), their times, and windows.

A source is read through an in-memory copy (:func:`reportgen.town.db.load_copy`)
that replay may change freely, or opened read-only in place for readers that
never write (:func:`reportgen.town.db.open_town`). Nothing here writes to the
file or beside it.

Times a command is not given come from here (:func:`choose_now`,
:func:`choose_window`): the newest *plausible* timestamp of the data
(:func:`newest_plausible`), never the wall clock; a time given is never adjusted.
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

from reportgen.errors import BadInputError, BadWindowError
from reportgen.replay.fidelity import APPROXIMATE, EXACT
from reportgen.town import clock, store
from reportgen.town.db import load_copy, open_town, stored_json
from reportgen.town.schema import table_exists, table_names

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


def _ms(value: object) -> int | None:
    """Epoch ms of a stored value, or ``None`` when it is not a timestamp (text with
    spaces around it is not one here: it would sort apart from its time)."""
    if not isinstance(value, str) or value != value.strip():
        return None
    t = clock.try_ms(value)
    return None if math.isnan(t) else int(t)


#: Values in other forms a column walk skips one by one before filtering them in SQL.
_SKIPS_BEFORE_GLOB = 8
#: Text below ``YYYY-MM-DD`` holds no time later than that date plus this: a day at
#: most of the date's own prefix, and 14 h of UTC offset (with room to spare).
_TEXT_SLACK_MS = 38 * clock.HOUR_MS


def _floor_below(ms: int) -> str:
    """A text floor (``YYYY-MM-DD``) under which no time reaches ``ms``: three days down
    (``""``, every text, near the start of the calendar)."""
    try:
        return clock.iso(ms - 72 * clock.HOUR_MS)[:10]
    except (OverflowError, ValueError):
        return ""


class _Column:
    """One time column, read newest first without reading it whole.

    Text in upstream's form sorts in time order: it is walked down in SQL, one
    value per query (``max`` below the last one, which an index answers at
    once). Other forms (an offset, a space for ``T``, a date alone) are rare
    and sort by their text, not their time: they are read by text range, from
    a ``floor`` down, as the search needs them. Text below a floor
    ``YYYY-MM-DD`` holds no time later than :data:`_TEXT_SLACK_MS` after the
    floor's date, so :func:`newest_plausible` lowers the floor until every time
    it looked at lies above that.
    """

    def __init__(self, conn: Any, where: tuple[str, str, str]) -> None:
        self.conn, self.where = conn, where
        self.table, self.column = f'"{where[0]}"', f'"{where[2]}"'
        self.walked: list[tuple[int, str]] = []
        self.bound: object = "\uffff"
        self.skipped = 0

    def canonical(self) -> Iterator[tuple[int, str]]:
        """Upstream-form times, newest first (walked once, then replayed from memory)."""
        index = 0
        while index < len(self.walked) or self._step():
            if index < len(self.walked):
                yield self.walked[index]
                index += 1

    def _step(self) -> bool:
        """Read the next upstream-form value down; ``False`` at the bottom.

        The plain ``max`` below the bound is the cheapest query (text in other
        forms is skipped here, :meth:`others` has it); after
        :data:`_SKIPS_BEFORE_GLOB` such values in a row, the query filters them.
        """
        while isinstance(self.bound, str):
            glob = self.skipped >= _SKIPS_BEFORE_GLOB
            row = self.conn.execute(
                f"SELECT max({self.column}) FROM {self.table} WHERE {self.column} < ?"
                + (f" AND {self.column} GLOB ?" if glob else ""),
                (self.bound, clock.CANONICAL_GLOB) if glob else (self.bound,),
            ).fetchone()
            self.bound = row[0] if row else None
            ms = _ms(self.bound) if clock.has_canonical_shape(self.bound) else None
            if ms is not None:
                self.walked.append((ms, str(self.bound)))
                return True
            self.skipped += 1
        return False

    def others(self, floor: str) -> list[tuple[int, str]]:
        """Times in other forms whose text is at or above ``floor``, newest first."""
        rows = self.conn.execute(
            f"SELECT DISTINCT {self.column} FROM {self.table} "
            f"WHERE {self.column} >= ? AND NOT ({self.column} GLOB ?)",
            (floor, clock.CANONICAL_GLOB),
        ).fetchall()
        found = ((ms, str(r[0])) for r in rows if (ms := _ms(r[0])) is not None)
        return sorted(found, reverse=True)

    def times(self, floor: str) -> Iterator[tuple[int, str, tuple[str, str, str]]]:
        """Both, merged newest first and tagged with the column."""
        merged = heapq.merge(self.canonical(), self.others(floor), reverse=True)
        for ms, text in merged:
            yield ms, text, self.where


def _rows_holding(conn: Any, where: tuple[str, str, str], value: str) -> list[StoredTime]:
    table, key, column = where
    rows = conn.execute(
        f'SELECT "{key}" FROM "{table}" WHERE "{column}" = ? ORDER BY 1', (value,)
    ).fetchall()
    return [StoredTime(table, str(r[0]), column, value) for r in rows]


#: One distinct time: its ms and the (text, column) pairs that hold it.
_Group = tuple[int, list[tuple[int, str, tuple[str, str, str]]]]


def _drop_implausible(times: Iterator[Any]) -> tuple[_Group | None, list[_Group], int | None]:
    """The plausibility rule over distinct times, newest first: ``(kept, dropped, lowest)``,
    ``lowest`` being the time that ended the search (``None``: it read every time)."""
    groups = ((ms, list(items)) for ms, items in itertools.groupby(times, key=lambda t: t[0]))
    top = next(groups, None)
    dropped: list[_Group] = []
    for group in groups:
        if top is None or top[0] - group[0] <= PLAUSIBLE_GAP_MS:
            return top, dropped, group[0]
        dropped.append(top)
        top = group
    return top, dropped, None


def newest_plausible(conn: Any, *, journal: bool = False) -> Newest:
    """The newest timestamp the database holds, setting implausible ones aside.

    While the newest distinct time is more than :data:`PLAUSIBLE_GAP_MS` after
    the next newest, it is dropped (and listed in ``dropped``, row by row): one
    far-future value must not move "now" (and the default window) years ahead.
    ``journal`` counts the input journal's times too. Never the wall clock.
    """
    have = table_names(conn)
    wanted = (*TIME_COLUMNS, JOURNAL_TIME) if journal else TIME_COLUMNS
    columns = [_Column(conn, where) for where in wanted if where[0] in have]
    tops = [next(c.canonical(), None) for c in columns]
    newest = max((t[0] for t in tops if t is not None), default=None)
    floor = "" if newest is None else _floor_below(newest)
    while True:
        merged = heapq.merge(*(c.times(floor) for c in columns), reverse=True)
        top, dropped, lowest = _drop_implausible(merged)
        if not floor or (lowest is not None and lowest > clock.to_ms(floor) + _TEXT_SLACK_MS):
            break  # every time looked at is above anything text below the floor can hold
        floor = "" if lowest is None else _floor_below(lowest)
    if top is None:
        return Newest(None)
    rows = [
        row
        for _, items in dropped
        for _, text, where in items
        for row in _rows_holding(conn, where, text)
    ]
    return Newest(clock.iso(top[0]), tuple(rows))


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
    if not table_exists(conn, MANIFEST_TABLE):
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
    journaled = table_exists(conn, "rg_journal") and (
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
    :data:`DEFAULT_WINDOW_MS` before it, but not before the source's first timestamp
    (nor after the end: an end before the data is then named as outside it by
    :func:`check_window`, not as a start after the end). Every command that
    defaults a window (``build``, ``diagnose``) takes it from here.
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
        lo = min(now.end, clock.iso(max(clock.to_ms(data[0]), span)))
        first = "the last 24 h"
    upto = names[1] if end is not None else f"the {now.reason}"
    return ChosenWindow(lo, now.end, f"{first} up to {upto}", now.dropped)
