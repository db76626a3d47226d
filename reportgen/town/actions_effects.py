"""The actions with a deferred part (spec §6): each applies its synchronous half now and
returns the :class:`~reportgen.town.effects.SideEffect` that
:func:`reportgen.town.effects.run_side_effects` runs after every action; and the
actions that only log or emit (triage requests, mayor notes, analytics).
"""

from __future__ import annotations

from collections.abc import Callable

from reportgen.town import agent_ops, bead_ops
from reportgen.town.actions_common import LOG, Apply
from reportgen.town.context import Action
from reportgen.town.effects import SideEffect
from reportgen.town.pr_effects import parse_git_url, parse_pr_url

# --------------------------------------------------------------------------- side-effect actions


def _dispatch_agent(a: Apply, action: Action) -> SideEffect | None:
    ctx = a.ctx
    agent_id = action["agent_id"]
    bead_id = action["bead_id"]
    rig_id = action["rig_id"]
    if not agent_id:
        target = bead_ops.get_bead(ctx, bead_id)
        is_mr = target is not None and target["type"] == "merge_request"
        # Babysat external PRs skip the refinery (strictly ``babysit === true``).
        if (
            is_mr
            and bead_ops.parse_json_object(target["metadata"] if target else None).get("babysit")
            is True
        ):
            return None
        role = "refinery" if is_mr else "polecat"
        try:
            agent_id = agent_ops.get_or_create_agent(ctx, role, rig_id)
            agent_ops.hook_bead(ctx, agent_id, bead_id)
        except Exception as exc:
            a.log("warn", f"{LOG} dispatch_agent: failed to hook agent for bead={bead_id} {exc}")
            return None
    # Not wrapped upstream: a missing bead throws here, after the agent went ``working``.
    agent_ops.update_agent_status(ctx, agent_id, "working")
    bead_ops.update_bead_status(ctx, bead_id, "in_progress", agent_id)
    return a.effect(action, {"agent_id": agent_id, "bead_id": bead_id, "rig_id": rig_id})


def _stop_agent(a: Apply, action: Action) -> SideEffect:
    return a.effect(action, {"agent_id": action["agent_id"], "reason": action.get("reason")})


def _poll_pr(a: Apply, action: Action) -> SideEffect:
    ctx = a.ctx
    ctx.run(
        """UPDATE beads SET updated_at = ?,
               metadata = json_set(COALESCE(metadata, '{}'), '$.last_poll_at', ?)
           WHERE bead_id = ?""",
        (ctx.now, ctx.now, action["bead_id"]),
    )
    return a.effect(action, {"bead_id": action["bead_id"], "pr_url": action["pr_url"]})


def _merge_pr(a: Apply, action: Action) -> SideEffect | None:
    ctx = a.ctx
    bead_id = action["bead_id"]
    pr_url = action["pr_url"]
    mr = bead_ops.get_bead(ctx, bead_id)
    if mr is not None and mr["rig_id"]:
        rig = ctx.one("SELECT git_url FROM rigs WHERE id = ?", (mr["rig_id"],))
        if rig is not None and rig[0]:
            coords = parse_git_url(rig[0])
            pr = parse_pr_url(pr_url)
            if coords is not None and pr is not None:
                rig_repo = f"{coords[0]}/{coords[1]}"
                if rig_repo != pr[0]:
                    a.log(
                        "warn",
                        f'{LOG} merge_pr: PR repo "{pr[0]}" does not match rig repo "{rig_repo}"'
                        " — refusing to merge",
                    )
                    ctx.run(
                        """UPDATE beads
                           SET metadata = json_remove(COALESCE(metadata, '{}'),
                                                      '$.auto_merge_pending'),
                               updated_at = ?
                           WHERE bead_id = ?""",
                        (ctx.now, bead_id),
                    )
                    return None
    return a.effect(action, {"bead_id": bead_id, "pr_url": pr_url})


def _send_nudge(a: Apply, action: Action) -> SideEffect:
    ctx = a.ctx
    ctx.run(
        """INSERT INTO agent_nudges (nudge_id, agent_bead_id, message, mode, priority, source,
                                     created_at, expires_at)
           VALUES (?, ?, ?, 'immediate', 'urgent', ?, ?, NULL)""",
        (
            ctx.new_id(),
            action["agent_id"],
            action["message"],
            f"reconciler:{action['tier']}",
            ctx.now,
        ),
    )
    return a.effect(
        action,
        {"agent_id": action["agent_id"], "message": action["message"], "tier": action["tier"]},
    )


def _create_triage_request(a: Apply, action: Action) -> None:
    reason = action["reason"]
    try:
        created = agent_ops.create_triage_request(
            a.ctx,
            triage_type=action["triage_type"],
            agent_id=action["agent_id"],
            title=f"Triage: {reason}",
            context={"reason": reason},
            options=list(agent_ops.TRIAGE_OPTIONS),
        )
        if created is not None:
            a.log(
                "log",
                f"[patrol] createTriageRequest: type={action['triage_type']} "
                f"agent={action['agent_id']}",
            )
    except Exception as exc:
        a.log("warn", f"{LOG} create_triage_request failed: agent={action['agent_id']} {exc}")
    return None


def _notify_mayor(a: Apply, action: Action) -> None:
    a.log("log", f"{LOG} notify_mayor: town={a.ctx.town_id} msg={action['message']}")
    return None


def _emit_event(a: Apply, action: Action) -> None:
    data = action.get("data") or {}
    a.emit({"event": action["event_name"], "townId": a.ctx.town_id, **data})
    return None


def _report_wasteland_done(a: Apply, action: Action) -> SideEffect:
    return a.effect(
        action,
        {
            "canonical_bead_id": action["canonical_bead_id"],
            "bead_id": action["canonical_bead_id"],
            "wasteland_id": action["wasteland_id"],
            "item_id": action["item_id"],
            "evidence": action["evidence"],
        },
    )


#: The remaining action types and their handlers, in ``ACTION_TYPES`` order.
EFFECT_HANDLERS: dict[str, Callable[[Apply, Action], SideEffect | None]] = {
    "dispatch_agent": _dispatch_agent,
    "stop_agent": _stop_agent,
    "poll_pr": _poll_pr,
    "merge_pr": _merge_pr,
    "send_nudge": _send_nudge,
    "create_triage_request": _create_triage_request,
    "notify_mayor": _notify_mayor,
    "emit_event": _emit_event,
    "report_wasteland_done": _report_wasteland_done,
}
