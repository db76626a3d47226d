"""Things that happen to a town from outside its users and agents: evictions, buggy clients.

Each incident is a function of the :class:`~reportgen.sim.event_loop.Simulation`
that puts its tasks on the agenda when the town is set up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from reportgen.sim.knobs import Eviction, Span
from reportgen.town import clock

if TYPE_CHECKING:
    from reportgen.sim.event_loop import Simulation

Incident = Callable[["Simulation"], None]

RETRY_MS = clock.MINUTE_MS


def eviction(spec: Eviction) -> Incident:
    """The container gets SIGTERM: every run ends and reports ``agent_completed`` (eviction).

    Upstream's container reports each of its agents as completed with reason
    ``container eviction`` while it drains; the town records the eviction
    (draining) and the replacement container acknowledges with the nonce.
    """

    def schedule(sim: Simulation) -> None:
        sim.agenda.at(sim.start_ms + spec.at.sample(sim.rng), lambda ms: _evict(sim, spec, ms))

    return schedule


def _evict(sim: Simulation, spec: Eviction, ms: int) -> None:
    nonce = sim.town.record_container_eviction(clock.iso(ms))
    sim.poke(ms)
    for i, proc in enumerate(sim.container.evict()):
        report_ms = ms + (i + 1) * clock.SECOND_MS

        def report(t: int, agent_id: str = proc.agent_id) -> None:
            sim.town.agent_completed(
                clock.iso(t), agent_id, status="completed", reason="container eviction"
            )
            sim.poke(t)

        sim.agenda.at(report_ms, report)
    if spec.ready_after is not None:
        ready_ms = ms + spec.ready_after.sample(sim.rng)

        def ready(t: int) -> None:
            sim.town.acknowledge_container_ready(clock.iso(t), nonce)

        sim.agenda.at(ready_ms, ready)


_HOOK_TARGET_SQL = """
SELECT am.current_hook_bead_id FROM agent_metadata am
JOIN beads b ON b.bead_id = am.current_hook_bead_id
WHERE am.role = 'polecat' AND am.status = 'working' AND b.type = 'issue'
  AND b.status = 'in_progress'
ORDER BY am.bead_id LIMIT 1
"""
_SPARE_POLECAT_SQL = """
SELECT bead_id FROM agent_metadata
WHERE role = 'polecat' AND status = 'idle' AND current_hook_bead_id IS NULL
ORDER BY bead_id LIMIT 1
"""


def buggy_double_hook(after_ms: int) -> Incident:
    """An admin script "pairs" an idle polecat with a busy one by writing its hook directly.

    No upstream RPC can hook two agents to one bead (``hookBead`` unhooks the
    previous holder), so the script writes ``current_hook_bead_id`` itself
    (:meth:`Town.force_hook`, journaled) and asks the container to start the
    helper. Tried from ``after_ms`` on, once a minute, until both a busy
    polecat and a spare one exist.
    """

    def attempt(sim: Simulation, ms: int) -> None:
        conn = sim.town.conn
        target = conn.execute(_HOOK_TARGET_SQL).fetchone()
        spare = conn.execute(_SPARE_POLECAT_SQL).fetchone()
        if target is None or spare is None:
            sim.agenda.at(ms + RETRY_MS, lambda t: attempt(sim, t))
            return
        agent_id, bead_id = str(spare[0]), str(target[0])
        sim.town.force_hook(clock.iso(ms), agent_id, bead_id)
        sim.now_ms = ms
        rig = conn.execute("SELECT rig_id FROM beads WHERE bead_id = ?", (bead_id,)).fetchone()
        sim.world.start_agent(agent_id, bead_id, str(rig[0] or ""))

    def schedule(sim: Simulation) -> None:
        sim.agenda.at(sim.start_ms + after_ms, lambda ms: attempt(sim, ms))

    return schedule


def alarm_outage(at: Span, lasts: Span) -> Incident:
    """The town's alarm is not delivered for a while (a platform incident), then resumes.

    No tick runs from ``at`` (after the start) for ``lasts``; agents keep
    working and calling the town meanwhile (heartbeats, ``gt_done``), so
    their events wait, pending, for the first tick after the outage.
    """

    def schedule(sim: Simulation) -> None:
        def stop(ms: int) -> None:
            sim.alarm_blocked_until_ms = ms + lasts.sample(sim.rng)

        sim.agenda.at(sim.start_ms + at.sample(sim.rng), stop)

    return schedule
