"""The reconcile pass (spec §5): read the town, return the actions that fix it.

``reconcile(ctx)`` concatenates seven passes in upstream's order. Every pass
only *reads* ``ctx.conn`` and never the wall clock: "now" is ``ctx.now``,
SQL cutoffs are computed from it and passed as parameters, so a replay of a
recorded tick decides exactly what upstream decided.

Upstream's queries mostly have no ORDER BY; ours are the same queries, so
actions of one rule come in SQLite row order. Compare the actions of one
pass as a multiset (spec §17).

Each pass lives in its own module: agents and GC in
:mod:`reportgen.town.reconciler_agents`, beads in
:mod:`reportgen.town.reconciler_beads`, the review queue in
:mod:`reportgen.town.reconciler_review`, convoys in
:mod:`reportgen.town.reconciler_convoys`, GUPP in
:mod:`reportgen.town.reconciler_gupp` and wasteland claims in
:mod:`reportgen.town.reconciler_wasteland`; shared constants, reads and
action builders are in :mod:`reportgen.town.reconciler_common`.
"""

from __future__ import annotations

from collections.abc import Callable

from reportgen.town.context import Action, TownCtx
from reportgen.town.reconciler_agents import reconcile_agents, reconcile_gc
from reportgen.town.reconciler_beads import reconcile_beads
from reportgen.town.reconciler_convoys import reconcile_convoys
from reportgen.town.reconciler_gupp import reconcile_gupp
from reportgen.town.reconciler_review import reconcile_review_queue
from reportgen.town.reconciler_wasteland import reconcile_wasteland_claims

__all__ = [
    "PASSES",
    "reconcile",
    "reconcile_agents",
    "reconcile_beads",
    "reconcile_by_pass",
    "reconcile_convoys",
    "reconcile_gc",
    "reconcile_gupp",
    "reconcile_review_queue",
    "reconcile_wasteland_claims",
]

# ════════════════════════════════════════════════════════════════════════
# reconcile
# ════════════════════════════════════════════════════════════════════════

#: The seven passes in upstream's order (spec §5). Names are upstream's.
PASSES: tuple[tuple[str, Callable[[TownCtx], list[Action]]], ...] = (
    ("reconcileAgents", reconcile_agents),
    ("reconcileBeads", reconcile_beads),
    ("reconcileReviewQueue", reconcile_review_queue),
    ("reconcileConvoys", reconcile_convoys),
    ("reconcileGUPP", reconcile_gupp),
    ("reconcileGC", reconcile_gc),
    ("reconcileWastelandClaims", reconcile_wasteland_claims),
)


def reconcile_by_pass(ctx: TownCtx) -> list[tuple[str, list[Action]]]:
    """Each pass's actions, labelled with the pass name, in pass order."""
    return [(name, fn(ctx)) for name, fn in PASSES]


def reconcile(ctx: TownCtx) -> list[Action]:
    """All actions of one reconcile, in emission order (spec §5). Reads only."""
    return [action for _, actions in reconcile_by_pass(ctx) for action in actions]
