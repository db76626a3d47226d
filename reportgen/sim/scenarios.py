"""Named scenarios: small towns whose behaviour leads, by itself, to a known (often stuck) state.

Each scenario is a function whose docstring says what goes wrong and what a
report of the town must show (which actions, which invariant violations, at
which ticks, counted from the start of the run); the function returns the
town's configuration and behaviour knobs. ``tests/test_scenarios.py`` checks
every documented outcome against the simulated databases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from reportgen.errors import BadInputError
from reportgen.sim.incidents import Incident, alarm_outage, buggy_double_hook, eviction
from reportgen.sim.knobs import AgentKnobs, Eviction, GitHubKnobs, Mishap, Span, UserKnobs
from reportgen.town import clock

DIRECT: dict[str, Any] = {"merge_strategy": "direct", "refinery": {"code_review": True}}


def pr_config(**refinery: Any) -> dict[str, Any]:
    """A PR-strategy town; ``refinery`` overrides upstream's new-town refinery settings."""
    base = {"code_review": True, "auto_merge": True, "auto_merge_delay_minutes": 2,
            "auto_resolve_pr_feedback": False, "review_mode": "comments"}  # fmt: skip
    return {"merge_strategy": "pr", "refinery": {**base, **refinery}}


@dataclass(frozen=True)
class Rig:
    name: str
    config: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Scenario:
    """A town's setup and behaviour; ``doc`` is the scenario function's docstring."""

    name: str
    doc: str
    config: Mapping[str, Any]
    rigs: tuple[Rig, ...] = (Rig("webapp"),)
    agents: AgentKnobs = field(default_factory=AgentKnobs)
    github: GitHubKnobs = field(default_factory=GitHubKnobs)
    users: UserKnobs = field(default_factory=UserKnobs)
    incidents: tuple[Incident, ...] = ()
    hours: float = 2.0
    container_unknown_prob: float = 0.0

    @property
    def summary(self) -> str:
        """The docstring's first line (what ``reportgen simulate --list`` prints)."""
        return self.doc.strip().splitlines()[0]


SCENARIOS: dict[str, Scenario] = {}


def scenario(name: str) -> Callable[[Callable[[], dict[str, Any]]], Callable[[], dict[str, Any]]]:
    """Register the decorated function's knobs and docstring under ``name``."""

    def register(fn: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        SCENARIOS[name] = Scenario(name=name, doc=fn.__doc__ or name, **fn())
        return fn

    return register


def get_scenario(name: str) -> Scenario:
    """The scenario called ``name``; a bad name is bad input naming the valid ones."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise BadInputError(
            f"unknown scenario {name!r} (valid: {', '.join(sorted(SCENARIOS))})"
        ) from None


# --------------------------------------------------------------------------- the scenarios


@scenario("healthy-day")
def healthy_day() -> dict[str, Any]:
    """A day of ordinary work: beads and convoys flow through polecats and the refinery.

    One rig, direct merges, about five agents (up to four polecats and the
    refinery); every start succeeds and nothing crashes. Users sling a bead
    every ~20 minutes (occasionally a review-then-land convoy) while fewer
    than four issues are unfinished.

    Report: no invariant violations at any tick. Actions are the normal flow:
    ``dispatch_agent`` (polecats for issues, the refinery for MRs),
    ``transition_bead`` ("popped for review"), ``hook_agent``, convoy
    progress/landing actions. Nearly every container answer is ``running``,
    so the container filter records ~1 % of the observations.
    """
    return {
        "config": DIRECT,
        "hours": 24.0,
        "users": UserKnobs(
            initial_beads=2,
            sling_every=Span.minutes(10, 30),
            max_in_flight=4,
            convoy_prob=0.1,
            convoy_size=(2, 3),
            convoy_merge_mode="review-then-land",
        ),
    }


@scenario("review-round-stuck")
def review_round_stuck() -> dict[str, Any]:
    """A PR whose CI never goes green: feedback rounds repeat and the review never finishes.

    PR strategy with ``auto_resolve_pr_feedback``. One bead; its PR's checks
    fail forever. Each poll finds failing checks, a ``gt:pr-feedback`` bead is
    created and dispatched to a polecat, the polecat pushes a "fix", and the
    next poll finds the checks failing again.

    Report: from the first poll on (≈ 10–35 min in), ``poll_pr`` every minute
    on the same MR, a new ``gt:pr-feedback`` bead and its ``dispatch_agent``
    every round (several rounds per hour); the MR is still ``in_progress`` at
    the end, nothing is merged, no ``merge_pr``. No invariant violations.
    """
    return {
        "config": pr_config(auto_resolve_pr_feedback=True),
        "hours": 4.0,
        "agents": AgentKnobs(polecat_work=Span.minutes(8, 20)),
        "github": GitHubKnobs(failing_checks_prob=1.0),
        "users": UserKnobs(initial_beads=1),
    }


@scenario("container-crash-loop")
def container_crash_loop() -> dict[str, Any]:
    """Every polecat crashes seconds after starting; beads burn their dispatch attempts and fail.

    The container starts each agent, which dies 20–60 s later; the container
    then answers ``exited`` (acted on: the agent goes idle) or ``failed``
    (ignored upstream, quirk 9: the heartbeat rule idles the agent after 90 s).

    Report: ``container_status`` events ``exited``/``failed``; per bead, five
    ``dispatch_agent`` actions spaced by the 30 s/1/2/5 min backoff, each
    followed ~90 s after the crash by ``unhook_agent`` + ``transition_bead``
    (→ open, A4); then ``transition_bead`` → ``failed`` ("max dispatch
    attempts exceeded") about 15–25 min after the bead was slung. No bead is
    ever closed. No invariant violations.
    """
    return {
        "config": DIRECT,
        "hours": 2.0,
        "agents": AgentKnobs(
            polecat_crash=Mishap(1.0, Span.seconds(20, 60)), crash_statuses=("exited", "failed")
        ),
        "users": UserKnobs(initial_beads=2, sling_every=Span.minutes(20, 40), max_in_flight=3),
    }


@scenario("working-agent-no-hook")
def working_agent_no_hook() -> dict[str, Any]:
    """A refinery that keeps exiting mid-review ends up working with no hook (invariant 7).

    Direct merges. The refinery's process is OOM-killed 11–13 min into every
    review (reviews would take 20–30 min). Each time, the container reports
    ``exited``, the refinery goes idle still hooked, and R6 re-dispatches it
    in the same tick. From the third exit on, the MR's ``updated_at`` is
    over 30 min old, so in that one tick R2 reopens the stuck review and
    unhooks the refinery while R6 dispatches it (spec §17): the refinery ends
    the tick ``working`` without a hook.

    Report: invariant 7 at the tick of the third exit (≈ 35–40 min after the
    MR was popped, ≈ 45–55 min in); that tick has ``transition_bead``
    ("stuck review, no working agent"), ``unhook_agent`` and
    ``dispatch_agent`` for the refinery; the next tick idles it
    (``transition_agent``, "working agent has no hook"). Later the MR runs
    out of dispatch attempts (``transition_bead`` → failed) and the source
    issue briefly violates invariant 4 until Rule 4 reopens it.
    """
    return {
        "config": DIRECT,
        "hours": 3.0,
        "agents": AgentKnobs(
            polecat_work=Span.minutes(5, 10),
            refinery_review=Span.minutes(20, 30),
            refinery_crash=Mishap(1.0, Span.minutes(11, 13)),
        ),
        "users": UserKnobs(initial_beads=1),
    }


@scenario("double-hook")
def double_hook() -> dict[str, Any]:
    """A buggy admin script hooks a second polecat onto a busy bead (invariant 6).

    No upstream RPC can do this (``hookBead`` unhooks the previous holder);
    from 15 min on the script looks, once a minute, for a spare idle polecat
    and a bead another polecat is working on, writes the hook directly
    (``Town.force_hook``, journaled) and starts the helper.

    Report: invariant 6 ("Bead … has 2 agents hooked") from the first tick
    after the write until the first of the two agents calls ``gt_done``
    (usually tens of minutes); both agents submit work, so the bead gets two
    merge-request beads.
    """
    return {
        "config": DIRECT,
        "hours": 2.0,
        "agents": AgentKnobs(polecat_work=Span.minutes(15, 50)),
        "users": UserKnobs(initial_beads=2, sling_every=Span.minutes(15, 25), max_in_flight=2),
        "incidents": (buggy_double_hook(15 * clock.MINUTE_MS),),
    }


@scenario("multi-pr-rig")
def multi_pr_rig() -> dict[str, Any]:
    """Several PRs open at once in one rig: invariant 3 fires although nothing is wrong.

    PR strategy, code review off: every polecat PR is fast-tracked to
    ``in_progress`` and polled until a human merges it 30–90 min later.
    Upstream's invariant 3 counts PR-strategy MRs too (quirk 14).

    Report: invariant 3 ("Rig … has N in_progress MR beads") from the tick
    the second PR is fast-tracked (≈ 15–40 min in) and on most ticks after,
    while two or more PRs are open; ``transition_bead`` ("refinery code
    review disabled — skip to poll_pr") and ``poll_pr`` every minute per PR;
    no refinery is ever dispatched.
    """
    return {
        "config": pr_config(code_review=False, auto_merge_delay_minutes=None),
        "hours": 3.0,
        "agents": AgentKnobs(polecat_work=Span.minutes(8, 20)),
        "github": GitHubKnobs(merge_after=Span.minutes(30, 90)),
        "users": UserKnobs(initial_beads=3, sling_every=Span.minutes(10, 20), max_in_flight=5),
    }


@scenario("in-review-without-mr")
def in_review_without_mr() -> dict[str, Any]:
    """PRs that 404 fail their MR while the issue stays ``in_review`` (invariant 4).

    PR strategy, code review off. Half the PRs polecats open are gone when
    the town polls them (branch deleted, HTTP 404): ``poll_pr`` fails the MR
    at once, but nothing moves the source issue out of ``in_review`` until
    Rule 4's safety net, 5 min after the issue entered review.

    Report: invariant 4 from the tick of the failing poll (seconds after
    ``gt_done``) for 5 to 10 min — Rule 4 waits 5 min, and an ``in_review``
    issue is not "active work", so the town may drop to its 5-minute idle
    cadence meanwhile — ended by ``transition_bead`` (in_review → open, "all
    reviews failed") + ``clear_bead_assignee``; then the issue is dispatched
    again (and fails for good after five dispatches). Invariant 3 may show
    while two PRs are open.
    """
    return {
        "config": pr_config(code_review=False),
        "hours": 2.0,
        "agents": AgentKnobs(polecat_work=Span.minutes(8, 15)),
        "github": GitHubKnobs(not_found_prob=0.5, merge_after=Span.minutes(5, 15)),
        "users": UserKnobs(initial_beads=2, sling_every=Span.minutes(20, 30), max_in_flight=3),
    }


@scenario("circuit-breaker-open")
def circuit_breaker_open() -> dict[str, Any]:
    """The container refuses every start while users keep slinging: the breaker opens.

    Every ``start_agent`` is refused (no capacity). Each dispatch leaves a
    phantom ``working`` agent that the heartbeat rule idles after 90 s; the
    bead is reopened and retried with backoff. Users sling a bead every
    ~90 s for the first hour.

    Report: once 20 beads had a dispatch attempt in the last 30 min (≈ 25–35
    min in), ``notify_mayor`` ("Dispatch circuit breaker is OPEN") on every
    tick, with no ``dispatch_agent`` in those ticks; beads that used five
    attempts get ``transition_bead`` → failed. No invariant violations.
    """
    return {
        "config": DIRECT,
        "hours": 2.0,
        "agents": AgentKnobs(start_success=0.0),
        "users": UserKnobs(
            initial_beads=4,
            sling_every=Span.minutes(1, 2),
            max_in_flight=40,
            stop_after=Span.minutes(60, 60),
        ),
    }


@scenario("convoy-landing-exhausted")
def convoy_landing_exhausted() -> dict[str, Any]:
    """A convoy whose landing PR is closed every time: five landing MRs, then the convoy fails.

    PR strategy, a review-then-land convoy of three tasks. The tasks' PRs
    merge normally; every landing PR is closed unmerged (conflicts with
    main), so each landing MR fails and the convoy tries again after a
    growing cooldown.

    Report: the convoy is marked ready to land when its last task closes
    (``metadata.ready_to_land``, set by the close itself), then five
    ``create_landing_mr`` actions (cooldowns 1, 2, 4, 8 min after each
    failure) and finally ``fail_convoy`` ("Landing MR creation failed after 5
    attempts"); the convoy ends ``failed``. Invariant 3 may show while a
    task PR and a landing PR are open together.
    """
    return {
        "config": pr_config(),
        "hours": 6.0,
        "agents": AgentKnobs(polecat_work=Span.minutes(8, 15)),
        "github": GitHubKnobs(merge_after=Span.minutes(5, 10), landing_close_prob=1.0),
        "users": UserKnobs(
            initial_beads=0,
            initial_convoys=1,
            convoy_size=(3, 3),
            convoy_merge_mode="review-then-land",
        ),
    }


@scenario("eviction-during-work")
def eviction_during_work() -> dict[str, Any]:
    """The container is evicted while polecats work: the town drains, then recovers.

    Three polecats are working when the container gets SIGTERM (12–15 min
    in). The town records the eviction (draining); each agent reports
    ``agent_completed`` with reason ``container eviction``; the replacement
    container is ready 3–5 min later.

    Report: ticks with ``draining`` from the eviction until the ready
    acknowledgement, with no ``dispatch_agent`` in them; the interrupted
    beads go back to ``open`` (``transition_bead`` "agent lost" +
    ``clear_bead_assignee``, Rule 3) during the drain and are dispatched
    again after it. No invariant violations.
    """
    return {
        "config": DIRECT,
        "hours": 2.0,
        "agents": AgentKnobs(polecat_work=Span.minutes(20, 40)),
        "users": UserKnobs(initial_beads=3, sling_every=Span.minutes(20, 30), max_in_flight=3),
        "incidents": (eviction(Eviction(at=Span.minutes(12, 15), ready_after=Span.minutes(3, 5))),),
    }


@scenario("gupp-escalation")
def gupp_escalation() -> dict[str, Any]:
    """A polecat hangs: it heartbeats but makes no progress, and GUPP escalates to a force stop.

    The polecat's SDK stops producing events 2–4 min into its run while its
    heartbeat (with no active tools) continues.

    Report: ``send_nudge`` (tier warn) just over 15 min after the last SDK
    event, ``send_nudge`` (escalate) + ``create_triage_request`` just over
    1 h after it, and just over 2 h after it ``transition_agent`` → stalled
    + ``stop_agent`` + ``create_triage_request`` (GUPP force stop); the
    container then reports the stopped run and the bead is dispatched
    again. No invariant violations.
    """
    return {
        "config": DIRECT,
        "hours": 3.0,
        "agents": AgentKnobs(
            polecat_work=Span.minutes(300, 400), hang=Mishap(1.0, Span.minutes(2, 4))
        ),
        "users": UserKnobs(initial_beads=1),
    }


@scenario("attempts-exhausted")
def attempts_exhausted() -> dict[str, Any]:
    """The container refuses every start for an hour: the work slung meanwhile is lost for good.

    Users sling a bead every few minutes for the first 40 min; the
    container refuses every start until 60 min in, then accepts again. Each
    refused dispatch leaves a phantom ``working`` agent the heartbeat rule
    idles after 90 s; the bead is reopened and retried with backoff, and
    the polecats' own attempt counters climb past the cap.

    Report: ``dispatch_agent`` five times per bead, every start refused,
    then ``transition_bead`` → failed ("max dispatch attempts exceeded", or
    Rule 3's "agent lost, max dispatch attempts exhausted") about 15–25 min
    after each bead was slung. After the container is back
    nothing is dispatched again: every bead is failed, the town is idle and
    the polecats sit at the cap until the attempt reset (A3) clears them
    30 min after their last activity. No bead is ever closed. No invariant
    violations.
    """
    return {
        "config": DIRECT,
        "hours": 2.0,
        "agents": AgentKnobs(start_outage=Span.minutes(0, 60)),
        "users": UserKnobs(
            initial_beads=2,
            sling_every=Span.minutes(4, 8),
            max_in_flight=6,
            stop_after=Span.minutes(40, 40),
        ),
    }


@scenario("alarm-stopped")
def alarm_stopped() -> dict[str, Any]:
    """The alarm stops firing for 30 min while polecats work, then resumes.

    Three beads are in progress when the alarm is not delivered for 30 min
    (40–50 min in). The agents keep working and heartbeating; those that
    finish call ``gt_done``, whose events wait, pending, for the next tick.

    Report: no tick for 30 min although the last tick before the gap had
    active work; the first tick after it drains every event that piled up
    (``agent_done``, ``agent_completed``, ``bead_created``) and the town
    carries on. No invariant violations.
    """
    return {
        "config": DIRECT,
        "hours": 2.0,
        "agents": AgentKnobs(polecat_work=Span.minutes(20, 40)),
        "users": UserKnobs(initial_beads=3, sling_every=Span.minutes(15, 25), max_in_flight=3),
        "incidents": (alarm_outage(Span.minutes(40, 50), Span.minutes(30, 30)),),
    }
