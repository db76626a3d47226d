"""reconcileBeads (spec §5.2): dispatch unassigned work, release stale assignees and
hooks, and settle beads whose review is over.

Read-only and clock-free like every pass (see :mod:`reportgen.town.reconciler`).
"""

from __future__ import annotations

from reportgen.town import config as town_config
from reportgen.town.context import Action, TownCtx
from reportgen.town.reconciler_common import (
    HEARTBEAT_STALE_MS,
    HELD_LABEL_LIKE,
    MAX_DISPATCH_ATTEMPTS,
    ORPHANED_SOURCE_TIMEOUT_MS,
    STALE_IN_PROGRESS_TIMEOUT_MS,
    TERMINAL,
    TRIAGE_LABEL_LIKE,
    agent_rows,
    circuit_breaker,
    clear_bead_assignee,
    coalesce,
    cooldown_elapsed,
    dispatch_agent,
    has_open_blocker,
    json_list,
    stale,
    transition_bead,
    unhook_agent,
)

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
    rows = agent_rows(
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
        rig_id = coalesce(bead["rig_id"], agent["rig_id"], "")
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
