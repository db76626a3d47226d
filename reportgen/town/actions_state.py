"""The actions that only change the town's state: beads, agents and convoys (spec §6).

Each handler applies one action at ``ctx.now``; errors upstream catches are
logged into the action's record, the others propagate (see
:mod:`reportgen.town.actions`).
"""

from __future__ import annotations

from collections.abc import Callable

from reportgen.town import agent_ops, bead_ops, review_queue
from reportgen.town.actions_common import LOG, Apply
from reportgen.town.context import Action
from reportgen.town.effects import SideEffect

# --------------------------------------------------------------------------- bead mutations


def _transition_bead(a: Apply, action: Action) -> None:
    to = action["to"]
    failure = (
        {"code": "reconciler", "message": action["reason"], "source": "scheduler"}
        if to == "failed"
        else None
    )
    try:
        bead_ops.update_bead_status(a.ctx, action["bead_id"], to, action["actor"], failure)
    except Exception as exc:
        a.log("warn", f"{LOG} transition_bead failed: bead={action['bead_id']} to={to} {exc}")
    return None


def _assign_bead(a: Apply, action: Action) -> None:
    a.ctx.run(
        "UPDATE beads SET assignee_agent_bead_id = ?, updated_at = ? WHERE bead_id = ?",
        (action["agent_id"], a.ctx.now, action["bead_id"]),
    )
    return None


def _clear_bead_assignee(a: Apply, action: Action) -> None:
    ctx = a.ctx
    bead_id = action["bead_id"]
    ctx.run(
        "UPDATE beads SET assignee_agent_bead_id = NULL, updated_at = ? WHERE bead_id = ?",
        (ctx.now, bead_id),
    )
    for agent_id in bead_ops.agents_hooked_to(ctx, bead_id):
        agent_ops.unhook_bead(ctx, agent_id)
    return None


def _create_mr_bead(a: Apply, action: Action) -> None:
    # Upstream passes no target branch: submitToReviewQueue derives it.
    review_queue.submit_to_review_queue(
        a.ctx,
        agent_id=action["agent_id"],
        bead_id=action["source_bead_id"],
        rig_id=action["rig_id"],
        branch=action["branch"],
        pr_url=action.get("pr_url"),
        summary=action.get("summary"),
    )
    return None


def _create_landing_mr(a: Apply, action: Action) -> None:
    ctx = a.ctx
    ctx.run(
        """UPDATE beads
           SET metadata = json_set(COALESCE(metadata, '{}'),
                 '$.landing_mr_attempts',
                 COALESCE(json_extract(metadata, '$.landing_mr_attempts'), 0) + 1,
                 '$.last_landing_mr_attempt_at', ?),
               updated_at = ?
           WHERE bead_id = ?""",
        (ctx.now, ctx.now, action["convoy_id"]),
    )
    review_queue.submit_to_review_queue(
        ctx,
        agent_id="system",
        bead_id=action["convoy_id"],
        rig_id=action["rig_id"],
        branch=action["feature_branch"],
        default_branch=action["target_branch"],
    )
    return None


def _close_sibling_mrs(a: Apply, action: Action) -> None:
    rows = a.ctx.all(
        """SELECT bead_id FROM beads
           WHERE type = 'merge_request' AND bead_id != ? AND status NOT IN ('closed', 'failed')
             AND bead_id IN (SELECT dep.bead_id FROM bead_dependencies dep
                             WHERE dep.depends_on_bead_id = ? AND dep.dependency_type = 'tracks')""",
        (action["exclude_mr_id"], action["source_bead_id"]),
    )
    for row in rows:
        bead_ops.update_bead_status(a.ctx, row[0], "closed", "system")
    return None


def _set_review_pr_url(a: Apply, action: Action) -> None:
    if not review_queue.set_review_pr_url(a.ctx, action["bead_id"], action["pr_url"]):
        a.log(
            "warn", f"[review-queue] setReviewPrUrl: rejecting non-HTTPS pr_url: {action['pr_url']}"
        )
    return None


# --------------------------------------------------------------------------- agent mutations


def _transition_agent(a: Apply, action: Action) -> None:
    try:
        agent_ops.update_agent_status(a.ctx, action["agent_id"], action["to"])
    except Exception as exc:
        a.log(
            "warn",
            f"{LOG} transition_agent failed: agent={action['agent_id']} to={action['to']} {exc}",
        )
    return None


def _reset_agent_dispatch_attempts(a: Apply, action: Action) -> None:
    ctx = a.ctx
    agent_id = action["agent_id"]
    row = ctx.one("SELECT current_hook_bead_id FROM agent_metadata WHERE bead_id = ?", (agent_id,))
    hooked = row[0] if row is not None else None
    ctx.run("UPDATE agent_metadata SET dispatch_attempts = 0 WHERE bead_id = ?", (agent_id,))
    if hooked:
        bead = ctx.one("SELECT status, type FROM beads WHERE bead_id = ?", (hooked,))
        status = bead[0] if bead is not None else None
        bead_type = bead[1] if bead is not None else None
        ctx.run(
            """UPDATE beads SET dispatch_attempts = 0, last_dispatch_attempt_at = NULL
               WHERE bead_id = ?""",
            (hooked,),
        )
        if status == "failed":
            # The terminal guard turns this "reopen" into a no-op (quirk 2).
            bead_ops.update_bead_status(ctx, hooked, "open", "system")
        if bead_type == "merge_request":
            ctx.run("UPDATE review_metadata SET retry_count = 0 WHERE bead_id = ?", (hooked,))
    return None


def _hook_agent(a: Apply, action: Action) -> None:
    try:
        agent_ops.hook_bead(a.ctx, action["agent_id"], action["bead_id"])
    except Exception as exc:
        a.log(
            "warn",
            f"{LOG} hook_agent failed: agent={action['agent_id']} bead={action['bead_id']} {exc}",
        )
    return None


def _unhook_agent(a: Apply, action: Action) -> None:
    agent_ops.unhook_bead(a.ctx, action["agent_id"])
    return None


def _clear_agent_checkpoint(a: Apply, action: Action) -> None:
    a.ctx.run(
        "UPDATE agent_metadata SET checkpoint = NULL WHERE bead_id = ?", (action["agent_id"],)
    )
    return None


def _delete_agent(a: Apply, action: Action) -> None:
    try:
        agent_ops.delete_agent(a.ctx, action["agent_id"])
    except Exception as exc:
        a.log("warn", f"{LOG} delete_agent failed: agent={action['agent_id']} {exc}")
    return None


# --------------------------------------------------------------------------- convoy mutations


def _update_convoy_progress(a: Apply, action: Action) -> None:
    a.ctx.run(
        "UPDATE convoy_metadata SET closed_beads = ? WHERE bead_id = ?",
        (action["closed_beads"], action["convoy_id"]),
    )
    return None


def _set_convoy_ready_to_land(a: Apply, action: Action) -> None:
    a.ctx.run(
        """UPDATE beads SET metadata = json_set(COALESCE(metadata, '{}'), '$.ready_to_land', 1),
               updated_at = ?
           WHERE bead_id = ?""",
        (a.ctx.now, action["convoy_id"]),
    )
    return None


def _close_convoy(a: Apply, action: Action) -> None:
    ctx = a.ctx
    bead_ops.update_bead_status(ctx, action["convoy_id"], "closed", "system")
    ctx.run(
        "UPDATE convoy_metadata SET landed_at = ? WHERE bead_id = ?", (ctx.now, action["convoy_id"])
    )
    return None


def _fail_convoy(a: Apply, action: Action) -> None:
    ctx = a.ctx
    bead_ops.update_bead_status(ctx, action["convoy_id"], "failed", "system")
    ctx.run(
        """UPDATE beads
           SET metadata = json_set(COALESCE(metadata, '{}'),
                 '$.failureReason', 'landing_mr_exhausted', '$.failureMessage', ?),
               updated_at = ?
           WHERE bead_id = ?""",
        (action["reason"], ctx.now, action["convoy_id"]),
    )
    return None


#: The state-only action types and their handlers, in ``ACTION_TYPES`` order.
STATE_HANDLERS: dict[str, Callable[[Apply, Action], SideEffect | None]] = {
    "transition_bead": _transition_bead,
    "assign_bead": _assign_bead,
    "clear_bead_assignee": _clear_bead_assignee,
    "create_mr_bead": _create_mr_bead,
    "create_landing_mr": _create_landing_mr,
    "close_sibling_mrs": _close_sibling_mrs,
    "set_review_pr_url": _set_review_pr_url,
    "transition_agent": _transition_agent,
    "reset_agent_dispatch_attempts": _reset_agent_dispatch_attempts,
    "hook_agent": _hook_agent,
    "unhook_agent": _unhook_agent,
    "clear_agent_checkpoint": _clear_agent_checkpoint,
    "delete_agent": _delete_agent,
    "update_convoy_progress": _update_convoy_progress,
    "set_convoy_ready_to_land": _set_convoy_ready_to_land,
    "close_convoy": _close_convoy,
    "fail_convoy": _fail_convoy,
}
