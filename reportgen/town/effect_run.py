"""What a side effect is and the scratch it runs with: the leaf shared by effects and pr_effects.

:mod:`reportgen.town.effects` runs side effects and :mod:`reportgen.town.pr_effects`
implements the PR ones; both need :class:`SideEffect`, :class:`EffectRun` and
:class:`EffectOutcome`. Keeping those here, below both, lets ``effects`` import
``pr_effects`` directly instead of the two importing each other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reportgen.town import events
from reportgen.town.context import TownCtx

#: Named after :mod:`reportgen.town.effects`, where these lines have always been logged.
log = logging.getLogger("reportgen.town.effects")

LOG = "[actions]"


#: The action types whose apply may defer a side effect.
DEFERRING_TYPES = (
    "dispatch_agent",
    "stop_agent",
    "poll_pr",
    "merge_pr",
    "send_nudge",
    "report_wasteland_done",
)

#: An analytics sink: receives upstream's ``emitEvent`` payloads (``{"event": …, "townId": …}``).
Emit = Callable[[dict[str, Any]], None]


# --------------------------------------------------------------------------- side effects


@dataclass(frozen=True)
class SideEffect:
    """What a deferred part must do: the action type, the action, and resolved arguments.

    ``args`` holds what the deferred closure upstream captured: for
    ``dispatch_agent`` the agent id *resolved at apply time* (the action's
    ``agent_id`` may be ``''``), the bead and the action's rig id.
    """

    type: str
    action: Mapping[str, Any] = field(hash=False)
    args: Mapping[str, Any] = field(hash=False)
    index: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"type": self.type, "index": self.index, "args": dict(self.args)}


@dataclass
class EffectOutcome:
    """What one side effect did (for the report): ``ok`` is the effect's own success.

    ``ok`` means: dispatch → the container accepted the agent; stop / nudge →
    the world call returned (nudge: and delivered); poll → the PR status was
    read; merge → the PR was merged; wasteland → reported and stamped.
    """

    type: str
    ok: bool
    detail: str
    index: int | None = None
    agent_id: str | None = None
    bead_id: str | None = None
    events: list[str] = field(default_factory=list)
    analytics: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "ok": self.ok, "detail": self.detail}
        if self.index is not None:
            out["index"] = self.index
        if self.agent_id is not None:
            out["agent_id"] = self.agent_id
        if self.bead_id is not None:
            out["bead_id"] = self.bead_id
        if self.events:
            out["events"] = list(self.events)
        if self.analytics:
            out["analytics"] = list(self.analytics)
        if self.logs:
            out["logs"] = list(self.logs)
        return out


@dataclass
class SideEffectStats:
    """Phase 2 counts as upstream's metrics report them, plus every effect's outcome."""

    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    outcomes: list[EffectOutcome] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "attempted": self.attempted,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "outcomes": [o.to_json() for o in self.outcomes],
        }


class EffectRun:
    """Per-effect scratch: collects logs, analytics and inserted events."""

    def __init__(self, ctx: TownCtx, effect: SideEffect, emit: Emit | None) -> None:
        self.ctx = ctx
        self.effect = effect
        self.emit_sink = emit
        self.out = EffectOutcome(
            type=effect.type,
            ok=False,
            detail="",
            index=effect.index,
            agent_id=effect.args.get("agent_id"),
            bead_id=effect.args.get("bead_id"),
        )

    def log(self, level: str, msg: str) -> None:
        self.out.logs.append({"level": level, "msg": msg})
        log.log(logging.WARNING if level == "warn" else logging.INFO, "%s", msg)

    def emit(self, data: dict[str, Any]) -> None:
        self.out.analytics.append(data)
        if self.emit_sink is not None:
            self.emit_sink(data)

    def insert_event(self, event_type: str, *, bead_id: str, payload: dict[str, Any]) -> None:
        event_id = events.insert_event(self.ctx, event_type, bead_id=bead_id, payload=payload)
        self.out.events.append(event_id)

    def done(self, ok: bool, detail: str) -> EffectOutcome:
        self.out.ok = ok
        self.out.detail = detail
        return self.out
