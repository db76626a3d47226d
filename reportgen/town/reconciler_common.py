"""Constants, value helpers and action builders shared by the reconcile passes.

Everything here is read-only and clock-free: times come from ``ctx.now`` and
SQL cutoffs are computed in Python and passed as parameters (spec §0, §5).
Thresholds carry upstream's names (spec §12).
"""

from __future__ import annotations

import math
import sqlite3
from typing import Any

from reportgen import jsonio
from reportgen.town import clock
from reportgen.town.clock import HOUR_MS, MINUTE_MS, SECOND_MS
from reportgen.town.config import MAX_DISPATCH_ATTEMPTS
from reportgen.town.context import Action, TownCtx

__all__ = [
    "ABANDONED_MR_TIMEOUT_MS",
    "AGENT_GC_RETENTION_MS",
    "CIRCUIT_BREAKER_FAILURE_THRESHOLD",
    "CIRCUIT_BREAKER_WINDOW_MINUTES",
    "DISPATCH_ATTEMPT_RESET_WINDOW_MS",
    "GUPP_ESCALATE_MS",
    "GUPP_FORCE_STOP_MS",
    "GUPP_WARN_MS",
    "HEARTBEAT_STALE_MS",
    "HELD_LABEL_LIKE",
    "LANDING_MR_COOLDOWN_BASE_MS",
    "LANDING_MR_COOLDOWN_MAX_MS",
    "MAX_DISPATCH_ATTEMPTS",
    "MAX_LANDING_MR_ATTEMPTS",
    "NUDGE_DEDUP_WINDOW_MS",
    "ORPHANED_PR_REVIEW_TIMEOUT_MS",
    "ORPHANED_SOURCE_TIMEOUT_MS",
    "PR_POLL_INTERVAL_MS",
    "STALE_IN_PROGRESS_TIMEOUT_MS",
    "STALLED_AUTO_IDLE_MS",
    "STUCK_REVIEW_TIMEOUT_MS",
    "TRIAGE_LABEL_LIKE",
]

# ── Thresholds (spec §12) ────────────────────────────────────────────────

HEARTBEAT_STALE_MS = 90 * SECOND_MS
STALLED_AUTO_IDLE_MS = 150 * MINUTE_MS  # 2 h 30 min
DISPATCH_ATTEMPT_RESET_WINDOW_MS = 30 * MINUTE_MS  # A3
STALE_IN_PROGRESS_TIMEOUT_MS = 5 * MINUTE_MS
ORPHANED_SOURCE_TIMEOUT_MS = 5 * MINUTE_MS
STUCK_REVIEW_TIMEOUT_MS = 30 * MINUTE_MS
ABANDONED_MR_TIMEOUT_MS = 2 * MINUTE_MS
ORPHANED_PR_REVIEW_TIMEOUT_MS = 30 * MINUTE_MS
PR_POLL_INTERVAL_MS = 60 * SECOND_MS
CIRCUIT_BREAKER_FAILURE_THRESHOLD = 20
CIRCUIT_BREAKER_WINDOW_MINUTES = 30
GUPP_WARN_MS = 15 * MINUTE_MS
GUPP_ESCALATE_MS = HOUR_MS
GUPP_FORCE_STOP_MS = 2 * HOUR_MS
NUDGE_DEDUP_WINDOW_MS = 60 * MINUTE_MS
AGENT_GC_RETENTION_MS = 24 * HOUR_MS
MAX_LANDING_MR_ATTEMPTS = 5
LANDING_MR_COOLDOWN_BASE_MS = 30 * SECOND_MS
LANDING_MR_COOLDOWN_MAX_MS = 30 * MINUTE_MS

#: Label patterns as upstream's SQL writes them: with the JSON quotes (spec §1).
TRIAGE_LABEL_LIKE = '%"gt:triage-request"%'
HELD_LABEL_LIKE = '%"gt:held"%'

#: Bead statuses that never change again (spec §1).
TERMINAL = frozenset({"closed", "failed"})

#: SQL fragment: ``?`` bead has a ``blocks`` dependency on a non-terminal bead.
OPEN_BLOCKER_SQL = """
    SELECT 1 FROM bead_dependencies bd
    JOIN beads blocker ON blocker.bead_id = bd.depends_on_bead_id
    WHERE bd.bead_id = ? AND bd.dependency_type = 'blocks'
      AND blocker.status NOT IN ('closed', 'failed')
    LIMIT 1
"""


# ── JavaScript value semantics ────────────────────────────────────────────


def js_truthy(value: object) -> bool:
    """JavaScript truthiness: ``[]`` and ``{}`` are true, ``0``/``''``/``NaN``/null false."""
    if value is None or value is False:
        return False
    if isinstance(value, int | float):
        return value != 0 and not (isinstance(value, float) and math.isnan(value))
    if isinstance(value, str):
        return value != ""
    return True


def is_one_or_true(value: object) -> bool:
    """Upstream's ``v === 1 || v === true`` (used for ``awaiting_approval``)."""
    return isinstance(value, int | float) and value == 1


def json_object(text: object) -> dict[str, Any]:
    """Parse a JSON object column; anything else (null, invalid, non-object) is ``{}``.

    Upstream's zod row parse would reject invalid JSON and make the whole
    reconcile throw; we read it as "no metadata" instead (documented deviation).
    """
    if not isinstance(text, str):
        return {}
    try:
        parsed = jsonio.loads(text)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def json_list(text: object) -> list[Any]:
    """Parse a JSON array column (labels); anything else is ``[]``."""
    if not isinstance(text, str):
        return []
    try:
        parsed = jsonio.loads(text)
    except ValueError:
        return []
    return parsed if isinstance(parsed, list) else []


def elapsed_ms(ctx: TownCtx, ts: object) -> float:
    """``Date.now() − new Date(ts).getTime()``: ``nan`` when ``ts`` does not parse."""
    return ctx.now_ms - clock.try_ms(ts)


def stale(ctx: TownCtx, ts: str | None, threshold_ms: int) -> bool:
    """Upstream ``staleMs`` at the tick's clock (strict ``>``; null is stale)."""
    return clock.stale_ms(ts, threshold_ms, ctx.now)


# ── Dispatch helpers (spec §5 "Helpers used throughout") ─────────────────


def dispatch_cooldown_ms(attempts: int) -> int:
    """``getDispatchCooldownMs``: 30 s / 60 s / 2 min / 5 min / 10 min for ≤1/2/3/4/≥5."""
    if attempts <= 1:
        return 30 * SECOND_MS
    if attempts == 2:
        return 60 * SECOND_MS
    if attempts == 3:
        return 2 * MINUTE_MS
    if attempts == 4:
        return 5 * MINUTE_MS
    return 10 * MINUTE_MS


def cooldown_elapsed(ctx: TownCtx, attempts: int, last_attempt_at: str | None) -> bool:
    """A dispatch is allowed once the attempt-dependent backoff has passed (null = allowed)."""
    return stale(ctx, last_attempt_at, dispatch_cooldown_ms(attempts))


def breaker_failure_count(ctx: TownCtx) -> int:
    """Beads with a dispatch attempt in the breaker window that are not ``closed``.

    It counts every non-closed bead with a recent attempt, including beads
    being worked on successfully (spec §5, a documented upstream quirk).
    """
    row = ctx.one(
        """
        SELECT count(*) AS failure_count FROM beads
        WHERE last_dispatch_attempt_at > ?
          AND dispatch_attempts > 0
          AND status != 'closed'
        """,
        (ctx.cutoff(CIRCUIT_BREAKER_WINDOW_MINUTES * MINUTE_MS),),
    )
    return int(row["failure_count"]) if row is not None else 0


def breaker_is_open(ctx: TownCtx) -> bool:
    """The town circuit breaker is open: ≥ 20 recent dispatch failures (spec §5)."""
    return breaker_failure_count(ctx) >= CIRCUIT_BREAKER_FAILURE_THRESHOLD


def circuit_breaker(ctx: TownCtx) -> list[Action]:
    """``checkDispatchCircuitBreaker``: one ``notify_mayor`` when ≥ 20 beads failed recently."""
    count = breaker_failure_count(ctx)
    if count < CIRCUIT_BREAKER_FAILURE_THRESHOLD:
        return []
    return [
        notify_mayor(
            f"Dispatch circuit breaker is OPEN: {count} dispatch failures in the last "
            f"{CIRCUIT_BREAKER_WINDOW_MINUTES} minutes. All dispatch actions are paused "
            "until failures clear."
        )
    ]


def has_open_blocker(ctx: TownCtx, bead_id: str) -> bool:
    """The bead has a ``blocks`` dependency on a bead that is not closed/failed."""
    return ctx.one(OPEN_BLOCKER_SQL, (bead_id,)) is not None


# ── Action builders (spec §6; key order as upstream emits them) ──────────


def transition_bead(
    bead_id: str, from_: str | None, to: str, reason: str, actor: str = "system"
) -> Action:
    return {
        "type": "transition_bead",
        "bead_id": bead_id,
        "from": from_,
        "to": to,
        "reason": reason,
        "actor": actor,
    }


def clear_bead_assignee(bead_id: str) -> Action:
    return {"type": "clear_bead_assignee", "bead_id": bead_id}


def transition_agent(agent_id: str, from_: str | None, to: str, reason: str) -> Action:
    return {
        "type": "transition_agent",
        "agent_id": agent_id,
        "from": from_,
        "to": to,
        "reason": reason,
    }


def unhook_agent(agent_id: str, reason: str) -> Action:
    return {"type": "unhook_agent", "agent_id": agent_id, "reason": reason}


def hook_agent(agent_id: str, bead_id: str) -> Action:
    return {"type": "hook_agent", "agent_id": agent_id, "bead_id": bead_id}


def clear_agent_checkpoint(agent_id: str) -> Action:
    return {"type": "clear_agent_checkpoint", "agent_id": agent_id}


def reset_agent_dispatch_attempts(agent_id: str) -> Action:
    return {"type": "reset_agent_dispatch_attempts", "agent_id": agent_id}


def delete_agent(agent_id: str, reason: str) -> Action:
    return {"type": "delete_agent", "agent_id": agent_id, "reason": reason}


def dispatch_agent(agent_id: str, bead_id: str, rig_id: str) -> Action:
    return {"type": "dispatch_agent", "agent_id": agent_id, "bead_id": bead_id, "rig_id": rig_id}


def stop_agent(agent_id: str, reason: str) -> Action:
    return {"type": "stop_agent", "agent_id": agent_id, "reason": reason}


def poll_pr(bead_id: str, pr_url: str) -> Action:
    return {"type": "poll_pr", "bead_id": bead_id, "pr_url": pr_url}


def merge_pr(bead_id: str, pr_url: str) -> Action:
    return {"type": "merge_pr", "bead_id": bead_id, "pr_url": pr_url}


def send_nudge(agent_id: str, message: str, tier: str) -> Action:
    return {"type": "send_nudge", "agent_id": agent_id, "message": message, "tier": tier}


def create_triage_request(agent_id: str, triage_type: str, reason: str) -> Action:
    return {
        "type": "create_triage_request",
        "agent_id": agent_id,
        "triage_type": triage_type,
        "reason": reason,
    }


def notify_mayor(message: str) -> Action:
    return {"type": "notify_mayor", "message": message}


def emit_event(event_name: str, data: dict[str, Any]) -> Action:
    return {"type": "emit_event", "event_name": event_name, "data": data}


def update_convoy_progress(convoy_id: str, closed_beads: int) -> Action:
    return {"type": "update_convoy_progress", "convoy_id": convoy_id, "closed_beads": closed_beads}


def set_convoy_ready_to_land(convoy_id: str) -> Action:
    return {"type": "set_convoy_ready_to_land", "convoy_id": convoy_id}


def close_convoy(convoy_id: str) -> Action:
    return {"type": "close_convoy", "convoy_id": convoy_id}


def fail_convoy(convoy_id: str, reason: str) -> Action:
    return {"type": "fail_convoy", "convoy_id": convoy_id, "reason": reason}


def create_landing_mr(
    convoy_id: str, rig_id: str, feature_branch: str, target_branch: str
) -> Action:
    return {
        "type": "create_landing_mr",
        "convoy_id": convoy_id,
        "rig_id": rig_id,
        "feature_branch": feature_branch,
        "target_branch": target_branch,
    }


def report_wasteland_done(
    canonical_bead_id: str, wasteland_id: str, item_id: str, evidence: str
) -> Action:
    return {
        "type": "report_wasteland_done",
        "canonical_bead_id": canonical_bead_id,
        "wasteland_id": wasteland_id,
        "item_id": item_id,
        "evidence": evidence,
    }


# ── Shared reads ─────────────────────────────────────────────────────────

#: Agent columns every agent query reads, with the agent bead's rig (spec §2.2).
AGENT_SELECT = """
    SELECT am.bead_id, am.role, am.status, am.current_hook_bead_id, am.dispatch_attempts,
           am.last_activity_at, am.last_event_type, am.last_event_at, am.active_tools,
           am.stalled_at, b.rig_id
    FROM agent_metadata am
    LEFT JOIN beads b ON b.bead_id = am.bead_id
"""


def agent_rows(ctx: TownCtx, where: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    """Agents matching the SQL condition ``where`` (``am`` is the agent, ``b`` its bead)."""
    return ctx.all(f"{AGENT_SELECT} WHERE {where}", params)


def coalesce(*values: Any) -> Any:
    """JavaScript ``a ?? b ?? c``: the first value that is not null."""
    for value in values:
        if value is not None:
            return value
    return None
