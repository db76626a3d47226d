"""The reconcile pass (spec §5): read the town, return the actions that fix it.

``reconcile(ctx)`` concatenates seven passes in upstream's order. Every pass
only *reads* ``ctx.conn`` and never the wall clock: "now" is ``ctx.now``,
SQL cutoffs are computed from it and passed as parameters, so a replay of a
recorded tick decides exactly what upstream decided.

Upstream's queries mostly have no ORDER BY; ours are the same queries, so
actions of one rule come in SQLite row order. Compare the actions of one
pass as a multiset (spec §17).

The review-queue pass lives in :mod:`reportgen.town.reconciler_review`, the
wasteland pass in :mod:`reportgen.town.reconciler_wasteland`, shared
constants and action builders in :mod:`reportgen.town.reconciler_common`.
"""

from __future__ import annotations

import math
import sqlite3
from collections.abc import Callable
from typing import Any

from reportgen import jsonio
from reportgen.town import clock
from reportgen.town import config as town_config
from reportgen.town.context import Action, TownCtx
from reportgen.town.reconciler_common import (
    AGENT_GC_RETENTION_MS,
    DISPATCH_ATTEMPT_RESET_WINDOW_MS,
    GUPP_ESCALATE_MS,
    GUPP_FORCE_STOP_MS,
    GUPP_WARN_MS,
    HEARTBEAT_STALE_MS,
    HELD_LABEL_LIKE,
    LANDING_MR_COOLDOWN_BASE_MS,
    LANDING_MR_COOLDOWN_MAX_MS,
    MAX_DISPATCH_ATTEMPTS,
    MAX_LANDING_MR_ATTEMPTS,
    NUDGE_DEDUP_WINDOW_MS,
    ORPHANED_SOURCE_TIMEOUT_MS,
    STALE_IN_PROGRESS_TIMEOUT_MS,
    STALLED_AUTO_IDLE_MS,
    TERMINAL,
    TRIAGE_LABEL_LIKE,
    circuit_breaker,
    clear_agent_checkpoint,
    clear_bead_assignee,
    close_convoy,
    cooldown_elapsed,
    create_landing_mr,
    create_triage_request,
    delete_agent,
    dispatch_agent,
    elapsed_ms,
    emit_event,
    fail_convoy,
    has_open_blocker,
    is_one_or_true,
    js_truthy,
    json_list,
    json_object,
    reset_agent_dispatch_attempts,
    send_nudge,
    set_convoy_ready_to_land,
    stale,
    stop_agent,
    transition_agent,
    transition_bead,
    unhook_agent,
    update_convoy_progress,
)
from reportgen.town.reconciler_review import reconcile_review_queue
from reportgen.town.reconciler_wasteland import reconcile_wasteland_claims

__all__ = [
    "PASSES",
    "reconcile",
    "reconcile_agents",
    "reconcile_beads",
    "reconcile_by_pass",
    "reconcile_convoys",
    "reconcile_gc",
    "reconcile_gupp",
    "reconcile_review_queue",
    "reconcile_wasteland_claims",
]

#: Agent columns every agent query reads, with the agent bead's rig (spec §2.2).
_AGENT_SELECT = """
    SELECT am.bead_id, am.role, am.status, am.current_hook_bead_id, am.dispatch_attempts,
           am.last_activity_at, am.last_event_type, am.last_event_at, am.active_tools,
           am.stalled_at, b.rig_id
    FROM agent_metadata am
    LEFT JOIN beads b ON b.bead_id = am.bead_id
"""


def _agents(ctx: TownCtx, where: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
    return ctx.all(f"{_AGENT_SELECT} WHERE {where}", params)


# ════════════════════════════════════════════════════════════════════════
# reconcileAgents (spec §5.1)
# ════════════════════════════════════════════════════════════════════════


def reconcile_agents(ctx: TownCtx) -> list[Action]:
    """A1–A4: reap agents whose container is gone and hooks that point nowhere (§5.1)."""
    return [
        *_a1_working_agents(ctx),
        *_a2_long_stalled(ctx),
        *_a3_reset_dispatch_attempts(ctx),
        *_a4_idle_hooked(ctx),
    ]


def _a1_working_agents(ctx: TownCtx) -> list[Action]:
    """A1: a working agent without a fresh heartbeat (or without a hook) goes idle.

    Skipped while draining: the heartbeat reporter is stopped during a drain,
    so a frozen ``last_activity_at`` does not mean the agent died (§4.1).
    """
    actions: list[Action] = []
    for agent in _agents(ctx, "am.status = 'working'"):
        if agent["role"] == "mayor" or ctx.draining:
            continue
        agent_id = agent["bead_id"]
        if not agent["last_activity_at"]:
            reason = "no heartbeat received since dispatch"
        elif stale(ctx, agent["last_activity_at"], HEARTBEAT_STALE_MS):
            reason = "heartbeat lost (3 missed cycles)"
        elif not agent["current_hook_bead_id"]:
            reason = "working agent has no hook (gt_done already completed)"
        else:
            continue
        actions.append(transition_agent(agent_id, "working", "idle", reason))
    return actions


def _a2_long_stalled(ctx: TownCtx) -> list[Action]:
    """A2: an agent stalled for more than 2 h 30 min goes idle and is unhooked.

    Measured from ``stalled_at`` (heartbeats keep arriving after a force
    stop). A null ``stalled_at`` is skipped; an unparseable one makes the
    JavaScript difference ``NaN`` and ``NaN <= limit`` is false, so it fires.
    """
    if ctx.draining:
        return []
    actions: list[Action] = []
    reason = "stalled_timeout (exceeded 2h 30min)"
    for agent in _agents(ctx, "am.status = 'stalled'"):
        if not agent["stalled_at"]:
            continue
        if elapsed_ms(ctx, agent["stalled_at"]) <= STALLED_AUTO_IDLE_MS:
            continue
        actions.append(transition_agent(agent["bead_id"], "stalled", "idle", reason))
        if agent["current_hook_bead_id"]:
            actions.append(unhook_agent(agent["bead_id"], reason))
    return actions


def _a3_reset_dispatch_attempts(ctx: TownCtx) -> list[Action]:
    """A3: agents at the attempt cap, inactive for 30 min, get their counter reset.

    SQL string comparison, so a null ``last_activity_at`` never matches. Not
    gated by draining.
    """
    rows = _agents(
        ctx,
        "am.dispatch_attempts >= ? AND am.last_activity_at < ?",
        (MAX_DISPATCH_ATTEMPTS, ctx.cutoff(DISPATCH_ATTEMPT_RESET_WINDOW_MS)),
    )
    return [reset_agent_dispatch_attempts(agent["bead_id"]) for agent in rows]


def _a4_idle_hooked(ctx: TownCtx) -> list[Action]:
    """A4: an idle agent's hook must point at live work, else it is released.

    Missing or terminal bead → unhook + clear checkpoint. Live bead (open or
    in_progress) with a stale heartbeat → unhook and reopen the bead; a
    fresh heartbeat (≤ 90 s, in-code check) proves a phantom-failed dispatch
    is in fact alive, so it is left alone.
    """
    actions: list[Action] = []
    for agent in _agents(ctx, "am.status = 'idle' AND am.current_hook_bead_id IS NOT NULL"):
        agent_id, hook = agent["bead_id"], agent["current_hook_bead_id"]
        if not hook:
            continue
        bead = ctx.one("SELECT status FROM beads WHERE bead_id = ?", (hook,))
        if bead is None:
            actions += [
                unhook_agent(agent_id, "hooked bead does not exist"),
                clear_agent_checkpoint(agent_id),
            ]
        elif bead["status"] in TERMINAL:
            actions += [
                unhook_agent(agent_id, "hooked bead is terminal"),
                clear_agent_checkpoint(agent_id),
            ]
        elif bead["status"] in ("in_progress", "open"):
            if not stale(ctx, agent["last_activity_at"], HEARTBEAT_STALE_MS):
                continue
            actions += [
                unhook_agent(agent_id, "idle agent hooked to live bead (dispatch failed)"),
                transition_bead(
                    hook,
                    bead["status"],
                    "open",
                    "agent went idle without completing work — reset for re-dispatch",
                ),
            ]
    return actions


# ════════════════════════════════════════════════════════════════════════
# reconcileBeads (spec §5.2)
# ════════════════════════════════════════════════════════════════════════


def reconcile_beads(ctx: TownCtx) -> list[Action]:
    """Rules 1, 1b, 2, 3, 4, then the breaker's ``notify_mayor`` once per pass (§5.2, §14.8)."""
    breaker = circuit_breaker(ctx)
    breaker_open = bool(breaker)
    return [
        *_rule1_dispatch_unassigned(ctx, breaker_open),
        *_rule1b_stale_assignee(ctx),
        *_rule2_idle_hooked(ctx, breaker_open),
        *_rule3_stale_in_progress(ctx),
        *_rule4_in_review_all_terminal(ctx),
        *breaker,
    ]


_RULE1_SQL = """
    SELECT b.bead_id, b.rig_id, b.dispatch_attempts, b.last_dispatch_attempt_at
    FROM beads b
    WHERE b.type = 'issue'
      AND b.status = 'open'
      AND b.assignee_agent_bead_id IS NULL
      AND b.rig_id IS NOT NULL
      AND b.labels NOT LIKE ?
      AND b.labels NOT LIKE ?
      AND NOT EXISTS (
        SELECT 1 FROM bead_dependencies bd
        JOIN beads blocker ON blocker.bead_id = bd.depends_on_bead_id
        WHERE bd.bead_id = b.bead_id
          AND bd.dependency_type = 'blocks'
          AND blocker.status NOT IN ('closed', 'failed')
      )
      AND NOT EXISTS (
        SELECT 1 FROM bead_dependencies bd2
        JOIN convoy_metadata cm ON cm.bead_id = bd2.depends_on_bead_id
        WHERE bd2.bead_id = b.bead_id
          AND bd2.dependency_type = 'tracks'
          AND cm.staged = 1
      )
"""


def _rule1_dispatch_unassigned(ctx: TownCtx, breaker_open: bool) -> list[Action]:
    """Rule 1: dispatch open, unassigned, unblocked, unstaged issue beads.

    Order matters (§14.7): draining is checked before the max-attempts
    failure, then cooldown, then the breaker. The agent is resolved at
    apply time (``agent_id = ''``).
    """
    actions: list[Action] = []
    for bead in ctx.all(_RULE1_SQL, (TRIAGE_LABEL_LIKE, HELD_LABEL_LIKE)):
        bead_id, rig_id, attempts = bead["bead_id"], bead["rig_id"], bead["dispatch_attempts"]
        if not rig_id or ctx.draining:
            continue
        if attempts >= town_config.rig_max_dispatch_attempts(ctx.conn, rig_id, ctx.config):
            reason = f"max dispatch attempts exceeded ({attempts})"
            actions.append(transition_bead(bead_id, "open", "failed", reason))
            continue
        if not cooldown_elapsed(ctx, attempts, bead["last_dispatch_attempt_at"]):
            continue
        if breaker_open:
            continue
        actions.append(dispatch_agent("", bead_id, rig_id))
    return actions


def _rule1b_stale_assignee(ctx: TownCtx) -> list[Action]:
    """Rule 1b: an open issue assigned to an agent that is not hooked to it is released.

    System-assigned beads and triage requests (which can never be hooked)
    are left alone, else their assignee would be cleared every tick.
    """
    rows = ctx.all(
        """
        SELECT b.bead_id, b.assignee_agent_bead_id, b.labels
        FROM beads b
        WHERE b.type = 'issue'
          AND b.status = 'open'
          AND b.assignee_agent_bead_id IS NOT NULL
          AND b.rig_id IS NOT NULL
          AND NOT EXISTS (
            SELECT 1 FROM agent_metadata am
            WHERE am.bead_id = b.assignee_agent_bead_id
              AND am.current_hook_bead_id = b.bead_id
          )
        """
    )
    return [
        clear_bead_assignee(bead["bead_id"])
        for bead in rows
        if bead["assignee_agent_bead_id"] != "system"
        and "gt:triage-request" not in json_list(bead["labels"])
    ]


def _rule2_idle_hooked(ctx: TownCtx, breaker_open: bool) -> list[Action]:
    """Rule 2: an idle non-refinery agent hooked to an open bead is (re)dispatched.

    Checks, in upstream's order (§14.7): max attempts (constant 5, fails the
    bead and unhooks), cooldown, blockers, draining, breaker.
    """
    actions: list[Action] = []
    rows = _agents(
        ctx,
        "am.status = 'idle' AND am.current_hook_bead_id IS NOT NULL AND am.role != 'refinery'",
    )
    for agent in rows:
        hook = agent["current_hook_bead_id"]
        if not hook:
            continue
        bead = ctx.one(
            "SELECT status, rig_id, dispatch_attempts, last_dispatch_attempt_at "
            "FROM beads WHERE bead_id = ?",
            (hook,),
        )
        if bead is None or bead["status"] != "open":
            continue
        attempts = bead["dispatch_attempts"]
        if attempts >= MAX_DISPATCH_ATTEMPTS:
            reason = f"max dispatch attempts exceeded ({attempts})"
            actions += [
                transition_bead(hook, None, "failed", reason),
                unhook_agent(agent["bead_id"], "max dispatch attempts"),
            ]
            continue
        if not cooldown_elapsed(ctx, attempts, bead["last_dispatch_attempt_at"]):
            continue
        if has_open_blocker(ctx, hook) or ctx.draining or breaker_open:
            continue
        rig_id = _coalesce(bead["rig_id"], agent["rig_id"], "")
        actions.append(dispatch_agent(agent["bead_id"], hook, rig_id))
    return actions


def _rule3_stale_in_progress(ctx: TownCtx) -> list[Action]:
    """Rule 3: an issue in progress for 5 min with no live agent is reopened (or failed).

    "Live" = hooked and working/stalled, or a heartbeat newer than the SQL
    cutoff ``now − 90 s`` (strict ``>``: at exactly 90 s the agent counts as
    gone, unlike A4's in-code check, §17).
    """
    actions: list[Action] = []
    rows = ctx.all(
        "SELECT bead_id, updated_at, dispatch_attempts FROM beads "
        "WHERE type = 'issue' AND status = 'in_progress'"
    )
    for bead in rows:
        bead_id = bead["bead_id"]
        if not stale(ctx, bead["updated_at"], STALE_IN_PROGRESS_TIMEOUT_MS):
            continue
        live = ctx.one(
            """
            SELECT 1 FROM agent_metadata
            WHERE current_hook_bead_id = ?
              AND (status IN ('working', 'stalled') OR last_activity_at > ?)
            LIMIT 1
            """,
            (bead_id, ctx.cutoff(HEARTBEAT_STALE_MS)),
        )
        if live is not None:
            continue
        attempts = bead["dispatch_attempts"]
        if attempts >= MAX_DISPATCH_ATTEMPTS:
            reason = f"agent lost, max dispatch attempts exhausted ({attempts})"
            actions.append(transition_bead(bead_id, "in_progress", "failed", reason))
        else:
            actions.append(transition_bead(bead_id, "in_progress", "open", "agent lost"))
        actions.append(clear_bead_assignee(bead_id))
    return actions


def _rule4_in_review_all_terminal(ctx: TownCtx) -> list[Action]:
    """Rule 4: an issue in review for 5 min whose MRs are all terminal is settled.

    Any merged (closed) MR closes it (safety net for a lost merge event);
    all failed reopens it for another attempt. No MR at all → left alone.
    """
    actions: list[Action] = []
    rows = ctx.all(
        "SELECT bead_id, updated_at FROM beads WHERE type = 'issue' AND status = 'in_review'"
    )
    for bead in rows:
        bead_id = bead["bead_id"]
        if not stale(ctx, bead["updated_at"], ORPHANED_SOURCE_TIMEOUT_MS):
            continue
        statuses = [
            r["status"]
            for r in ctx.all(
                """
                SELECT mr.status FROM bead_dependencies bd
                JOIN beads mr ON mr.bead_id = bd.bead_id
                WHERE bd.depends_on_bead_id = ? AND bd.dependency_type = 'tracks'
                  AND mr.type = 'merge_request'
                """,
                (bead_id,),
            )
        ]
        if not statuses or any(s not in TERMINAL for s in statuses):
            continue
        if "closed" in statuses:
            reason = "MR merged (reconciler safety net)"
            actions.append(transition_bead(bead_id, "in_review", "closed", reason))
        else:
            actions += [
                transition_bead(bead_id, "in_review", "open", "all reviews failed"),
                clear_bead_assignee(bead_id),
            ]
    return actions


# ════════════════════════════════════════════════════════════════════════
# reconcileConvoys (spec §5.4)
# ════════════════════════════════════════════════════════════════════════


def reconcile_convoys(ctx: TownCtx) -> list[Action]:
    """Track convoy progress and finish convoys whose tracked issues are all done (§5.4)."""
    actions: list[Action] = []
    convoys = ctx.all(
        """
        SELECT b.bead_id, b.metadata, cm.closed_beads, cm.feature_branch, cm.merge_mode
        FROM beads b
        JOIN convoy_metadata cm ON cm.bead_id = b.bead_id
        WHERE b.type = 'convoy' AND b.status = 'open'
        """
    )
    for convoy in convoys:
        actions += _reconcile_one_convoy(ctx, convoy)
    return actions


def _reconcile_one_convoy(ctx: TownCtx, convoy: sqlite3.Row) -> list[Action]:
    """Progress update (always when it changed), then landing or closing when all done.

    Only ``merge_mode = 'review-then-land'`` (exactly; null does not count)
    with a feature branch lands through a landing MR; anything else closes.
    """
    convoy_id = convoy["bead_id"]
    progress = ctx.one(
        """
        SELECT count(CASE WHEN t.status IN ('closed', 'failed') THEN 1 END) AS closed_count,
               count(*) AS total_count
        FROM bead_dependencies bd
        JOIN beads t ON t.bead_id = bd.bead_id
        WHERE bd.depends_on_bead_id = ? AND bd.dependency_type = 'tracks' AND t.type = 'issue'
        """,
        (convoy_id,),
    )
    closed_count = int(progress["closed_count"]) if progress else 0
    total_count = int(progress["total_count"]) if progress else 0
    in_flight = _convoy_has_in_flight_mr(ctx, convoy_id)

    actions: list[Action] = []
    if closed_count != convoy["closed_beads"]:
        actions.append(update_convoy_progress(convoy_id, closed_count))
    if not (closed_count >= total_count and total_count > 0 and not in_flight):
        return actions
    if convoy["merge_mode"] == "review-then-land" and convoy["feature_branch"]:
        return actions + _land_convoy(ctx, convoy)
    return [*actions, close_convoy(convoy_id)]


def _convoy_has_in_flight_mr(ctx: TownCtx, convoy_id: str) -> bool:
    """An open/in-progress MR tracks one of the issues the convoy tracks."""
    row = ctx.one(
        """
        SELECT count(*) AS cnt
        FROM bead_dependencies track_dep
        JOIN bead_dependencies mr_dep ON mr_dep.depends_on_bead_id = track_dep.bead_id
        JOIN beads mr ON mr.bead_id = mr_dep.bead_id
        WHERE track_dep.depends_on_bead_id = ?
          AND track_dep.dependency_type = 'tracks'
          AND mr_dep.dependency_type = 'tracks'
          AND mr.type = 'merge_request'
          AND mr.status IN ('open', 'in_progress')
        """,
        (convoy_id,),
    )
    return row is not None and int(row["cnt"]) > 0


def _land_convoy(ctx: TownCtx, convoy: sqlite3.Row) -> list[Action]:
    """Review-then-land: mark ready, then drive one landing MR at a time (§5.4 step 7).

    A merged landing MR closes the convoy; an active one is waited for; a
    failed one awaiting external approval suppresses a respawn; after 5
    attempts the convoy fails; between attempts the cooldown is
    ``min(2^n × 30 s, 30 min)`` (an exactly elapsed cooldown proceeds).
    """
    convoy_id = convoy["bead_id"]
    meta = json_object(convoy["metadata"])
    if not js_truthy(meta.get("ready_to_land")):
        return [set_convoy_ready_to_land(convoy_id)]

    attempts = _landing_attempts(meta)
    landing = ctx.all(
        """
        SELECT mr.status, mr.metadata FROM bead_dependencies bd
        JOIN beads mr ON mr.bead_id = bd.bead_id
        WHERE bd.depends_on_bead_id = ? AND bd.dependency_type = 'tracks'
          AND mr.type = 'merge_request'
        """,
        (convoy_id,),
    )
    statuses = [mr["status"] for mr in landing]
    if "closed" in statuses:
        return [close_convoy(convoy_id)]
    if "open" in statuses or "in_progress" in statuses:
        return []
    if any(
        mr["status"] == "failed"
        and is_one_or_true(json_object(mr["metadata"]).get("awaiting_approval"))
        for mr in landing
    ):
        data = {"convoyId": convoy_id, "suppressedAttempt": attempts + 1}
        return [emit_event("reconciler.respawn_suppressed", data)]
    if attempts >= MAX_LANDING_MR_ATTEMPTS:
        reason = f"Landing MR creation failed after {MAX_LANDING_MR_ATTEMPTS} attempts"
        return [fail_convoy(convoy_id, reason)]
    last_at = meta.get("last_landing_mr_attempt_at")
    if attempts > 0 and isinstance(last_at, str) and last_at:
        cooldown = min(2**attempts * LANDING_MR_COOLDOWN_BASE_MS, LANDING_MR_COOLDOWN_MAX_MS)
        if elapsed_ms(ctx, last_at) < cooldown:
            return []
    return _create_landing_mr(ctx, convoy)


def _landing_attempts(meta: dict[str, Any]) -> int | float:
    """``landing_mr_attempts`` when it is a JSON number, else 0 (§17)."""
    value = meta.get("landing_mr_attempts")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return 0


def _create_landing_mr(ctx: TownCtx, convoy: sqlite3.Row) -> list[Action]:
    """``create_landing_mr`` on the first rig among the tracked beads (none → nothing)."""
    row = ctx.one(
        """
        SELECT DISTINCT t.rig_id AS rig_id FROM bead_dependencies bd
        JOIN beads t ON t.bead_id = bd.bead_id
        WHERE bd.depends_on_bead_id = ? AND bd.dependency_type = 'tracks'
          AND t.rig_id IS NOT NULL
        LIMIT 1
        """,
        (convoy["bead_id"],),
    )
    if row is None:
        return []
    rig = ctx.one("SELECT default_branch FROM rigs WHERE id = ?", (row["rig_id"],))
    target = _coalesce(rig["default_branch"] if rig else None, "main")
    return [create_landing_mr(convoy["bead_id"], row["rig_id"], convoy["feature_branch"], target)]


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
    rows = _agents(ctx, "am.status IN ('working', 'stalled') AND am.role != 'mayor'")
    for agent in rows:
        actions += _gupp_for_agent(ctx, agent)
    return actions


def _gupp_for_agent(ctx: TownCtx, agent: sqlite3.Row) -> list[Action]:
    """One agent's GUPP tier; stalled agents A2 will idle this pass are skipped (§14.1)."""
    agent_id = agent["bead_id"]
    activity = _coalesce(agent["last_event_at"], agent["last_activity_at"])
    if not activity:
        return []
    elapsed = elapsed_ms(ctx, activity)
    if math.isnan(elapsed) or elapsed < 0:  # unparseable or in the future
        return []
    if agent["status"] == "stalled":
        since = _coalesce(agent["stalled_at"], agent["last_activity_at"])
        if since and elapsed_ms(ctx, since) > STALLED_AUTO_IDLE_MS:
            return []
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


# ════════════════════════════════════════════════════════════════════════
# reconcileGC (spec §5.6)
# ════════════════════════════════════════════════════════════════════════


def reconcile_gc(ctx: TownCtx) -> list[Action]:
    """Delete polecats/refineries idle or dead, unhooked, and inactive for over 24 h (§5.6)."""
    rows = _agents(
        ctx,
        "am.status IN ('idle', 'dead') AND am.role IN ('polecat', 'refinery') "
        "AND am.current_hook_bead_id IS NULL",
    )
    return [
        delete_agent(agent["bead_id"], "GC: idle > 24h")
        for agent in rows
        if stale(ctx, agent["last_activity_at"], AGENT_GC_RETENTION_MS)
    ]


# ════════════════════════════════════════════════════════════════════════
# reconcile
# ════════════════════════════════════════════════════════════════════════

#: The seven passes in upstream's order (spec §5). Names are upstream's.
PASSES: tuple[tuple[str, Callable[[TownCtx], list[Action]]], ...] = (
    ("reconcileAgents", reconcile_agents),
    ("reconcileBeads", reconcile_beads),
    ("reconcileReviewQueue", reconcile_review_queue),
    ("reconcileConvoys", reconcile_convoys),
    ("reconcileGUPP", reconcile_gupp),
    ("reconcileGC", reconcile_gc),
    ("reconcileWastelandClaims", reconcile_wasteland_claims),
)


def reconcile_by_pass(ctx: TownCtx) -> list[tuple[str, list[Action]]]:
    """Each pass's actions, labelled with the pass name, in pass order."""
    return [(name, fn(ctx)) for name, fn in PASSES]


def reconcile(ctx: TownCtx) -> list[Action]:
    """All actions of one reconcile, in emission order (spec §5). Reads only."""
    return [action for _, actions in reconcile_by_pass(ctx) for action in actions]


def _coalesce(*values: Any) -> Any:
    """JavaScript ``a ?? b ?? c``: the first value that is not null."""
    for value in values:
        if value is not None:
            return value
    return None
