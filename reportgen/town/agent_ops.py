"""The agent half of the helpers the reconciler's actions and events rely on (spec §7):
status changes, hooking and unhooking, creating and deleting agents, heartbeats,
and triage requests (upstream's ``agents.ts``).

Like :mod:`reportgen.town.bead_ops` (the bead half, which these build on) they write
through ``ctx`` at ``ctx.now`` and mint ids from ``ctx.ids``.
"""

from __future__ import annotations

from typing import Any

from reportgen.town.bead_ops import (
    agents_hooked_to,
    create_bead,
    delete_bead,
    get_agent,
    js_json,
    log_bead_event,
    parse_json_list,
    require_agent,
    require_bead,
)
from reportgen.town.context import EngineError, TownCtx

UNHOOKABLE_TYPES = ("escalation", "convoy", "agent", "message")
POLECAT_NAMES = (
    "Toast", "Maple", "Birch", "Shadow", "Clover", "Ember", "Sage", "Dusk", "Flint", "Coral",
    "Slate", "Reed", "Thorn", "Pike", "Moss", "Wren", "Blaze", "Gale", "Drift", "Lark",
)  # fmt: skip
MAX_OPEN_TRIAGE_REQUESTS = 5
TRIAGE_OPTIONS = ["RESTART", "CLOSE", "ESCALATE"]


# --------------------------------------------------------------------------- agents


def update_agent_status(ctx: TownCtx, agent_id: str, status: str) -> None:
    """``updateAgentStatus`` (§7.2): keeps ``stalled_at`` while stalled; no error if missing."""
    ctx.run(
        """UPDATE agent_metadata
           SET status = ?,
               stalled_at = CASE WHEN ? = 'stalled' THEN COALESCE(stalled_at, ?) ELSE NULL END
           WHERE bead_id = ?""",
        (status, status, ctx.now, agent_id),
    )


def hook_bead(ctx: TownCtx, agent_id: str, bead_id: str) -> None:
    """``hookBead`` (§7.3): bind an agent to a bead; at most one agent per bead."""
    agent = require_agent(ctx, agent_id)
    bead = require_bead(ctx, bead_id)
    if bead["type"] in UNHOOKABLE_TYPES:
        raise EngineError(
            f"Cannot hook agent to bead {bead_id}: type '{bead['type']}' is not workable"
        )
    if "gt:triage-request" in parse_json_list(bead["labels"]):
        raise EngineError(f"Cannot hook triage request bead {bead_id}")
    current = agent["current_hook_bead_id"]
    if current == bead_id:
        return
    if current is not None:
        raise EngineError(f"Agent {agent_id} is already hooked to bead {current}. Unhook first.")
    for other in agents_hooked_to(ctx, bead_id):
        if other != agent_id:
            unhook_bead(ctx, other)
    ctx.run(
        """UPDATE agent_metadata SET current_hook_bead_id = ?, status = 'idle',
               last_activity_at = ?, agent_status_message = NULL,
               agent_status_updated_at = NULL
           WHERE bead_id = ?""",
        (bead_id, ctx.now, agent_id),
    )
    ctx.run(
        "UPDATE beads SET assignee_agent_bead_id = ?, updated_at = ? WHERE bead_id = ?",
        (agent_id, ctx.now, bead_id),
    )
    log_bead_event(ctx, bead_id, "hooked", agent_id=agent_id, new_value=agent_id)


def unhook_bead(ctx: TownCtx, agent_id: str) -> None:
    """``unhookBead`` (§7.3): clear the hook, go idle, drop the checkpoint; assignee untouched."""
    agent = get_agent(ctx, agent_id)
    if agent is None or agent["current_hook_bead_id"] is None:
        return
    bead_id = agent["current_hook_bead_id"]
    ctx.run(
        """UPDATE agent_metadata SET current_hook_bead_id = NULL, status = 'idle', checkpoint = NULL
           WHERE bead_id = ?""",
        (agent_id,),
    )
    log_bead_event(ctx, bead_id, "unhooked", agent_id=agent_id, old_value=agent_id)


def delete_agent(ctx: TownCtx, agent_id: str) -> None:
    """``deleteAgent`` (§7.4): release assigned beads (reopening live ones), then delete."""
    ctx.run(
        """UPDATE beads SET assignee_agent_bead_id = NULL, updated_at = ?
           WHERE assignee_agent_bead_id = ? AND status IN ('closed', 'failed')""",
        (ctx.now, agent_id),
    )
    ctx.run(
        """UPDATE beads SET assignee_agent_bead_id = NULL, status = 'open', updated_at = ?
           WHERE assignee_agent_bead_id = ? AND status NOT IN ('closed', 'failed')""",
        (ctx.now, agent_id),
    )
    delete_bead(ctx, agent_id)


def _new_agent_name(ctx: TownCtx, role: str, rig_id: str | None) -> str:
    if role != "polecat":
        return role
    used = {
        r[0]
        for r in ctx.all(
            """SELECT b.title FROM agent_metadata am JOIN beads b ON b.bead_id = am.bead_id
               WHERE am.role = 'polecat'"""
        )
    }
    for name in POLECAT_NAMES:
        if name not in used:
            return name
    # Upstream: ``Polecat-${usedNames.size + 1}`` (not the first free number).
    return f"Polecat-{len(used) + 1}"


def register_agent(ctx: TownCtx, role: str, rig_id: str | None, name: str | None = None) -> str:
    """Register a new agent: an ``agent`` bead (status open, title = name) and its metadata."""
    name = name or _new_agent_name(ctx, role, rig_id)
    agent_id = create_bead(ctx, type="agent", title=name, rig_id=rig_id, log_created=False)
    identity = f"{name}-{role}-{(rig_id or '')[:8]}@{ctx.town_id[:8]}"
    ctx.run(
        """INSERT INTO agent_metadata (bead_id, role, identity, status, dispatch_attempts)
           VALUES (?, ?, ?, 'idle', 0)""",
        (agent_id, role, identity),
    )
    return agent_id


def get_or_create_agent(ctx: TownCtx, role: str, rig_id: str | None) -> str:
    """``getOrCreateAgent`` (§7.5): reuse the mayor, the rig's refinery, or an idle polecat."""
    if role == "mayor":
        row = ctx.one("SELECT bead_id FROM agent_metadata WHERE role = 'mayor' LIMIT 1")
    elif role == "refinery":
        row = ctx.one(
            """SELECT am.bead_id FROM agent_metadata am JOIN beads b ON b.bead_id = am.bead_id
               WHERE am.role = 'refinery' AND b.rig_id IS ? LIMIT 1""",
            (rig_id,),
        )
    else:
        row = ctx.one(
            """SELECT am.bead_id FROM agent_metadata am JOIN beads b ON b.bead_id = am.bead_id
               WHERE am.role = ? AND am.status = 'idle' AND am.current_hook_bead_id IS NULL
                 AND b.rig_id IS ? LIMIT 1""",
            (role, rig_id),
        )
    if row is not None:
        return str(row[0])
    return register_agent(ctx, role, rig_id)


def touch_agent(
    ctx: TownCtx,
    agent_id: str,
    *,
    last_event_type: str | None = None,
    last_event_at: str | None = None,
    active_tools: list[str] | None = None,
) -> None:
    """Heartbeat (``touchAgent``, §7.12): fresh activity, idle → working, counter reset."""
    sets = [
        "last_activity_at = :now",
        "status = CASE WHEN status = 'idle' THEN 'working' ELSE status END",
        "dispatch_attempts = 0",
    ]
    params: dict[str, Any] = {"now": ctx.now, "id": agent_id}
    if last_event_type is not None:
        sets.append("last_event_type = :let")
        params["let"] = last_event_type
    if last_event_at is not None:
        sets.append("last_event_at = :lea")
        params["lea"] = last_event_at
    if active_tools is not None:
        sets.append("active_tools = :tools")
        params["tools"] = js_json(active_tools)
    ctx.run(f"UPDATE agent_metadata SET {', '.join(sets)} WHERE bead_id = :id", params)


# --------------------------------------------------------------------------- triage


def create_triage_request(
    ctx: TownCtx,
    *,
    triage_type: str,
    agent_id: str | None,
    title: str,
    context: dict[str, Any],
    options: list[str] | None = None,
    hooked_bead_id: str | None = None,
    rig_id: str | None = None,
) -> str | None:
    """``createTriageRequest`` (§7.11): de-duplicated per (type, agent), capped at 5 open."""
    if agent_id:
        dup = ctx.one(
            """SELECT 1 FROM beads WHERE type = 'issue' AND status = 'open'
                 AND labels LIKE '%"gt:triage-request"%' AND assignee_agent_bead_id = ?
                 AND json_extract(metadata, '$.triage_type') = ?""",
            (agent_id, triage_type),
        )
        if dup is not None:
            return None
    if triage_type != "escalation":
        open_count = ctx.one(
            """SELECT count(*) FROM beads WHERE type = 'issue' AND status = 'open'
                 AND labels LIKE '%"gt:triage-request"%'
                 AND json_extract(metadata, '$.triage_type') != 'escalation'"""
        )
        if open_count is not None and int(open_count[0]) >= MAX_OPEN_TRIAGE_REQUESTS:
            return None
    return create_bead(
        ctx,
        type="issue",
        title=title,
        body=js_json(context),
        rig_id=rig_id,
        assignee_agent_bead_id=agent_id,
        labels=["gt:triage-request"],
        metadata={
            "triage_type": triage_type,
            "agent_bead_id": agent_id,
            "hooked_bead_id": hooked_bead_id,
            "context": context,
            "options": options if options is not None else list(TRIAGE_OPTIONS),
        },
    )
