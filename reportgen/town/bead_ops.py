"""The helper semantics the reconciler's actions and events rely on (spec §7): beads.

These are upstream's ``beads.ts`` helpers: reads, bead events, creating beads,
status changes with the terminal guard, convoy progress, deleting beads. They
write through ``ctx`` at ``ctx.now`` and mint ids from ``ctx.ids``. Bead-event
rows use upstream's exact shapes because reports (and the golden fixtures) read
them. The agent helpers (``agents.ts``: hooking, heartbeats, triage requests)
build on these in :mod:`reportgen.town.agent_ops`.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from reportgen import jsonio
from reportgen.town.context import EngineError, TownCtx

TERMINAL = ("closed", "failed")


def js_json(value: Any) -> str:
    """``JSON.stringify``: compact separators, non-ASCII kept, insertion order kept."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def parse_json_object(text: str | None) -> dict[str, Any]:
    """A JSON object column (``metadata``, ``config``); anything else reads as ``{}``."""
    if not text:
        return {}
    try:
        value = jsonio.loads(text)
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def parse_json_list(text: str | None) -> list[Any]:
    """A JSON array column (``labels``, ``active_tools``); anything else reads as ``[]``."""
    if not text:
        return []
    try:
        value = jsonio.loads(text)
    except (ValueError, TypeError):
        return []
    return value if isinstance(value, list) else []


# --------------------------------------------------------------------------- reads


def get_bead(ctx: TownCtx, bead_id: str | None) -> sqlite3.Row | None:
    if bead_id is None:
        return None
    return ctx.one("SELECT * FROM beads WHERE bead_id = ?", (bead_id,))


def get_agent(ctx: TownCtx, agent_id: str | None) -> sqlite3.Row | None:
    """An agent's ``agent_metadata`` row plus its bead's ``rig_id`` and ``title`` (its name)."""
    if agent_id is None:
        return None
    return ctx.one(
        """SELECT am.*, b.rig_id AS rig_id, b.title AS name
           FROM agent_metadata am LEFT JOIN beads b ON b.bead_id = am.bead_id
           WHERE am.bead_id = ?""",
        (agent_id,),
    )


def require_bead(ctx: TownCtx, bead_id: str) -> sqlite3.Row:
    """The bead row, or upstream's ``Bead <id> not found`` error (the drain matches it)."""
    bead = get_bead(ctx, bead_id)
    if bead is None:
        raise EngineError(f"Bead {bead_id} not found")
    return bead


def require_agent(ctx: TownCtx, agent_id: str) -> sqlite3.Row:
    agent = get_agent(ctx, agent_id)
    if agent is None:
        raise EngineError(f"Agent {agent_id} not found")
    return agent


def agents_hooked_to(ctx: TownCtx, bead_id: str) -> list[str]:
    rows = ctx.all("SELECT bead_id FROM agent_metadata WHERE current_hook_bead_id = ?", (bead_id,))
    return [r[0] for r in rows]


def update_metadata(
    ctx: TownCtx, bead_id: str, changes: dict[str, Any], *, drop: tuple[str, ...] = ()
) -> None:
    """Merge ``changes`` into a bead's metadata (and remove ``drop`` keys); bump ``updated_at``."""
    bead = require_bead(ctx, bead_id)
    meta = parse_json_object(bead["metadata"])
    for key in drop:
        meta.pop(key, None)
    meta.update(changes)
    ctx.run(
        "UPDATE beads SET metadata = ?, updated_at = ? WHERE bead_id = ?",
        (js_json(meta), ctx.now, bead_id),
    )


# --------------------------------------------------------------------------- bead events


def log_bead_event(
    ctx: TownCtx,
    bead_id: str,
    event_type: str,
    *,
    agent_id: str | None = None,
    old_value: str | None = None,
    new_value: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> None:
    """Append to ``bead_events`` (the audit timeline the status page and reports read)."""
    ctx.run(
        """INSERT INTO bead_events (bead_event_id, bead_id, agent_id, event_type, old_value,
                                    new_value, metadata, created_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            ctx.new_id(),
            bead_id,
            agent_id,
            event_type,
            old_value,
            new_value,
            js_json(metadata or {}),
            ctx.now,
        ),
    )


# --------------------------------------------------------------------------- beads


def create_bead(
    ctx: TownCtx,
    *,
    type: str,
    title: str,
    body: str | None = None,
    rig_id: str | None = None,
    parent_bead_id: str | None = None,
    assignee_agent_bead_id: str | None = None,
    priority: str = "medium",
    labels: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
    created_by: str | None = None,
    status: str = "open",
    log_created: bool = True,
) -> str:
    """``createBead``: insert a bead and log ``created`` (agent = assignee, as upstream does)."""
    bead_id = ctx.new_id()
    ctx.run(
        """INSERT INTO beads (bead_id, type, status, title, body, rig_id, parent_bead_id,
                              assignee_agent_bead_id, priority, labels, metadata, created_by,
                              created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            bead_id,
            type,
            status,
            title,
            body,
            rig_id,
            parent_bead_id,
            assignee_agent_bead_id,
            priority,
            js_json(labels or []),
            js_json(metadata or {}),
            created_by,
            ctx.now,
            ctx.now,
        ),
    )
    if log_created:
        log_bead_event(
            ctx,
            bead_id,
            "created",
            agent_id=assignee_agent_bead_id,
            new_value=status,
            metadata={"type": type, "title": title},
        )
    return bead_id


def add_dependency(ctx: TownCtx, bead_id: str, depends_on: str, dependency_type: str) -> None:
    """``INSERT OR IGNORE`` a dependency edge; foreign keys are enforced (spec §17)."""
    ctx.run(
        """INSERT OR IGNORE INTO bead_dependencies (bead_id, depends_on_bead_id, dependency_type)
           VALUES (?, ?, ?)""",
        (bead_id, depends_on, dependency_type),
    )


def update_bead_status(
    ctx: TownCtx,
    bead_id: str,
    status: str,
    actor: str | None,
    failure_reason: dict[str, Any] | None = None,
) -> None:
    """``updateBeadStatus`` (§7.1): terminal beads are immutable; terminal moves recount convoys."""
    bead = require_bead(ctx, bead_id)
    old = bead["status"]
    if old == status or old in TERMINAL:
        return
    closed_at = ctx.now if status == "closed" else bead["closed_at"]
    ctx.run(
        "UPDATE beads SET status = ?, updated_at = ?, closed_at = ? WHERE bead_id = ?",
        (status, ctx.now, closed_at, bead_id),
    )
    meta = {"failure_reason": failure_reason} if failure_reason is not None else {}
    log_bead_event(
        ctx,
        bead_id,
        "status_changed",
        agent_id=actor,
        old_value=old,
        new_value=status,
        metadata=meta,
    )
    if status in TERMINAL:
        update_convoy_progress(ctx, bead_id)


def close_bead(ctx: TownCtx, bead_id: str, actor: str | None) -> None:
    """``closeBead``: a status change to ``closed`` through the terminal guard."""
    update_bead_status(ctx, bead_id, "closed", actor)


def update_convoy_progress(ctx: TownCtx, bead_id: str) -> None:
    """``updateConvoyProgress`` (§7.1): recount every convoy the bead tracks; land or mark ready.

    Counts tracked beads of any type that are terminal and have no open or
    in-progress MR tracking them (unlike ``reconcileConvoys``, which counts issues).
    """
    convoys = ctx.all(
        """SELECT cm.* , b.metadata AS metadata, b.status AS status
           FROM bead_dependencies d
           JOIN convoy_metadata cm ON cm.bead_id = d.depends_on_bead_id
           JOIN beads b ON b.bead_id = cm.bead_id
           WHERE d.bead_id = ? AND d.dependency_type = 'tracks'""",
        (bead_id,),
    )
    for convoy in convoys:
        convoy_id = convoy["bead_id"]
        closed = ctx.one(
            """SELECT count(*) FROM bead_dependencies d JOIN beads t ON t.bead_id = d.bead_id
               WHERE d.depends_on_bead_id = ? AND d.dependency_type = 'tracks'
                 AND t.status IN ('closed', 'failed')
                 AND NOT EXISTS (
                   SELECT 1 FROM bead_dependencies md JOIN beads mr ON mr.bead_id = md.bead_id
                   WHERE md.depends_on_bead_id = t.bead_id AND md.dependency_type = 'tracks'
                     AND mr.type = 'merge_request' AND mr.status IN ('open', 'in_progress'))""",
            (convoy_id,),
        )
        n = int(closed[0]) if closed else 0
        ctx.run("UPDATE convoy_metadata SET closed_beads = ? WHERE bead_id = ?", (n, convoy_id))
        total = int(convoy["total_beads"] or 0)
        if not (total > 0 and n >= total):
            continue
        # Upstream: anything but review-and-merge lands through a landing MR.
        if convoy["merge_mode"] != "review-and-merge" and convoy["feature_branch"]:
            ctx.run(
                "UPDATE beads SET metadata = json_set(COALESCE(metadata, '{}'), "
                "'$.ready_to_land', 1) WHERE bead_id = ?",
                (convoy_id,),
            )
        else:  # a direct SQL write: it closes even a terminal convoy, as upstream does
            ctx.run(
                "UPDATE beads SET status = 'closed', closed_at = ?, updated_at = ? WHERE bead_id = ?",
                (ctx.now, ctx.now, convoy_id),
            )
            ctx.run(
                "UPDATE convoy_metadata SET landed_at = ? WHERE bead_id = ?", (ctx.now, convoy_id)
            )


def delete_bead(ctx: TownCtx, bead_id: str) -> None:
    """``deleteBead``: children first, then hooks, dependencies, events, satellites, the row."""
    for child in ctx.all("SELECT bead_id FROM beads WHERE parent_bead_id = ?", (bead_id,)):
        delete_bead(ctx, child[0])
    # Upstream clears these hooks with direct SQL: no event, no status change.
    ctx.run(
        "UPDATE agent_metadata SET current_hook_bead_id = NULL WHERE current_hook_bead_id = ?",
        (bead_id,),
    )
    ctx.run(
        "DELETE FROM bead_dependencies WHERE bead_id = ? OR depends_on_bead_id = ?",
        (bead_id, bead_id),
    )
    ctx.run("DELETE FROM bead_events WHERE bead_id = ?", (bead_id,))
    for table in ("agent_metadata", "review_metadata", "convoy_metadata", "escalation_metadata"):
        ctx.run(f"DELETE FROM {table} WHERE bead_id = ?", (bead_id,))
    ctx.run("DELETE FROM beads WHERE bead_id = ?", (bead_id,))
