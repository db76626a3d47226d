"""The behaviour a scenario dials in: durations, probabilities, rates.

Every knob is plain data so a scenario reads as a table of how its town
behaves. Durations are stored in milliseconds and sampled uniformly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from reportgen.town import clock


@dataclass(frozen=True)
class Span:
    """A duration range ``[lo_ms, hi_ms]``, sampled uniformly (whole milliseconds)."""

    lo_ms: int
    hi_ms: int

    @classmethod
    def minutes(cls, lo: float, hi: float) -> Span:
        return cls(int(lo * clock.MINUTE_MS), int(hi * clock.MINUTE_MS))

    @classmethod
    def seconds(cls, lo: float, hi: float) -> Span:
        return cls(int(lo * clock.SECOND_MS), int(hi * clock.SECOND_MS))

    def sample(self, rng: random.Random) -> int:
        return rng.randint(self.lo_ms, self.hi_ms)


@dataclass(frozen=True)
class Mishap:
    """Something that goes wrong in a process run with probability ``prob``, ``after`` its start."""

    prob: float = 0.0
    after: Span = field(default_factory=lambda: Span.minutes(1, 5))


NEVER = Mishap()


@dataclass(frozen=True)
class AgentKnobs:
    """How agent processes behave in the simulated container."""

    start_success: float = 1.0
    #: The container refuses every start during this span (from the town's start).
    start_outage: Span | None = None
    startup: Span = field(default_factory=lambda: Span.seconds(2, 8))
    heartbeat: Span = field(default_factory=lambda: Span.seconds(25, 35))
    polecat_work: Span = field(default_factory=lambda: Span.minutes(15, 45))
    refinery_review: Span = field(default_factory=lambda: Span.minutes(4, 12))
    #: The process dies; the container then answers one of ``crash_statuses``.
    polecat_crash: Mishap = NEVER
    refinery_crash: Mishap = NEVER
    crash_statuses: tuple[str, ...] = ("exited",)
    #: The process keeps heartbeating but makes no SDK progress (GUPP's target).
    hang: Mishap = NEVER
    #: The process keeps working but its heartbeats stop reaching the town.
    lost_heartbeat: Mishap = NEVER
    #: Delay between ``agent_done`` and the container's ``agent_completed`` report.
    completion_delay: Span = field(default_factory=lambda: Span.seconds(2, 6))


@dataclass(frozen=True)
class GitHubKnobs:
    """How the simulated GitHub treats pull requests."""

    #: Time until a human merges an open PR (when nobody auto-merges it first).
    merge_after: Span = field(default_factory=lambda: Span.minutes(10, 40))
    close_prob: float = 0.0
    landing_close_prob: float = 0.0
    #: CI that never goes green (feedback loops under ``auto_resolve_pr_feedback``).
    failing_checks_prob: float = 0.0
    conflict_prob: float = 0.0
    conflict_for: Span = field(default_factory=lambda: Span.minutes(10, 20))
    not_found_prob: float = 0.0
    transient_error_prob: float = 0.0
    awaiting_approval_prob: float = 0.0


@dataclass(frozen=True)
class UserKnobs:
    """How the town's users sling work."""

    initial_beads: int = 1
    initial_convoys: int = 0
    #: Mean time between slings (exponential); ``None``: only the initial work.
    sling_every: Span | None = None
    max_in_flight: int = 4
    convoy_prob: float = 0.0
    convoy_size: tuple[int, int] = (2, 4)
    convoy_merge_mode: str = "review-and-merge"
    stop_after: Span | None = None


@dataclass(frozen=True)
class Eviction:
    """A container eviction at ``at`` (from the start); the replacement is ready ``ready_after`` later."""

    at: Span
    ready_after: Span | None = field(default_factory=lambda: Span.minutes(2, 4))
