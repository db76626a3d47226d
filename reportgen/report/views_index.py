"""The index's view-model: every town's status, every episode, what changed since the last run.

Also the page left at the permalink of an episode this run no longer shows
(:class:`ResolvedPage`). What every page shares is in :mod:`views_shared`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NewType

from reportgen.diagnose.episodes import to_ms
from reportgen.report.charts import NO_DATA, Chart, NoData, TrendData
from reportgen.report.ordering import newest_first, open_then_newest
from reportgen.report.verdicts import UNKNOWN, VERDICTS, FindingRow, town_order, verdict_rank
from reportgen.report.views_shared import (
    NEW,
    PERSISTING,
    RESOLVED,
    EpisodeRow,
    FleetEpisode,
    status_counts,
    window_label,
)

#: Town id → the run it was last built in. Its keys are data (town ids), so it is a map, not
#: a dataclass; the template reads it through :attr:`IndexPage.last_built`.
RunByTown = NewType("RunByTown", dict[str, str])


# ── Index ────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class TownSummary:
    """One town's line on the index (also written for towns whose build failed)."""

    town_id: str
    href: str | None
    state: str  # "ok", "violations", "failed"
    fidelity: str
    caveat: str | None
    window_from: str
    window_to: str
    ticks: int
    events: int
    actions: int
    side_effects_failed: int
    episodes: int
    episodes_open: int
    episodes_new: int
    last_tick_at: str | None
    last_tick_label: str
    divergence: bool
    error: str | None = None
    #: The town's name (its file's name without the suffix) and its source file.
    name: str = ""
    source: str = ""
    #: The diagnosis: the verdict (``unknown`` when the town failed or was not judged),
    #: its findings worst first (the JSON contract), and the worst one in a sentence.
    verdict: str = UNKNOWN
    findings: list[FindingRow] = field(default_factory=list)
    headline: str = ""

    @property
    def label(self) -> str:
        """What the index calls the town: its name, else its id."""
        return self.name or self.town_id

    @property
    def id_differs(self) -> bool:
        """Whether the index shows the town's id under its name (they differ)."""
        return bool(self.name) and self.name != self.town_id

    @property
    def verdict_rank(self) -> int:
        """The verdict column's sort key: stuck 0, degraded 1, healthy 2, unknown 3."""
        return verdict_rank(self.verdict)

    @property
    def counted_findings(self) -> int:
        """How many of the town's findings count for its verdict (expected ones never do)."""
        return sum(1 for f in self.findings if f.counted)

    @property
    def last_tick_sort(self) -> str:
        """The sort key of the last-tick column (towns without ticks first)."""
        return self.last_tick_at or ""


@dataclass(frozen=True)
class ResolvedRow:
    """An episode of the previous run that is gone from this one."""

    id: str
    town_id: str
    invariant: int
    title: str
    first_at: str
    last_at: str
    href: str
    #: The town's name as the history recorded it (its id when the history has none), and
    #: its page when this run built it ("" otherwise).
    town_name: str = ""
    town_href: str = ""


@dataclass(frozen=True)
class ResolvedPage:
    """The page left at a resolved episode's permalink, so ticket links keep working."""

    kind: str
    title: str
    root: str
    id: str
    invariant: int
    town_id: str
    first_at: str
    last_at: str
    last_run: str
    entity_ids: list[str]
    #: ``resolved`` (gone from its town), or ``not rebuilt`` (its town failed this run).
    state: str = RESOLVED
    #: The town's name as the history recorded it (its id when the history has none), and
    #: its page when this run built it ("" otherwise).
    town_name: str = ""
    town_href: str = ""

    @property
    def is_resolved(self) -> bool:
        return self.state == RESOLVED


@dataclass(frozen=True)
class TrendRow:
    """Episodes of one invariant in each of the runs the trends cover."""

    number: int
    title: str
    counts: list[int]


@dataclass(frozen=True)
class IndexTotals:
    """The index's headline numbers."""

    towns: int
    towns_failed: int
    ticks: int
    actions: int
    events: int
    episodes: int
    new: int
    new_unexpected: int
    #: New episodes the diagnosis marks expected (shown muted).
    new_expected: int
    persisting: int
    resolved: int
    not_rebuilt: int


@dataclass(frozen=True)
class TownLine:
    """A town's row in the index table: its summary, and whether this run did not rebuild it."""

    town: TownSummary
    not_rebuilt: bool


@dataclass(frozen=True)
class VerdictCount:
    """How many towns of the index have one verdict."""

    verdict: str
    towns: int

    @property
    def alert(self) -> bool:
        return self.verdict == "stuck"


@dataclass(frozen=True)
class LastBuilt:
    """A town this run did not rebuild, and the run that last built it."""

    town_id: str
    run: str
    name: str = ""


@dataclass(frozen=True)
class ExpectedGroup:
    """A town's expected episodes of one invariant, in one line of the index (a documented
    false alarm should not be the loudest thing on the page: the town page lists them)."""

    town_id: str
    town_name: str
    town_href: str
    invariant: int
    title: str
    why: str
    count: int
    open: int

    @property
    def href(self) -> str:
        """The invariant's group on the town page."""
        return f"{self.town_href}#inv-{self.invariant}"


def expected_groups(episodes: Sequence[FleetEpisode]) -> list[ExpectedGroup]:
    """The expected episodes by town and invariant, in the order they first appear."""
    groups: dict[tuple[str, int], list[FleetEpisode]] = {}
    for e in episodes:
        if e.expected:
            groups.setdefault((e.town_id, e.invariant), []).append(e)
    return [
        ExpectedGroup(
            town_id=rows[0].town_id,
            town_name=rows[0].town_name,
            town_href=rows[0].town_href,
            invariant=rows[0].invariant,
            title=rows[0].title,
            why=rows[0].expected_why,
            count=len(rows),
            open=sum(1 for r in rows if r.open_at_end),
        )
        for rows in groups.values()
    ]


@dataclass(frozen=True)
class IndexPage:
    """The landing page: every town's status, every open episode, what changed since last run."""

    kind: str
    title: str
    root: str
    window_from: str
    window_to: str
    window_label: str
    totals: IndexTotals
    towns: list[TownSummary]
    #: Every episode of the run, open ones first, then newest, one line each.
    episodes: list[FleetEpisode]
    resolved: list[ResolvedRow]
    trend_runs: list[str]
    trends: list[TrendRow]
    charts: list[Chart] = field(default_factory=list)
    datasets: TrendData | NoData = NO_DATA
    #: Episodes carried from the previous run for towns this run did not build.
    not_rebuilt: list[ResolvedRow] = field(default_factory=list)
    #: Those towns, and the run each was last built in.
    not_rebuilt_towns: RunByTown = field(default_factory=lambda: RunByTown({}))
    #: Those towns by name (as the history recorded it, else their id), each with its run.
    last_built: list[LastBuilt] = field(default_factory=list)

    @property
    def unexpected_episodes(self) -> list[FleetEpisode]:
        """The episodes the index lists one by one (the expected ones are grouped)."""
        return [e for e in self.episodes if not e.expected]

    @property
    def expected_groups(self) -> list[ExpectedGroup]:
        return expected_groups(self.episodes)

    @property
    def town_lines(self) -> list[TownLine]:
        return [TownLine(t, t.town_id in self.not_rebuilt_towns) for t in self.towns]

    @property
    def verdict_counts(self) -> list[VerdictCount]:
        """The towns per verdict, worst first (only the verdicts present)."""
        found = [t.verdict for t in self.towns]
        return [VerdictCount(v, found.count(v)) for v in VERDICTS if v in found]

    @property
    def has_trends(self) -> bool:
        """Trends need more than one run."""
        return len(self.trend_runs) > 1


def build_index(
    summaries: Sequence[TownSummary],
    episodes: Sequence[EpisodeRow],
    resolved: Sequence[ResolvedRow],
    trend_runs: Sequence[str],
    trends: Sequence[TrendRow],
    not_rebuilt: Sequence[ResolvedRow] = (),
    *,
    not_rebuilt_towns: RunByTown | None = None,
    names: Mapping[str, str] | None = None,
    charts: Sequence[Chart] = (),
    datasets: TrendData | NoData = NO_DATA,
) -> IndexPage:
    """The index view-model; towns stuck → degraded → healthy → unknown (then by worst
    severity and name); episodes open ones first, then newest first (:mod:`ordering`);
    towns not rebuilt by the ``names`` the history recorded (else their id)."""
    towns = sorted(summaries, key=lambda s: town_order(s.verdict, s.findings, s.name, s.town_id))
    froms = [s.window_from for s in towns if s.window_from]
    tos = [s.window_to for s in towns if s.window_to]
    w_from = min(froms, key=to_ms) if froms else ""
    w_to = max(tos, key=to_ms) if tos else ""
    rows = open_then_newest(episodes)
    counts = status_counts(rows)
    totals = IndexTotals(
        towns=len(towns),
        towns_failed=sum(1 for s in towns if s.state == "failed"),
        ticks=sum(s.ticks for s in towns),
        actions=sum(s.actions for s in towns),
        events=sum(s.events for s in towns),
        episodes=len(rows),
        new=counts[NEW],
        new_unexpected=sum(1 for r in rows if r.status == NEW and not r.expected),
        new_expected=sum(1 for r in rows if r.status == NEW and r.expected),
        persisting=counts[PERSISTING],
        resolved=len(resolved),
        not_rebuilt=len(not_rebuilt),
    )
    return IndexPage(
        kind="index",
        title="Reconciler report",
        root="",
        window_from=w_from,
        window_to=w_to,
        window_label=window_label(w_from, w_to) if w_from and w_to else "no data",
        totals=totals,
        towns=towns,
        episodes=[FleetEpisode.of(r) for r in rows],
        resolved=newest_first(resolved),
        trend_runs=list(trend_runs),
        trends=list(trends),
        charts=list(charts),
        datasets=datasets,
        not_rebuilt=newest_first(not_rebuilt),
        not_rebuilt_towns=not_rebuilt_towns or RunByTown({}),
        last_built=[
            LastBuilt(town, run, (names or {}).get(town, town))
            for town, run in (not_rebuilt_towns or {}).items()
        ],
    )
