"""The handle every engine function receives: one connection, one clock, one id source.

Upstream's helpers close over a Durable Object's SQL handle and read
``Date.now()``. Ours take a :class:`TownCtx` so that the time of every write
and comparison is the tick's ``now`` and new ids are reproducible.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from typing import Any

from reportgen.town import clock
from reportgen.town.config import TownConfig
from reportgen.town.ids import CounterIds, IdSource

#: An action or violation as upstream spells it: a JSON object with upstream's keys.
Action = dict[str, Any]


class EngineError(Exception):
    """An error raised inside the engine where upstream throws ``new Error(message)``.

    The message text matters: the drain's missing-entity rule matches it
    (``Bead <uuid> not found``), so keep upstream's wording.
    """


@dataclass
class TownCtx:
    """State shared by one tick's work. ``now`` is set by whoever drives the tick."""

    conn: sqlite3.Connection
    now: str
    town_id: str = ""
    config: TownConfig = field(default_factory=TownConfig)
    ids: IdSource = field(default_factory=CounterIds)
    draining: bool = False
    #: A separate id stream for ``town_events`` rows (``None``: share ``ids``). Keeping
    #: event ids apart means recording more or fewer events (the container_status
    #: filter) does not shift the ids of beads minted later.
    event_ids: IdSource | None = None

    @property
    def now_ms(self) -> int:
        return clock.to_ms(self.now)

    def cutoff(self, ms: int) -> str:
        """ISO time ``now − ms``, for SQL comparisons (never SQLite's ``'now'``)."""
        return clock.minus(self.now, ms)

    def new_id(self) -> str:
        return self.ids.new_id()

    def new_event_id(self) -> str:
        return (self.event_ids or self.ids).new_id()

    def one(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> sqlite3.Row | None:
        """First row of a query, as a ``sqlite3.Row`` (the connection must use that factory)."""
        row: sqlite3.Row | None = self.conn.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> list[sqlite3.Row]:
        return list(self.conn.execute(sql, params).fetchall())

    def run(self, sql: str, params: tuple[Any, ...] | dict[str, Any] = ()) -> int:
        """Execute a write; return the number of rows changed."""
        return self.conn.execute(sql, params).rowcount
