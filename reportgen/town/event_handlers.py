"""``applyEvent`` (spec §3.3): what each kind of town event does to the town's state.

The drain in :mod:`reportgen.town.events` parses each pending row into a
:class:`~reportgen.town.events.TownEvent` and hands it to :func:`apply_event`.
A handler raises where upstream throws; the drain decides what an error means.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reportgen.town import agent_ops, bead_ops, clock, config, review_queue
from reportgen.town.context import TownCtx
from reportgen.town.prompts import (
    conflict_escalation_body,
    conflict_resolution_prompt,
    feedback_bead_title,
    feedback_prompt,
)

if TYPE_CHECKING:  # the drain imports this module: the event type is for annotations only
    from reportgen.town.events import TownEvent

#: ``not_found`` within this long of the last heartbeat is a cold start, not a death.
NOT_FOUND_GRACE_S = 180

CONFLICT_TRIAGE_OPTIONS = ["ESCALATE_TO_MAYOR", "RESTART", "CLOSE_BEAD", "REASSIGN_BEAD"]


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
    if bead_ops.get_bead(ctx, event.bead_id) is None:
        return  # deleted after the event was recorded: skip (LATEST)
    raw = event.payload.get("cancel_status")
    status = raw if raw in ("closed", "failed") else "failed"
    bead_ops.update_bead_status(ctx, event.bead_id, str(status), "system")
    for agent_id in bead_ops.agents_hooked_to(ctx, event.bead_id):
        agent_ops.unhook_bead(ctx, agent_id)


def _apply_convoy_started(ctx: TownCtx, event: TownEvent) -> None:
    convoy_id = _str(event.payload.get("convoy_id"))
    if not convoy_id:
        return
    ctx.run("UPDATE convoy_metadata SET staged = 0 WHERE bead_id = ?", (convoy_id,))


def _apply_container_status(ctx: TownCtx, event: TownEvent) -> None:
    if not event.agent_id:
        return
    status = event.payload.get("status")
    agent = bead_ops.get_agent(ctx, event.agent_id)
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
        mr = bead_ops.get_bead(ctx, hook)
        if mr is not None and mr["status"] in bead_ops.TERMINAL:
            agent_ops.unhook_bead(ctx, agent_id)
            agent_ops.update_agent_status(ctx, agent_id, "idle")
            ctx.run("UPDATE agent_metadata SET checkpoint = NULL WHERE bead_id = ?", (agent_id,))
            return
    # Refinery with a live (or missing) MR keeps its hook; every other agent just idles.
    agent_ops.update_agent_status(ctx, agent_id, "idle")


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
    mr = bead_ops.get_bead(ctx, mr_id)
    if mr is None or mr["status"] in bead_ops.TERMINAL:
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

    feedback_id = bead_ops.create_bead(
        ctx,
        type="issue",
        title=feedback_bead_title(pr_number, repo, comments, failing, unchecked),
        body=feedback_prompt(pr_number, repo, branch, comments, failing, unchecked),
        rig_id=mr["rig_id"],
        parent_bead_id=mr_id,
        labels=["gt:pr-feedback"],
        metadata={"pr_feedback_for": mr_id, "pr_url": pr_url, "branch": branch},
    )
    bead_ops.add_dependency(ctx, mr_id, feedback_id, "blocks")


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
    conflict_id = bead_ops.create_bead(
        ctx,
        type="issue",
        title=f"Resolve merge conflicts on PR: {c.branch}",
        body=conflict_resolution_prompt(c.pr_url, c.branch, c.target),
        rig_id=c.rig_id,
        parent_bead_id=c.mr_id,
        labels=["gt:pr-conflict"],
        metadata=c.metadata(),
    )
    bead_ops.add_dependency(ctx, c.mr_id, conflict_id, "blocks")


def _conflict_to_human(ctx: TownCtx, c: _Conflict) -> None:
    """Auto-resolve is off: a high-severity escalation bead and a triage request for it."""
    escalation_id = bead_ops.create_bead(
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
    agent_ops.create_triage_request(
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
