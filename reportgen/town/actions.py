"""Applying the reconciler's actions: the synchronous half of upstream's ``applyAction`` (spec §6).

Each action mutates the town database immediately, at ``ctx.now``, in
emission order; later actions see what earlier ones did (quirk 1: the last
``transition_*`` for an entity wins, since ``from`` is advisory). Six types
also return a :class:`~reportgen.town.effects.SideEffect` — data describing
the deferred part that :func:`reportgen.town.effects.run_side_effects` runs
after every action has been applied.

Error handling follows upstream exactly:

* errors upstream catches inside ``applyAction`` (``transition_bead``,
  ``transition_agent``, ``hook_agent``, ``delete_agent``,
  ``create_triage_request``, the agent resolution of ``dispatch_agent``) are
  logged into the record, and the action still counts as ``applied``;
* errors upstream lets escape (``dispatch_agent`` on a missing bead after it
  set the agent ``working``, ``close_convoy`` / ``fail_convoy`` on a missing
  convoy, ``create_mr_bead`` / ``create_landing_mr`` failures…) propagate out
  of :func:`apply_action` (as :class:`~reportgen.town.context.EngineError`
  when upstream throws ``new Error``); :func:`apply_actions` records their
  message as the outcome and carries on, as the alarm loop does. Writes made
  before the throw stay (upstream has no transaction around an action).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reportgen.town import ops, review_queue
from reportgen.town.context import Action, TownCtx
from reportgen.town.effects import Emit, SideEffect
from reportgen.town.pr_effects import parse_git_url, parse_pr_url

log = logging.getLogger(__name__)

LOG = "[actions]"

#: The 26 action types of LATEST, in upstream's union order (spec §13).
ACTION_TYPES = (
    "transition_bead",
    "assign_bead",
    "clear_bead_assignee",
    "create_mr_bead",
    "create_landing_mr",
    "close_sibling_mrs",
    "set_review_pr_url",
    "transition_agent",
    "reset_agent_dispatch_attempts",
    "hook_agent",
    "unhook_agent",
    "clear_agent_checkpoint",
    "delete_agent",
    "update_convoy_progress",
    "set_convoy_ready_to_land",
    "close_convoy",
    "fail_convoy",
    "dispatch_agent",
    "stop_agent",
    "poll_pr",
    "merge_pr",
    "send_nudge",
    "create_triage_request",
    "notify_mayor",
    "emit_event",
    "report_wasteland_done",
)

TRIAGE_OPTIONS = ["RESTART", "CLOSE", "ESCALATE"]

APPLIED = "applied"


@dataclass
class ApplyRecord:
    """One action's application, as the golden fixtures' ``apply`` list records it.

    ``outcome`` is ``"applied"`` or the text of the error that escaped
    ``applyAction``. ``logs`` are the lines upstream would have logged
    (``{"level", "msg"}``); ``analytics`` the ``emitEvent`` payloads.
    """

    index: int
    type: str
    outcome: str = APPLIED
    side_effect: SideEffect | None = None
    logs: list[dict[str, str]] = field(default_factory=list)
    analytics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def side_effect_deferred(self) -> bool:
        return self.side_effect is not None

    @property
    def ok(self) -> bool:
        return self.outcome == APPLIED

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "index": self.index,
            "type": self.type,
            "outcome": self.outcome,
            "side_effect_deferred": self.side_effect_deferred,
        }
        if self.logs:
            out["logs"] = list(self.logs)
        if self.analytics:
            out["analytics"] = list(self.analytics)
        return out


class _Apply:
    """Scratch for one action: where its logs and analytics go."""

    def __init__(
        self,
        ctx: TownCtx,
        index: int | None,
        logs: list[dict[str, str]] | None,
        analytics: list[dict[str, Any]] | None,
        emit: Emit | None,
    ) -> None:
        self.ctx = ctx
        self.index = index
        self.logs = logs if logs is not None else []
        self.analytics = analytics if analytics is not None else []
        self.emit_sink = emit

    def log(self, level: str, msg: str) -> None:
        self.logs.append({"level": level, "msg": msg})
        log.log(logging.WARNING if level == "warn" else logging.INFO, "%s", msg)

    def emit(self, data: dict[str, Any]) -> None:
        self.analytics.append(data)
        if self.emit_sink is not None:
            self.emit_sink(data)

    def effect(self, action: Action, args: dict[str, Any]) -> SideEffect:
        return SideEffect(
            type=str(action["type"]), action=dict(action), args=args, index=self.index
        )


def apply_action(
    ctx: TownCtx,
    action: Action,
    *,
    index: int | None = None,
    logs: list[dict[str, str]] | None = None,
    analytics: list[dict[str, Any]] | None = None,
    emit: Emit | None = None,
) -> SideEffect | None:
    """Apply one action's synchronous part; return its deferred side effect, if any.

    Errors upstream lets escape are raised. ``logs`` / ``analytics`` (lists)
    collect what upstream would log / send to analytics; ``emit`` also
    receives each analytics payload (``emit_event``).
    """
    handler = _HANDLERS.get(str(action.get("type")))
    a = _Apply(ctx, index, logs, analytics, emit)
    if handler is None:
        a.log("warn", f"{LOG} applyAction: unknown action type {action.get('type')!r}")
        return None
    return handler(a, action)


def apply_actions(
    ctx: TownCtx, actions: list[Action], *, emit: Emit | None = None
) -> list[ApplyRecord]:
    """Apply every action in emission order, recording each outcome; never raises for one action."""
    records: list[ApplyRecord] = []
    for index, action in enumerate(actions):
        record = ApplyRecord(index=index, type=str(action.get("type")))
        try:
            record.side_effect = apply_action(
                ctx, action, index=index, logs=record.logs, analytics=record.analytics, emit=emit
            )
        except Exception as exc:  # the alarm logs it and moves on to the next action
            record.outcome = str(exc) or type(exc).__name__
            record.logs.append(
                {"level": "error", "msg": f"[Town.do] applyAction failed: {record.outcome}"}
            )
            log.warning("applyAction %s failed: %s", record.type, record.outcome)
        records.append(record)
    return records


# --------------------------------------------------------------------------- bead mutations


def _transition_bead(a: _Apply, action: Action) -> None:
    to = action["to"]
    failure = (
        {"code": "reconciler", "message": action["reason"], "source": "scheduler"}
        if to == "failed"
        else None
    )
    try:
        ops.update_bead_status(a.ctx, action["bead_id"], to, action["actor"], failure)
    except Exception as exc:
        a.log("warn", f"{LOG} transition_bead failed: bead={action['bead_id']} to={to} {exc}")
    return None


def _assign_bead(a: _Apply, action: Action) -> None:
    a.ctx.run(
        "UPDATE beads SET assignee_agent_bead_id = ?, updated_at = ? WHERE bead_id = ?",
        (action["agent_id"], a.ctx.now, action["bead_id"]),
    )
    return None


def _clear_bead_assignee(a: _Apply, action: Action) -> None:
    ctx = a.ctx
    bead_id = action["bead_id"]
    ctx.run(
        "UPDATE beads SET assignee_agent_bead_id = NULL, updated_at = ? WHERE bead_id = ?",
        (ctx.now, bead_id),
    )
    for agent_id in ops.agents_hooked_to(ctx, bead_id):
        ops.unhook_bead(ctx, agent_id)
    return None


def _create_mr_bead(a: _Apply, action: Action) -> None:
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


def _create_landing_mr(a: _Apply, action: Action) -> None:
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


def _close_sibling_mrs(a: _Apply, action: Action) -> None:
    rows = a.ctx.all(
        """SELECT bead_id FROM beads
           WHERE type = 'merge_request' AND bead_id != ? AND status NOT IN ('closed', 'failed')
             AND bead_id IN (SELECT dep.bead_id FROM bead_dependencies dep
                             WHERE dep.depends_on_bead_id = ? AND dep.dependency_type = 'tracks')""",
        (action["exclude_mr_id"], action["source_bead_id"]),
    )
    for row in rows:
        ops.update_bead_status(a.ctx, row[0], "closed", "system")
    return None


def _set_review_pr_url(a: _Apply, action: Action) -> None:
    if not review_queue.set_review_pr_url(a.ctx, action["bead_id"], action["pr_url"]):
        a.log(
            "warn", f"[review-queue] setReviewPrUrl: rejecting non-HTTPS pr_url: {action['pr_url']}"
        )
    return None


# --------------------------------------------------------------------------- agent mutations


def _transition_agent(a: _Apply, action: Action) -> None:
    try:
        ops.update_agent_status(a.ctx, action["agent_id"], action["to"])
    except Exception as exc:
        a.log(
            "warn",
            f"{LOG} transition_agent failed: agent={action['agent_id']} to={action['to']} {exc}",
        )
    return None


def _reset_agent_dispatch_attempts(a: _Apply, action: Action) -> None:
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
            ops.update_bead_status(ctx, hooked, "open", "system")
        if bead_type == "merge_request":
            ctx.run("UPDATE review_metadata SET retry_count = 0 WHERE bead_id = ?", (hooked,))
    return None


def _hook_agent(a: _Apply, action: Action) -> None:
    try:
        ops.hook_bead(a.ctx, action["agent_id"], action["bead_id"])
    except Exception as exc:
        a.log(
            "warn",
            f"{LOG} hook_agent failed: agent={action['agent_id']} bead={action['bead_id']} {exc}",
        )
    return None


def _unhook_agent(a: _Apply, action: Action) -> None:
    ops.unhook_bead(a.ctx, action["agent_id"])
    return None


def _clear_agent_checkpoint(a: _Apply, action: Action) -> None:
    a.ctx.run(
        "UPDATE agent_metadata SET checkpoint = NULL WHERE bead_id = ?", (action["agent_id"],)
    )
    return None


def _delete_agent(a: _Apply, action: Action) -> None:
    try:
        ops.delete_agent(a.ctx, action["agent_id"])
    except Exception as exc:
        a.log("warn", f"{LOG} delete_agent failed: agent={action['agent_id']} {exc}")
    return None


# --------------------------------------------------------------------------- convoy mutations


def _update_convoy_progress(a: _Apply, action: Action) -> None:
    a.ctx.run(
        "UPDATE convoy_metadata SET closed_beads = ? WHERE bead_id = ?",
        (action["closed_beads"], action["convoy_id"]),
    )
    return None


def _set_convoy_ready_to_land(a: _Apply, action: Action) -> None:
    a.ctx.run(
        """UPDATE beads SET metadata = json_set(COALESCE(metadata, '{}'), '$.ready_to_land', 1),
               updated_at = ?
           WHERE bead_id = ?""",
        (a.ctx.now, action["convoy_id"]),
    )
    return None


def _close_convoy(a: _Apply, action: Action) -> None:
    ctx = a.ctx
    ops.update_bead_status(ctx, action["convoy_id"], "closed", "system")
    ctx.run(
        "UPDATE convoy_metadata SET landed_at = ? WHERE bead_id = ?", (ctx.now, action["convoy_id"])
    )
    return None


def _fail_convoy(a: _Apply, action: Action) -> None:
    ctx = a.ctx
    ops.update_bead_status(ctx, action["convoy_id"], "failed", "system")
    ctx.run(
        """UPDATE beads
           SET metadata = json_set(COALESCE(metadata, '{}'),
                 '$.failureReason', 'landing_mr_exhausted', '$.failureMessage', ?),
               updated_at = ?
           WHERE bead_id = ?""",
        (action["reason"], ctx.now, action["convoy_id"]),
    )
    return None


# --------------------------------------------------------------------------- side-effect actions


def _dispatch_agent(a: _Apply, action: Action) -> SideEffect | None:
    ctx = a.ctx
    agent_id = action["agent_id"]
    bead_id = action["bead_id"]
    rig_id = action["rig_id"]
    if not agent_id:
        target = ops.get_bead(ctx, bead_id)
        is_mr = target is not None and target["type"] == "merge_request"
        # Babysat external PRs skip the refinery (strictly ``babysit === true``).
        if (
            is_mr
            and ops.parse_json_object(target["metadata"] if target else None).get("babysit") is True
        ):
            return None
        role = "refinery" if is_mr else "polecat"
        try:
            agent_id = ops.get_or_create_agent(ctx, role, rig_id)
            ops.hook_bead(ctx, agent_id, bead_id)
        except Exception as exc:
            a.log("warn", f"{LOG} dispatch_agent: failed to hook agent for bead={bead_id} {exc}")
            return None
    # Not wrapped upstream: a missing bead throws here, after the agent went ``working``.
    ops.update_agent_status(ctx, agent_id, "working")
    ops.update_bead_status(ctx, bead_id, "in_progress", agent_id)
    return a.effect(action, {"agent_id": agent_id, "bead_id": bead_id, "rig_id": rig_id})


def _stop_agent(a: _Apply, action: Action) -> SideEffect:
    return a.effect(action, {"agent_id": action["agent_id"], "reason": action.get("reason")})


def _poll_pr(a: _Apply, action: Action) -> SideEffect:
    ctx = a.ctx
    ctx.run(
        """UPDATE beads SET updated_at = ?,
               metadata = json_set(COALESCE(metadata, '{}'), '$.last_poll_at', ?)
           WHERE bead_id = ?""",
        (ctx.now, ctx.now, action["bead_id"]),
    )
    return a.effect(action, {"bead_id": action["bead_id"], "pr_url": action["pr_url"]})


def _merge_pr(a: _Apply, action: Action) -> SideEffect | None:
    ctx = a.ctx
    bead_id = action["bead_id"]
    pr_url = action["pr_url"]
    mr = ops.get_bead(ctx, bead_id)
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


def _send_nudge(a: _Apply, action: Action) -> SideEffect:
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


def _create_triage_request(a: _Apply, action: Action) -> None:
    reason = action["reason"]
    try:
        created = ops.create_triage_request(
            a.ctx,
            triage_type=action["triage_type"],
            agent_id=action["agent_id"],
            title=f"Triage: {reason}",
            context={"reason": reason},
            options=list(TRIAGE_OPTIONS),
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


def _notify_mayor(a: _Apply, action: Action) -> None:
    a.log("log", f"{LOG} notify_mayor: town={a.ctx.town_id} msg={action['message']}")
    return None


def _emit_event(a: _Apply, action: Action) -> None:
    data = action.get("data") or {}
    a.emit({"event": action["event_name"], "townId": a.ctx.town_id, **data})
    return None


def _report_wasteland_done(a: _Apply, action: Action) -> SideEffect:
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


_HANDLERS: dict[str, Callable[[_Apply, Action], SideEffect | None]] = {
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

assert tuple(_HANDLERS) == ACTION_TYPES
