"""Plain-language explanations of violation episodes, and the command that reproduces one.

Modelled on Elle's anomaly write-ups: name the concrete entities, say what
state they were in ("because …"), what the invariant expects ("but …"), what
happened around the first tick (the minimal witness), and how it ended. The
text is a list of parts (plain text or an entity link) so templates can link
entities without ever marking up data-derived strings.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from reportgen.diagnose.episodes import Episode, to_ms
from reportgen.report.entity_fields import ids_in
from reportgen.report.format import clean, fmt_duration, fmt_time, iso
from reportgen.report.views_shared import Entities, EntityLink, invariant_title
from reportgen.town.invariants import find_invariant

#: How far before an episode's first tick its replay command starts.
REPLAY_LEAD_MS = 60_000
#: How many witness items a sentence lists before "and N more".
MAX_LISTED = 4


@dataclass(frozen=True)
class TextPart:
    """Plain text of an explanation."""

    text: str
    is_link: ClassVar[bool] = False

    @property
    def plain(self) -> str:
        return self.text


@dataclass(frozen=True)
class LinkPart:
    """An entity named in an explanation (a link to its page)."""

    link: EntityLink
    is_link: ClassVar[bool] = True

    @property
    def plain(self) -> str:
        return self.link.label


#: One piece of an explanation (``is_link`` says which, for the template).
Part = TextPart | LinkPart


@dataclass
class Explanation:
    """An episode's explanation: ``parts`` in reading order, a one-line ``summary``."""

    parts: list[Part] = field(default_factory=list)
    summary: str = ""
    witness: list[int] = field(default_factory=list)

    def text(self, value: str) -> None:
        self.parts.append(TextPart(value))

    def link(self, link: EntityLink) -> None:
        self.parts.append(LinkPart(link))

    def links(self, links: Sequence[EntityLink]) -> None:
        for i, link in enumerate(links):
            if i:
                self.text(" and " if i == len(links) - 1 else ", ")
            self.link(link)

    @property
    def plain(self) -> str:
        """The explanation as one plain string (labels in place of links)."""
        return "".join(p.plain for p in self.parts)


def replay_command(source: str, episode: Episode, *, simulated: bool = False) -> str:
    """``reportgen replay`` over the episode: a minute before its first tick to when it cleared
    (``--ticks simulate`` when its ticks were simulated on a dump's stored state: a plain
    replay of a dump shows no ticks)."""
    start = iso(to_ms(episode.first_at) - REPLAY_LEAD_MS)
    end = episode.cleared_at or episode.last_at
    ticks = ["--ticks", "simulate"] if simulated else ["--ticks"]
    return shlex.join(
        ["reportgen", "replay", "--db", clean(source), "--from", start, "--to", end, *ticks]
    )


def explain(
    episode: Episode, ticks: Sequence[Mapping[str, Any]], entities: Entities
) -> Explanation:
    """Explain ``episode`` from the tick records around it."""
    out = Explanation()
    out.text("Because ")
    _state_and_expectation(out, episode, entities)
    first = _index_of(ticks, episode.first_at)
    ids = set(episode.entities.all_ids())
    window = [i for i in (first - 1, first) if 0 <= i < len(ticks)]
    out.witness = list(window)
    _what_happened(out, [ticks[i] for i in window], ids, entities)
    _how_it_ended(out, episode, ticks, ids)
    out.summary = _summary(episode, entities)
    return out


def _index_of(ticks: Sequence[Mapping[str, Any]], at: str) -> int:
    for i, tick in enumerate(ticks):
        if tick["at"] == at:
            return i
    return 0


def _state_and_expectation(out: Explanation, ep: Episode, entities: Entities) -> None:
    """The registry's ``because`` sentence for the invariant, its entities linked."""
    invariant = find_invariant(ep.invariant)
    lists = {
        "agents": [entities.link("agent", i) for i in ep.entities.agent_ids],
        "beads": [entities.link("bead", i) for i in ep.entities.bead_ids],
        "rigs": [entities.link("rig", i) for i in ep.entities.rig_ids],
    }
    if invariant is None or not invariant.because or not lists[f"{invariant.subject}s"]:
        n = ep.invariant
        message = ep.messages[0] if ep.messages else invariant_title(n)
        out.text(
            f"the check reported “{clean(message)}”, but invariant {n} "
            f"({invariant_title(n)}) must always hold."
        )
        return
    values = {"bead_count": str(len(lists["beads"])), "status": _quoted_status(ep)}
    for i, piece in enumerate(_PLACEHOLDER.split(invariant.because)):
        if i % 2 == 0:
            if piece:
                out.text(piece)
        elif piece in lists:
            out.links(lists[piece])
        else:
            out.text(values[piece])


#: ``{name}`` in an invariant's ``because`` template (split keeps the names at odd indexes).
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _quoted_status(ep: Episode) -> str:
    for message in ep.messages:
        found = re.search(r"state '([^']*)'", message)
        if found:
            return f"“{clean(found.group(1))}”"
    return "outside the known set"


def _what_happened(
    out: Explanation, ticks: Sequence[Mapping[str, Any]], ids: set[str], entities: Entities
) -> None:
    items: list[tuple[str, EntityLink]] = []
    for tick in ticks:
        for event in tick.get("events") or ():
            items += [
                (f"event {event.get('event_type')}", entities.link(k, i))
                for k, i in ids_in(event)
                if i in ids
            ][:1]
        for action in tick.get("actions") or ():
            items += [
                (f"action {action.get('type')}", entities.link(k, i))
                for k, i in ids_in(action)
                if i in ids
            ][:1]
    if not items:
        out.text(
            " Neither the tick that found it nor the one before drained an event or emitted "
            "an action for these entities, so the state was changed outside the reconciler "
            "(a direct call or a write to the database)."
        )
        return
    out.text(" Around the first tick the reconciler saw or did: ")
    for i, (what, link) in enumerate(items[:MAX_LISTED]):
        out.text(("; " if i else "") + f"{clean(what)} on ")
        out.link(link)
    if len(items) > MAX_LISTED:
        out.text(f"; and {len(items) - MAX_LISTED} more")
    out.text(".")


def _how_it_ended(
    out: Explanation, ep: Episode, ticks: Sequence[Mapping[str, Any]], ids: set[str]
) -> None:
    span = f"{fmt_duration(ep.duration_ms)} over {ep.ticks} tick{'s' if ep.ticks != 1 else ''}"
    if ep.open_at_start:
        out.text(" It already held on the window's first tick, so it began earlier.")
    if ep.cleared_at is None:
        out.text(
            f" It held for {span} and still held at the end of the window "
            f"({fmt_time(ep.last_at)} UTC)."
        )
        return
    out.text(f" It held for {span} and was gone at {fmt_time(ep.cleared_at)} UTC")
    cleared = _index_of(ticks, ep.cleared_at)
    types = sorted(
        {
            str(a.get("type"))
            for a in ticks[cleared].get("actions") or ()
            if any(i in ids for _, i in ids_in(a))
        }
    )
    out.text(
        f", after the reconciler emitted {', '.join(types)}."
        if types
        else ", with no reconciler action on these entities (changed from outside)."
    )


def _summary(ep: Episode, entities: Entities) -> str:
    names = [entities.label(i) for i in ep.entities.agent_ids + ep.entities.bead_ids]
    who = ", ".join(names[:3]) + (f" +{len(names) - 3}" if len(names) > 3 else "")
    if not who:
        who = ", ".join(entities.label(i) for i in ep.entities.rig_ids) or "town"
    tail = "still open" if ep.open_at_end else f"{fmt_duration(ep.duration_ms)}"
    return f"{invariant_title(ep.invariant)}: {who} ({tail}, {ep.ticks} tick{'s' if ep.ticks != 1 else ''})"
