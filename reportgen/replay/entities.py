"""The beads, agents and rigs a window names, the bead history inside it, and the town's name."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from pathlib import PurePath
from typing import Any

from reportgen.replay.source import Source, Window
from reportgen.town import store
from reportgen.town.schema import table_exists
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
    """Every bead and agent named by the window's events, actions or violations, the
    ``[kind, id]`` pairs of ``named`` (a dump's history, which has no ticks), and every rig
    of the town (a handful: their names label rig links and check messages)."""
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
    for rig in _rigs(conn):
        entities.setdefault(rig.id, rig)
    return entities


def _rigs(conn: sqlite3.Connection) -> list[EntityInfo]:
    """The town's rigs, named by ``rigs.name`` (none when the table is missing)."""
    if not table_exists(conn, "rigs"):
        return []
    rows = conn.execute("SELECT id, name, git_url FROM rigs ORDER BY id").fetchall()
    return [
        EntityInfo(
            id=str(r[0]),
            kind="rig",
            type="",
            title="" if r[1] is None else str(r[1]),
            status=None,
            extra={"git_url": r[2]},
        )
        for r in rows
        if r[0] is not None
    ]


def town_name_of(source: Source) -> str:
    """The name a person knows the town by: the one stored with it (``rg_meta``), else its
    bundle's, else the stem of the file it came from (a bundle's source, or the file itself)."""
    name = store.town_name(source.conn)
    if not name and source.manifest is not None:
        name = str(source.manifest.get("town_name") or "")
        name = name or _stem(str(source.manifest.get("source_name") or ""))
    return name or _stem(source.name)


def _stem(file_name: str) -> str:
    """A file's name without its suffix (``a.sqlite`` → ``a``; ``.hidden`` stays whole)."""
    name = PurePath(file_name).name if file_name else ""
    return name.rsplit(".", 1)[0] if "." in name[1:] else name


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
