"""The town invariants upstream checks after every tick (spec §8).

Five invariants, checked in upstream's order 7, 5, 3, 6, 4 (1 and 2 were
never implemented upstream). Upstream only *reports* violations; nothing
corrects them. :func:`check_invariants` returns exactly upstream's
``{invariant, message}`` list; :func:`check_invariants_detailed` returns the
same violations with the ids of the agents, beads and rigs involved, for
reports that link a violation to the entities (and episodes) behind it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reportgen.town.context import TownCtx

__all__ = [
    "INVARIANTS",
    "Invariant",
    "Violation",
    "check_invariants",
    "check_invariants_detailed",
    "find_invariant",
    "invariant_by_number",
]


@dataclass(frozen=True)
class Violation:
    """One broken invariant, with the entities it is about."""

    invariant: int
    message: str
    agent_ids: tuple[str, ...] = ()
    bead_ids: tuple[str, ...] = ()
    rig_ids: tuple[str, ...] = ()

    def as_upstream(self) -> dict[str, Any]:
        """Upstream's shape: ``{"invariant": n, "message": text}``."""
        return {"invariant": self.invariant, "message": self.message}


@dataclass(frozen=True)
class Invariant:
    """Everything reportgen knows about one invariant, in one place.

    ``subject`` is the kind of entity its message names (``"agent"``, ``"bead"``
    or ``"rig"``): violation episodes are keyed by it, and so are Sentry
    groups and history. ``because`` is the plain sentence that explains one
    violation, with ``{agents}``, ``{beads}``, ``{rigs}`` (entity lists),
    ``{bead_count}`` and ``{status}`` placeholders the report fills in.
    """

    number: int
    title: str
    description: str
    check: Callable[[TownCtx], list[Violation]] = field(repr=False)
    subject: str = "bead"
    because: str = ""

    @property
    def subject_field(self) -> str:
        """The :class:`Violation` field that holds the subject's id."""
        return f"{self.subject}_ids"

    def fingerprint(self, town_id: str, subject_id: str | None) -> list[str]:
        """The Sentry grouping: invariant + town (+ the entity it names), never the message."""
        parts = ["reconciler-invariant", str(self.number), town_id]
        return [*parts, subject_id] if subject_id else parts


# ── The checks (queries as upstream's checkInvariants) ────────────────────


def _working_without_hook(ctx: TownCtx) -> list[Violation]:
    rows = ctx.all(
        "SELECT bead_id FROM agent_metadata "
        "WHERE status = 'working' AND current_hook_bead_id IS NULL AND role != 'mayor'"
    )
    return [
        Violation(7, f"Working agent {r['bead_id']} has no hook", agent_ids=(r["bead_id"],))
        for r in rows
    ]


def _convoy_unexpected_state(ctx: TownCtx) -> list[Violation]:
    rows = ctx.all(
        "SELECT bead_id, status FROM beads WHERE type = 'convoy' "
        "AND status NOT IN ('open', 'in_progress', 'in_review', 'closed', 'failed')"
    )
    return [
        Violation(
            5,
            f"Convoy bead {r['bead_id']} is in unexpected state '{r['status']}'",
            bead_ids=(r["bead_id"],),
        )
        for r in rows
    ]


def _several_mrs_in_progress(ctx: TownCtx) -> list[Violation]:
    rows = ctx.all(
        """
        SELECT rig_id, count(*) AS cnt, group_concat(bead_id, char(31)) AS mrs
        FROM beads
        WHERE type = 'merge_request' AND status = 'in_progress' AND rig_id IS NOT NULL
        GROUP BY rig_id
        HAVING count(*) > 1
        """
    )
    return [
        Violation(
            3,
            f"Rig {r['rig_id']} has {r['cnt']} in_progress MR beads (should be at most 1)",
            bead_ids=_split(r["mrs"]),
            rig_ids=(r["rig_id"],),
        )
        for r in rows
    ]


def _several_agents_hooked(ctx: TownCtx) -> list[Violation]:
    rows = ctx.all(
        """
        SELECT current_hook_bead_id AS hook, count(*) AS cnt,
               group_concat(bead_id, char(31)) AS agents
        FROM agent_metadata
        WHERE current_hook_bead_id IS NOT NULL
        GROUP BY current_hook_bead_id
        HAVING count(*) > 1
        """
    )
    return [
        Violation(
            6,
            f"Bead {r['hook']} has {r['cnt']} agents hooked (should be at most 1)",
            agent_ids=_split(r["agents"]),
            bead_ids=(r["hook"],),
        )
        for r in rows
    ]


def _in_review_without_live_mr(ctx: TownCtx) -> list[Violation]:
    rows = ctx.all(
        """
        SELECT b.bead_id, b.rig_id FROM beads b
        WHERE b.type = 'issue' AND b.status = 'in_review'
          AND NOT EXISTS (
            SELECT 1 FROM bead_dependencies bd
            JOIN beads mr ON mr.bead_id = bd.bead_id
            WHERE bd.depends_on_bead_id = b.bead_id AND bd.dependency_type = 'tracks'
              AND mr.type = 'merge_request' AND mr.status IN ('open', 'in_progress')
          )
        """
    )
    return [
        Violation(
            4,
            f"Issue bead {r['bead_id']} is in_review but has no open/in_progress MR bead",
            bead_ids=(r["bead_id"],),
            rig_ids=(r["rig_id"],) if r["rig_id"] else (),
        )
        for r in rows
    ]


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(sorted(text.split("\x1f"))) if text else ()


# ── Registry (upstream's check order) ────────────────────────────────────

INVARIANTS: tuple[Invariant, ...] = (
    Invariant(
        7,
        "Working agent without a hook",
        "An agent is marked as working but is not bound to any bead, so it is "
        "spending a container slot on nothing the town can account for. It "
        "usually means an action unhooked the agent while another dispatched "
        "it in the same tick, or the agent finished and was never set idle; the "
        "heartbeat rule idles it on a later tick. Mayors are exempt: they work "
        "without a hook by design.",
        _working_without_hook,
        subject="agent",
        because=(
            "agent {agents} is marked working, but it holds no hook: no bead is bound to it, "
            "and only mayors may work without one."
        ),
    ),
    Invariant(
        5,
        "Convoy in an unknown state",
        "A convoy bead has a status outside open, in_progress, in_review, closed "
        "and failed. Nothing in the reconciler knows how to progress or close "
        "such a convoy, so its tracked work can never land; the row was most "
        "likely written by hand or by a buggy writer.",
        _convoy_unexpected_state,
        subject="bead",
        because=(
            "convoy {beads} has status {status}, but the reconciler only progresses convoys "
            "that are open, in_progress, in_review, closed or failed."
        ),
    ),
    Invariant(
        3,
        "Several MRs in progress in one rig",
        "More than one merge-request bead of the same rig is in progress. The "
        "refinery reviews one direct merge at a time, so two in-progress "
        "reviews can race on the same target branch. Upstream counts PR-strategy "
        "MRs too, so a rig with several open pull requests shows this every "
        "tick without anything being wrong.",
        _several_mrs_in_progress,
        subject="rig",
        because=(
            "rig {rigs} has {bead_count} merge requests in progress ({beads}), but the refinery "
            "reviews one merge at a time, so they can race on the target branch."
        ),
    ),
    Invariant(
        6,
        "Several agents hooked to one bead",
        "Two or more agents are bound to the same bead, so they may work on the "
        "same task at once, push conflicting branches, or report it done twice. "
        "Hooking normally unhooks the previous holder, so this points at a race "
        "or a direct write.",
        _several_agents_hooked,
        subject="bead",
        because=(
            "agents {agents} are all hooked to bead {beads}, but a bead may be held by at most "
            "one agent."
        ),
    ),
    Invariant(
        4,
        "Issue in review without a live MR",
        "An issue bead says it is in review, but no open or in-progress merge "
        "request tracks it, so nobody is reviewing it and it will not move "
        "until the reconciler's safety net settles it (after 5 minutes) or "
        "someone intervenes. A short-lived violation right after an MR finishes "
        "is expected.",
        _in_review_without_live_mr,
        subject="bead",
        because=("issue {beads} is in review, but no open or in-progress merge request tracks it."),
    ),
)

_BY_NUMBER = {inv.number: inv for inv in INVARIANTS}


def invariant_by_number(number: int) -> Invariant:
    """The registered invariant with upstream number ``number`` (KeyError if unknown)."""
    return _BY_NUMBER[number]


def find_invariant(number: int) -> Invariant | None:
    """The registered invariant with upstream number ``number``, or ``None``."""
    return _BY_NUMBER.get(number)


def check_invariants_detailed(ctx: TownCtx) -> list[Violation]:
    """Every violation, in upstream's order, with the entity ids involved. Reads only."""
    return [violation for inv in INVARIANTS for violation in inv.check(ctx)]


def check_invariants(ctx: TownCtx) -> list[dict[str, Any]]:
    """Upstream's ``checkInvariants``: ``[{"invariant": n, "message": ...}, ...]``."""
    return [violation.as_upstream() for violation in check_invariants_detailed(ctx)]
