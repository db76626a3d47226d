"""What every action handler works with: the scratch :class:`Apply` of one action (where
its logs and analytics go, how it builds its side effect) and the log prefix.
"""

from __future__ import annotations

import logging
from typing import Any

from reportgen.town.context import Action, TownCtx
from reportgen.town.effects import Emit, SideEffect

#: Logged under the engine's action module, whichever handler module logs.
log = logging.getLogger("reportgen.town.actions")

LOG = "[actions]"


class Apply:
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
