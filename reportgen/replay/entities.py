"""The beads and agents a window names, and the bead history inside it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import Any

from reportgen.replay.source import Window
from reportgen.town_run import EntityInfo

#: ``*_id`` keys that do not name a bead or an agent.
_NOT_ENTITIES = ("event_id", "rig_id", "rig_ids", "nudge_id", "wasteland_id", "item_id")


def _ids_in(value: Any, key: str = "") -> list[tuple[str, str]]:
    """``(key, id)`` for every ``*_id`` / ``*_ids`` string value in a JSON value."""
    found: list[tuple[str, str]] = []
    if isinstance(value, dict):
        for k, v in value.items():
            found += _ids_in(v, str(k))
    elif isinstance(value, list):
        for v in value:
            found += _ids_in(v, key)
    elif (
        isinstance(value, str)
        and value
        and key.endswith(("_id", "_ids"))
        and not key.startswith(_NOT_ENTITIES)
    ):
        found.append((key, value))
    return found


def entity_refs(value: Any) -> list[list[str]]:
    """``[kind, id]`` (``agent`` or ``bead``) for every entity a JSON value names, once each."""
    refs: dict[str, str] = {}
    for key, entity_id in _ids_in(value):
        refs.setdefault(entity_id, "agent" if "agent" in key else "bead")
    return [[kind, entity_id] for entity_id, kind in refs.items()]


def collect_entities(
    conn: sqlite3.Connection,
    ticks: list[dict[str, Any]],
    named: Iterable[list[str]] = (),
) -> dict[str, EntityInfo]:
    """Every bead and agent named by the window's events, actions or violations, and the
    ``[kind, id]`` pairs of ``named`` (a dump's history, which has no ticks)."""
    ids: dict[str, str] = {}
    for t in ticks:
        for key, value in _ids_in([t["events"], t["actions"], t["violations"]]):
            ids.setdefault(value, key)
    for kind, value in named:
        ids.setdefault(value, f"{kind}_id")
    entities: dict[str, EntityInfo] = {}
    for entity_id in sorted(ids):
        info = _entity(conn, entity_id, ids[entity_id])
        if info is not None:
            entities[entity_id] = info
    return entities


def _entity(conn: sqlite3.Connection, entity_id: str, key: str) -> EntityInfo | None:
    bead = conn.execute(
        "SELECT type, title, status, rig_id, assignee_agent_bead_id, labels FROM beads "
        "WHERE bead_id = ?",
        (entity_id,),
    ).fetchone()
    agent = conn.execute(
        "SELECT role, identity, status, current_hook_bead_id FROM agent_metadata WHERE bead_id = ?",
        (entity_id,),
    ).fetchone()
    if agent is not None:
        return EntityInfo(
            id=entity_id,
            kind="agent",
            type=str(agent["role"]),
            title=str(bead["title"]) if bead is not None else str(agent["identity"]),
            status=str(agent["status"]),
            rig_id=None if bead is None else bead["rig_id"],
            extra={"identity": agent["identity"], "hook": agent["current_hook_bead_id"]},
        )
    if bead is not None:
        return EntityInfo(
            id=entity_id,
            kind="bead",
            type=str(bead["type"]),
            title=str(bead["title"]),
            status=str(bead["status"]),
            rig_id=bead["rig_id"],
            extra={"assignee": bead["assignee_agent_bead_id"], "labels": bead["labels"]},
        )
    kind = "agent" if "agent" in key else "bead"
    return EntityInfo(id=entity_id, kind=kind, type="", title="(deleted)", status=None)


def bead_events_in(conn: sqlite3.Connection, window: Window) -> list[dict[str, Any]]:
    """``bead_events`` rows created in the window, in time order."""
    rows = conn.execute(
        "SELECT * FROM bead_events WHERE created_at >= ? AND created_at <= ? "
        "ORDER BY created_at, bead_event_id",
        (window.start, window.end),
    ).fetchall()
    return [dict(r) for r in rows]


# --------------------------------------------------------------------------- views
