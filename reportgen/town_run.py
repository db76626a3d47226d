"""The contract between replay and the report: one town's replayed window.

Replay (``reportgen.replay.replay_window``) produces a :class:`TownRun`; the
report (``reportgen.report``) turns it into pages; Sentry and history read its
episodes and the findings of its diagnosis. It is plain data (JSON-able through :meth:`TownRun.to_json`), so a
fleet build can stream it to disk between the two steps.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Divergence:
    """The first difference between a recorded tick and its replay (Temporal-style)."""

    tick_at: str
    field: str
    recorded: Any
    replayed: Any


@dataclass
class EntityInfo:
    """A bead or agent as the report names it: identity plus its state at the window's end."""

    id: str
    kind: str  # "bead" or "agent"
    type: str  # bead type, or the agent role
    title: str  # bead title, or the agent name
    status: str | None
    rig_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class TownRun:
    """One town's window, replayed tick by tick.

    ``ticks`` are per-tick records in the shape of
    :func:`reportgen.town.record.tick_record` (``at``, ``container``,
    ``events``, ``actions``, ``apply``, ``side_effects``, ``violations``
    (each with ``invariant``, ``message`` and the entity ids involved),
    ``metrics``, ``active_work``, ``next_tick_at``), in time order.
    """

    town_id: str
    source: str
    window_from: str
    window_to: str
    fidelity: str  # "exact" or "approximate"
    caveat: str | None
    ticks: list[dict[str, Any]]
    entities: dict[str, EntityInfo] = field(default_factory=dict)
    bead_events: list[dict[str, Any]] = field(default_factory=list)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    divergence: Divergence | None = None
    compared_ticks: int = 0
    journal_inputs: int = 0
    #: Why the window is what it is (given, or taken from the data), for the command line.
    window_reason: str = ""
    #: Stored timestamps set aside as implausible to choose the window
    #: (``table``, ``key``, ``column``, ``value``); empty when the window was given.
    ignored_times: list[dict[str, str]] = field(default_factory=list)
    #: The town's diagnosis over the window (``None``: not judged), plain JSON:
    #: ``verdict``, ``findings`` in their JSON contract (each with its ``witness``
    #: tick times and ``meanwhile`` loop), ``judged``/``not_judged`` kinds, and
    #: ``expected_episodes`` (ids of the violation episodes that are expected).
    #: Filled by :class:`reportgen.diagnose.loader.DiagnosingLoader`.
    diagnosis: dict[str, Any] | None = None
    #: The name a person knows the town by (stored with the town, else its file's stem).
    town_name: str = ""
    #: For a source with no journal (a bare upstream dump), the source's own history
    #: over the window, shown as its timeline instead of ticks (``ticks`` is then
    #: empty unless synthetic ticks were asked for). Time-ordered plain-JSON entries:
    #: ``at`` (ISO time), ``kind`` (``bead_event``, ``town_event`` or ``dry_run``),
    #: ``label`` (one line), ``entities`` (``[kind, id]`` pairs it touched) and
    #: ``detail`` (the stored fields, for the expanded view).
    history: list[dict[str, Any]] = field(default_factory=list)
    #: The file a reader passes to ``reportgen replay --db`` to reproduce this town ("":
    #: ``source``), and one line on where to get it; set by the report build
    #: (:mod:`reportgen.report.reproduce`), e.g. the town's bundle in the nightly's artefact.
    replay_db: str = ""
    replay_where: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
