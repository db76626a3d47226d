"""The town event log (spec §3) and Phase 0 of the tick, the drain (spec §4).

``town_events`` rows are facts recorded by RPC handlers and side effects. Each
tick drains the pending ones oldest first and applies them (``applyEvent``),
marking each processed after it applies. An error whose message names a
missing entity by a 36-character id (``Bead <uuid> not found``) can never
succeed, so its event is marked processed too; any other error leaves the
event pending, to be retried next tick. Upstream runs no transaction per
event: writes made before the error stay (spec §17).
What each event does (``applyEvent``) is in :mod:`reportgen.town.event_handlers`.

Deliberate deviations from upstream, both about robustness of the drain:

* Upstream parses all pending rows in one go, so a row with an unknown
  ``event_type`` or a payload that is not a JSON object made the whole drain
  throw, every tick, until the row was fixed (spec §3.1, §14 quirk 11). Here
  such a row is *quarantined*: recorded in ``rg_quarantine`` with a reason
  naming the field, marked processed, and counted as drained; the other
  events of the drain are applied as usual.
* Upstream orders the drain by ``created_at`` only; rows with the same
  ``created_at`` come in SQLite's row order. We add ``event_id`` as the tie
  break so that a drain's order never depends on physical row order.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from reportgen.town import bead_ops
from reportgen.town.context import EngineError, TownCtx
from reportgen.town.event_handlers import apply_event as apply_event

#: The 12 event types of the LATEST model (spec §3.1).
EVENT_TYPES: tuple[str, ...] = (
    "agent_done",
    "agent_completed",
    "container_status",
    "container_eviction",
    "pr_status_changed",
    "bead_created",
    "bead_cancelled",
    "convoy_started",
    "nudge_timeout",
    "pr_feedback_detected",
    "pr_auto_merge",
    "pr_conflict_detected",
)

#: Drain outcomes, as the golden fixtures and the report spell them.
APPLIED = "applied"
SKIPPED_MISSING_ENTITY = "skipped_missing_entity"
FAILED_LEFT_PENDING = "failed_left_pending"
QUARANTINED = "quarantined"

#: Upstream's missing-entity rule: only 36-character ``[0-9a-f-]`` ids match (quirk 11).
MISSING_ENTITY_RE = re.compile(r"\b(Bead|Agent) [0-9a-f-]{36} not found\b")


@dataclass(frozen=True)
class TownEvent:
    """One parsed ``town_events`` row; ``payload`` is the decoded JSON object."""

    event_id: str
    event_type: str
    agent_id: str | None = None
    bead_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""


@dataclass(frozen=True)
class EventOutcome:
    """What the drain did with one event."""

    event_id: str
    event_type: str
    agent_id: str | None
    bead_id: str | None
    outcome: str
    error: str | None = None


@dataclass
class DrainResult:
    """One Phase 0: how many pending rows were drained and what became of each."""

    drained: int = 0
    outcomes: list[EventOutcome] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for o in self.outcomes if o.outcome == outcome)


# --------------------------------------------------------------------------- the log API


def insert_event(
    ctx: TownCtx,
    event_type: str,
    *,
    agent_id: str | None = None,
    bead_id: str | None = None,
    payload: dict[str, Any] | None = None,
) -> str:
    """``insertEvent``: a new pending event at ``ctx.now``; returns its id."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event_type {event_type!r}")
    event_id = ctx.new_event_id()
    ctx.run(
        """INSERT INTO town_events (event_id, event_type, agent_id, bead_id, payload,
                                    created_at, processed_at)
           VALUES (?, ?, ?, ?, ?, ?, NULL)""",
        (event_id, event_type, agent_id, bead_id, bead_ops.js_json(payload or {}), ctx.now),
    )
    return event_id


def upsert_container_status(
    ctx: TownCtx, agent_id: str, status: str, exit_reason: str | None = None
) -> str | None:
    """``upsertContainerStatus``: bump the newest pending same-status event, else insert.

    Returns the id of the event inserted or bumped. (Upstream returns nothing;
    ``exit_reason`` is left out of a new payload when it is empty.)
    """
    existing = ctx.one(
        """SELECT event_id, payload FROM town_events
           WHERE event_type = 'container_status' AND agent_id = ? AND processed_at IS NULL
           ORDER BY created_at DESC, event_id DESC
           LIMIT 1""",
        (agent_id,),
    )
    if existing is not None:
        previous = bead_ops.parse_json_object(existing["payload"])
        if previous.get("status") == status:
            ctx.run(
                "UPDATE town_events SET created_at = ? WHERE event_id = ?",
                (ctx.now, existing["event_id"]),
            )
            return str(existing["event_id"])
    payload: dict[str, Any] = {"status": status}
    if exit_reason:
        payload["exit_reason"] = exit_reason
    return insert_event(ctx, "container_status", agent_id=agent_id, payload=payload)


def mark_processed(ctx: TownCtx, event_id: str) -> None:
    """``markProcessed``: ``processed_at = now``."""
    ctx.run("UPDATE town_events SET processed_at = ? WHERE event_id = ?", (ctx.now, event_id))


def prune_old_events(ctx: TownCtx, retention_ms: int) -> int:
    """``pruneOldEvents``: delete processed events created before ``now − retention``."""
    cutoff = ctx.cutoff(retention_ms)
    return ctx.run(
        "DELETE FROM town_events WHERE processed_at IS NOT NULL AND created_at < ?", (cutoff,)
    )


def pending_event_count(ctx: TownCtx) -> int:
    """``pendingEventCount``: rows with ``processed_at IS NULL``."""
    row = ctx.one("SELECT count(*) FROM town_events WHERE processed_at IS NULL")
    return int(row[0]) if row is not None else 0


# --------------------------------------------------------------------------- the drain


def _reject_constant(name: str) -> Any:
    # JSON.parse rejects NaN / Infinity; Python's json would accept them.
    raise ValueError(f"{name} is not valid JSON")


def parse_event_row(row: sqlite3.Row) -> TownEvent | str:
    """A pending row as a :class:`TownEvent`, or the reason it cannot be one."""
    event_type = row["event_type"]
    if event_type not in EVENT_TYPES:
        return f"unknown event_type {event_type!r}"
    for name in ("agent_id", "bead_id"):
        value = row[name]
        if value is not None and not isinstance(value, str):
            return f"{name} is not text (got {type(value).__name__})"
    text = row["payload"]
    if not isinstance(text, str):
        return f"payload is not valid JSON: not text (got {type(text).__name__})"
    try:
        payload = json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        return f"payload is not valid JSON: {exc}"
    if not isinstance(payload, dict):
        kind = "array" if isinstance(payload, list) else type(payload).__name__
        if payload is None:
            kind = "null"
        return f"payload is not a JSON object (got {kind})"
    return TownEvent(
        event_id=str(row["event_id"]),
        event_type=event_type,
        agent_id=row["agent_id"],
        bead_id=row["bead_id"],
        payload=payload,
        created_at=str(row["created_at"]),
    )


def quarantine(ctx: TownCtx, event_id: str, event_type: str | None, reason: str) -> None:
    """Record a row that cannot be parsed in ``rg_quarantine``."""
    ctx.run(
        """INSERT OR REPLACE INTO rg_quarantine (event_id, event_type, reason, quarantined_at)
           VALUES (?, ?, ?, ?)""",
        (event_id, event_type, reason, ctx.now),
    )


def is_missing_entity_error(message: str) -> bool:
    """Upstream's "can never succeed" test on an ``applyEvent`` error message."""
    return MISSING_ENTITY_RE.search(message) is not None


def drain_events(ctx: TownCtx) -> DrainResult:
    """Phase 0: apply every pending event in order (see the module docstring for the policy).

    Requires ``rg_quarantine`` (``schema.ensure_reportgen_tables``) only when a
    row has to be quarantined.
    """
    rows = ctx.all(
        """SELECT event_id, event_type, agent_id, bead_id, payload, created_at, processed_at
           FROM town_events WHERE processed_at IS NULL
           ORDER BY created_at ASC, event_id ASC"""
    )
    result = DrainResult(drained=len(rows))
    for row in rows:
        parsed = parse_event_row(row)
        event_id = str(row["event_id"])
        if isinstance(parsed, str):
            event_type = row["event_type"]
            quarantine(ctx, event_id, None if event_type is None else str(event_type), parsed)
            mark_processed(ctx, event_id)
            result.outcomes.append(
                EventOutcome(
                    event_id,
                    str(event_type),
                    _text_or_none(row["agent_id"]),
                    _text_or_none(row["bead_id"]),
                    QUARANTINED,
                    parsed,
                )
            )
            continue
        try:
            apply_event(ctx, parsed)
        except (EngineError, sqlite3.Error) as exc:
            message = str(exc)
            if is_missing_entity_error(message):
                mark_processed(ctx, event_id)
                outcome = SKIPPED_MISSING_ENTITY
            else:
                outcome = FAILED_LEFT_PENDING
            result.outcomes.append(
                EventOutcome(
                    event_id, parsed.event_type, parsed.agent_id, parsed.bead_id, outcome, message
                )
            )
            continue
        mark_processed(ctx, event_id)
        result.outcomes.append(
            EventOutcome(event_id, parsed.event_type, parsed.agent_id, parsed.bead_id, APPLIED)
        )
    return result


def _text_or_none(value: object) -> str | None:
    return None if value is None else str(value)
