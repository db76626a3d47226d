"""Which entities a tick's events, actions, side effects and violations touch.

Actions are upstream's objects and name their entities in fields such as
``bead_id``, ``agent_id``, ``convoy_id``, ``source_bead_id`` or ``rig_id``.
Rather than a table per action type (which would rot when upstream adds a
type), the field name says the kind: ``…agent_id`` is an agent, ``…bead_id``
and ``convoy_id`` a bead, ``…rig_id`` a rig; ``…_ids`` lists likewise.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

#: Entity kinds, in the order pages list them.
KINDS = ("bead", "agent", "rig")


def kind_of_field(name: str) -> str | None:
    """The entity kind a field holds (``None`` when it holds no entity id)."""
    base = name[:-1] if name.endswith("_ids") else name
    if base.endswith("agent_id"):
        return "agent"
    if base.endswith("bead_id") or base == "convoy_id":
        return "bead"
    if base.endswith("rig_id"):
        return "rig"
    return None


def ids_in(obj: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(kind, id)`` for every entity id held in the top-level fields of ``obj``."""
    for name, value in obj.items():
        kind = kind_of_field(str(name))
        if kind is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if isinstance(item, str) and item:
                yield kind, item


def violation_ids(violation: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(kind, id)`` for the entities a violation record names."""
    for kind, name in (("agent", "agent_ids"), ("bead", "bead_ids"), ("rig", "rig_ids")):
        for item in violation.get(name) or ():
            if isinstance(item, str) and item:
                yield kind, item


def tick_ids(tick: Mapping[str, Any]) -> set[tuple[str, str]]:
    """Every ``(kind, id)`` a tick record touches."""
    found: set[tuple[str, str]] = set()
    for event in tick.get("events") or ():
        found.update(ids_in(event))
    for action in tick.get("actions") or ():
        found.update(ids_in(action))
    for outcome in (tick.get("side_effects") or {}).get("outcomes") or ():
        found.update(ids_in(outcome))
    for violation in tick.get("violations") or ():
        found.update(violation_ids(violation))
    return found
