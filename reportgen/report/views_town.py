"""The town run page and the town's line on the index.

The town page puts status and episodes first (grouped by invariant, each
with the "why"), then the charts, the quarantined events, and the town's
timeline: the whole window in one view, its rows in data files beside the
page (:mod:`reportgen.report.timeline_files`), summarised on the page for
readers without JavaScript. Everything is computed from the town's
:class:`~reportgen.report.town_data.TownData`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reportgen.report import chart_data, charts
from reportgen.report.charts import Chart, TownDatasets
from reportgen.report.explain import Part
from reportgen.report.format import clean, compact, fmt_time
from reportgen.report.ordering import open_then_newest
from reportgen.report.timeline_files import TimelineSummary
from reportgen.report.town_data import TownData, busy
from reportgen.report.verdicts import UNKNOWN, FindingRow, TownDiagnosis
from reportgen.report.views_index import TownSummary
from reportgen.report.views_shared import (
    EpisodeRef,
    EpisodeRow,
    invariant_description,
    invariant_title,
    town_href,
    town_name,
    window_label,
)
from reportgen.town.tick import wall_clock_kind
from reportgen.town_run import TownRun

#: Episodes of one invariant shown in full on the town page; the rest get a short line each.
GROUP_ROWS = 10
#: Episodes of one invariant whose explanation the town page repeats.
GROUP_DETAILS = 3


@dataclass(frozen=True)
class QuarantineRow:
    """One event row the drain could not parse: kept out of the replay, with its reason."""

    event_id: str
    event_type: str
    reason: str
    at: str


def quarantine_row(q: Mapping[str, Any]) -> QuarantineRow:
    """A quarantined event as the run lists it (``at`` is the tick that met it)."""
    return QuarantineRow(
        event_id=clean(str(q["event_id"])),
        event_type=clean(str(q["event_type"])),
        reason=clean(str(q["reason"])),
        at=str(q["at"]),
    )


@dataclass(frozen=True)
class EpisodeDetail:
    """The "why" of one episode on the town page: its explanation and how to reproduce it."""

    id: str
    href: str
    summary: str
    parts: list[Part]
    replay_command: str
    #: Where to get the file the replay command names.
    replay_where: str


@dataclass(frozen=True)
class InvariantGroup:
    """The episodes of one invariant on the town page."""

    number: int
    title: str
    description: str
    #: The first :data:`GROUP_ROWS` episodes (open ones first, then newest), in full.
    episodes: list[EpisodeRow]
    #: The rest, one short line each (a day of a flapping invariant holds dozens).
    older: list[EpisodeRef]
    #: Why, for the first :data:`GROUP_DETAILS` episodes (every episode's page says why).
    details: list[EpisodeDetail]

    @property
    def count(self) -> int:
        """Every episode of the invariant, in full or in one line."""
        return len(self.episodes) + len(self.older)

    @property
    def some_unexplained(self) -> bool:
        """Some episodes' explanations are only on their pages."""
        return len(self.details) < self.count

    @property
    def all_expected(self) -> bool:
        """Every episode of the group is expected (the group is shown muted)."""
        every = [r.expected for r in self.episodes] + [r.expected for r in self.older]
        return bool(every) and all(every)

    @property
    def expected_why(self) -> str:
        """Why every episode of the group is expected ("" unless all are): the banner mutes it."""
        return self.episodes[0].expected_why if self.all_expected else ""


@dataclass(frozen=True)
class TownTotals:
    """Window totals, straight from the tick metrics."""

    ticks: int
    active_ticks: int
    events: int
    actions: int
    fx_attempted: int
    fx_succeeded: int
    fx_failed: int
    violations: int
    max_wall_ms: float
    #: ``measured``, ``modelled`` or ``partly modelled`` (:func:`wall_clock_kind`).
    wall_clock: str
    max_pending: int


@dataclass(frozen=True)
class DivergenceView:
    """Where a replay first differed from the recorded tick (both sides as compact JSON)."""

    tick_at: str
    label: str
    href: str
    field: str
    recorded: str
    replayed: str


@dataclass(frozen=True)
class TownPage:
    """The town run page: status and episodes first, then charts, then the timeline."""

    kind: str
    title: str
    root: str
    town_id: str
    source: str
    window_from: str
    window_to: str
    window_label: str
    fidelity: str
    caveat: str | None
    divergence: DivergenceView | None
    compared_ticks: int
    totals: TownTotals
    groups: list[InvariantGroup]
    charts: list[Chart]
    datasets: TownDatasets
    timeline: TimelineSummary
    quarantined: list[QuarantineRow]
    #: The town's diagnosis (:mod:`reportgen.report.findings`): its verdict, findings
    #: worst first (the JSON contract, as on the index) and how the page shows them.
    verdict: str = UNKNOWN
    findings: list[FindingRow] = field(default_factory=list)
    diagnosis: TownDiagnosis | None = None
    #: The name stored with the town (``""``: none, the page uses its file's name).
    town_name: str = ""

    @property
    def name(self) -> str:
        """The name a person knows the town by (stored, else its file's), shown before its id."""
        return town_name(self.source, self.town_id, self.town_name)

    @property
    def id_note(self) -> str:
        """The town's id in small print after its name (empty when the name is the id)."""
        return "" if self.name == self.town_id else self.town_id

    @property
    def href(self) -> str:
        """The town's permalink (site-relative), for its copy-link button."""
        return town_href(self.town_id)


def totals(run: TownRun) -> TownTotals:
    """Window totals, straight from the tick metrics."""
    sums = dict.fromkeys(("active", "events", "actions", "fa", "fs", "ff", "violations", "q"), 0)
    wall = 0.0
    for tick in run.ticks:
        m = tick.get("metrics") or {}
        sums["active"] += 1 if busy(tick) else 0
        sums["events"] += int(m.get("eventsDrained", 0))
        sums["actions"] += int(m.get("actionsEmitted", 0))
        sums["fa"] += int(m.get("sideEffectsAttempted", 0))
        sums["fs"] += int(m.get("sideEffectsSucceeded", 0))
        sums["ff"] += int(m.get("sideEffectsFailed", 0))
        sums["violations"] += int(m.get("invariantViolations", 0))
        wall = max(wall, float(m.get("wallClockMs", 0)))
        sums["q"] = max(sums["q"], int(m.get("pendingEventCount", 0)))
    return TownTotals(
        ticks=len(run.ticks),
        active_ticks=sums["active"],
        events=sums["events"],
        actions=sums["actions"],
        fx_attempted=sums["fa"],
        fx_succeeded=sums["fs"],
        fx_failed=sums["ff"],
        violations=sums["violations"],
        max_wall_ms=wall,
        wall_clock=wall_clock_kind(run.ticks),
        max_pending=sums["q"],
    )


def _divergence(data: TownData) -> DivergenceView | None:
    d = data.run.divergence
    if d is None:
        return None
    return DivergenceView(
        tick_at=d.tick_at,
        label=fmt_time(d.tick_at),
        href=data.tick_href(d.tick_at),
        field=clean(d.field),
        recorded=compact(d.recorded),
        replayed=compact(d.replayed),
    )


def _groups(data: TownData) -> list[InvariantGroup]:
    """The town's episodes by invariant (open ones first, then newest), each explained."""
    by_number: dict[int, list[EpisodeRow]] = {}
    for row in open_then_newest(data.rows[ep.id] for ep in data.episodes):
        by_number.setdefault(row.invariant, []).append(row)
    return [
        InvariantGroup(
            n,
            invariant_title(n),
            invariant_description(n),
            rows[:GROUP_ROWS],
            [EpisodeRef.of(r) for r in rows[GROUP_ROWS:]],
            [_detail(data, r) for r in rows[:GROUP_DETAILS]],
        )
        for n, rows in sorted(by_number.items())
    ]


def _detail(data: TownData, r: EpisodeRow) -> EpisodeDetail:
    return EpisodeDetail(
        r.id,
        r.href,
        r.summary,
        data.explanations[r.id].parts,
        r.replay_command,
        clean(data.run.replay_where),
    )


def town_page(data: TownData, timeline: TimelineSummary) -> TownPage:
    """The town page's view-model (its charts and its timeline cover the whole window)."""
    run = data.run
    datasets = chart_data.town_datasets(data)
    return TownPage(
        kind="town",
        title=town_name(run.source, run.town_id, run.town_name),
        root="../../",
        town_id=clean(run.town_id),
        source=clean(run.source),
        window_from=run.window_from,
        window_to=run.window_to,
        window_label=window_label(run.window_from, run.window_to),
        fidelity=clean(run.fidelity),
        caveat=clean(run.caveat) if run.caveat else None,
        divergence=_divergence(data),
        compared_ticks=run.compared_ticks,
        totals=totals(run),
        groups=_groups(data),
        charts=charts.town_charts(datasets, wall_clock_kind(run.ticks), run.fidelity),
        datasets=datasets,
        timeline=timeline,
        quarantined=[quarantine_row(q) for q in run.quarantined],
        town_name=clean(run.town_name),
    )


def town_summary(data: TownData) -> TownSummary:
    """The town's line on the index."""
    run = data.run
    t = totals(run)
    last = str(run.ticks[-1]["at"]) if run.ticks else None
    return TownSummary(
        town_id=clean(run.town_id),
        href=town_href(run.town_id),
        state="violations" if data.episodes else "ok",
        fidelity=clean(run.fidelity),
        caveat=clean(run.caveat) if run.caveat else None,
        window_from=run.window_from,
        window_to=run.window_to,
        ticks=len(run.ticks),
        events=t.events,
        actions=t.actions,
        side_effects_failed=t.fx_failed,
        episodes=len(data.episodes),
        episodes_open=sum(1 for ep in data.episodes if ep.open_at_end),
        episodes_new=sum(1 for s in data.statuses.values() if s == "new"),
        last_tick_at=last,
        last_tick_label=fmt_time(last) if last else "no ticks",
        divergence=run.divergence is not None,
    )
