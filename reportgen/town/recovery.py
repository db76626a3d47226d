"""Opt-in auto-recovery: correct an invariant violation instead of only reporting it.

Upstream reports violations and leaves a TODO for auto-recovery of invariant
#7 (a working non-mayor agent with no hook). With recovery on, the tick that
detects #7 idles the agent, so the violation lasts one tick instead of until
the heartbeat rules notice (A1 acts on the *next* tick at the earliest, and
only if the agent is still working). Recovery actions are ordinary
``transition_agent`` actions, applied after the invariant check and kept
apart from the reconciler's own actions (they are not in upstream's metrics).
"""

from __future__ import annotations

from collections.abc import Collection

from reportgen.errors import BadInputError
from reportgen.town.actions import apply_action
from reportgen.town.context import Action, TownCtx
from reportgen.town.invariants import Violation

#: Invariants auto-recovery knows how to correct.
RECOVERABLE = frozenset({7})
RECOVERY_REASON_7 = "auto-recovery: invariant 7 (working agent with no hook)"


def validate(invariants: Collection[int]) -> frozenset[int]:
    """The requested invariants, or an error naming the ones that cannot be recovered."""
    wanted = frozenset(invariants)
    unknown = sorted(wanted - RECOVERABLE)
    if unknown:
        raise BadInputError(
            f"--auto-recover: invariant(s) {', '.join(map(str, unknown))} cannot be "
            f"auto-recovered (supported: {', '.join(map(str, sorted(RECOVERABLE)))})"
        )
    return wanted


def recover(ctx: TownCtx, violations: list[Violation], enabled: frozenset[int]) -> list[Action]:
    """Apply the recovery for every violation of an enabled invariant; return the actions."""
    actions: list[Action] = []
    if 7 not in enabled:
        return actions
    for violation in violations:
        if violation.invariant != 7:
            continue
        for agent_id in violation.agent_ids:
            action: Action = {
                "type": "transition_agent",
                "agent_id": agent_id,
                "from": "working",
                "to": "idle",
                "reason": RECOVERY_REASON_7,
            }
            apply_action(ctx, action)
            actions.append(action)
    return actions
