"""reconcileAgents and reconcileGC (spec §5.1, §5.6): agents whose container is gone,
hooks that point nowhere, and agents idle long enough to delete.

Read-only and clock-free like every pass (see :mod:`reportgen.town.reconciler`).
"""

from __future__ import annotations

from reportgen.town.context import Action, TownCtx
from reportgen.town.reconciler_common import (
    AGENT_GC_RETENTION_MS,
    DISPATCH_ATTEMPT_RESET_WINDOW_MS,
    HEARTBEAT_STALE_MS,
    MAX_DISPATCH_ATTEMPTS,
    STALLED_AUTO_IDLE_MS,
    TERMINAL,
    agent_rows,
    clear_agent_checkpoint,
    delete_agent,
    elapsed_ms,
    reset_agent_dispatch_attempts,
    stale,
    transition_agent,
    transition_bead,
    unhook_agent,
)

# ════════════════════════════════════════════════════════════════════════
# reconcileAgents (spec §5.1)
# ════════════════════════════════════════════════════════════════════════


def reconcile_agents(ctx: TownCtx) -> list[Action]:
    """A1–A4: reap agents whose container is gone and hooks that point nowhere (§5.1)."""
    return [
        *_a1_working_agents(ctx),
        *_a2_long_stalled(ctx),
        *_a3_reset_dispatch_attempts(ctx),
        *_a4_idle_hooked(ctx),
    ]


def _a1_working_agents(ctx: TownCtx) -> list[Action]:
    """A1: a working agent without a fresh heartbeat (or without a hook) goes idle.

    Skipped while draining: the heartbeat reporter is stopped during a drain,
    so a frozen ``last_activity_at`` does not mean the agent died (§4.1).
    """
    actions: list[Action] = []
    for agent in agent_rows(ctx, "am.status = 'working'"):
        if agent["role"] == "mayor" or ctx.draining:
            continue
        agent_id = agent["bead_id"]
        if not agent["last_activity_at"]:
            reason = "no heartbeat received since dispatch"
        elif stale(ctx, agent["last_activity_at"], HEARTBEAT_STALE_MS):
            reason = "heartbeat lost (3 missed cycles)"
        elif not agent["current_hook_bead_id"]:
            reason = "working agent has no hook (gt_done already completed)"
        else:
            continue
        actions.append(transition_agent(agent_id, "working", "idle", reason))
    return actions


def _a2_long_stalled(ctx: TownCtx) -> list[Action]:
    """A2: an agent stalled for more than 2 h 30 min goes idle and is unhooked.

    Measured from ``stalled_at`` (heartbeats keep arriving after a force
    stop). A null ``stalled_at`` is skipped; an unparseable one makes the
    JavaScript difference ``NaN`` and ``NaN <= limit`` is false, so it fires.
    """
    if ctx.draining:
        return []
    actions: list[Action] = []
    reason = "stalled_timeout (exceeded 2h 30min)"
    for agent in agent_rows(ctx, "am.status = 'stalled'"):
        if not agent["stalled_at"]:
            continue
        if elapsed_ms(ctx, agent["stalled_at"]) <= STALLED_AUTO_IDLE_MS:
            continue
        actions.append(transition_agent(agent["bead_id"], "stalled", "idle", reason))
        if agent["current_hook_bead_id"]:
            actions.append(unhook_agent(agent["bead_id"], reason))
    return actions


def _a3_reset_dispatch_attempts(ctx: TownCtx) -> list[Action]:
    """A3: agents at the attempt cap, inactive for 30 min, get their counter reset.

    SQL string comparison, so a null ``last_activity_at`` never matches. Not
    gated by draining.
    """
    rows = agent_rows(
        ctx,
        "am.dispatch_attempts >= ? AND am.last_activity_at < ?",
        (MAX_DISPATCH_ATTEMPTS, ctx.cutoff(DISPATCH_ATTEMPT_RESET_WINDOW_MS)),
    )
    return [reset_agent_dispatch_attempts(agent["bead_id"]) for agent in rows]


def _a4_idle_hooked(ctx: TownCtx) -> list[Action]:
    """A4: an idle agent's hook must point at live work, else it is released.

    Missing or terminal bead → unhook + clear checkpoint. Live bead (open or
    in_progress) with a stale heartbeat → unhook and reopen the bead; a
    fresh heartbeat (≤ 90 s, in-code check) proves a phantom-failed dispatch
    is in fact alive, so it is left alone.
    """
    actions: list[Action] = []
    for agent in agent_rows(ctx, "am.status = 'idle' AND am.current_hook_bead_id IS NOT NULL"):
        agent_id, hook = agent["bead_id"], agent["current_hook_bead_id"]
        if not hook:
            continue
        bead = ctx.one("SELECT status FROM beads WHERE bead_id = ?", (hook,))
        if bead is None:
            actions += [
                unhook_agent(agent_id, "hooked bead does not exist"),
                clear_agent_checkpoint(agent_id),
            ]
        elif bead["status"] in TERMINAL:
            actions += [
                unhook_agent(agent_id, "hooked bead is terminal"),
                clear_agent_checkpoint(agent_id),
            ]
        elif bead["status"] in ("in_progress", "open"):
            if not stale(ctx, agent["last_activity_at"], HEARTBEAT_STALE_MS):
                continue
            actions += [
                unhook_agent(agent_id, "idle agent hooked to live bead (dispatch failed)"),
                transition_bead(
                    hook,
                    bead["status"],
                    "open",
                    "agent went idle without completing work — reset for re-dispatch",
                ),
            ]
    return actions


# ════════════════════════════════════════════════════════════════════════
# reconcileGC (spec §5.6)
# ════════════════════════════════════════════════════════════════════════


def reconcile_gc(ctx: TownCtx) -> list[Action]:
    """Delete polecats/refineries idle or dead, unhooked, and inactive for over 24 h (§5.6)."""
    rows = agent_rows(
        ctx,
        "am.status IN ('idle', 'dead') AND am.role IN ('polecat', 'refinery') "
        "AND am.current_hook_bead_id IS NULL",
    )
    return [
        delete_agent(agent["bead_id"], "GC: idle > 24h")
        for agent in rows
        if stale(ctx, agent["last_activity_at"], AGENT_GC_RETENTION_MS)
    ]
