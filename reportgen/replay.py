"""State at a time, dry-run, and (later) window replay.

Dry-run answers "what would the reconciler do next?" for a town database:
it works on an in-memory copy (the file is never written), drains and applies
the pending events, and runs one reconcile without applying the actions —
upstream's ``debugDryRun`` (spec §11.1).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from reportgen.errors import BadInputError
from reportgen.town import clock, events, reconciler, store
from reportgen.town.config import TownConfig
from reportgen.town.context import TownCtx
from reportgen.town.db import load_copy
from reportgen.town.ids import DerivedIds
from reportgen.town.schema import ensure_reportgen_tables

#: Columns that hold times; the newest of them is "now" for a database at rest.
_TIME_COLUMNS = (
    ("town_events", "created_at"),
    ("town_events", "processed_at"),
    ("beads", "updated_at"),
    ("beads", "created_at"),
    ("bead_events", "created_at"),
    ("agent_metadata", "last_activity_at"),
)


def newest_timestamp(conn: Any) -> str | None:
    """The newest ISO timestamp the database holds (the default ``now``; never the wall clock)."""
    have = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    newest: str | None = None
    for table, column in _TIME_COLUMNS:
        if table not in have:
            continue
        row = conn.execute(f"SELECT max({column}) FROM {table}").fetchone()
        value = row[0] if row else None
        if (
            isinstance(value, str)
            and not clock.is_nan(value)
            and (newest is None or value > newest)
        ):
            newest = value
    return None if newest is None else clock.normalize(newest)


def parse_time(value: str, what: str) -> str:
    """Normalise a user-supplied ISO time, or fail naming the option."""
    try:
        return clock.normalize(value)
    except ValueError as exc:
        raise BadInputError(f"{what}: not an ISO-8601 time: {value!r}") from exc


def dry_run(
    db: str | Path,
    *,
    now: str | None = None,
    config: dict[str, Any] | None = None,
    draining: bool | None = None,
) -> dict[str, Any]:
    """Drain pending events and reconcile once on a copy of ``db``; return upstream's response."""
    conn = load_copy(db)
    ensure_reportgen_tables(conn)
    at = parse_time(now, "--now") if now is not None else newest_timestamp(conn)
    if at is None:
        raise BadInputError(f"{db}: the database holds no timestamps; pass --now")
    town_id = store.town_id(conn)
    ctx = TownCtx(
        conn=conn,
        now=at,
        town_id=town_id,
        config=TownConfig.parse(config) if config is not None else store.town_config(conn),
        ids=DerivedIds(f"dry-run:{town_id}:{at}"),
        draining=store.draining(conn) if draining is None else draining,
    )
    drained = events.drain_events(ctx)
    actions = reconciler.reconcile(ctx)
    return {
        "actions": actions,
        "metrics": {
            "actionsEmitted": len(actions),
            "actionsByType": dict(Counter(a["type"] for a in actions)),
            "pendingEventCount": events.pending_event_count(ctx),
            "eventsDrained": drained.drained,
        },
    }
