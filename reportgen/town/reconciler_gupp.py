"""reconcileGUPP (spec §5.5): warn, escalate and finally stop agents that hold work
without showing activity.

Read-only and clock-free like every pass (see :mod:`reportgen.town.reconciler`).
"""

from __future__ import annotations

import math
import sqlite3

from reportgen import jsonio
from reportgen.town import clock
from reportgen.town.context import Action, TownCtx
from reportgen.town.reconciler_common import (
    GUPP_ESCALATE_MS,
    GUPP_FORCE_STOP_MS,
    GUPP_WARN_MS,
    NUDGE_DEDUP_WINDOW_MS,
    STALLED_AUTO_IDLE_MS,
    agent_rows,
    coalesce,
    create_triage_request,
    elapsed_ms,
    send_nudge,
    stop_agent,
    transition_agent,
)

# ════════════════════════════════════════════════════════════════════════
# reconcileGUPP (spec §5.5)
# ════════════════════════════════════════════════════════════════════════

GUPP_ESCALATE_MESSAGE = (
    "You have been working for over 1 hour without completing your task. "
    "Please wrap up or report if you are stuck."
)
GUPP_WARN_MESSAGE = (
    "You have been idle for 15 minutes with no tool activity. Please check your progress."
)


def reconcile_gupp(ctx: TownCtx) -> list[Action]:
    """GUPP watchdog: warn at 15 min, escalate at 1 h, force stop at 2 h of no activity.

    Returns nothing while draining: SDK activity stops being reported during
    a drain, so silence does not mean the agent is stuck (§4.1).
    """
    if ctx.draining:
        return []
    actions: list[Action] = []
    rows = agent_rows(ctx, "am.status IN ('working', 'stalled') AND am.role != 'mayor'")
    for agent in rows:
        actions += _gupp_for_agent(ctx, agent)
    return actions


def _gupp_for_agent(ctx: TownCtx, agent: sqlite3.Row) -> list[Action]:
    """One agent's GUPP tier, by the time since its last activity."""
    elapsed = _inactive_ms(ctx, agent)
    if elapsed is None:
        return []
    agent_id = agent["bead_id"]
    if elapsed > GUPP_FORCE_STOP_MS:
        return [
            transition_agent(
                agent_id, agent["status"], "stalled", "GUPP force stop — no SDK activity for 2h"
            ),
            stop_agent(agent_id, "exceeded 2h GUPP limit"),
            create_triage_request(agent_id, "stuck_agent", "GUPP force stop"),
        ]
    if elapsed > GUPP_ESCALATE_MS:
        if _has_recent_nudge(ctx, agent_id, "escalate"):
            return []
        return [
            send_nudge(agent_id, GUPP_ESCALATE_MESSAGE, "escalate"),
            create_triage_request(agent_id, "stuck_agent", "GUPP escalation"),
        ]
    if elapsed > GUPP_WARN_MS:
        if not _no_active_tools(agent["active_tools"]):
            return []
        if _has_recent_nudge(ctx, agent_id, "warn"):
            return []
        return [send_nudge(agent_id, GUPP_WARN_MESSAGE, "warn")]
    return []


def _inactive_ms(ctx: TownCtx, agent: sqlite3.Row) -> float | None:
    """Milliseconds since the agent's last activity, or ``None`` when GUPP leaves it alone:
    no activity recorded, a time unparseable or in the future, or a stalled agent that
    A2 idles this pass (§14.1)."""
    activity = coalesce(agent["last_event_at"], agent["last_activity_at"])
    if not activity:
        return None
    elapsed = elapsed_ms(ctx, activity)
    if math.isnan(elapsed) or elapsed < 0:  # unparseable or in the future
        return None
    if agent["status"] == "stalled":
        since = coalesce(agent["stalled_at"], agent["last_activity_at"])
        if since and elapsed_ms(ctx, since) > STALLED_AUTO_IDLE_MS:
            return None
    return elapsed


def _no_active_tools(active_tools: str | None) -> bool:
    """``JSON.parse(active_tools ?? '[]').length === 0``; unparseable text counts as empty.

    A JSON object or number has no ``length`` (``undefined !== 0``), so it
    counts as "tools running" and suppresses the warning.
    """
    text = active_tools if active_tools is not None else "[]"
    try:
        tools = jsonio.loads(text)
    except ValueError:
        return True
    if isinstance(tools, list | str):
        return len(tools) == 0
    return False


def _has_recent_nudge(ctx: TownCtx, agent_id: str, tier: str) -> bool:
    """A ``reconciler:<tier>`` nudge for the agent in the last 60 min, at whole seconds.

    Upstream compares ``datetime(created_at) > datetime('now', '-60 minutes')``,
    which works for SQLite-native and ISO rows alike and truncates to the
    second (a nudge 59 min 59.5 s old no longer counts, §17).
    """
    cutoff = clock.sqlite_seconds(ctx.cutoff(NUDGE_DEDUP_WINDOW_MS))
    row = ctx.one(
        """
        SELECT 1 FROM agent_nudges
        WHERE agent_bead_id = ? AND source = ? AND datetime(created_at) > ?
        LIMIT 1
        """,
        (agent_id, f"reconciler:{tier}", cutoff),
    )
    return row is not None
