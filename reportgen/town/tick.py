"""One alarm tick, in upstream's order (spec §4), on an explicit clock.

    container pre-phase → drain events → drain safety net → reconcile →
    apply actions in emission order → side effects → invariants → metrics →
    active-work check → housekeeping → next alarm time

Everything the report shows about a tick comes from the :class:`TickResult`
this returns. What upstream does outside the reconciler proper (container
warm-up, token refresh, mail delivery, WebSocket broadcast) has no effect on
the reconciler's decisions and is not modelled.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from reportgen.town import clock, events, invariants, reconciler, recovery, store
from reportgen.town.actions import ApplyRecord, apply_actions
from reportgen.town.containers import should_record
from reportgen.town.context import Action, TownCtx
from reportgen.town.effects import SideEffectStats, World, run_side_effects
from reportgen.town.status import has_active_work, interval_ms

DRAIN_TIMEOUT_MS = 7 * clock.MINUTE_MS
EVENT_RETENTION_MS = 7 * 24 * clock.HOUR_MS
CONTAINER_OBSERVED_STATUSES = ("working", "stalled")


class Stopwatch(Protocol):
    """Measures ``wallClockMs``. Live ticks use real time; simulations a deterministic model."""

    def start(self) -> None: ...

    def elapsed_ms(self, result: TickResult) -> float: ...


class RealStopwatch:
    """Monotonic time, as upstream measures it (``Date.now()`` differences)."""

    def __init__(self) -> None:
        self._t0 = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()

    def elapsed_ms(self, result: TickResult) -> float:
        return round((time.perf_counter() - self._t0) * 1000.0, 3)


class ModelStopwatch:
    """A deterministic wall clock for simulated towns: a fixed cost plus a cost per unit of work.

    Simulated databases must be byte-identical for the same seed, so they
    cannot record measured time. The model is documented in the report.
    """

    BASE_MS = 2.0
    PER_EVENT_MS = 0.4
    PER_ACTION_MS = 0.8
    PER_SIDE_EFFECT_MS = 1.5

    def start(self) -> None:
        return None

    def elapsed_ms(self, result: TickResult) -> float:
        m = result.metrics
        return float(
            round(
                self.BASE_MS
                + self.PER_EVENT_MS * m["eventsDrained"]
                + self.PER_ACTION_MS * m["actionsEmitted"]
                + self.PER_SIDE_EFFECT_MS * m["sideEffectsAttempted"],
                3,
            )
        )


def modelled_wall_clock(metrics: dict[str, Any]) -> float:
    """What :class:`ModelStopwatch` gives for a tick with these metrics."""
    return ModelStopwatch().elapsed_ms(TickResult(now="", draining=False, metrics=metrics))


def is_modelled(record: dict[str, Any]) -> bool:
    """Whether a tick record's ``wallClockMs`` came from the model rather than a measurement
    (a simulated or replayed tick): it equals the model's value for its metrics."""
    metrics = record.get("metrics") or {}
    try:
        return bool(metrics.get("wallClockMs") == modelled_wall_clock(metrics))
    except (KeyError, TypeError):
        return False


#: How :class:`ModelStopwatch` computes a tick's wall clock, for pages that show one.
MODEL_FORMULA = (
    f"{ModelStopwatch.BASE_MS:g} ms + {ModelStopwatch.PER_EVENT_MS:g} ms per event drained + "
    f"{ModelStopwatch.PER_ACTION_MS:g} ms per action + "
    f"{ModelStopwatch.PER_SIDE_EFFECT_MS:g} ms per side effect"
)


def wall_clock_kind(records: list[dict[str, Any]]) -> str:
    """``"modelled"``, ``"measured"`` or ``"partly modelled"``: what a window's wall clock is."""
    modelled = sum(1 for r in records if is_modelled(r))
    if modelled == len(records):
        return "modelled"
    return "measured" if modelled == 0 else "partly modelled"


class ContainerSource(Protocol):
    """Answers ``GET /agents/<id>/status`` for the pre-phase (§10)."""

    def status(self, agent_id: str, now: str) -> tuple[str, str | None]:
        """``(status, exit_reason)``; ``not_found`` / ``unknown`` for DO-side failures."""
        ...


@dataclass
class ContainerFilter:
    """Which container observations become ``container_status`` events.

    ``mode``: ``"upstream"`` skips ``running`` (PR #1368); ``"changes"`` also
    records a status that differs from the last one observed for the agent,
    so a recovery to ``running`` is visible; ``"off"`` records every answer
    (the pre-#1368 behaviour, for measuring the filter).
    """

    mode: str = "upstream"


@dataclass
class ContainerPhase:
    observed: int = 0
    recorded: int = 0


def zero_metrics() -> dict[str, Any]:
    """``ReconcilerMetrics`` (§9.1), zeroed as at the start of every tick."""
    return {
        "eventsDrained": 0,
        "actionsEmitted": 0,
        "actionsByType": {},
        "sideEffectsAttempted": 0,
        "sideEffectsSucceeded": 0,
        "sideEffectsFailed": 0,
        "invariantViolations": 0,
        "wallClockMs": 0,
        "pendingEventCount": 0,
    }


@dataclass
class TickResult:
    """Everything one tick saw and did."""

    now: str
    draining: bool
    container: ContainerPhase = field(default_factory=ContainerPhase)
    drain: events.DrainResult | None = None
    actions: list[Action] = field(default_factory=list)
    applied: list[ApplyRecord] = field(default_factory=list)
    side_effects: SideEffectStats | None = None
    violation_details: list[invariants.Violation] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=zero_metrics)
    active_work: bool = False
    next_tick_at: str = ""
    #: Actions applied by opt-in auto-recovery after the invariant check (not upstream's).
    recoveries: list[Action] = field(default_factory=list)

    @property
    def violations(self) -> list[dict[str, Any]]:
        """Upstream's ``checkInvariants`` result: ``[{"invariant", "message"}]``."""
        return [v.as_upstream() for v in self.violation_details]


def observe_containers(
    ctx: TownCtx, source: ContainerSource | None, flt: ContainerFilter
) -> ContainerPhase:
    """The pre-phase (§10): poll every working/stalled agent, record per the filter."""
    phase = ContainerPhase()
    if source is None:
        return phase
    agents = ctx.all(
        "SELECT bead_id FROM agent_metadata WHERE status IN ('working', 'stalled') ORDER BY bead_id"
    )
    for (agent_id,) in agents:
        status, exit_reason = source.status(agent_id, ctx.now)
        phase.observed += 1
        if should_record(ctx, agent_id, status, flt.mode):
            events.upsert_container_status(ctx, agent_id, status, exit_reason)
            phase.recorded += 1
    return phase


def tick(
    ctx: TownCtx,
    world: World | None,
    *,
    containers: ContainerSource | None = None,
    container_filter: ContainerFilter | None = None,
    stopwatch: Stopwatch | None = None,
    housekeeping: bool = True,
    auto_recover: frozenset[int] = frozenset(),
) -> TickResult:
    """Run one alarm tick at ``ctx.now`` and return what happened.

    ``world=None`` describes side effects without running them (as upstream's
    golden runs did): they are counted as attempted, nothing more.
    ``auto_recover`` lists invariants to correct after the check (see
    :mod:`reportgen.town.recovery`); empty by default, as upstream.
    """
    watch = stopwatch or RealStopwatch()
    container = observe_containers(ctx, containers, container_filter or ContainerFilter())
    watch.start()
    result = TickResult(now=ctx.now, draining=ctx.draining, container=container)
    m = result.metrics

    result.drain = events.drain_events(ctx)
    m["eventsDrained"] = result.drain.drained
    _drain_safety_net(ctx)
    result.draining = ctx.draining

    result.actions = reconciler.reconcile(ctx)
    m["actionsEmitted"] = len(result.actions)
    m["actionsByType"] = dict(Counter(a["type"] for a in result.actions))
    result.applied = apply_actions(ctx, result.actions)

    effects = [r.side_effect for r in result.applied if r.side_effect is not None]
    m["sideEffectsAttempted"] = len(effects)
    if world is not None:
        result.side_effects = run_side_effects(ctx, effects, world)
        m["sideEffectsAttempted"] = result.side_effects.attempted
        m["sideEffectsSucceeded"] = result.side_effects.succeeded
        m["sideEffectsFailed"] = result.side_effects.failed

    result.violation_details = invariants.check_invariants_detailed(ctx)
    m["invariantViolations"] = len(result.violation_details)
    result.recoveries = recovery.recover(ctx, result.violation_details, auto_recover)
    m["wallClockMs"] = watch.elapsed_ms(result)
    m["pendingEventCount"] = events.pending_event_count(ctx)

    result.active_work = has_active_work(ctx)
    if housekeeping:
        events.prune_old_events(ctx, EVENT_RETENTION_MS)
    result.next_tick_at = clock.iso(ctx.now_ms + interval_ms(result.active_work))
    return result


def _drain_safety_net(ctx: TownCtx) -> None:
    """Clear a draining flag older than 7 minutes (§4 step 6)."""
    if not ctx.draining:
        return
    started = store.get(ctx.conn, store.DRAIN_STARTED_AT)
    if started is not None and clock.stale_ms(str(started), DRAIN_TIMEOUT_MS, ctx.now):
        ctx.draining = False
        store.put(ctx.conn, store.DRAINING, False)
        store.delete(ctx.conn, store.DRAIN_STARTED_AT)
