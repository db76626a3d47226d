"""Reading a simulated town back: its per-tick records, with times relative to the start.

Tests and reports ask the same questions of a town database: which actions
and violations happened, and at which tick (minutes after the town was
created). The records come from ``rg_ticks``, which every tick writes.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportgen.town import clock
from reportgen.town.db import open_input
from reportgen.town.record import stored_ticks


@dataclass(frozen=True)
class TickRecord:
    """One stored tick and its distance from the town's creation."""

    seq: int
    offset_ms: int
    record: dict[str, Any]

    @property
    def minutes(self) -> float:
        return self.offset_ms / clock.MINUTE_MS

    def actions(self, action_type: str | None = None) -> list[dict[str, Any]]:
        acts: list[dict[str, Any]] = self.record["actions"]
        return [a for a in acts if action_type is None or a["type"] == action_type]

    def invariants(self) -> set[int]:
        return {int(v["invariant"]) for v in self.record["violations"]}


def town_start(conn: sqlite3.Connection) -> str:
    """When the town was set up: its first journaled call."""
    row = conn.execute("SELECT at FROM rg_journal ORDER BY seq LIMIT 1").fetchone()
    return str(row[0])


def tick_records(db: sqlite3.Connection | str | Path) -> list[TickRecord]:
    """Every stored tick of a town database (a connection or a path), in order."""
    conn = db if isinstance(db, sqlite3.Connection) else open_input(db)
    try:
        start = clock.to_ms(town_start(conn))
        return [
            TickRecord(seq, clock.to_ms(record["at"]) - start, record)
            for seq, record in stored_ticks(conn)
        ]
    finally:
        if conn is not db:
            conn.close()


def first(ticks: list[TickRecord], pred: Callable[[TickRecord], bool]) -> TickRecord | None:
    return next((t for t in ticks if pred(t)), None)


def action_counts(ticks: list[TickRecord]) -> Counter[str]:
    return Counter(a["type"] for t in ticks for a in t.actions())


def violation_counts(ticks: list[TickRecord]) -> Counter[int]:
    """Violations by invariant number, summed over ticks."""
    return Counter(int(v["invariant"]) for t in ticks for v in t.record["violations"])
