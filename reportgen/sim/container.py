"""The simulated town container: one process per agent, and what ``/agents/<id>/status`` says.

Upstream's pre-phase asks the container about every working or stalled agent
each tick. Here the answer follows the agent's simulated process: ``starting``
until it is up, ``running`` while it lives (even when it hangs or its
heartbeats are lost: the container cannot tell), ``stopping`` for a moment
after a stop, then ``exited``/``failed`` after it ends, and ``not_found`` for
an agent that never got a process (a refused start, or a container replaced
by an eviction). ``unknown`` models the DO-side lookup failing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Process:
    """One run of an agent in the container."""

    agent_id: str
    bead_id: str
    role: str
    started_ms: int
    ready_ms: int
    alive: bool = True
    stopping_until_ms: int = 0
    exit_status: str = "exited"
    exit_reason: str | None = None
    #: From this time on the process makes no SDK progress (it hangs).
    hung_from_ms: int | None = None
    #: From this time on its heartbeats never reach the town.
    silent_from_ms: int | None = None

    def end(self, status: str, reason: str | None) -> None:
        self.alive = False
        self.exit_status = status
        self.exit_reason = reason

    def hung(self, now_ms: int) -> bool:
        return self.hung_from_ms is not None and now_ms >= self.hung_from_ms

    def silent(self, now_ms: int) -> bool:
        return self.silent_from_ms is not None and now_ms >= self.silent_from_ms


class SimContainer:
    """Processes by agent id; the newest run of an agent replaces the previous one."""

    def __init__(self, rng: random.Random, unknown_prob: float = 0.0) -> None:
        self.rng = rng
        self.unknown_prob = unknown_prob
        self.procs: dict[str, Process] = {}

    def current(self, proc: Process) -> bool:
        """Whether ``proc`` is still the agent's live run (scheduled work checks this)."""
        return self.procs.get(proc.agent_id) is proc and proc.alive

    def status(self, agent_id: str, now_ms: int) -> tuple[str, str | None]:
        if self.unknown_prob and self.rng.random() < self.unknown_prob:
            return "unknown", None
        proc = self.procs.get(agent_id)
        if proc is None:
            return "not_found", None
        if proc.alive:
            return ("starting", None) if now_ms < proc.ready_ms else ("running", None)
        if now_ms < proc.stopping_until_ms:
            return "stopping", None
        return proc.exit_status, proc.exit_reason

    def evict(self) -> list[Process]:
        """The container goes away: every process ends and the new container knows none."""
        live = sorted((p for p in self.procs.values() if p.alive), key=lambda p: p.agent_id)
        for proc in live:
            proc.end("exited", "evicted")
        self.procs.clear()
        return live
