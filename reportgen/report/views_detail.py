"""Entity pages ("what happened to bead X") and violation episode pages (the incident permalink).

A town's entities are on a few pages per kind (``e/<kind>-<n>.html``, see
:mod:`reportgen.report.entity_activity` for how they are cut), one section
each under a stable anchor (``#e-<kind>-<id>``): the entity's facts at the
window's end, its swimlane and what touched it, folded. An episode page shows
the lanes of the entities it involves and every item between its first and
last tick, folded (:mod:`reportgen.report.lanes`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from reportgen.diagnose.episodes import Episode
from reportgen.report.entity_activity import MAX_ENTITY_EPISODES
from reportgen.report.explain import Part
from reportgen.report.format import clean
from reportgen.report.lanes import Fold, Lane, entity_folds, lane, span_folds
from reportgen.report.messages import NamedMessage, named_message
from reportgen.report.ordering import open_then_newest
from reportgen.report.tick_rows import TickRow, WitnessRow, tick_row
from reportgen.report.town_data import TownData
from reportgen.report.views_shared import (
    EntityLink,
    EpisodeRef,
    EpisodeRow,
    entity_anchor,
    entity_page_href,
    invariant_description,
    town_href,
    town_name,
)

ENTITY_ROOT = "../../../"
#: Lanes on an episode's page; an episode of a rig can involve dozens of MRs over a day.
MAX_EPISODE_LANES = 6
#: Notes on an entity the town's tables do not hold at the window's end (by kind).
NOT_IN_TABLES = (
    "Not in the town's tables at the end of the window (deleted, or not a bead or agent)."
)


@dataclass(frozen=True)
class EntityFacts:
    """What the town's state said about an entity at the window's end."""

    id: str
    kind: str
    type: str | None
    title: str | None
    #: The state's status at the window's end (``run.entities[id].status``).
    status: str | None
    #: The bead's or agent's rig (a link only when the rig has a section).
    rig: EntityLink | None
    #: Whether the window's data holds the entity's row.
    known: bool
    #: Why there is no row, when that is known ("" otherwise).
    note: str

    @property
    def heading(self) -> str:
        return self.title or self.id

    @property
    def short_id(self) -> str:
        """The id's first eight characters: tells apart entities that share a title."""
        return self.id[:8]

    @property
    def type_label(self) -> str:
        return "role" if self.kind == "agent" else "type"


@dataclass(frozen=True)
class EntitySection:
    """One entity on its kind's page: its facts, its lane and what touched it, folded."""

    anchor: str
    entity: EntityFacts
    lane: Lane
    episodes: list[EpisodeRef]
    more_episodes: int
    folds: list[Fold]
    more_folds: str


@dataclass(frozen=True)
class PageLink:
    """A link to one page of a kind's entities."""

    number: int
    href: str
    current: bool


@dataclass(frozen=True)
class EntityPage:
    """One page of a town's entities of one kind (beads, agents or rigs), one section each."""

    kind: str
    title: str
    root: str
    town_id: str
    town_href: str
    #: The name a person knows the town by, shown before its id.
    town_name: str
    entity_kind: str
    number: int
    pages: list[PageLink]
    sections: list[EntitySection]


@dataclass(frozen=True)
class ViolationPage:
    """One violation episode: verdict, explanation, witness ticks, the replay command."""

    kind: str
    title: str
    root: str
    episode: EpisodeRow
    description: str
    explanation: list[Part]
    explanation_text: str
    #: What the episode's checks said, with names (:mod:`reportgen.report.messages`).
    messages: list[NamedMessage]
    witness: list[WitnessRow]
    fidelity: str
    caveat: str | None
    prev_href: str | None
    next_href: str | None
    #: Where to get the file the replay command names.
    replay_where: str
    #: The lanes of the entities involved: the invariant's subject first, at most
    #: :data:`MAX_EPISODE_LANES` (each entity's own section has its lane too).
    lanes: list[Lane]
    more_lanes: int
    #: Every item between the first and the last tick, folded by type and subject.
    activity: list[Fold]
    activity_more: str


# ── Entity pages ─────────────────────────────────────────────────────────


def _facts(data: TownData, link: EntityLink) -> EntityFacts:
    """The entity's row at the window's end; a note only where the tables could hold it."""
    info = data.entities.info.get(link.id)
    rig = data.entities.link("rig", info.rig_id) if info and info.rig_id else None
    return EntityFacts(
        id=link.id,
        kind=link.kind,
        type=clean(info.type) if info else None,
        title=clean(info.title) if info else None,
        status=clean(info.status) if info and info.status else None,
        rig=rig,
        known=info is not None,
        # beads and agents are read from the tables; other kinds are not looked up there
        note=NOT_IN_TABLES if info is None and link.kind in ("bead", "agent") else "",
    )


def entity_lanes(data: TownData, links: Iterable[EntityLink]) -> list[Lane]:
    """The lanes of the given entities that have a section (the others have no activity)."""
    out = []
    for link in links:
        if link.href:
            info = data.entities.info.get(link.id)
            out.append(lane(data, link, info.status if info else None))
    return out


def _section(data: TownData, link: EntityLink, episodes: list[EpisodeRow]) -> EntitySection:
    facts = _facts(data, link)
    folds, more = entity_folds(data, (link.kind, link.id))
    return EntitySection(
        anchor=entity_anchor(link.kind, link.id),
        entity=facts,
        lane=lane(data, link, facts.status),
        episodes=[EpisodeRef.of(row) for row in episodes[:MAX_ENTITY_EPISODES]],
        more_episodes=max(0, len(episodes) - MAX_ENTITY_EPISODES),
        folds=folds,
        more_folds=more,
    )


def entity_pages(data: TownData) -> Iterator[tuple[str, EntityPage]]:
    """``(path, page)`` of every page of the town's entities: by kind, a few sections each."""
    by_entity: dict[tuple[str, str], list[EpisodeRow]] = {}
    for ep in data.episodes:
        for link in data.rows[ep.id].entities:
            by_entity.setdefault((link.kind, link.id), []).append(data.rows[ep.id])
    placed: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for key, number in data.entities.activity.pages.items():
        placed.setdefault((key[0], number), []).append(key)
    town = data.run.town_id
    for (kind, number), keys in sorted(placed.items()):
        count = max(n for k, n in placed if k == kind)
        links = [
            PageLink(n, entity_page_href(town, kind, n), n == number) for n in range(1, count + 1)
        ]
        sections = [
            _section(data, data.entities.link(*key), open_then_newest(by_entity.get(key, [])))
            for key in keys
        ]
        yield (
            entity_page_href(town, kind, number),
            EntityPage(
                kind="entity",
                title=f"{kind.capitalize()}s of "
                + town_name(data.run.source, town, data.run.town_name)
                + (f" ({number} of {count})" if count > 1 else ""),
                root=ENTITY_ROOT,
                town_id=clean(town),
                town_href=town_href(town),
                town_name=town_name(data.run.source, data.run.town_id, data.run.town_name),
                entity_kind=clean(kind),
                number=number,
                pages=links if count > 1 else [],
                sections=sections,
            ),
        )


# ── Violation pages ──────────────────────────────────────────────────────


def _witness(data: TownData, ep: Episode) -> list[WitnessRow]:
    """The ticks that show the episode: the one before, the first, the last, the clearing one."""
    ticks = data.run.ticks
    index = data.tick_index
    first = index.get(ep.first_at, 0)
    wanted = {first - 1, first, index.get(ep.last_at, first)}
    if ep.cleared_at is not None:
        wanted.add(index.get(ep.cleared_at, first))
    ids = set(ep.entities.all_ids())
    return [
        _witness_row(tick_row(data, i), ep, ids, data.tick_href(str(ticks[i]["at"])))
        for i in sorted(w for w in wanted if 0 <= w < len(ticks))
    ]


def _witness_row(row: TickRow, ep: Episode, ids: set[str], href: str) -> WitnessRow:
    """A tick row cut down to the items touching the episode's entities."""
    return WitnessRow(
        **{
            **vars(row),
            "anchor": f"w-{ep.id}-{row.ms}",
            "events": [e for e in row.events if any(lk.id in ids for lk in e.links)],
            "actions": [
                a for a in row.actions if any(f.link and f.link.id in ids for f in a.fields)
            ],
            "effects": [e for e in row.effects if any(lk.id in ids for lk in e.links)],
        },
        href=href,
        role=_role(ep, row.at),
    )


def _role(ep: Episode, at: str) -> str:
    if at == ep.first_at:
        return "first tick"
    if at == ep.last_at:
        return "last tick"
    if at == ep.cleared_at:
        return "cleared"
    return "before"


def subject_links(data: TownData, ep: Episode) -> list[EntityLink]:
    """The entities the episode's invariant names (the rig of #3, the bead of #4…)."""
    s = ep.subject
    keys = [("agent", i) for i in s.agent_ids] + [("bead", i) for i in s.bead_ids]
    keys += [("rig", i) for i in s.rig_ids]
    return [data.entities.link(k, i) for k, i in keys]


def violation_pages(data: TownData) -> Iterator[ViolationPage]:
    """One page per episode, in the town's order; prev/next stay within the town."""
    eps = data.episodes
    for i, ep in enumerate(eps):
        expl = data.explanations[ep.id]
        row = data.rows[ep.id]
        about = subject_links(data, ep)
        keep = [(link.kind, link.id) for link in about]
        activity, more = span_folds(data, ep.first_at, ep.last_at, keep=keep)
        lanes = entity_lanes(data, about + [e for e in row.entities if e not in about])
        yield ViolationPage(
            kind="violation",
            title=f"Invariant {ep.invariant}: {row.title}",
            root="../",
            episode=row,
            description=invariant_description(ep.invariant),
            explanation=expl.parts,
            explanation_text=expl.plain,
            messages=[named_message(m, data.entities, ep.entities.all_ids()) for m in ep.messages],
            witness=_witness(data, ep),
            fidelity=clean(data.run.fidelity),
            caveat=clean(data.run.caveat) if data.run.caveat else None,
            replay_where=clean(data.run.replay_where),
            prev_href=data.rows[eps[i - 1].id].href if i > 0 else None,
            next_href=data.rows[eps[i + 1].id].href if i + 1 < len(eps) else None,
            lanes=lanes[:MAX_EPISODE_LANES],
            more_lanes=max(0, len(lanes) - MAX_EPISODE_LANES),
            activity=activity,
            activity_more=more,
        )
