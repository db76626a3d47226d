"""The deferred half of actions: side effects and the outside world they talk to (spec §6.4–§6.5, §7.9).

Upstream's ``applyAction`` returns a deferred async closure for six action
types; the alarm collects them and runs them all concurrently with
``Promise.allSettled`` after every action has been applied. Here the
deferred part is *data*: :class:`SideEffect` says what to do, and
:func:`run_side_effects` does it against a :class:`World`, the protocol for
everything outside the town database (container, GitHub/GitLab, wasteland).

What is engine logic and stays here (it writes the town database):

* ``dispatch_agent`` → the TownDO ``dispatchAgent`` wrapper and
  ``scheduling.dispatchAgent`` (§7.9): rig config check, bead → in_progress,
  agent ``working`` with ``dispatch_attempts + 1`` and a fresh
  ``last_activity_at``, bead ``dispatch_attempts + 1`` and
  ``last_dispatch_attempt_at``; then ``world.start_agent``; a successful start
  resets the agent counter (not for refineries).
* ``poll_pr`` → §6.5 in full (error counters, conflict episodes, awaiting
  approval, auto-resolve and the auto-merge grace period); its events go
  through :func:`reportgen.town.events.insert_event` at ``ctx.now``.
* ``merge_pr`` → the fresh feedback re-check, the merge, the
  ``pr_status_changed`` event or the cleared ``auto_merge_pending``.
* ``send_nudge`` → TownDO ``queueNudge``: a second ``agent_nudges`` row
  (source ``reconciler``, SQLite-format ``created_at``), ``delivered_at`` when
  the world delivered it.
* ``report_wasteland_done`` → the local ``metadata.wasteland.reported_done_at``
  stamp once the world says the upstream call succeeded.

The PR parts live in :mod:`reportgen.town.pr_effects`, the :class:`World`
protocol and its answers in :mod:`reportgen.town.world`, the side-effect types
in :mod:`reportgen.town.effect_run` (all re-exported here).

Counting follows upstream (§6.4, quirk 13): every deferred part catches its
own errors, so ``failed`` only counts an exception escaping our own engine
code; ``succeeded`` means "ran to completion", not "the container accepted
the agent". What actually happened is in :attr:`SideEffectStats.outcomes`.

Upstream runs the side effects concurrently; we run them **sequentially in
emission order** so a run is deterministic (ids minted, rows written and
world calls happen in one reproducible order).
"""

from __future__ import annotations

from collections.abc import Callable

from reportgen.town import bead_ops, clock, pr_effects
from reportgen.town.context import TownCtx
from reportgen.town.effect_run import (
    DEFERRING_TYPES,
    LOG,
    EffectOutcome,
    EffectRun,
    Emit,
    SideEffect,
    SideEffectStats,
)
from reportgen.town.world import (
    NullWorld,
    PRFeedback,
    PRStatus,
    PRStatusError,
    World,
)

__all__ = [
    "DEFERRING_TYPES",
    "EffectOutcome",
    "EffectRun",
    "Emit",
    "NullWorld",
    "PRFeedback",
    "PRStatus",
    "PRStatusError",
    "SideEffect",
    "SideEffectStats",
    "World",
    "run_side_effects",
]


def run_side_effects(
    ctx: TownCtx,
    effects: list[SideEffect],
    world: World,
    *,
    emit: Emit | None = None,
) -> SideEffectStats:
    """Run every deferred part, in emission order, and count them as upstream does.

    Upstream runs them concurrently (``Promise.allSettled``); we run them one
    after another in emission order so that the database, the ids and the
    world calls are reproducible. ``attempted`` = number of effects;
    ``succeeded`` = those that ran to completion (upstream: fulfilled);
    ``failed`` = those whose own engine code raised (upstream: rejected —
    effectively never, quirk 13).
    """
    stats = SideEffectStats(attempted=len(effects))
    for effect in effects:
        run = EffectRun(ctx, effect, emit)
        runner = _RUNNERS.get(effect.type)
        try:
            if runner is None:
                outcome = run.done(False, f"no deferred part for action type {effect.type!r}")
            else:
                outcome = runner(run, world)
        except Exception as exc:  # an escape from our own engine code: upstream "rejected"
            stats.failed += 1
            run.log("error", f"{LOG} {effect.type}: side effect raised: {exc}")
            stats.outcomes.append(run.done(False, f"side effect raised: {exc}"))
            continue
        stats.succeeded += 1
        stats.outcomes.append(outcome)
    return stats


# --------------------------------------------------------------------------- dispatch (§7.9)


def _dispatch_agent(run: EffectRun, world: World) -> EffectOutcome:
    """TownDO ``dispatchAgent`` wrapper + ``scheduling.dispatchAgent`` (§7.9).

    Upstream catches every error after the existence check and reports it as
    ``agent.dispatch_failed``; the phases (rig, bookkeeping, start) are split
    out below but share that one ``try``.
    """
    ctx = run.ctx
    agent_id = str(run.effect.args["agent_id"])
    bead_id = str(run.effect.args["bead_id"])
    agent = bead_ops.get_agent(ctx, agent_id)
    bead = bead_ops.get_bead(ctx, bead_id)
    if agent is None or bead is None or _agent_bead_missing(ctx, agent_id):
        return run.done(False, "agent or bead no longer exists")
    role = agent["role"]
    try:
        rig_id = _dispatch_rig_id(ctx, agent["rig_id"])
        if not rig_id or ctx.one("SELECT id FROM rigs WHERE id = ?", (rig_id,)) is None:
            run.log(
                "warn",
                f"[scheduling] dispatchAgent: no rig config for agent={agent_id} rig={rig_id}",
            )
            return run.done(False, f"no rig config for rig {rig_id!r}")
        _mark_dispatch_attempt(ctx, agent_id, bead_id)
        return _start_agent(run, world, rig_id, role)
    except Exception as exc:
        run.log("error", f"[scheduling] dispatchAgent: failed for agent={agent_id}: {exc}")
        run.emit(
            {
                "event": "agent.dispatch_failed",
                "townId": ctx.town_id,
                "agentId": agent_id,
                "beadId": bead_id,
                "role": role,
                "reason": str(exc),
            }
        )
        return run.done(False, f"container start raised: {exc}")


def _dispatch_rig_id(ctx: TownCtx, agent_rig_id: object) -> str:
    """The agent's rig, or the town's oldest rig for an agent without one (``''`` if none)."""
    if agent_rig_id is not None:
        return str(agent_rig_id)
    first = ctx.one("SELECT id FROM rigs ORDER BY created_at ASC LIMIT 1")
    return str(first[0]) if first is not None else ""


def _mark_dispatch_attempt(ctx: TownCtx, agent_id: str, bead_id: str) -> None:
    """Before the start: bead ``in_progress``, agent ``working``, both attempt counters + 1.

    Written before the world is asked, as upstream does, so a start that
    hangs or fails still counts as an attempt.
    """
    current = bead_ops.get_bead(ctx, bead_id)
    if current is not None and current["status"] not in ("in_progress", "closed", "failed"):
        bead_ops.update_bead_status(ctx, bead_id, "in_progress", agent_id)
    ctx.run(
        """UPDATE agent_metadata
           SET status = 'working', dispatch_attempts = dispatch_attempts + 1,
               last_activity_at = ?, last_event_at = NULL, last_event_type = NULL
           WHERE bead_id = ?""",
        (ctx.now, agent_id),
    )
    ctx.run(
        """UPDATE beads SET dispatch_attempts = dispatch_attempts + 1,
               last_dispatch_attempt_at = ?
           WHERE bead_id = ?""",
        (ctx.now, bead_id),
    )


def _start_agent(run: EffectRun, world: World, rig_id: str, role: str) -> EffectOutcome:
    """Ask the world to start the agent; a start resets the agent's counter (not a refinery's)."""
    ctx = run.ctx
    agent_id = str(run.effect.args["agent_id"])
    bead_id = str(run.effect.args["bead_id"])
    started = bool(world.start_agent(agent_id, bead_id, rig_id))
    base = {
        "townId": ctx.town_id,
        "rigId": rig_id,
        "agentId": agent_id,
        "beadId": bead_id,
        "role": role,
    }
    if started:
        if role != "refinery":
            ctx.run(
                "UPDATE agent_metadata SET dispatch_attempts = 0 WHERE bead_id = ?", (agent_id,)
            )
        run.emit({"event": "agent.spawned", **base})
        return run.done(True, "container accepted the agent")
    run.emit({"event": "agent.dispatch_failed", **base, "reason": "container returned false"})
    return run.done(False, "container refused start")


def _agent_bead_missing(ctx: TownCtx, agent_id: str) -> bool:
    """Upstream's ``getAgent`` inner-joins ``beads``: metadata without a bead row is no agent."""
    return ctx.one("SELECT 1 FROM beads WHERE bead_id = ?", (agent_id,)) is None


# --------------------------------------------------------------------------- stop / nudge / wasteland


def _stop_agent(run: EffectRun, world: World) -> EffectOutcome:
    agent_id = str(run.effect.args["agent_id"])
    try:
        world.stop_agent(agent_id)
    except Exception as exc:
        run.log("warn", f"{LOG} stop_agent failed: agent={agent_id} {exc}")
        return run.done(False, f"stop failed: {exc}")
    return run.done(True, "stop requested")


def _send_nudge(run: EffectRun, world: World) -> EffectOutcome:
    """TownDO ``queueNudge(agent, message, {immediate, urgent, source 'reconciler'})``."""
    ctx = run.ctx
    agent_id = str(run.effect.args["agent_id"])
    message = str(run.effect.args["message"])
    tier = str(run.effect.args["tier"])
    try:
        nudge_id = ctx.new_id()
        ctx.run(
            """INSERT INTO agent_nudges (nudge_id, agent_bead_id, message, mode, priority, source,
                                         created_at, expires_at)
               VALUES (?, ?, ?, 'immediate', 'urgent', 'reconciler', ?, NULL)""",
            (nudge_id, agent_id, message, clock.sqlite_seconds(ctx.now)),
        )
        delivered = bool(world.queue_nudge(agent_id, message, tier))
        if delivered:
            ctx.run(
                "UPDATE agent_nudges SET delivered_at = ? WHERE nudge_id = ?",
                (clock.sqlite_seconds(ctx.now), nudge_id),
            )
            return run.done(True, "nudge delivered")
        run.log("warn", f"[Town.do] queueNudge: immediate delivery failed for agent={agent_id}")
        return run.done(False, "nudge queued, not delivered")
    except Exception as exc:
        run.log("warn", f"{LOG} send_nudge failed: agent={agent_id} {exc}")
        return run.done(False, f"nudge failed: {exc}")


def _report_wasteland_done(run: EffectRun, world: World) -> EffectOutcome:
    """``reportWastelandDone``: the world's RPC, then the local idempotency stamp."""
    ctx = run.ctx
    args = run.effect.args
    bead_id = str(args["canonical_bead_id"])
    item_id = str(args["item_id"])
    evidence = str(args["evidence"])
    run.out.bead_id = bead_id
    try:
        ok = bool(
            world.report_wasteland_done(str(args["wasteland_id"]), item_id, evidence, bead_id)
        )
    except Exception as exc:  # TownDO.reportWastelandDone catches and returns false
        run.log("error", f"[Town.do] reportWastelandDone: unexpected error item={item_id}: {exc}")
        ok = False
    if ok:
        ok = stamp_wasteland_reported_done(ctx, bead_id, evidence)
        if not ok:
            run.log(
                "warn", f"[Town.do] reportWastelandDone: bead={bead_id} has no metadata.wasteland"
            )
    if not ok:
        run.log(
            "warn",
            f"{LOG} report_wasteland_done: deferred call returned false for item={item_id}; "
            "will retry next tick",
        )
        return run.done(False, "not reported (retried next tick)")
    return run.done(True, "reported done; canonical bead stamped")


def stamp_wasteland_reported_done(ctx: TownCtx, bead_id: str, evidence: str | None) -> bool:
    """``stampWastelandReportedDone``: false (nothing written) without ``metadata.wasteland``."""
    row = ctx.one(
        "SELECT json_extract(metadata, '$.wasteland') FROM beads WHERE bead_id = ?", (bead_id,)
    )
    if row is None or row[0] is None:
        return False
    ctx.run(
        """UPDATE beads
           SET metadata = json_set(COALESCE(metadata, '{}'),
                                   '$.wasteland.reported_done_at', ?,
                                   '$.wasteland.reported_evidence', ?),
               updated_at = ?
           WHERE bead_id = ?""",
        (ctx.now, evidence, ctx.now, bead_id),
    )
    return True


#: The deferred part of each action type (PR ones live in :mod:`.pr_effects`).
_RUNNERS: dict[str, Callable[[EffectRun, World], EffectOutcome]] = {
    "dispatch_agent": _dispatch_agent,
    "stop_agent": _stop_agent,
    "poll_pr": pr_effects.poll_pr,
    "merge_pr": pr_effects.merge_pr,
    "send_nudge": _send_nudge,
    "report_wasteland_done": _report_wasteland_done,
}
