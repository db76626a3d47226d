"""What every page's view-model shares: paths, entity links, episode rows, invariant names.

The page view-models are frozen dataclasses (:mod:`views_index` for the index,
:mod:`views_town` for a town, :mod:`views_detail` for
entity and episode pages). Templates only read them, and each page's JSON
twin is its dataclass as JSON (the fields, never the properties), so what the
HTML shows and what the JSON says cannot drift apart. A property is for what
only the HTML needs (a pager's gaps, a heading), derived from the fields.

Links are site-root relative (``towns/t1/index.html``); templates pass them
through ``url()``, which prefixes the page's ``root`` (or maps them to
anchors in the single-file bundle).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TypeVar

from reportgen.diagnose.episodes import Episode, to_ms
from reportgen.report.entity_activity import Activity
from reportgen.report.entity_fields import KINDS
from reportgen.report.format import clean, ellipsis, fmt_duration, fmt_time, short_id, slug
from reportgen.town.invariants import INVARIANTS
from reportgen.town_run import EntityInfo, TownRun

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
    """The registry's description, or a note that there is none (an unknown number)."""
    return INVARIANT_INFO.get(number, ("", "No description is registered for this invariant."))[1]


def window_label(window_from: str, window_to: str) -> str:
    """``2026-03-01 00:00:00.000 → 2026-03-02 00:00:00.000 UTC (1 d)``: a window in one line."""
    span = fmt_duration(to_ms(window_to) - to_ms(window_from))
    return f"{fmt_time(window_from)} → {fmt_time(window_to)} UTC ({span})"


# ── Paths ────────────────────────────────────────────────────────────────


def town_dir(town_id: str) -> str:
    return f"towns/{slug(town_id)}"


def town_href(town_id: str) -> str:
    return f"{town_dir(town_id)}/index.html"


def entity_anchor(kind: str, entity_id: str) -> str:
    """The stable anchor of an entity's section (the same whichever page holds it)."""
    return f"e-{kind}-{slug(entity_id)}"


def entity_page_href(town_id: str, kind: str, page: int) -> str:
    """Page ``page`` (1-based) of a town's entities of one kind."""
    return f"{town_dir(town_id)}/e/{slug(kind)}-{page}.html"


def entity_href(town_id: str, kind: str, entity_id: str, page: int | None) -> str:
    """The entity's section on its kind's page ("" when the entity has no section)."""
    if page is None:
        return ""
    return f"{entity_page_href(town_id, kind, page)}#{entity_anchor(kind, entity_id)}"


def violation_href(episode_id: str) -> str:
    """The permalink of an episode: its id only, so it survives nightly rebuilds."""
    return f"violations/{episode_id}.html"


def tick_anchor(at: str) -> str:
    return f"tick-{to_ms(at)}"


# ── Entity links and episode rows ────────────────────────────────────────


@dataclass(frozen=True)
class EntityLink:
    """A link to an entity's section, with a readable label and the full id for the tooltip.

    ``href`` is ``""`` when the entity has no section (nothing in the window touched it).
    """

    id: str
    kind: str
    label: str
    href: str


#: Entities named in an episode's table row (the rest are counted).
ROW_ENTITIES = 4


@dataclass(frozen=True)
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
    #: The name a person knows the town by (:func:`town_name`; ``""`` in rows of older runs).
    town_name: str = ""

    @property
    def shown_entities(self) -> list[EntityLink]:
        """The entities a table row names (an episode of a rig can involve dozens of MRs
        over a day; its page lists them all)."""
        return self.entities[:ROW_ENTITIES]

    @property
    def more_entities(self) -> int:
        return max(0, len(self.entities) - ROW_ENTITIES)


#: A view of an episode row narrowed to some of its fields.
T = TypeVar("T")


def narrowed(cls: type[T], row: EpisodeRow) -> T:
    """A lighter view of ``row``: each field of ``cls`` is the row's field of that name."""
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    return cls(**{name: getattr(row, name) for name in names})


@dataclass(frozen=True)
class EpisodeRef:
    """An episode as an entity's section lists it: enough to choose one and open its page
    (its entities, summary and replay command are on that page, not repeated per entity)."""

    id: str
    href: str
    invariant: int
    title: str
    status: str
    open_at_end: bool
    expected: bool
    first_at: str
    first_label: str
    first_href: str
    duration: str
    ticks: int

    @classmethod
    def of(cls, row: EpisodeRow) -> EpisodeRef:
        return narrowed(cls, row)


@dataclass(frozen=True)
class FleetEpisode:
    """An episode as the fleet's index lists it: one line with its town, what, when and
    its summary in words (a fleet of 100 town-days holds hundreds; the entities, the
    replay command and the explanation are on the episode's page)."""

    id: str
    href: str
    town_id: str
    town_name: str
    town_href: str
    invariant: int
    title: str
    status: str
    first_at: str
    first_label: str
    first_href: str
    last_at: str
    duration: str
    ticks: int
    open_at_end: bool
    expected: bool
    expected_why: str
    summary: str

    @classmethod
    def of(cls, row: EpisodeRow) -> FleetEpisode:
        return narrowed(cls, row)


class Entities:
    """Entity lookup for one town: labels, kinds and the sections that exist (and where).

    A label is the name a person knows the entity by: a bead's title (an MR
    bead's too), an agent's name and role ("Toast (polecat)"), a rig's
    ``rigs.name``; an id the town's tables do not name shows shortened.
    """

    def __init__(self, run: TownRun) -> None:
        self.town_id = run.town_id
        self.info: Mapping[str, EntityInfo] = run.entities
        self._run = run
        self._activity: Activity | None = None

    @property
    def activity(self) -> Activity:
        """What touched each entity, and the page of its section (computed once, on first use)."""
        if self._activity is None:
            self._activity = Activity(self._run, self.kind)
        return self._activity

    def kind(self, kind_hint: str, entity_id: str) -> str:
        info = self.info.get(entity_id)
        return info.kind if info is not None and info.kind in KINDS else kind_hint

    def label(self, entity_id: str) -> str:
        info = self.info.get(entity_id)
        if info is None or not info.title:
            return short_id(entity_id)
        return ellipsis(_named(info), 48)

    def link(self, kind_hint: str, entity_id: str) -> EntityLink:
        kind = self.kind(kind_hint, entity_id)
        return EntityLink(
            id=clean(entity_id),
            kind=kind,
            label=self.label(entity_id),
            href=entity_href(
                self.town_id, kind, entity_id, self.activity.pages.get((kind, entity_id))
            ),
        )


def _named(info: EntityInfo) -> str:
    """An entity's name as pages show it: an agent's with its role unless that is its name."""
    title = clean(info.title)
    role = clean(info.type)
    if info.kind == "agent" and role and role.casefold() != title.casefold():
        return f"{title} ({role})"
    return title


def episode_links(entities: Entities, episode: Episode) -> list[EntityLink]:
    """Links to every entity an episode involves: agents, then beads, then rigs."""
    e = episode.entities
    return (
        [entities.link("agent", i) for i in e.agent_ids]
        + [entities.link("bead", i) for i in e.bead_ids]
        + [entities.link("rig", i) for i in e.rig_ids]
    )


def status_counts(rows: Sequence[EpisodeRow]) -> dict[str, int]:
    """Episodes per status (``new`` and ``persisting`` always present)."""
    counts = {NEW: 0, PERSISTING: 0}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


def town_name(source: str, town_id: str, stored: str = "") -> str:
    """The name a person knows a town by: the one stored with it (``TownRun.town_name``),
    else its file's name without the suffix, else its id."""
    if stored:
        return clean(stored)
    name = source.rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0] if "." in name[1:] else name
    return clean(stem or town_id)
