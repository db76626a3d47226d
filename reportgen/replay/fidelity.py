"""How exact a replayed or recorded figure is: the fidelity labels and their caveats.

Every output of :mod:`reportgen.replay` carries one of these labels, and the
report shows it beside every figure it derives:

``exact``
    The source has an input journal: the state is rebuilt and every tick
    re-run with the world's recorded answers.
``approximate``
    The source has no journal (an upstream dump); see :data:`APPROXIMATE_CAVEAT`.
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

APPROXIMATE_CAVEAT = (
    "approximate: {name} has no input journal, so the state at the window start cannot be "
    "rebuilt; the window's events were re-applied on top of the database's current state "
    "(as upstream's replay-events does), so actions and state may differ from what "
    "production did"
)
APPROXIMATE_TICKS_CAVEAT = (
    "; ticks ran on the alarm cadence from the window start with a null world (no container "
    "or SCM answers) and each event re-inserted at its time; wallClockMs is modelled"
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
