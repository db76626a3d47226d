"""Review-queue helpers (spec §7.6–§7.8): agent done / completed, review results.

Upstream's ``review-queue.ts``: a finished polecat's work becomes a
``merge_request`` bead (with its ``review_metadata``) that ``tracks`` the
source bead; a refinery's ``gt_done`` records its PR or lands the merge; a
container's completion report releases the agent. Every write is at
``ctx.now``; ids come from ``ctx.ids`` in upstream's minting order.

There is no transaction here, as upstream has none: when a later write fails
(for instance the ``tracks`` edge to a deleted source bead, spec §17), the
earlier writes stay.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from reportgen.town import agent_ops, bead_ops, clock
from reportgen.town.context import TownCtx

HEARTBEAT_STALE_MS = 90_000
UNHOOKED_REFINERY_MESSAGE = (
    "Refinery called gt_done without a pr_url after losing its hook — cannot confirm merge"
)


# --------------------------------------------------------------------------- submit


def _convoy_for_bead(ctx: TownCtx, bead_id: str) -> str | None:
    """``getConvoyForBead``: the first bead this one ``tracks`` (a convoy or not)."""
    row = ctx.one(
        """SELECT depends_on_bead_id FROM bead_dependencies
           WHERE bead_id = ? AND dependency_type = 'tracks'""",
        (bead_id,),
    )
    return None if row is None else str(row[0])


def _convoy_feature_branch(ctx: TownCtx, convoy_id: str) -> str | None:
    row = ctx.one("SELECT feature_branch FROM convoy_metadata WHERE bead_id = ?", (convoy_id,))
    return None if row is None or row[0] is None else str(row[0])


def _convoy_merge_mode(ctx: TownCtx, convoy_id: str) -> str:
    """``getConvoyMergeMode``: ``review-and-merge`` when stored so, else ``review-then-land``."""
    row = ctx.one("SELECT merge_mode FROM convoy_metadata WHERE bead_id = ?", (convoy_id,))
    if row is not None and row[0] == "review-and-merge":
        return "review-and-merge"
    return "review-then-land"


def _review_target(
    ctx: TownCtx, bead_id: str, default_branch: str | None, metadata: dict[str, Any]
) -> str:
    """The MR's target branch; records the bead's convoy (and its branch) in ``metadata``.

    A review-then-land convoy collects its beads on its feature branch and
    lands that branch once; every other MR targets the rig's default branch.
    """
    convoy_id = _convoy_for_bead(ctx, bead_id)
    feature_branch = _convoy_feature_branch(ctx, convoy_id) if convoy_id else None
    merge_mode = _convoy_merge_mode(ctx, convoy_id) if convoy_id else None
    if merge_mode == "review-then-land" and feature_branch:
        target = feature_branch
    else:
        target = default_branch if default_branch is not None else "main"
    if convoy_id:
        metadata["convoy_id"] = convoy_id
        if feature_branch:
            metadata["convoy_feature_branch"] = feature_branch
    return target


def submit_to_review_queue(
    ctx: TownCtx,
    *,
    agent_id: str,
    bead_id: str,
    rig_id: str | None,
    branch: str,
    pr_url: str | None = None,
    summary: str | None = None,
    default_branch: str | None = None,
) -> str:
    """``submitToReviewQueue``: create the MR bead for ``bead_id``; return the MR's id.

    The MR targets the convoy's feature branch for a review-then-land convoy
    with one, else ``default_branch`` (``main`` when not given). No ``created``
    bead event is logged (upstream inserts the MR row directly); the source
    bead gets ``review_submitted``.
    """
    metadata: dict[str, Any] = {"source_bead_id": bead_id, "source_agent_id": agent_id}
    if pr_url:
        metadata["pr_url"] = pr_url
    target = _review_target(ctx, bead_id, default_branch, metadata)
    mr_id = ctx.new_id()
    ctx.run(
        """INSERT INTO beads (bead_id, type, status, title, body, rig_id, parent_bead_id,
                              assignee_agent_bead_id, priority, labels, metadata, created_by,
                              created_at, updated_at, closed_at)
           VALUES (?, 'merge_request', 'open', ?, ?, ?, NULL, NULL, 'medium', ?, ?, ?, ?, ?,
                   NULL)""",
        (
            mr_id,
            f"Review: {branch}",
            summary,
            rig_id,
            bead_ops.js_json(["gt:merge-request"]),
            bead_ops.js_json(metadata),
            agent_id,
            ctx.now,
            ctx.now,
        ),
    )
    _attach_review(ctx, mr_id, bead_id, branch=branch, target=target, pr_url=pr_url)
    bead_ops.log_bead_event(
        ctx,
        bead_id,
        "review_submitted",
        agent_id=agent_id,
        new_value=branch,
        metadata={"branch": branch, "target_branch": target},
    )
    return mr_id


def _attach_review(
    ctx: TownCtx, mr_id: str, bead_id: str, *, branch: str, target: str, pr_url: str | None
) -> None:
    """The new MR's ``review_metadata`` row, then its ``tracks`` edge to the source bead.

    In this order, as upstream writes them: when the edge fails, the MR and
    its review row stay (there is no transaction, see the module docstring).
    """
    ctx.run(
        """INSERT INTO review_metadata (bead_id, branch, target_branch, merge_commit, pr_url,
                                        retry_count)
           VALUES (?, ?, ?, NULL, ?, 0)""",
        (mr_id, branch, target, pr_url),
    )
    # A plain INSERT, like upstream: a deleted source bead fails here on the foreign key.
    ctx.run(
        """INSERT INTO bead_dependencies (bead_id, depends_on_bead_id, dependency_type)
           VALUES (?, ?, 'tracks')""",
        (mr_id, bead_id),
    )


# --------------------------------------------------------------------------- PR url helpers


def set_review_pr_url(ctx: TownCtx, mr_id: str, pr_url: str) -> bool:
    """``setReviewPrUrl``: store an ``https://`` URL on the MR (both places); else refuse."""
    if not pr_url.startswith("https://"):
        return False
    ctx.run("UPDATE review_metadata SET pr_url = ? WHERE bead_id = ?", (pr_url, mr_id))
    ctx.run(
        """UPDATE beads SET metadata = json_set(COALESCE(metadata, '{}'), '$.pr_url', ?)
           WHERE bead_id = ?""",
        (pr_url, mr_id),
    )
    return True


def mark_review_in_review(ctx: TownCtx, mr_id: str) -> None:
    """``markReviewInReview``: the MR goes ``in_progress`` by direct SQL (no bead event)."""
    ctx.run(
        "UPDATE beads SET status = 'in_progress', updated_at = ? WHERE bead_id = ?",
        (ctx.now, mr_id),
    )


# --------------------------------------------------------------------------- agentDone


def agent_done(
    ctx: TownCtx,
    agent_id: str,
    *,
    branch: str = "",
    pr_url: str | None = None,
    summary: str | None = None,
) -> None:
    """``agentDone`` (§7.6). Raises ``Agent <id> not found`` when the agent is gone.

    What ``gt_done`` means depends on the hooked bead: follow-up work on a
    PR (and patrol triage) is simply closed, a refinery's MR is reviewed,
    and anything else is a polecat's finished work going to review.
    """
    agent = bead_ops.require_agent(ctx, agent_id)
    hook = agent["current_hook_bead_id"]
    if not hook:
        if agent["role"] == "refinery":
            _unhooked_refinery_done(ctx, agent_id, pr_url=pr_url, summary=summary)
        return  # other roles (or a refinery with no open MR): ignored
    if _closes_without_review(bead_ops.get_bead(ctx, hook)):
        bead_ops.close_bead(ctx, hook, agent_id)
        agent_ops.unhook_bead(ctx, agent_id)
        return
    if agent["role"] == "refinery":
        _refinery_done(ctx, agent_id, hook, pr_url=pr_url, summary=summary)
        return

    rig_id = agent["rig_id"] if agent["rig_id"] is not None else ""
    rig = ctx.one("SELECT default_branch FROM rigs WHERE id = ?", (rig_id,)) if rig_id else None
    submit_to_review_queue(
        ctx,
        agent_id=agent_id,
        bead_id=hook,
        rig_id=rig_id,
        branch=branch,
        pr_url=pr_url,
        summary=summary,
        default_branch=None if rig is None else rig["default_branch"],
    )
    agent_ops.unhook_bead(ctx, agent_id)
    bead_ops.update_bead_status(ctx, hook, "in_review", agent_id)


#: Labels of follow-up beads whose work lands on an existing MR's branch: no new review.
_NO_REVIEW_LABELS = ("gt:rework", "gt:pr-fixup", "gt:pr-conflict", "gt:pr-feedback")


def _closes_without_review(hooked: sqlite3.Row | None) -> bool:
    """Patrol triage and follow-up work on a PR are done when the agent says so."""
    if hooked is None:
        return False
    labels = bead_ops.parse_json_list(hooked["labels"])
    if "gt:triage" in labels and hooked["created_by"] == "patrol":
        return True
    return any(label in labels for label in _NO_REVIEW_LABELS)


def _refinery_done(
    ctx: TownCtx, agent_id: str, mr_id: str, *, pr_url: str | None, summary: str | None
) -> None:
    """A refinery's ``gt_done`` on its MR: a PR URL opens the PR review, none means merged.

    An invalid URL fails the MR rather than leaving it waiting for a PR that
    will never be polled.
    """
    if pr_url:
        if set_review_pr_url(ctx, mr_id, pr_url):
            mark_review_in_review(ctx, mr_id)
            bead_ops.log_bead_event(
                ctx,
                mr_id,
                "pr_created",
                agent_id=agent_id,
                new_value=pr_url,
                metadata={"pr_url": pr_url, "created_by": "refinery"},
            )
        else:
            complete_review_with_result(
                ctx, mr_id, "failed", f"Refinery provided invalid pr_url: {pr_url}"
            )
            bead_ops.log_bead_event(
                ctx,
                mr_id,
                "pr_creation_failed",
                agent_id=agent_id,
                metadata={"pr_url": pr_url, "reason": "invalid_url"},
            )
    else:
        message = summary if summary is not None else "Merged by refinery agent"
        complete_review_with_result(ctx, mr_id, "merged", message)
    agent_ops.unhook_bead(ctx, agent_id)
    agent_ops.update_agent_status(ctx, agent_id, "idle")


def _unhooked_refinery_done(
    ctx: TownCtx, agent_id: str, *, pr_url: str | None, summary: str | None
) -> None:
    """A refinery's ``gt_done`` after losing its hook: recover its latest live MR."""
    row = ctx.one(
        """SELECT bead_id FROM beads
           WHERE type = 'merge_request' AND assignee_agent_bead_id = ?
             AND status NOT IN ('closed', 'failed')
           ORDER BY updated_at DESC
           LIMIT 1""",
        (agent_id,),
    )
    if row is None:
        return
    mr_id = str(row[0])
    if pr_url:
        if set_review_pr_url(ctx, mr_id, pr_url):
            mark_review_in_review(ctx, mr_id)
        else:
            complete_review_with_result(
                ctx, mr_id, "failed", f"Refinery provided invalid pr_url: {pr_url}"
            )
        return
    complete_review_with_result(
        ctx, mr_id, "failed", summary if summary is not None else UNHOOKED_REFINERY_MESSAGE
    )
    bead_ops.create_bead(
        ctx,
        type="escalation",
        title="Refinery gt_done without pr_url after hook loss",
        body=(
            f"Refinery {agent_id} called gt_done with no pr_url while unhooked from MR {mr_id}. "
            "The hook was likely cleared by the reconciler after a phantom dispatch failure "
            "while the SDK session was still alive. The MR has been failed (not merged) so a human "
            "can verify whether the refinery's intended outcome was 'approve and merge' or "
            "'request changes'. Summary from refinery: "
            f"{summary if summary is not None else '(none)'}"
        ),
        priority="high",
        metadata={
            "source_bead_id": mr_id,
            "source_agent_id": agent_id,
            "kind": "refinery_unhooked_done",
        },
    )


# --------------------------------------------------------------------------- agentCompleted


def agent_completed(ctx: TownCtx, agent_id: str, *, status: str, reason: str | None = None) -> None:
    """``agentCompleted`` (§7.7): release the agent when its container process ends."""
    agent = bead_ops.get_agent(ctx, agent_id)
    if agent is None:
        return
    hook = agent["current_hook_bead_id"]
    if hook and agent["role"] != "refinery":
        # A refinery keeps its hook and MR: gt_done may still be in flight.
        hooked = bead_ops.get_bead(ctx, hook)
        if status == "failed":
            bead_ops.update_bead_status(
                ctx,
                hook,
                "failed",
                agent_id,
                {
                    "code": "agent_failed",
                    "message": "Agent exited with failed status",
                    "source": "container",
                },
            )
        elif (
            hooked is not None
            and hooked["status"] == "in_progress"
            and reason == "container eviction"
            and clock.stale_ms(agent["last_activity_at"], HEARTBEAT_STALE_MS, ctx.now)
        ):
            # Evicted with a stale heartbeat: back to open, assignee cleared.
            bead_ops.update_bead_status(ctx, hook, "open", agent_id)
            ctx.run("UPDATE beads SET assignee_agent_bead_id = NULL WHERE bead_id = ?", (hook,))
        # Otherwise (fresh heartbeat, no gt_done, or already handled) the bead stays.
        agent_ops.unhook_bead(ctx, agent_id)
    # Idle and reset the counter (refineries keep theirs) unless re-dispatched meanwhile.
    ctx.run(
        """UPDATE agent_metadata
           SET status = 'idle',
               dispatch_attempts = CASE WHEN role = 'refinery' THEN dispatch_attempts ELSE 0 END
           WHERE bead_id = ? AND NOT (status = 'working' AND current_hook_bead_id IS NOT NULL)""",
        (agent_id,),
    )


# ----------------------------------------------------------------- completeReviewWithResult


def _land_source(ctx: TownCtx, mr_id: str, source_id: str, agent_id: str) -> None:
    """A merged MR closes its source bead, every sibling MR, and lands a convoy source.

    Sibling MRs (earlier attempts at the same source, failed ones too) have
    nothing left to review once one of them merged.
    """
    bead_ops.close_bead(ctx, source_id, agent_id)
    # Close every other MR tracking the same source (failed ones too), by direct SQL.
    ctx.run(
        """UPDATE beads SET status = 'closed', updated_at = ?, closed_at = ?
           WHERE type = 'merge_request' AND bead_id != ? AND status NOT IN ('closed')
             AND bead_id IN (SELECT dep.bead_id FROM bead_dependencies AS dep
                             WHERE dep.depends_on_bead_id = ?
                               AND dep.dependency_type = 'tracks')""",
        (ctx.now, ctx.now, mr_id, source_id),
    )
    bead_ops.update_convoy_progress(ctx, source_id)
    source = bead_ops.get_bead(ctx, source_id)
    if source is not None and source["type"] == "convoy":
        ctx.run("UPDATE convoy_metadata SET landed_at = ? WHERE bead_id = ?", (ctx.now, source_id))


def _review_entry(ctx: TownCtx, mr_id: str) -> sqlite3.Row | None:
    """The MR joined with its ``review_metadata`` (none without that row)."""
    return ctx.one(
        """SELECT b.*, rm.branch AS branch FROM beads b
           INNER JOIN review_metadata rm ON rm.bead_id = b.bead_id
           WHERE b.bead_id = ?""",
        (mr_id,),
    )


def complete_review_with_result(ctx: TownCtx, mr_id: str, status: str, message: str) -> None:
    """``completeReviewWithResult`` (§7.8): status is merged, failed or conflict."""
    bead_ops.update_bead_status(ctx, mr_id, "closed" if status == "merged" else "failed", "system")
    entry = _review_entry(ctx, mr_id)
    if entry is None:
        return
    meta = bead_ops.parse_json_object(entry["metadata"])
    source_agent = meta.get("source_agent_id")
    agent_id = (
        source_agent
        if isinstance(source_agent, str)
        else (entry["created_by"] if entry["created_by"] is not None else "")
    )
    source_value = meta.get("source_bead_id")
    source_id = source_value if isinstance(source_value, str) else mr_id

    bead_ops.log_bead_event(
        ctx,
        source_id,
        "review_completed",
        agent_id=agent_id,
        new_value=status,
        metadata={"message": message},
    )

    if status == "merged":
        _land_source(ctx, mr_id, source_id, agent_id)
        return
    if status == "conflict":
        bead_ops.create_bead(
            ctx,
            type="escalation",
            title=f"Merge conflict: {message}",
            body=message,
            priority="high",
            metadata={
                "source_bead_id": source_id,
                "source_agent_id": agent_id,
                "branch": entry["branch"],
                "conflict": True,
            },
        )
    if status in ("conflict", "failed"):
        source = bead_ops.get_bead(ctx, source_id)
        if source is not None and source["status"] not in bead_ops.TERMINAL:
            bead_ops.update_bead_status(ctx, source_id, "open", agent_id)
            ctx.run(
                "UPDATE beads SET assignee_agent_bead_id = NULL WHERE bead_id = ?", (source_id,)
            )
