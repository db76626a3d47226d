"""The town event log (spec §3) and Phase 0 of the tick, the drain (spec §4).

``town_events`` rows are facts recorded by RPC handlers and side effects. Each
tick drains the pending ones oldest first and applies them (``applyEvent``),
marking each processed after it applies. An error whose message names a
missing entity by a 36-character id (``Bead <uuid> not found``) can never
succeed, so its event is marked processed too; any other error leaves the
event pending, to be retried next tick. Upstream runs no transaction per
event: writes made before the error stay (spec §17).

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
import math
import re
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from reportgen.town import clock, config, ops, review_queue
from reportgen.town.context import EngineError, TownCtx
from reportgen.town.prompts import (
    conflict_escalation_body,
    conflict_resolution_prompt,
    feedback_bead_title,
    feedback_prompt,
)

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

#: ``not_found`` within this long of the last heartbeat is a cold start, not a death.
NOT_FOUND_GRACE_S = 180

CONFLICT_TRIAGE_OPTIONS = ["ESCALATE_TO_MAYOR", "RESTART", "CLOSE_BEAD", "REASSIGN_BEAD"]


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
        (event_id, event_type, agent_id, bead_id, ops.js_json(payload or {}), ctx.now),
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
        previous = ops.parse_json_object(existing["payload"])
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


# --------------------------------------------------------------------------- applyEvent


def apply_event(ctx: TownCtx, event: TownEvent) -> None:
    """``applyEvent`` (spec §3.3): turn one fact into state. Raises where upstream throws."""
    handler = _HANDLERS.get(event.event_type)
    if handler is not None:
        handler(ctx, event)
    # Unknown types: upstream warns and does nothing (the drain quarantines them first).


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _apply_agent_done(ctx: TownCtx, event: TownEvent) -> None:
    if not event.agent_id:
        return
    p = event.payload
    review_queue.agent_done(
        ctx,
        event.agent_id,
        branch=_str(p.get("branch")) or "",
        pr_url=_str(p.get("pr_url")),
        summary=_str(p.get("summary")),
    )


def _apply_agent_completed(ctx: TownCtx, event: TownEvent) -> None:
    if not event.agent_id:
        return
    raw = event.payload.get("status")
    status = raw if raw in ("completed", "failed") else "failed"
    review_queue.agent_completed(
        ctx, event.agent_id, status=str(status), reason=_str(event.payload.get("reason"))
    )


def _apply_pr_status_changed(ctx: TownCtx, event: TownEvent) -> None:
    if not event.bead_id:
        return
    state = event.payload.get("pr_state")
    if state == "merged":
        review_queue.complete_review_with_result(
            ctx, event.bead_id, "merged", "PR merged (detected by polling)"
        )
    elif state == "closed":
        review_queue.complete_review_with_result(
            ctx, event.bead_id, "failed", "PR closed without merge"
        )


def _apply_noop(ctx: TownCtx, event: TownEvent) -> None:
    """``bead_created``, ``container_eviction``, ``nudge_timeout``: nothing to change."""


def _apply_bead_cancelled(ctx: TownCtx, event: TownEvent) -> None:
    if not event.bead_id:
        return
    if ops.get_bead(ctx, event.bead_id) is None:
        return  # deleted after the event was recorded: skip (LATEST)
    raw = event.payload.get("cancel_status")
    status = raw if raw in ("closed", "failed") else "failed"
    ops.update_bead_status(ctx, event.bead_id, str(status), "system")
    for agent_id in ops.agents_hooked_to(ctx, event.bead_id):
        ops.unhook_bead(ctx, agent_id)


def _apply_convoy_started(ctx: TownCtx, event: TownEvent) -> None:
    convoy_id = _str(event.payload.get("convoy_id"))
    if not convoy_id:
        return
    ctx.run("UPDATE convoy_metadata SET staged = 0 WHERE bead_id = ?", (convoy_id,))


def _apply_container_status(ctx: TownCtx, event: TownEvent) -> None:
    if not event.agent_id:
        return
    status = event.payload.get("status")
    agent = ops.get_agent(ctx, event.agent_id)
    if agent is None:
        return
    last = agent["last_activity_at"]
    if status == "not_found" and last:
        # JavaScript: (Date.now() - new Date(last)) / 1000 < 180; NaN never is.
        age_s = (ctx.now_ms - clock.try_ms(last)) / 1000
        if not math.isnan(age_s) and age_s < NOT_FOUND_GRACE_S:
            return
    if agent["status"] not in ("working", "stalled") or status not in ("exited", "not_found"):
        return
    agent_id = event.agent_id
    hook = agent["current_hook_bead_id"]
    if agent["role"] == "refinery" and hook:
        mr = ops.get_bead(ctx, hook)
        if mr is not None and mr["status"] in ops.TERMINAL:
            ops.unhook_bead(ctx, agent_id)
            ops.update_agent_status(ctx, agent_id, "idle")
            ctx.run("UPDATE agent_metadata SET checkpoint = NULL WHERE bead_id = ?", (agent_id,))
            return
    # Refinery with a live (or missing) MR keeps its hook; every other agent just idles.
    ops.update_agent_status(ctx, agent_id, "idle")


def _blocking_bead_with_label(ctx: TownCtx, mr_id: str, label: str) -> str | None:
    """A non-terminal bead labelled ``label`` that the MR ``blocks``-depends on (LIKE, unquoted)."""
    row = ctx.one(
        """SELECT fb.bead_id FROM bead_dependencies bd
           INNER JOIN beads fb ON fb.bead_id = bd.depends_on_bead_id
           WHERE bd.bead_id = ? AND bd.dependency_type = 'blocks'
             AND fb.labels LIKE ? AND fb.status NOT IN ('closed', 'failed')
           LIMIT 1""",
        (mr_id, f"%{label}%"),
    )
    return None if row is None else str(row[0])


def _live_mr(ctx: TownCtx, mr_id: str | None) -> sqlite3.Row | None:
    if not mr_id:
        return None
    mr = ops.get_bead(ctx, mr_id)
    if mr is None or mr["status"] in ops.TERMINAL:
        return None
    return mr


def _apply_pr_feedback_detected(ctx: TownCtx, event: TownEvent) -> None:
    p = event.payload
    mr_id = _str(p.get("mr_bead_id"))
    mr = _live_mr(ctx, mr_id)
    if mr_id is None or mr is None:
        return
    if _blocking_bead_with_label(ctx, mr_id, "gt:pr-feedback") is not None:
        return
    pr_url = _str(p.get("pr_url")) or ""
    raw_number = p.get("pr_number")
    pr_number: int | float = (
        raw_number
        if isinstance(raw_number, int | float) and not isinstance(raw_number, bool)
        else 0
    )
    repo = _str(p.get("repo")) or ""
    branch = _str(p.get("branch")) or ""
    comments = p.get("has_unresolved_comments") is True
    failing = p.get("has_failing_checks") is True
    unchecked = p.get("has_unchecked_runs") is True

    conflict_id = _blocking_bead_with_label(ctx, mr_id, "gt:pr-conflict")
    if conflict_id is not None:
        ctx.run(
            """UPDATE beads SET metadata = json_set(COALESCE(metadata, '{}'), '$.has_feedback', 1),
                                updated_at = ?
               WHERE bead_id = ?""",
            (ctx.now, conflict_id),
        )
        return

    feedback_id = ops.create_bead(
        ctx,
        type="issue",
        title=feedback_bead_title(pr_number, repo, comments, failing, unchecked),
        body=feedback_prompt(pr_number, repo, branch, comments, failing, unchecked),
        rig_id=mr["rig_id"],
        parent_bead_id=mr_id,
        labels=["gt:pr-feedback"],
        metadata={"pr_feedback_for": mr_id, "pr_url": pr_url, "branch": branch},
    )
    ops.add_dependency(ctx, mr_id, feedback_id, "blocks")


def auto_resolve_merge_conflicts(ctx: TownCtx, rig_id: str | None) -> bool:
    """Effective ``auto_resolve_merge_conflicts``: rig override → town refinery → true."""
    rig_text = config.rig_config_text(ctx.conn, rig_id) if rig_id else None
    value = config.resolve(rig_text, ctx.config, "auto_resolve_merge_conflicts")
    return value is not False


def _apply_pr_conflict_detected(ctx: TownCtx, event: TownEvent) -> None:
    """``pr_conflict_detected``: hand the conflict to an agent, or to a human.

    With ``auto_resolve_merge_conflicts`` (the default) a polecat gets a
    ``gt:pr-conflict`` bead, or an open feedback bead takes the conflict on;
    without it the conflict becomes a high-severity escalation. One open
    conflict bead per MR is enough, so a second event is ignored.
    """
    p = event.payload
    mr_id = _str(p.get("mr_bead_id"))
    mr = _live_mr(ctx, mr_id)
    if mr_id is None or mr is None:
        return
    if _blocking_bead_with_label(ctx, mr_id, "gt:pr-conflict") is not None:
        return
    rm = ctx.one("SELECT target_branch FROM review_metadata WHERE bead_id = ?", (mr_id,))
    conflict = _Conflict(
        mr_id=mr_id,
        rig_id=mr["rig_id"],
        pr_url=_str(p.get("pr_url")) or "",
        branch=_str(p.get("branch")) or "",
        target=str(rm["target_branch"]) if rm is not None else "",
        source_bead=_str(p.get("source_bead_id")),
    )
    if auto_resolve_merge_conflicts(ctx, conflict.rig_id):
        _conflict_to_agent(ctx, conflict)
    else:
        _conflict_to_human(ctx, conflict)


@dataclass(frozen=True)
class _Conflict:
    """What both ways of handling a detected conflict need to know about it."""

    mr_id: str
    rig_id: str | None
    pr_url: str
    branch: str
    target: str
    source_bead: str | None

    def metadata(self) -> dict[str, Any]:
        """The bead metadata both ways record, in upstream's key order."""
        return {
            "pr_url": self.pr_url,
            "branch": self.branch,
            "target_branch": self.target,
            "mr_bead_id": self.mr_id,
            "source_bead_id": self.source_bead,
        }


def _conflict_to_agent(ctx: TownCtx, c: _Conflict) -> None:
    """An open feedback bead takes the conflict on; else a new ``gt:pr-conflict`` bead.

    Upstream consolidates the two: one bead at a time works on a PR's branch,
    rather than a feedback and a conflict polecat pushing the same branch.
    """
    feedback_id = _blocking_bead_with_label(ctx, c.mr_id, "gt:pr-feedback")
    if feedback_id is not None:
        ctx.run(
            """UPDATE beads
               SET metadata = json_set(COALESCE(metadata, '{}'), '$.has_conflicts', 1,
                                       '$.conflict_target_branch', ?),
                   updated_at = ?
               WHERE bead_id = ?""",
            (c.target, ctx.now, feedback_id),
        )
        return
    conflict_id = ops.create_bead(
        ctx,
        type="issue",
        title=f"Resolve merge conflicts on PR: {c.branch}",
        body=conflict_resolution_prompt(c.pr_url, c.branch, c.target),
        rig_id=c.rig_id,
        parent_bead_id=c.mr_id,
        labels=["gt:pr-conflict"],
        metadata=c.metadata(),
    )
    ops.add_dependency(ctx, c.mr_id, conflict_id, "blocks")


def _conflict_to_human(ctx: TownCtx, c: _Conflict) -> None:
    """Auto-resolve is off: a high-severity escalation bead and a triage request for it."""
    escalation_id = ops.create_bead(
        ctx,
        type="escalation",
        title=f"Merge conflict detected: {c.branch}",
        body=conflict_escalation_body(c.pr_url, c.branch),
        priority="high",
        rig_id=c.rig_id,
        labels=["gt:escalation", "severity:high"],
        metadata={**c.metadata(), "conflict": True},
    )
    ctx.run(
        """INSERT INTO escalation_metadata (bead_id, severity, category, acknowledged,
                                            re_escalation_count, acknowledged_at)
           VALUES (?, 'high', 'merge_conflict', 0, 0, NULL)""",
        (escalation_id,),
    )
    ops.create_triage_request(
        ctx,
        triage_type="escalation",
        agent_id=None,
        title=f"Escalation (high): Merge conflict on {c.branch}",
        context={
            "escalation_bead_id": escalation_id,
            "severity": "high",
            "rig_id": c.rig_id,
            "category": "merge_conflict",
            "pr_url": c.pr_url,
            "branch": c.branch,
            "mr_bead_id": c.mr_id,
        },
        options=list(CONFLICT_TRIAGE_OPTIONS),
        rig_id=c.rig_id,
    )


def _apply_pr_auto_merge(ctx: TownCtx, event: TownEvent) -> None:
    mr_id = _str(event.payload.get("mr_bead_id"))
    if mr_id is None or _live_mr(ctx, mr_id) is None:
        return
    ctx.run(
        """UPDATE beads
           SET metadata = json_set(COALESCE(metadata, '{}'), '$.auto_merge_pending', 1),
               updated_at = ?
           WHERE bead_id = ?""",
        (ctx.now, mr_id),
    )


_HANDLERS = {
    "agent_done": _apply_agent_done,
    "agent_completed": _apply_agent_completed,
    "pr_status_changed": _apply_pr_status_changed,
    "bead_created": _apply_noop,
    "bead_cancelled": _apply_bead_cancelled,
    "convoy_started": _apply_convoy_started,
    "container_status": _apply_container_status,
    "container_eviction": _apply_noop,
    "nudge_timeout": _apply_noop,
    "pr_feedback_detected": _apply_pr_feedback_detected,
    "pr_auto_merge": _apply_pr_auto_merge,
    "pr_conflict_detected": _apply_pr_conflict_detected,
}
