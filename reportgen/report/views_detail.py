"""Entity pages ("what happened to bead X") and violation episode pages (the incident permalink)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from reportgen.diagnose.episodes import Episode, to_ms
from reportgen.report.entity_fields import ids_in, violation_ids
from reportgen.report.explain import Part
from reportgen.report.format import clean, compact, ellipsis, fmt_time, slug
from reportgen.report.ordering import open_then_newest
from reportgen.report.tick_rows import TickRow, WitnessRow, tick_row
from reportgen.report.town_data import TownData
from reportgen.report.views_shared import (
    EntityLink,
    EpisodeRow,
    invariant_description,
    town_href,
)

ENTITY_ROOT = "../../../"
#: A status segment narrower than this (% of the window) shows no text, only its colour.
STRIP_LABEL_PCT = 8


@dataclass(frozen=True)
class EntityFacts:
    """What the town's tables said about an entity at the window's end."""

    id: str
    kind: str
    type: str | None
    title: str | None
    status: str | None
    #: The bead's or agent's rig (a link only when the rig has a page).
    rig: EntityLink | None
    #: Whether the town's tables know it (a deleted bead, or an id no table holds, is not).
    known: bool

    @property
    def heading(self) -> str:
        return self.title or self.id

    @property
    def type_label(self) -> str:
        return "role" if self.kind == "agent" else "type"


@dataclass(frozen=True)
class StripSegment:
    """One status over part of the window, as a share of its length (a CSS bar)."""

    status: str
    pct: float
    label: str

    @property
    def labelled(self) -> bool:
        """Whether the segment is wide enough to show its status as text."""
        return self.pct > STRIP_LABEL_PCT


@dataclass(frozen=True)
class Transition:
    """A status change: made by the reconciler (``via`` the action) or seen in a bead event."""

    at: str
    status: str
    via: str
    label: str
    href: str


@dataclass(frozen=True)
class EntityRow:
    """One item that touched the entity; ``count`` identical consecutive ones folded into it."""

    what: str  # event, action, effect or violation
    type: str
    full: str
    text: str
    at: str
    label: str
    href: str
    count: int
    to_label: str | None

    @property
    def folded(self) -> bool:
        return self.count > 1


@dataclass(frozen=True)
class EntityPage:
    """Everything that touched one bead, agent or rig in the window, in time order."""

    kind: str
    title: str
    root: str
    anchor: str
    town_id: str
    town_href: str
    entity: EntityFacts
    strip: list[StripSegment]
    transitions: list[Transition]
    episodes: list[EpisodeRow]
    rows: list[EntityRow]


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
    messages: list[str]
    witness: list[WitnessRow]
    fidelity: str
    caveat: str | None
    prev_href: str | None
    next_href: str | None


# ── Entity pages ─────────────────────────────────────────────────────────


def _items(tick: Mapping[str, Any]) -> Iterator[tuple[str, str, str, set[tuple[str, str]]]]:
    """``(what, type, text, touched)`` for every item of a tick that names entities."""
    for e in tick.get("events") or ():
        text = f"{e.get('outcome')}" + (f": {e.get('error')}" if e.get("error") else "")
        yield "event", str(e.get("event_type")), text, set(ids_in(e))
    for a in tick.get("actions") or ():
        body = {k: v for k, v in a.items() if k != "type"}
        yield "action", str(a.get("type")), compact(body), set(ids_in(a))
    for o in (tick.get("side_effects") or {}).get("outcomes") or ():
        text = ("ok" if o.get("ok") else "FAILED") + f": {o.get('detail', '')}"
        yield "effect", str(o.get("type")), text, set(ids_in(o))
    for v in tick.get("violations") or ():
        yield (
            "violation",
            f"invariant {v.get('invariant')}",
            str(v.get("message")),
            set(violation_ids(v)),
        )


def entity_rows(data: TownData) -> dict[tuple[str, str], list[EntityRow]]:
    """Per entity, its timeline rows; identical consecutive rows fold into one with a count."""
    rows: dict[tuple[str, str], list[EntityRow]] = {}
    for tick in data.run.ticks:
        at = str(tick["at"])
        for what, type_, text, touched in _items(tick):
            for kind, entity_id in sorted(touched):
                lst = rows.setdefault((data.entities.kind(kind, entity_id), entity_id), [])
                last = lst[-1] if lst else None
                if last and (last.what, last.type, last.full) == (what, type_, text):
                    lst[-1] = replace(last, count=last.count + 1, to_label=fmt_time(at))
                    continue
                label, href = fmt_time(at), data.tick_href(at)
                text_shown = ellipsis(text, 400)
                lst.append(
                    EntityRow(what, clean(type_), text, text_shown, at, label, href, 1, None)
                )
    return {key: [replace(row, full=clean(row.full)) for row in lst] for key, lst in rows.items()}


def all_transitions(data: TownData) -> dict[str, list[Transition]]:
    """Per entity id, its status changes in the window (one pass over ticks and bead events)."""
    found: dict[str, dict[tuple[int, str], tuple[str, str, str]]] = {}
    for tick in data.run.ticks:
        at = str(tick["at"])
        for a in tick.get("actions") or ():
            kind = a.get("type")
            if kind in ("transition_bead", "transition_agent"):
                target = a.get("bead_id") if kind == "transition_bead" else a.get("agent_id")
                to = str(a.get("to"))
                found.setdefault(str(target), {})[(to_ms(at), to)] = (at, to, str(kind))
    for ev in data.run.bead_events:
        at = str(ev.get("created_at"))
        if ev.get("event_type") == "status_changed" and (
            data.run.window_from <= at <= data.run.window_to
        ):
            new = str(ev.get("new_value"))
            found.setdefault(str(ev.get("bead_id")), {}).setdefault(
                (to_ms(at), new), (at, new, "bead event")
            )
    return {
        entity_id: [
            Transition(at, clean(status), via, fmt_time(at), data.tick_href(at))
            for at, status, via in (points[k] for k in sorted(points))
        ]
        for entity_id, points in found.items()
    }


def _strip(data: TownData, transitions: list[Transition], final: str | None) -> list[StripSegment]:
    """Status segments across the window, as percentages of its length (a CSS bar)."""
    start, end = to_ms(data.run.window_from), to_ms(data.run.window_to)
    span = max(1, end - start)
    points = [(max(start, to_ms(t.at)), t.status) for t in transitions]
    if not points:
        return [StripSegment(clean(final or "unknown"), 100.0, "whole window")]
    segments: list[tuple[str, int, int]] = []
    if points[0][0] > start:
        segments.append(("before", start, points[0][0]))
    for i, (ms, status) in enumerate(points):
        nxt = points[i + 1][0] if i + 1 < len(points) else end
        segments.append((status, ms, max(ms, nxt)))
    return [
        StripSegment(status, round(100.0 * (to - from_) / span, 3), f"{status}")
        for status, from_, to in segments
        if to > from_
    ]


def _rig_link(data: TownData, rig: str | None) -> EntityLink | None:
    """A link to the rig's page, or the rig as plain text when nothing in the window touched it."""
    if not rig:
        return None
    link = data.entities.link("rig", rig)
    return link if ("rig", rig) in data.touched else replace(link, href="")


def _facts(data: TownData, link: EntityLink, entity_id: str) -> EntityFacts:
    info = data.entities.info.get(entity_id)
    return EntityFacts(
        id=clean(entity_id),
        kind=link.kind,
        type=clean(info.type) if info else None,
        title=clean(info.title) if info else None,
        status=clean(info.status) if info and info.status else None,
        rig=_rig_link(data, info.rig_id if info else None),
        known=info is not None,
    )


def entity_pages(data: TownData) -> Iterator[tuple[EntityLink, EntityPage]]:
    """One page per entity touched by the window's events, actions, effects or violations."""
    all_rows = entity_rows(data)
    transitions_of = all_transitions(data)
    by_entity: dict[tuple[str, str], list[EpisodeRow]] = {}
    for ep in data.episodes:
        for link in data.rows[ep.id].entities:
            by_entity.setdefault((link.kind, link.id), []).append(data.rows[ep.id])
    for (kind, entity_id), rows in sorted(all_rows.items()):
        link = data.entities.link(kind, entity_id)
        facts = _facts(data, link, entity_id)
        transitions = transitions_of.get(entity_id, [])
        yield (
            link,
            EntityPage(
                kind="entity",
                title=f"{link.kind} {link.label}",
                root=ENTITY_ROOT,
                anchor=f"e-{link.kind}-{slug(entity_id)}",
                town_id=clean(data.run.town_id),
                town_href=town_href(data.run.town_id),
                entity=facts,
                strip=_strip(data, transitions, facts.status),
                transitions=transitions,
                episodes=open_then_newest(by_entity.get((link.kind, link.id), [])),
                rows=rows,
            ),
        )


def linked_entities(data: TownData) -> set[tuple[str, str]]:
    """``(kind, id)`` of every entity page the town's pages may link to."""
    return {(data.entities.kind(k, i), i) for k, i in data.touched}


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


def violation_pages(data: TownData) -> Iterator[ViolationPage]:
    """One page per episode, in the town's order; prev/next stay within the town."""
    eps = data.episodes
    for i, ep in enumerate(eps):
        expl = data.explanations[ep.id]
        row = data.rows[ep.id]
        yield ViolationPage(
            kind="violation",
            title=f"Invariant {ep.invariant}: {row.title}",
            root="../",
            episode=row,
            description=invariant_description(ep.invariant),
            explanation=expl.parts,
            explanation_text=expl.plain,
            messages=[clean(m) for m in ep.messages],
            witness=_witness(data, ep),
            fidelity=clean(data.run.fidelity),
            caveat=clean(data.run.caveat) if data.run.caveat else None,
            prev_href=data.rows[eps[i - 1].id].href if i > 0 else None,
            next_href=data.rows[eps[i + 1].id].href if i + 1 < len(eps) else None,
        )
