"""Page view-models: plain data computed from TownRuns (and history), before any rendering.

Every page of the site is one dataclass here or in :mod:`model_town` /
:mod:`model_detail`. Templates only read them and every page's JSON twin is
``dataclasses.asdict`` of the same object, so what the HTML shows and what
the JSON says cannot drift apart. Links are site-root relative
(``towns/t1/index.html``); templates prefix them with the page's ``root``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reportgen.diagnose.episodes import Episode, to_ms
from reportgen.report.text import clean, ellipsis, fmt_duration, fmt_time, short_id, slug
from reportgen.report.verdicts import UNKNOWN, FindingRow, town_order
from reportgen.runmodel import EntityInfo, TownRun
from reportgen.town.invariants import INVARIANTS

#: Invariant number → (title, description), from the engine's registry.
INVARIANT_INFO: dict[int, tuple[str, str]] = {
    inv.number: (inv.title, inv.description) for inv in INVARIANTS
}

#: Episode status against the previous run (see :mod:`reportgen.report.history`).
NEW, PERSISTING, RESOLVED = "new", "persisting", "resolved"


def invariant_title(number: int) -> str:
    """The registry title, or a neutral name for a number the registry does not know."""
    return INVARIANT_INFO.get(number, (f"Invariant {number}", ""))[0]


def invariant_description(number: int) -> str:
    return INVARIANT_INFO.get(number, ("", "No description is registered for this invariant."))[1]


# ── Paths ────────────────────────────────────────────────────────────────


def town_dir(town_id: str) -> str:
    return f"towns/{slug(town_id)}"


def town_href(town_id: str) -> str:
    return f"{town_dir(town_id)}/index.html"


def ticks_href(town_id: str, page: int) -> str:
    """Tick table page ``page`` (1-based); page 1 is the town page itself."""
    return town_href(town_id) if page == 1 else f"{town_dir(town_id)}/ticks-{page}.html"


def entity_href(town_id: str, kind: str, entity_id: str) -> str:
    return f"{town_dir(town_id)}/e/{kind}-{slug(entity_id)}.html"


def violation_href(episode_id: str) -> str:
    """The permalink of an episode: its id only, so it survives nightly rebuilds."""
    return f"violations/{episode_id}.html"


def tick_anchor(at: str) -> str:
    return f"tick-{to_ms(at)}"


# ── Shared pieces ────────────────────────────────────────────────────────


@dataclass
class EntityLink:
    """A link to an entity page, with a readable label and the full id for the tooltip."""

    id: str
    kind: str
    label: str
    href: str


@dataclass
class EpisodeRow:
    """One violation episode as tables list it."""

    id: str
    href: str
    town_id: str
    town_href: str
    invariant: int
    title: str
    status: str
    first_at: str
    first_label: str
    first_href: str
    last_at: str
    last_label: str
    last_href: str
    duration: str
    duration_ms: int
    ticks: int
    open_at_start: bool
    open_at_end: bool
    entities: list[EntityLink]
    summary: str
    replay_command: str
    #: The diagnosis marks the episode expected (shown muted, never a red banner), and why.
    expected: bool = False
    expected_why: str = ""


class Entities:
    """Entity lookup for one town: labels, kinds and the pages that exist."""

    def __init__(self, run: TownRun) -> None:
        self.town_id = run.town_id
        self.info: Mapping[str, EntityInfo] = run.entities

    def kind(self, kind_hint: str, entity_id: str) -> str:
        info = self.info.get(entity_id)
        return info.kind if info is not None and info.kind in ("bead", "agent") else kind_hint

    def label(self, entity_id: str) -> str:
        info = self.info.get(entity_id)
        if info is None or not info.title:
            return short_id(entity_id)
        return ellipsis(info.title, 48)

    def link(self, kind_hint: str, entity_id: str) -> EntityLink:
        kind = self.kind(kind_hint, entity_id)
        return EntityLink(
            id=clean(entity_id),
            kind=kind,
            label=self.label(entity_id),
            href=entity_href(self.town_id, kind, entity_id),
        )


def episode_links(entities: Entities, episode: Episode) -> list[EntityLink]:
    e = episode.entities
    return (
        [entities.link("agent", i) for i in e.agent_ids]
        + [entities.link("bead", i) for i in e.bead_ids]
        + [entities.link("rig", i) for i in e.rig_ids]
    )


def status_counts(rows: Sequence[EpisodeRow]) -> dict[str, int]:
    counts = {NEW: 0, PERSISTING: 0}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


# ── Index ────────────────────────────────────────────────────────────────


@dataclass
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


@dataclass
class ResolvedRow:
    """An episode of the previous run that is gone from this one."""

    id: str
    town_id: str
    invariant: int
    title: str
    first_at: str
    last_at: str
    href: str


@dataclass
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


@dataclass
class TrendRow:
    number: int
    title: str
    counts: list[int]


@dataclass
class IndexPage:
    """The landing page: every town's status, every open episode, what changed since last run."""

    kind: str
    title: str
    root: str
    window_from: str
    window_to: str
    window_label: str
    totals: dict[str, int]
    towns: list[TownSummary]
    episodes: list[EpisodeRow]
    resolved: list[ResolvedRow]
    trend_runs: list[str]
    trends: list[TrendRow]
    charts: list[dict[str, Any]] = field(default_factory=list)
    datasets: dict[str, Any] = field(default_factory=dict)
    #: Episodes carried from the previous run for towns this run did not build.
    not_rebuilt: list[ResolvedRow] = field(default_factory=list)
    #: Those towns: town id -> the run they were last built in.
    not_rebuilt_towns: dict[str, str] = field(default_factory=dict)


def window_label(window_from: str, window_to: str) -> str:
    span = fmt_duration(to_ms(window_to) - to_ms(window_from))
    return f"{fmt_time(window_from)} → {fmt_time(window_to)} UTC ({span})"


def build_index(
    summaries: Sequence[TownSummary],
    episodes: Sequence[EpisodeRow],
    resolved: Sequence[ResolvedRow],
    trend_runs: Sequence[str],
    trends: Sequence[TrendRow],
    not_rebuilt: Sequence[ResolvedRow] = (),
) -> IndexPage:
    """The index view-model; towns stuck → degraded → healthy → unknown (then by worst
    severity and name), episodes by first tick then town."""
    towns = sorted(summaries, key=lambda s: town_order(s.verdict, s.findings, s.name, s.town_id))
    froms = [s.window_from for s in towns if s.window_from]
    tos = [s.window_to for s in towns if s.window_to]
    w_from = min(froms, key=to_ms) if froms else ""
    w_to = max(tos, key=to_ms) if tos else ""
    rows = sorted(episodes, key=lambda r: (to_ms(r.first_at), r.town_id, r.invariant, r.id))
    counts = status_counts(rows)
    totals = {
        "towns": len(towns),
        "towns_failed": sum(1 for s in towns if s.state == "failed"),
        "ticks": sum(s.ticks for s in towns),
        "actions": sum(s.actions for s in towns),
        "events": sum(s.events for s in towns),
        "episodes": len(rows),
        "new": counts[NEW],
        "new_unexpected": sum(1 for r in rows if r.status == NEW and not r.expected),
        "persisting": counts[PERSISTING],
        "resolved": len(resolved),
        "not_rebuilt": len(not_rebuilt),
    }
    return IndexPage(
        kind="index",
        title="Reconciler report",
        root="",
        window_from=w_from,
        window_to=w_to,
        window_label=window_label(w_from, w_to) if w_from and w_to else "no data",
        totals=totals,
        towns=towns,
        episodes=rows,
        resolved=sorted(resolved, key=lambda r: (r.town_id, to_ms(r.first_at), r.id)),
        trend_runs=list(trend_runs),
        trends=list(trends),
        not_rebuilt=sorted(not_rebuilt, key=lambda r: (r.town_id, to_ms(r.first_at), r.id)),
    )
