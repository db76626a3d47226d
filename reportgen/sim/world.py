"""The simulated outside world the engine's side effects talk to.

:class:`SimWorld` implements the engine's ``World`` (start/stop agents, PRs,
nudges, wasteland) and ``ContainerSource`` (the pre-phase's status poll) on
top of the simulated container and GitHub. It is called *during* a tick, so
it never calls the town API itself: it only schedules what the started
processes will do later on the agenda.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from reportgen.sim.agents import plan_run
from reportgen.sim.container import Process
from reportgen.town import clock
from reportgen.town.effects import PRFeedback, PRStatus

if TYPE_CHECKING:
    from reportgen.sim.event_loop import Simulation

STOP_GRACE_MS = 3 * clock.SECOND_MS


class SimWorld:
    """World + ContainerSource for one simulated town."""

    def __init__(self, sim: Simulation) -> None:
        self.sim = sim

    # ---------------------------------------------------------------- container

    def status(self, agent_id: str, now: str) -> tuple[str, str | None]:
        return self.sim.container.status(agent_id, clock.to_ms(now))

    def start_agent(self, agent_id: str, bead_id: str, rig_id: str) -> bool:
        sim = self.sim
        if sim.rng.random() >= sim.knobs.agents.start_success:
            return False
        now = sim.now_ms
        outage = sim.knobs.agents.start_outage
        if outage is not None and outage.lo_ms <= now - sim.start_ms < outage.hi_ms:
            return False
        row = sim.town.conn.execute(
            "SELECT role FROM agent_metadata WHERE bead_id = ?", (agent_id,)
        ).fetchone()
        proc = Process(
            agent_id=agent_id,
            bead_id=bead_id,
            role=str(row[0]) if row is not None else "polecat",
            started_ms=now,
            ready_ms=now + sim.knobs.agents.startup.sample(sim.rng),
        )
        old = sim.container.procs.get(agent_id)
        if old is not None and old.alive:
            old.end("exited", "replaced")
        sim.container.procs[agent_id] = proc
        plan_run(sim, proc)
        return True

    def stop_agent(self, agent_id: str) -> None:
        proc = self.sim.container.procs.get(agent_id)
        if proc is not None and proc.alive:
            proc.end("exited", "stopped")
            proc.stopping_until_ms = self.sim.now_ms + STOP_GRACE_MS

    # ---------------------------------------------------------------- SCM

    def check_pr_status(self, url: str) -> PRStatus:
        self.sim.github.now_ms = self.sim.now_ms
        return self.sim.github.check_pr_status(url)

    def check_pr_feedback(self, url: str) -> PRFeedback | None:
        return self.sim.github.check_pr_feedback(url)

    def merge_pr(self, url: str) -> bool:
        self.sim.github.now_ms = self.sim.now_ms
        return self.sim.github.merge_pr(url)

    # ---------------------------------------------------------------- the rest

    def queue_nudge(self, agent_id: str, message: str, tier: str) -> bool:
        """Delivered when the agent has a live process (a hung one ignores it)."""
        proc = self.sim.container.procs.get(agent_id)
        return proc is not None and proc.alive

    def report_wasteland_done(
        self, wasteland_id: str, item_id: str, evidence: str, canonical_bead_id: str
    ) -> bool:
        return False
