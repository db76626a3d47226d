"""How exact a replayed or recorded figure is: the fidelity labels and their caveats.

Every output of :mod:`reportgen.replay` carries one of these labels, and the
report shows it beside every figure it derives:

``exact``
    The source has an input journal: the state is rebuilt and every tick
    re-run with the world's recorded answers.
``approximate``
    The source has no journal (an upstream dump). Replay-events and dry-run
    work on its stored state (:data:`APPROXIMATE_CAVEAT`); a window shows the
    dump's own history, never ticks (:data:`HISTORY_CAVEAT`).
``simulated``
    Ticks run on a dump's stored state only when asked for
    (``--ticks simulate``): they never happened (:data:`SIMULATED_CAVEAT`).
``recorded``
    The town's own tick record, shown without re-running the engine.

Wall clock (``wallClockMs``) is a measurement, not a decision: replays run
the deterministic :class:`~reportgen.town.tick.ModelStopwatch`, and
:func:`is_modelled` tells a modelled recording from a measured one.
"""

from __future__ import annotations

from reportgen.town.tick import is_modelled as is_modelled
from reportgen.town.tick import modelled_wall_clock as modelled_wall_clock

EXACT = "exact"
APPROXIMATE = "approximate"
SIMULATED = "simulated"

APPROXIMATE_CAVEAT = (
    "approximate: {name} has no input journal, so the state at the window start cannot be "
    "rebuilt; the window's events were re-applied on top of the database's current state "
    "(as upstream's replay-events does), so actions and state may differ from what "
    "production did"
)
#: What a window of an upstream dump shows, and what it cannot (the town page says it).
HISTORY_CAVEAT = (
    "upstream dump: {name} has no input journal and no tick record. Shown: its own history "
    "over the window (bead_events and town_events at their times, with when each event was "
    "processed) and, at the window's end, a dry-run of what the reconciler would do on the "
    "stored state, which did not happen. Not shown: the reconciler's ticks, actions and "
    "invariant checks (a dump keeps none), so there are no violation episodes and the "
    "behaviour findings are not judged; states and titles are as stored when the dump was "
    "taken, not as of the window. Ask for --ticks simulate to see ticks simulated on "
    "today's state"
)
#: Synthetic ticks of a dump (``--ticks simulate``): labelled so wherever they show.
SIMULATED_CAVEAT = (
    "simulated on today's state: {name} has no input journal, so these ticks never "
    "happened. They ran on the alarm cadence from the window start over the dump's stored "
    "(current) state, not the state at the window start, with no container or SCM answers, "
    "each event re-inserted at its time; their actions, violations and wallClockMs are not "
    "what production did"
)
REWIND_CAVEAT = (
    "approximate: {name} has no input journal and holds data newer than {at}; the current "
    "state was used at that time"
)


RECORDED_CAVEAT = (
    "Shown as recorded: the engine did not re-run these ticks, so nothing was checked for "
    "divergence (`reportgen build --ticks replay` re-runs and compares them)."
)
LATEST_ENTITIES_CAVEAT = (
    " Entity titles and statuses are as the file holds them, not as of the window's end."
)
