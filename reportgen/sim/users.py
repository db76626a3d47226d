"""The town's users: they sling beads and convoys at a rate, as long as their backlog allows.

A user does not pile up unlimited work: new work is slung only while fewer
than ``max_in_flight`` issues are unfinished, which also bounds how many
polecats the town runs (the engine itself has no cap).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reportgen.town import clock

if TYPE_CHECKING:
    from reportgen.sim.event_loop import Simulation

VERBS = ("Fix", "Add", "Refactor", "Document", "Speed up", "Test", "Remove", "Migrate")
NOUNS = (
    "login flow", "billing export", "search index", "rate limiter", "settings page",
    "CSV import", "audit log", "retry policy", "webhook handler", "cache layer",
)  # fmt: skip

_IN_FLIGHT_SQL = """
SELECT count(*) FROM beads
WHERE type = 'issue' AND status NOT IN ('closed', 'failed')
  AND labels NOT LIKE '%"gt:triage-request"%'
"""


def schedule_users(sim: Simulation) -> None:
    """Put the initial work and the first of the recurring slings on the agenda."""
    u = sim.knobs.users
    t = sim.start_ms + clock.SECOND_MS
    for _ in range(u.initial_beads):
        sim.agenda.at(t, lambda ms: sling_bead(sim, ms))
        t += clock.SECOND_MS
    for _ in range(u.initial_convoys):
        sim.agenda.at(t, lambda ms: sling_convoy(sim, ms))
        t += clock.SECOND_MS
    if u.sling_every is not None:
        sim.agenda.at(t + _gap(sim), lambda ms: user_turn(sim, ms))


def _gap(sim: Simulation) -> int:
    every = sim.knobs.users.sling_every
    assert every is not None
    mean = (every.lo_ms + every.hi_ms) / 2
    return max(clock.SECOND_MS, int(sim.rng.expovariate(1.0 / mean)))


def user_turn(sim: Simulation, ms: int) -> None:
    """Maybe sling something (backlog permitting), then come back later."""
    u = sim.knobs.users
    if u.stop_after is not None and ms - sim.start_ms > u.stop_after.lo_ms:
        return
    in_flight = int(sim.town.conn.execute(_IN_FLIGHT_SQL).fetchone()[0])
    if in_flight < u.max_in_flight:
        # A convoy only when all of its tasks fit in the backlog.
        if sim.rng.random() < u.convoy_prob and in_flight + u.convoy_size[1] <= u.max_in_flight:
            sling_convoy(sim, ms)
        else:
            sling_bead(sim, ms)
    sim.agenda.at(ms + _gap(sim), lambda t: user_turn(sim, t))


def _title(sim: Simulation) -> str:
    sim.titles += 1
    verb = VERBS[sim.rng.randrange(len(VERBS))]
    noun = NOUNS[sim.rng.randrange(len(NOUNS))]
    return f"{verb} {noun} #{sim.titles}"


def _rig(sim: Simulation) -> str:
    return sim.rig_ids[sim.rng.randrange(len(sim.rig_ids))]


def sling_bead(sim: Simulation, ms: int) -> None:
    sim.town.sling_bead(clock.iso(ms), _rig(sim), _title(sim))
    sim.poke(ms)


def sling_convoy(sim: Simulation, ms: int) -> None:
    """A convoy of a few tasks; each later task depends on an earlier one half of the time."""
    lo, hi = sim.knobs.users.convoy_size
    tasks: list[dict[str, Any]] = []
    for i in range(sim.rng.randint(lo, hi)):
        deps = [sim.rng.randrange(i)] if i and sim.rng.random() < 0.5 else []
        tasks.append({"title": _title(sim), "depends_on": deps})
    sim.town.sling_convoy(
        clock.iso(ms),
        _rig(sim),
        f"Convoy: {tasks[0]['title']}",
        tasks,
        merge_mode=sim.knobs.users.convoy_merge_mode,
    )
    sim.poke(ms)
