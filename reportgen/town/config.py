"""Town configuration (spec §16): parsed with upstream's defaults, resolved per rig.

Upstream keeps the town config in Durable Object KV and parses it with a
schema that fills defaults. A stored ``{}`` is a *legacy* town: it has no
``refinery`` section, so refinery lookups fall through to rig overrides and
code defaults. Rig overrides live in ``rigs.config`` (JSON text).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from reportgen.errors import BadInputError

MAX_DISPATCH_ATTEMPTS = 5

REFINERY_DEFAULTS: dict[str, Any] = {
    "gates": [],
    "auto_merge": True,
    "require_clean_merge": True,
    "code_review": True,
    "review_mode": "rework",
    "auto_resolve_pr_feedback": False,
    "auto_resolve_merge_conflicts": True,
    "auto_merge_delay_minutes": None,
}

#: Code defaults used when neither the rig nor the town says anything.
CODE_DEFAULTS: dict[str, Any] = {
    "code_review": True,
    "review_mode": "rework",
    "auto_resolve_pr_feedback": False,
    "auto_resolve_merge_conflicts": True,
    "auto_merge_delay_minutes": None,
    "merge_strategy": "direct",
    "convoy_merge_mode": "review-then-land",
    "max_dispatch_attempts": MAX_DISPATCH_ATTEMPTS,
}

#: What upstream seeds a brand-new town with.
NEW_TOWN_CONFIG: dict[str, Any] = {
    "merge_strategy": "pr",
    "staged_convoys_default": True,
    "refinery": {
        "gates": [],
        "auto_merge": True,
        "require_clean_merge": True,
        "code_review": True,
        "review_mode": "comments",
        "auto_resolve_pr_feedback": True,
        "auto_merge_delay_minutes": 5,
    },
}

_TOWN_FIELDS = ("merge_strategy", "convoy_merge_mode")


@dataclass(frozen=True)
class TownConfig:
    """A parsed town config. ``raw`` is what was stored; the rest has defaults filled."""

    raw: dict[str, Any] = field(default_factory=dict)
    merge_strategy: str = "direct"
    convoy_merge_mode: str = "review-then-land"
    staged_convoys_default: bool = False
    refinery: dict[str, Any] | None = None

    @classmethod
    def parse(cls, raw: object) -> TownConfig:
        """Parse a raw upstream config object, filling upstream's schema defaults."""
        if not isinstance(raw, dict):
            raise BadInputError(f"town config must be a JSON object, got {type(raw).__name__}")
        refinery = raw.get("refinery")
        if refinery is not None and not isinstance(refinery, dict):
            raise BadInputError("town config field 'refinery' must be an object")
        return cls(
            raw=dict(raw),
            merge_strategy=str(raw.get("merge_strategy", "direct")),
            convoy_merge_mode=str(raw.get("convoy_merge_mode", "review-then-land")),
            staged_convoys_default=bool(raw.get("staged_convoys_default", False)),
            refinery=None if refinery is None else {**REFINERY_DEFAULTS, **refinery},
        )

    def town_value(self, name: str) -> Any:
        """The town-level value for a rig-overridable field, or ``None`` when unset."""
        if name in _TOWN_FIELDS:
            return getattr(self, name)
        if name == "max_dispatch_attempts":
            return None
        if self.refinery is None:
            return None
        return self.refinery.get(name)


def rig_overrides(config_text: str | None) -> dict[str, Any]:
    """A rig's override object; unparsable JSON is "no override", as upstream treats it."""
    if not config_text:
        return {}
    try:
        parsed = json.loads(config_text)
    except (ValueError, TypeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def resolve(rig_config_text: str | None, town: TownConfig | None, name: str) -> Any:
    """Resolve one field for a rig: rig override → town → code default (spec §16).

    A rig value of ``null`` for ``auto_merge_delay_minutes`` is kept, not skipped.
    """
    overrides = rig_overrides(rig_config_text)
    if name in overrides and (overrides[name] is not None or name == "auto_merge_delay_minutes"):
        return overrides[name]
    if town is not None:
        value = town.town_value(name)
        if value is not None:
            return value
    return CODE_DEFAULTS.get(name)


def rig_config_text(conn: sqlite3.Connection, rig_id: str | None) -> str | None:
    """The ``rigs.config`` text for a rig id (``None`` when the rig is unknown)."""
    if rig_id is None:
        return None
    row = conn.execute("SELECT config FROM rigs WHERE id = ?", (rig_id,)).fetchone()
    return None if row is None else row[0]


def rig_code_review(conn: sqlite3.Connection, rig_id: str | None, town: TownConfig | None) -> bool:
    """``rigCodeReview``: true without a town config; else rig → town refinery → true."""
    if town is None:
        return True
    return bool(resolve(rig_config_text(conn, rig_id), town, "code_review"))


def rig_max_dispatch_attempts(
    conn: sqlite3.Connection, rig_id: str | None, town: TownConfig | None
) -> int:
    """``rigMaxDispatchAttempts``: the rig override when a town config is given, else 5."""
    if town is None:
        return MAX_DISPATCH_ATTEMPTS
    value = rig_overrides(rig_config_text(conn, rig_id)).get("max_dispatch_attempts")
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return MAX_DISPATCH_ATTEMPTS
