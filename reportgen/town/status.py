"""What a town looks like from outside: ``hasActiveWork`` and ``getAlarmStatus`` (§7.10, §9.3).

``has_active_work`` chooses the alarm cadence (5 s with work, 5 min idle), so
it decides *when* the next tick runs; replay uses it to reproduce the
recorded cadence. ``get_alarm_status`` has upstream's response shape, served
by ``/api/towns/{id}/status``.
"""

from __future__ import annotations

from typing import Any

from reportgen.town import clock
from reportgen.town.context import TownCtx

ACTIVE_ALARM_INTERVAL_MS = 5 * clock.SECOND_MS
IDLE_ALARM_INTERVAL_MS = 5 * clock.MINUTE_MS
STALLED_ACTIVE_WINDOW_MS = 30 * clock.MINUTE_MS
ORPHANED_HOOK_MS = 5 * clock.MINUTE_MS
RECENT_EVENTS = 20

_ACTIVE_WORK_SQL = """
SELECT
  EXISTS (SELECT 1 FROM agent_metadata WHERE status = 'working')
  OR EXISTS (SELECT 1 FROM agent_metadata WHERE status = 'stalled' AND last_activity_at > :cutoff)
  OR EXISTS (SELECT 1 FROM agent_metadata WHERE status = 'idle'
             AND current_hook_bead_id IS NOT NULL)
  OR EXISTS (SELECT 1 FROM beads WHERE type = 'merge_request'
             AND status IN ('open', 'in_progress'))
  OR EXISTS (SELECT 1 FROM beads WHERE type = 'issue' AND status = 'open'
             AND labels LIKE '%"gt:triage-request"%')
  OR EXISTS (SELECT 1 FROM beads WHERE type = 'issue' AND status = 'open'
             AND rig_id IS NOT NULL AND assignee_agent_bead_id IS NULL)
"""


def has_active_work(ctx: TownCtx) -> bool:
    """``hasActiveWork`` (§7.10): anything that the next 5 s tick could move forward."""
    row = ctx.one(_ACTIVE_WORK_SQL, {"cutoff": ctx.cutoff(STALLED_ACTIVE_WINDOW_MS)})
    return bool(row and row[0])


def interval_ms(active_work: bool) -> int:
    """The re-arm delay after a tick: 5 s with active work, 5 min otherwise."""
    return ACTIVE_ALARM_INTERVAL_MS if active_work else IDLE_ALARM_INTERVAL_MS


def _agent_counts(ctx: TownCtx) -> dict[str, int]:
    counts = {"working": 0, "waiting": 0, "idle": 0, "stalled": 0, "dead": 0, "total": 0}
    for status, n in ctx.all("SELECT status, count(*) FROM agent_metadata GROUP BY status"):
        if status in counts:
            counts[status] = n
        counts["total"] += n
    return counts


def _bead_counts(ctx: TownCtx) -> dict[str, int]:
    names = {"open": "open", "in_progress": "inProgress", "in_review": "inReview",
             "failed": "failed"}  # fmt: skip
    counts = dict.fromkeys(("open", "inProgress", "inReview", "failed", "triageRequests"), 0)
    rows = ctx.all(
        """SELECT status, count(*) FROM beads WHERE type NOT IN ('agent', 'message')
           GROUP BY status"""
    )
    for status, n in rows:
        if status in names:
            counts[names[status]] = n
    triage = ctx.one(
        """SELECT count(*) FROM beads WHERE type = 'issue' AND status = 'open'
           AND labels LIKE '%"gt:triage-request"%'"""
    )
    counts["triageRequests"] = int(triage[0]) if triage else 0
    return counts


def _patrol(ctx: TownCtx, stalled: int) -> dict[str, int]:
    def count(sql: str, params: tuple[Any, ...] = ()) -> int:
        row = ctx.one(sql, params)
        return int(row[0]) if row else 0

    gupp = "SELECT count(*) FROM beads WHERE type = 'message' AND status = 'open' AND title = ?"
    return {
        "guppWarnings": count(gupp, ("GUPP_CHECK",)),
        "guppEscalations": count(gupp, ("GUPP_ESCALATION",)),
        "stalledAgents": stalled,
        "orphanedHooks": count(
            """SELECT count(*) FROM agent_metadata WHERE status = 'idle'
               AND current_hook_bead_id IS NOT NULL
               AND (last_activity_at IS NULL OR last_activity_at < ?)""",
            (ctx.cutoff(ORPHANED_HOOK_MS),),
        ),
    }


def _event_message(event_type: str, title: str, new_value: str | None, actor: str | None) -> str:
    """Upstream's one-line rendering of a bead event for the status feed."""
    who = "system" if actor in (None, "system") else f"agent {actor[:8]}…"
    if event_type == "status_changed":
        return f'"{title}" → {new_value} (by {who})'
    if event_type == "assigned":
        return f'"{title}" assigned to {new_value}'
    if event_type == "pr_created":
        return f'PR created for "{title}"'
    if event_type == "agent_status":
        return f"{who}: {new_value or 'status update'}"
    return f"{event_type}: {title}"


def recent_events(ctx: TownCtx, limit: int = RECENT_EVENTS) -> list[dict[str, str]]:
    rows = ctx.all(
        """SELECT e.created_at, e.event_type, e.new_value, e.agent_id,
                  COALESCE(b.title, substr(e.bead_id, 1, 8)) AS title
           FROM bead_events e LEFT JOIN beads b ON b.bead_id = e.bead_id
           ORDER BY e.created_at DESC, e.bead_event_id DESC LIMIT ?""",
        (limit,),
    )
    return [
        {
            "time": r["created_at"],
            "type": r["event_type"],
            "message": _event_message(r["event_type"], r["title"], r["new_value"], r["agent_id"]),
        }
        for r in rows
    ]


def get_alarm_status(
    ctx: TownCtx,
    *,
    reconciler: dict[str, Any] | None,
    next_fire_at: str | None,
    active_work: bool | None = None,
    drain_started_at: str | None = None,
) -> dict[str, Any]:
    """``getAlarmStatus`` (§9.3) with ``reconciler`` = the last tick's metrics (or null)."""
    active = has_active_work(ctx) if active_work is None else active_work
    agents = _agent_counts(ctx)
    beads = _bead_counts(ctx)
    status: dict[str, Any] = {
        "alarm": {
            "nextFireAt": next_fire_at,
            "intervalMs": interval_ms(active),
            "intervalLabel": "active (5s)" if active else "idle (5m)",
        },
        "agents": agents,
        "beads": beads,
        "patrol": _patrol(ctx, agents["stalled"]),
        "reconciler": reconciler,
        "recentEvents": recent_events(ctx),
    }
    if ctx.draining:
        status["draining"] = True
        if drain_started_at is not None:
            status["drainStartedAt"] = drain_started_at
    return status
