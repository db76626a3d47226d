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

The handlers are in :mod:`reportgen.town.actions_state` (state-only actions) and
:mod:`reportgen.town.actions_effects` (actions with a deferred part).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reportgen.town.actions_common import LOG, Apply, log
from reportgen.town.actions_effects import EFFECT_HANDLERS
from reportgen.town.actions_state import STATE_HANDLERS
from reportgen.town.context import Action, TownCtx
from reportgen.town.effects import Emit, SideEffect

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
    a = Apply(ctx, index, logs, analytics, emit)
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


_HANDLERS: dict[str, Callable[[Apply, Action], SideEffect | None]] = {
    **STATE_HANDLERS,
    **EFFECT_HANDLERS,
}

assert tuple(_HANDLERS) == ACTION_TYPES
