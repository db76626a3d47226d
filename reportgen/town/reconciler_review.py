"""reconcileReviewQueue (spec §5.3): PR polling, stuck MR recovery, refinery dispatch.

Order of emission, as upstream: per-MR rules R1–R4, then code-review-disabled
rigs (fast-track and orphan cleanup), babysat PRs, R5 (pop the oldest open
MR per rig), R6 (re-dispatch idle refineries), R7 (stop refineries working
on a terminal MR). Reads only.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from reportgen.town import config as town_config
from reportgen.town.context import Action, TownCtx
from reportgen.town.reconciler_common import (
    ABANDONED_MR_TIMEOUT_MS,
    ORPHANED_PR_REVIEW_TIMEOUT_MS,
    PR_POLL_INTERVAL_MS,
    STUCK_REVIEW_TIMEOUT_MS,
    TERMINAL,
    breaker_is_open,
    cooldown_elapsed,
    dispatch_agent,
    elapsed_ms,
    has_open_blocker,
    hook_agent,
    is_one_or_true,
    js_truthy,
    json_object,
    merge_pr,
    poll_pr,
    stale,
    stop_agent,
    transition_agent,
    transition_bead,
    unhook_agent,
)

__all__ = ["reconcile_review_queue"]

#: SQL: the MR's parent bead is a convoy with ``merge_mode = 'review-and-merge'``.
_PARENT_IS_REVIEW_AND_MERGE = """
    EXISTS (
      SELECT 1 FROM beads parent
      JOIN convoy_metadata cm ON cm.bead_id = parent.bead_id
      WHERE parent.bead_id = b.parent_bead_id AND cm.merge_mode = 'review-and-merge'
    )
"""


def reconcile_review_queue(ctx: TownCtx) -> list[Action]:
    """The review-queue pass; the breaker is evaluated again but not announced (§14.8)."""
    breaker_open = breaker_is_open(ctx)
    return [
        *_per_mr_rules(ctx),
        *_code_review_disabled_rigs(ctx),
        *_babysat_fast_track(ctx),
        *_r5_pop_oldest_open_mr(ctx, breaker_open),
        *_r6_redispatch_idle_refineries(ctx, breaker_open),
        *_r7_stop_refineries_on_terminal_mr(ctx),
    ]


def _code_review(ctx: TownCtx, rig_id: str | None) -> bool:
    """``rigCodeReview``: rig override → town ``refinery.code_review`` → true (§16)."""
    return town_config.rig_code_review(ctx.conn, rig_id, ctx.config)


# ── R1–R4: per-MR rules ──────────────────────────────────────────────────


def _per_mr_rules(ctx: TownCtx) -> list[Action]:
    """R1–R4 for every open/in-progress MR with review metadata.

    An unresolved blocker (rework in flight) makes R2/R3 skip the rest of the
    MR's rules (upstream's ``continue``); R2 and R3 may both fire for one MR.
    """
    actions: list[Action] = []
    mrs = ctx.all(
        """
        SELECT b.bead_id, b.status, b.rig_id, b.updated_at, b.metadata, rm.pr_url
        FROM beads b
        JOIN review_metadata rm ON rm.bead_id = b.bead_id
        WHERE b.type = 'merge_request' AND b.status IN ('open', 'in_progress')
        """
    )
    for mr in mrs:
        meta = json_object(mr["metadata"])
        actions += _r1_poll(ctx, mr, meta)
        direct = mr["status"] == "in_progress" and not mr["pr_url"]
        if direct and stale(ctx, mr["updated_at"], STUCK_REVIEW_TIMEOUT_MS):
            if has_open_blocker(ctx, mr["bead_id"]):
                continue
            actions += _r2_stuck_review(ctx, mr["bead_id"])
        if direct and stale(ctx, mr["updated_at"], ABANDONED_MR_TIMEOUT_MS):
            if has_open_blocker(ctx, mr["bead_id"]):
                continue
            if not _any_agent_hooked(ctx, mr["bead_id"]):
                reason = "abandoned, no agent hooked"
                actions.append(transition_bead(mr["bead_id"], "in_progress", "open", reason))
        actions += _r4_orphaned_pr_review(ctx, mr, meta)
    return actions


def _r1_poll(ctx: TownCtx, mr: sqlite3.Row, meta: dict[str, Any]) -> list[Action]:
    """R1: poll an in-progress PR at most every 60 s (``≥``); merge when auto-merge is pending.

    A ``last_poll_at`` that is not a string means "never polled"; a string
    that does not parse gives ``NaN`` and ``NaN >= 60 s`` is false: never
    polled again (§17).
    """
    if mr["status"] != "in_progress" or not mr["pr_url"]:
        return []
    actions: list[Action] = []
    last_poll = meta.get("last_poll_at")
    since = elapsed_ms(ctx, last_poll) if isinstance(last_poll, str) else float("inf")
    if since >= PR_POLL_INTERVAL_MS:
        actions.append(poll_pr(mr["bead_id"], mr["pr_url"]))
    if js_truthy(meta.get("auto_merge_pending")):
        actions.append(merge_pr(mr["bead_id"], mr["pr_url"]))
    return actions


def _r2_stuck_review(ctx: TownCtx, mr_id: str) -> list[Action]:
    """R2: a direct-merge review in progress for 30 min with no working agent is reopened."""
    if _working_agent_hooked(ctx, mr_id):
        return []
    actions = [transition_bead(mr_id, "in_progress", "open", "stuck review, no working agent")]
    idle = ctx.one(
        "SELECT bead_id FROM agent_metadata "
        "WHERE current_hook_bead_id = ? AND status = 'idle' LIMIT 1",
        (mr_id,),
    )
    if idle is not None:
        actions.append(unhook_agent(idle["bead_id"], "stuck review cleanup"))
    return actions


def _r4_orphaned_pr_review(ctx: TownCtx, mr: sqlite3.Row, meta: dict[str, Any]) -> list[Action]:
    """R4: a PR review not touched for 30 min with no working refinery fails.

    Only for rigs with code review on (otherwise no refinery is expected);
    ``poll_pr`` refreshes ``updated_at``, so this fires only when polling
    stopped. A PR awaiting external approval is left alone.
    """
    if not (mr["rig_id"] and _code_review(ctx, mr["rig_id"])):
        return []
    if mr["status"] != "in_progress" or not mr["pr_url"]:
        return []
    if not stale(ctx, mr["updated_at"], ORPHANED_PR_REVIEW_TIMEOUT_MS):
        return []
    if is_one_or_true(meta.get("awaiting_approval")) or _working_agent_hooked(ctx, mr["bead_id"]):
        return []
    return [transition_bead(mr["bead_id"], mr["status"], "failed", "PR review orphaned")]


def _working_agent_hooked(ctx: TownCtx, bead_id: str) -> bool:
    row = ctx.one(
        "SELECT 1 FROM agent_metadata WHERE current_hook_bead_id = ? "
        "AND status IN ('working', 'stalled') LIMIT 1",
        (bead_id,),
    )
    return row is not None


def _any_agent_hooked(ctx: TownCtx, bead_id: str) -> bool:
    row = ctx.one("SELECT 1 FROM agent_metadata WHERE current_hook_bead_id = ? LIMIT 1", (bead_id,))
    return row is not None


# ── Code-review-disabled rigs and babysat PRs ────────────────────────────


def _rigs_with_open_mrs(ctx: TownCtx) -> list[str]:
    rows = ctx.all(
        "SELECT DISTINCT b.rig_id FROM beads b "
        "WHERE b.type = 'merge_request' AND b.status = 'open' AND b.rig_id IS NOT NULL"
    )
    return [row["rig_id"] for row in rows]


def _code_review_disabled_rigs(ctx: TownCtx) -> list[Action]:
    """Rigs without code review: PRs skip the refinery, PR-less MRs are failed.

    A PR-less MR there means the polecat failed to open the PR it should
    have: fail the MR and reopen its source (one pair per ``tracks`` row,
    as upstream's LEFT JOIN yields). Landing MRs (``created_by = 'system'``;
    NULL does not match ``!=``) and review-and-merge convoy MRs are exempt.
    """
    actions: list[Action] = []
    for rig_id in _rigs_with_open_mrs(ctx):
        if _code_review(ctx, rig_id):
            continue
        with_pr = ctx.all(
            f"""
            SELECT b.bead_id FROM beads b
            JOIN review_metadata rm ON rm.bead_id = b.bead_id
            WHERE b.type = 'merge_request' AND b.status = 'open' AND b.rig_id = ?
              AND rm.pr_url IS NOT NULL
              AND NOT {_PARENT_IS_REVIEW_AND_MERGE}
            """,
            (rig_id,),
        )
        for row in with_pr:
            reason = "refinery code review disabled — skip to poll_pr"
            actions.append(transition_bead(row["bead_id"], "open", "in_progress", reason))
        orphans = ctx.all(
            f"""
            SELECT b.bead_id, bd.depends_on_bead_id AS source_bead_id
            FROM beads b
            JOIN review_metadata rm ON rm.bead_id = b.bead_id
            LEFT JOIN bead_dependencies bd
              ON bd.bead_id = b.bead_id AND bd.dependency_type = 'tracks'
            WHERE b.type = 'merge_request' AND b.status = 'open' AND b.rig_id = ?
              AND rm.pr_url IS NULL
              AND b.created_by != 'system'
              AND NOT {_PARENT_IS_REVIEW_AND_MERGE}
            """,
            (rig_id,),
        )
        for row in orphans:
            actions += _fail_prless_mr(row["bead_id"], row["source_bead_id"])
    return actions


def _fail_prless_mr(mr_id: str, source_id: str | None) -> list[Action]:
    reason = "MR bead has no pr_url and code review is disabled — polecat failed to create PR"
    actions = [transition_bead(mr_id, "open", "failed", reason)]
    if source_id:
        reopen = "MR failed (no PR created) — reopening for retry"
        actions.append(transition_bead(source_id, "in_review", "open", reopen))
    return actions


def _babysat_fast_track(ctx: TownCtx) -> list[Action]:
    """Babysat PRs (``metadata.babysit`` = 1/true) skip the refinery in every rig.

    In a code-review-off rig such an MR gets this transition on top of the
    fast-track above (two actions, §17).
    """
    rows = ctx.all(
        """
        SELECT b.bead_id FROM beads b
        JOIN review_metadata rm ON rm.bead_id = b.bead_id
        WHERE b.type = 'merge_request' AND b.status = 'open' AND rm.pr_url IS NOT NULL
          AND json_extract(COALESCE(b.metadata, '{}'), '$.babysit') = 1
        """
    )
    reason = "babysat PR — skip refinery, fast-track to poll_pr"
    return [transition_bead(row["bead_id"], "open", "in_progress", reason) for row in rows]


# ── R5–R7: the refinery ──────────────────────────────────────────────────


def _r5_pop_oldest_open_mr(ctx: TownCtx, breaker_open: bool) -> list[Action]:
    """R5: hand each rig's oldest open MR to its refinery, one direct-merge review at a time.

    With code review off only review-and-merge convoy MRs and landing MRs
    (``created_by = 'system'``) need the refinery. Babysat MRs never do.
    Without a refinery, dispatch with an empty agent id creates one.
    """
    actions: list[Action] = []
    for rig_id in _rigs_with_open_mrs(ctx):
        if _direct_review_in_progress(ctx, rig_id):
            continue
        refinery = ctx.one(
            """
            SELECT am.bead_id, am.status, am.current_hook_bead_id
            FROM agent_metadata am LEFT JOIN beads ab ON ab.bead_id = am.bead_id
            WHERE am.role = 'refinery' AND ab.rig_id = ?
            LIMIT 1
            """,
            (rig_id,),
        )
        oldest = _oldest_open_mr(ctx, rig_id)
        if oldest is None or ctx.draining or breaker_open:
            continue
        actions += _pop_for_refinery(oldest, rig_id, refinery)
    return actions


def _direct_review_in_progress(ctx: TownCtx, rig_id: str) -> bool:
    """The rig already has a direct-merge (PR-less) MR in progress: the refinery is busy."""
    row = ctx.one(
        """
        SELECT count(*) AS cnt FROM beads b
        JOIN review_metadata rm ON rm.bead_id = b.bead_id
        WHERE b.type = 'merge_request' AND b.status = 'in_progress' AND b.rig_id = ?
          AND rm.pr_url IS NULL
        """,
        (rig_id,),
    )
    return row is not None and int(row["cnt"]) > 0


def _oldest_open_mr(ctx: TownCtx, rig_id: str) -> str | None:
    """The rig's oldest open MR that needs the refinery (not babysat; filtered if review off)."""
    extra = ""
    if not _code_review(ctx, rig_id):
        extra = f"AND ({_PARENT_IS_REVIEW_AND_MERGE} OR b.created_by = 'system')"
    row = ctx.one(
        f"""
        SELECT b.bead_id FROM beads b
        WHERE b.type = 'merge_request' AND b.status = 'open' AND b.rig_id = ?
          AND json_extract(COALESCE(b.metadata, '{{}}'), '$.babysit') IS NOT 1
          {extra}
        ORDER BY b.created_at ASC
        LIMIT 1
        """,
        (rig_id,),
    )
    return None if row is None else str(row["bead_id"])


def _pop_for_refinery(mr_id: str, rig_id: str, refinery: sqlite3.Row | None) -> list[Action]:
    if refinery is None:
        reason = "popped for review (creating refinery)"
        return [
            transition_bead(mr_id, "open", "in_progress", reason),
            dispatch_agent("", mr_id, rig_id),
        ]
    if refinery["status"] != "idle" or refinery["current_hook_bead_id"]:
        return []
    return [
        transition_bead(mr_id, "open", "in_progress", "popped for review"),
        hook_agent(refinery["bead_id"], mr_id),
        dispatch_agent(refinery["bead_id"], mr_id, rig_id),
    ]


def _r6_redispatch_idle_refineries(ctx: TownCtx, breaker_open: bool) -> list[Action]:
    """R6: an idle refinery still hooked to an in-progress MR is dispatched again.

    Order as upstream: awaiting approval → skip; draining → skip; per-rig
    max attempts → fail the MR and unhook; cooldown; breaker.
    """
    actions: list[Action] = []
    refineries = ctx.all(
        """
        SELECT am.bead_id, am.current_hook_bead_id, ab.rig_id
        FROM agent_metadata am LEFT JOIN beads ab ON ab.bead_id = am.bead_id
        WHERE am.role = 'refinery' AND am.status = 'idle' AND am.current_hook_bead_id IS NOT NULL
        """
    )
    for ref in refineries:
        hook = ref["current_hook_bead_id"]
        mr = ctx.one(
            "SELECT status, type, rig_id, dispatch_attempts, last_dispatch_attempt_at, metadata "
            "FROM beads WHERE bead_id = ?",
            (hook,),
        )
        if not hook or mr is None:
            continue
        if mr["type"] != "merge_request" or mr["status"] != "in_progress":
            continue
        if is_one_or_true(json_object(mr["metadata"]).get("awaiting_approval")) or ctx.draining:
            continue
        rig_id = mr["rig_id"] if mr["rig_id"] is not None else ref["rig_id"]
        attempts = mr["dispatch_attempts"]
        if attempts >= town_config.rig_max_dispatch_attempts(ctx.conn, rig_id, ctx.config):
            reason = f"refinery max dispatch attempts exceeded ({attempts})"
            actions += [
                transition_bead(hook, None, "failed", reason),
                unhook_agent(ref["bead_id"], "max dispatch attempts"),
            ]
            continue
        if not cooldown_elapsed(ctx, attempts, mr["last_dispatch_attempt_at"]) or breaker_open:
            continue
        actions.append(dispatch_agent(ref["bead_id"], hook, rig_id if rig_id is not None else ""))
    return actions


def _r7_stop_refineries_on_terminal_mr(ctx: TownCtx) -> list[Action]:
    """R7: a refinery working on an MR that is already closed/failed is stopped and idled.

    Catches auto-merge closing the MR while the refinery still runs (it
    could otherwise comment on a merged PR).
    """
    actions: list[Action] = []
    refineries = ctx.all(
        """
        SELECT bead_id, status, current_hook_bead_id FROM agent_metadata
        WHERE role = 'refinery' AND status IN ('working', 'stalled')
          AND current_hook_bead_id IS NOT NULL
        """
    )
    for ref in refineries:
        hook = ref["current_hook_bead_id"]
        mr = ctx.one("SELECT status FROM beads WHERE bead_id = ?", (hook,)) if hook else None
        if mr is None or mr["status"] not in TERMINAL:
            continue
        status = mr["status"]
        actions += [
            stop_agent(ref["bead_id"], f"MR bead {hook} is {status}"),
            unhook_agent(ref["bead_id"], f"MR bead {status} — cleanup"),
            transition_agent(ref["bead_id"], ref["status"], "idle", f"MR bead {status} — cleanup"),
        ]
    return actions
