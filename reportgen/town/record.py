"""The per-tick record: what a tick saw and did, as JSON, stored in the town database.

Simulated and live towns keep one ``rg_ticks`` row per tick. Replay compares
its own ticks with these rows to find the first divergence, and the report
reads them. Beside it, ``rg_analytics`` holds the ``reconciler_tick``
analytics record with upstream's Analytics Engine column mapping (spec §9.2),
which the Grafana panels query.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any, Protocol

from reportgen.town.db import stored_json
from reportgen.town.schema import TICKS_DDL, table_exists
from reportgen.town.tick import TickResult

TICKS_INDEX = "CREATE INDEX IF NOT EXISTS idx_rg_ticks_at ON rg_ticks(at)"

ANALYTICS_DDL = """
CREATE TABLE IF NOT EXISTS rg_analytics (
  seq integer primary key,
  timestamp text not null,
  blob1 text not null,
  blob6 text,
  blob10 text,
  double1 real, double2 real, double3 real, double4 real,
  double5 real, double6 real, double7 real, double8 real
)
"""

#: Fields compared between a recorded and a replayed tick (not the measured wall clock).
COMPARED_FIELDS = (
    "draining",
    "events",
    "actions",
    "apply",
    "side_effects",
    "violations",
    "recoveries",
    "metrics",
    "active_work",
    "next_tick_at",
    "container",
)


def tick_record(result: TickResult) -> dict[str, Any]:
    """A JSON-able record of one tick (keys in a fixed order)."""
    drain = result.drain
    return {
        "at": result.now,
        "draining": result.draining,
        "container": {"observed": result.container.observed, "recorded": result.container.recorded},
        "events": [o.__dict__ for o in drain.outcomes] if drain is not None else [],
        "actions": result.actions,
        "apply": [r.to_json() for r in result.applied],
        "side_effects": result.side_effects.to_json() if result.side_effects else None,
        "violations": [
            {
                "invariant": v.invariant,
                "message": v.message,
                "agent_ids": list(v.agent_ids),
                "bead_ids": list(v.bead_ids),
                "rig_ids": list(v.rig_ids),
            }
            for v in result.violation_details
        ],
        "recoveries": result.recoveries,
        "metrics": result.metrics,
        "active_work": result.active_work,
        "next_tick_at": result.next_tick_at,
    }


def reconciler_tick_row(town_id: str, result: TickResult) -> dict[str, Any]:
    """The ``reconciler_tick`` analytics event with upstream's column mapping (§9.2)."""
    m = result.metrics
    return {
        "timestamp": result.now,
        "blob1": "reconciler_tick",
        "blob6": town_id,
        "blob10": json.dumps(m["actionsByType"], separators=(",", ":")),
        "double1": m["wallClockMs"],
        "double2": m["eventsDrained"],
        "double3": m["actionsEmitted"],
        "double4": m["sideEffectsAttempted"],
        "double5": m["sideEffectsSucceeded"],
        "double6": m["sideEffectsFailed"],
        "double7": m["invariantViolations"],
        "double8": m["pendingEventCount"],
    }


def violation_rows(town_id: str, result: TickResult) -> list[dict[str, Any]]:
    """Upstream's ``reconciler.invariant_violations`` event, plus one count per invariant.

    Upstream emits the first (``value`` = count, ``label`` = ``[n] message; …``)
    on every tick with violations. The per-invariant rows
    (``reconciler.invariant_violation``, ``label`` = the number) let a panel or
    an alert break violations down by invariant.
    """
    details = result.violation_details
    if not details:
        return []
    rows = [
        {
            "timestamp": result.now,
            "blob1": "reconciler.invariant_violations",
            "blob6": town_id,
            "blob10": "; ".join(f"[{v.invariant}] {v.message}" for v in details),
            "double2": len(details),
        }
    ]
    counts: dict[int, int] = {}
    for v in details:
        counts[v.invariant] = counts.get(v.invariant, 0) + 1
    rows += [
        {
            "timestamp": result.now,
            "blob1": "reconciler.invariant_violation",
            "blob6": town_id,
            "blob10": str(number),
            "double2": count,
        }
        for number, count in sorted(counts.items())
    ]
    return rows


def violation_counts(conn: sqlite3.Connection, town_id: str | None = None) -> dict[int, int]:
    """Violations counted per invariant over every recorded tick (from ``rg_analytics``)."""
    conn.execute(ANALYTICS_DDL)
    sql = (
        "SELECT blob10, sum(double2) FROM rg_analytics "
        "WHERE blob1 = 'reconciler.invariant_violation'"
    )
    params: tuple[str, ...] = ()
    if town_id is not None:
        sql += " AND blob6 = ?"
        params = (town_id,)
    rows = conn.execute(sql + " GROUP BY blob10", params).fetchall()
    return {int(r[0]): int(r[1]) for r in sorted(rows, key=lambda r: int(r[0]))}


class AnalyticsSink(Protocol):
    """Where ``reconciler_tick`` records go (a table by default; Analytics Engine upstream)."""

    def write(self, row: dict[str, Any]) -> None: ...


class TableSink:
    """Writes analytics rows to ``rg_analytics`` in the town database."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        conn.execute(ANALYTICS_DDL)
        self.conn = conn

    def write(self, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        self.conn.execute(
            f"INSERT INTO rg_analytics ({cols}) VALUES ({marks})", tuple(row.values())
        )


def store_tick(conn: sqlite3.Connection, seq: int, record: dict[str, Any]) -> None:
    conn.execute(TICKS_DDL)
    conn.execute(TICKS_INDEX)
    conn.execute(
        "INSERT INTO rg_ticks (seq, at, record) VALUES (?, ?, ?)",
        (seq, record["at"], json.dumps(record, separators=(",", ":"))),
    )


def load_ticks(conn: sqlite3.Connection, start: str, end: str) -> list[dict[str, Any]]:
    """Recorded ticks with ``start <= at <= end``, in order (empty when none are recorded)."""
    return [record for _, record in stored_ticks(conn, (start, end))]


def stored_ticks(
    conn: sqlite3.Connection, window: tuple[str, str] | None = None
) -> list[tuple[int, dict[str, Any]]]:
    """Recorded ticks with their ``seq``, in order: all of them, or those with
    ``start <= at <= end`` for ``window=(start, end)`` (empty when none are recorded)."""
    if not table_exists(conn, "rg_ticks"):
        return []
    if window is None:
        rows = conn.execute("SELECT seq, record FROM rg_ticks ORDER BY seq").fetchall()
    else:
        rows = conn.execute(
            "SELECT seq, record FROM rg_ticks WHERE at >= ? AND at <= ? ORDER BY seq", window
        ).fetchall()
    return [(int(seq), stored_tick(conn, seq, record)) for seq, record in rows]


def stored_tick(conn: sqlite3.Connection, seq: Any, record: Any) -> dict[str, Any]:
    """A stored tick record, decoded (a bad one is an error naming the file and ``seq``)."""
    value: dict[str, Any] = stored_json(conn, record, "rg_ticks", f"seq {seq}", "record", dict)
    return value
