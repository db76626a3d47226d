"""A town's timeline as compact rows: every active tick, quiet runs folded, the source's history.

The town page shows the whole window as one timeline (like Temporal's event
history): its viewer (``templates/assets/timeline.js``) scrolls, searches and
filters it in the browser. Its data must stay small whatever the window's
length, so a row is an array, not an object, and every string is interned:

- tick ``[0, ms, events, actions, effects, violations, metrics]``:
  ``events`` ``[[type, outcome, error, [entity…]], …]``; ``actions``
  ``[[type, failure, [key, value, …]], …]`` where a value ``v < 0`` is the
  entity ``-1 - v`` (a linked id) and a failure is ``-1`` when applied;
  ``effects`` ``[attempted, succeeded, failed, [[type, ok, detail, [entity…]], …]]``;
  ``violations`` ``[[invariant, message, episode, [entity…]], …]`` (the message
  naming its entities by name, :func:`~reportgen.report.messages.named_text`, and
  their links; ``episode`` ``-1`` when none);
  ``metrics`` ``[drained, pending, wall ms, draining]``; and, only when the tick
  held more than a row keeps (:data:`MAX_ITEMS` per kind, fewer when that much
  would not fit a chunk), ``left`` ``[events, actions, effects, violations]``:
  what was left out of each, as ``[[type, count], …]`` (a violation's type is
  its invariant), so that the row still counts, filters and finds them;
- quiet run ``[1, from ms, to ms, ticks, [invariant…]]`` (the violations going on);
- history entry ``[2, ms, kind, label, [entity…], detail]`` (``bead_event``,
  ``town_event`` or ``dry_run``, from :attr:`TownRun.history`).

Strings (types, keys, values, messages) index the chunk's own table ``s``;
entities (``[kind, id, label, href]``) and episodes (``[id, href]``) index
the timeline's index file (:mod:`reportgen.report.timeline_files`).

A chunk stores its rows packed (:class:`Packer`, :func:`unpack`): a row's time
as ms after the end of the row before it (the first row's after the chunk's
``t0``), a quiet run's end as ms after its start, a tick's effects as their outcomes alone when the counts
are theirs, and a tick's violations or metrics as ``1`` (:data:`SAME`) when
they are those of the chunk's tick row before it (a rig whose invariant fails
for hours reports the same violations on every busy tick). The viewer
unpacks a chunk as it loads.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from reportgen.diagnose.episodes import to_ms
from reportgen.report.entity_fields import violation_ids
from reportgen.report.format import compact, ellipsis
from reportgen.report.messages import named_text
from reportgen.report.tick_rows import ActionItem, EffectItem, EventItem, idle_row, tick_row
from reportgen.report.town_data import TownData
from reportgen.report.views_shared import EntityLink, violation_href

#: Longest text a row carries (an action's field, a message, a history entry's detail).
MAX_TEXT = 2000
#: Most items of each kind (events, actions, effects, violations) a tick's row keeps: one tick
#: can hold thousands (every bead of a big town dispatched at once), and a row must fit a chunk.
MAX_ITEMS = 200
#: Source kinds of history entries, in the order their facet lists them.
HISTORY_KINDS = ("bead_event", "town_event", "dry_run")
TICK, IDLE, HISTORY = 0, 1, 2

#: A href as the page holding the viewer links it (the site keeps it; the bundle maps it).
Href = Callable[[str], str]


@dataclass
class Tables:
    """What every chunk shares: entities and episodes, numbered in first-use order."""

    href: Href
    entities: list[list[str]] = field(default_factory=list)
    episodes: list[list[str]] = field(default_factory=list)
    _entity_ix: dict[tuple[str, str], int] = field(default_factory=dict)
    _episode_ix: dict[str, int] = field(default_factory=dict)

    def entity(self, link: EntityLink) -> int:
        key = (link.kind, link.id)
        if key not in self._entity_ix:
            self._entity_ix[key] = len(self.entities)
            self.entities.append([link.kind, link.id, link.label, self.href(link.href)])
        return self._entity_ix[key]

    def mark(self) -> tuple[int, int]:
        """How many entities and episodes there are (to undo a row that is encoded again)."""
        return len(self.entities), len(self.episodes)

    def undo(self, mark: tuple[int, int]) -> None:
        """Forget the entities and episodes added since ``mark``."""
        for row in self.entities[mark[0] :]:
            del self._entity_ix[(row[0], row[1])]
        for row in self.episodes[mark[1] :]:
            del self._episode_ix[row[0]]
        del self.entities[mark[0] :], self.episodes[mark[1] :]

    def episode(self, episode_id: str) -> int:
        if episode_id not in self._episode_ix:
            self._episode_ix[episode_id] = len(self.episodes)
            self.episodes.append([episode_id, self.href(violation_href(episode_id))])
        return self._episode_ix[episode_id]


@dataclass
class Strings:
    """One chunk's string table: each distinct text stored once, rows hold its number."""

    table: list[str] = field(default_factory=list)
    _ix: dict[str, int] = field(default_factory=dict)

    def __call__(self, text: str) -> int:
        text = ellipsis(text, MAX_TEXT)
        if text not in self._ix:
            self._ix[text] = len(self.table)
            self.table.append(text)
        return self._ix[text]

    def undo(self, known: int) -> None:
        """Forget the strings added after the first ``known`` (a row that went elsewhere)."""
        for text in self.table[known:]:
            del self._ix[text]
        del self.table[known:]


@dataclass(frozen=True)
class Source:
    """One row before encoding: a tick span or a history entry, with its time."""

    ms: int
    order: int
    kind: int
    first: int = 0
    last: int = 0
    entry: Mapping[str, Any] | None = None


def sources(data: TownData) -> list[Source]:
    """Every row of the timeline in time order (a history entry before a tick of its ms)."""
    ticks = data.run.ticks
    rows = [
        Source(to_ms(ticks[a]["at"]), 1, TICK if kind == "tick" else IDLE, a, b)
        for kind, a, b in data.spans
    ]
    rows += [
        Source(to_ms(e["at"]), 2 if e.get("kind") == "dry_run" else 0, HISTORY, entry=e)
        for e in data.run.history
    ]
    rows.sort(key=lambda r: (r.ms, r.order))
    return rows


class Encoder:
    """Turns rows into arrays against one chunk's strings and the shared tables."""

    def __init__(
        self, data: TownData, tables: Tables, strings: Strings, limit: int = MAX_ITEMS
    ) -> None:
        self.data, self.tables, self.s, self.limit = data, tables, strings, limit

    def row(self, src: Source) -> list[Any]:
        if src.kind == TICK:
            return self.tick(src.first)
        if src.kind == IDLE:
            idle = idle_row(self.data, src.first, src.last)
            return [IDLE, idle.from_ms, idle.to_ms, idle.count, idle.ongoing]
        return self.history(src.entry or {})

    def links(self, links: list[EntityLink]) -> list[int]:
        return [self.tables.entity(link) for link in links]

    def tick(self, index: int) -> list[Any]:
        row = tick_row(self.data, index)
        tick = self.data.run.ticks[index]
        a, ok, failed = row.effect_counts
        n, at = self.limit, row.at
        violations = list(tick.get("violations") or ())
        out = [
            TICK,
            row.ms,
            [self.event(e) for e in row.events[:n]],
            [self.action(x) for x in row.actions[:n]],
            [a, ok, failed, [self.effect(o) for o in row.effects[:n]]],
            [self.violation(v, at) for v in violations[:n]],
            [row.drained, row.pending, row.wall_ms, int(row.draining)],
        ]
        left = [
            self.left(e.type for e in row.events[n:]),
            self.left(x.type for x in row.actions[n:]),
            self.left(o.type for o in row.effects[n:]),
            _counts(int(v["invariant"]) for v in violations[n:]),
        ]
        return [*out, left] if any(left) else out

    def left(self, types: Iterable[str]) -> list[list[int]]:
        """What a row left out of one kind: each type's string and count, in first-seen order."""
        return _counts(self.s(t) for t in types)

    def event(self, e: EventItem) -> list[Any]:
        error = self.s(e.error) if e.error else -1
        return [self.s(e.type), self.s(e.outcome), error, self.links(e.links)]

    def action(self, a: ActionItem) -> list[Any]:
        pairs: list[int] = []
        for f in a.fields:
            value = -1 - self.tables.entity(f.link) if f.link else self.s(f.value)
            pairs += [self.s(f.key), value]
        return [self.s(a.type), self.s(a.outcome) if a.failed else -1, pairs]

    def effect(self, o: EffectItem) -> list[Any]:
        return [self.s(o.type), int(o.ok), self.s(o.detail), self.links(o.links)]

    def violation(self, v: Mapping[str, Any], at: str) -> list[Any]:
        ep = self.data.episode_for(v, at)
        ents = [self.data.entities.link(k, i) for k, i in violation_ids(v)]
        return [
            int(v["invariant"]),
            self.s(named_text(str(v.get("message")), self.data.entities)),
            self.tables.episode(ep.id) if ep else -1,
            self.links(ents),
        ]

    def history(self, e: Mapping[str, Any]) -> list[Any]:
        ents = [self.data.entities.link(str(k), str(i)) for k, i in e.get("entities") or ()]
        return [
            HISTORY,
            to_ms(str(e["at"])),
            self.s(str(e.get("kind"))),
            self.s(str(e.get("label") or "")),
            self.links(ents),
            self.s(compact(e.get("detail") or {})),
        ]


def _counts(keys: Iterable[int]) -> list[list[int]]:
    """``[[key, count], …]`` in the order the keys first come."""
    return [[k, n] for k, n in Counter(keys).items()]


def row_types(src: Source, ticks: list[dict[str, Any]]) -> Iterator[tuple[str, str]]:
    """``(facet, value)`` of each action, event and history kind a row holds (for counts)."""
    if src.kind == TICK:
        tick = ticks[src.first]
        for a in tick.get("actions") or ():
            yield "action", str(a.get("type"))
        for e in tick.get("events") or ():
            yield "event", str(e.get("event_type"))
    elif src.kind == HISTORY and src.entry is not None:
        yield "source", str(src.entry.get("kind"))


#: A packed tick row's violations or metrics when they equal the chunk's previous tick row's.
SAME = 1
#: The columns of a tick row packed as :data:`SAME` when repeated: violations, metrics.
REPEATED = (5, 6)


class Packer:
    """Packs the rows of one chunk, in order: each row's time as ms after the end of the
    row before it (the first after ``t0``, the first row's time), a quiet run's end as ms
    after its start, a tick's effects as their outcomes alone when the counts are theirs,
    and repeated violations and metrics as :data:`SAME`."""

    def __init__(self) -> None:
        self.t0: int | None = None
        self.end = 0
        self.last: list[Any] = [None] * len(REPEATED)

    def peek(self, row: list[Any]) -> list[Any]:
        """``row`` packed as the next row of the chunk (without taking it)."""
        end = row[1] if self.t0 is None else self.end
        out = list(row)
        out[1] = row[1] - end
        if row[0] == IDLE:
            out[2] = row[2] - row[1]
        elif row[0] == TICK:
            out[4] = _packed_effects(row[4])
            for i, col in enumerate(REPEATED):
                if row[col] and row[col] == self.last[i]:
                    out[col] = SAME
        return out

    def __call__(self, row: list[Any]) -> list[Any]:
        """``row`` packed, taken as the chunk's next row."""
        out = self.peek(row)
        if self.t0 is None:
            self.t0 = row[1]
        self.end = row[2] if row[0] == IDLE else row[1]
        if row[0] == TICK:
            self.last = [row[col] for col in REPEATED]
        return out


def _packed_effects(effects: list[Any]) -> list[Any]:
    """A tick's effects as their outcomes alone when the counts are the outcomes'."""
    attempted, succeeded, failed, outcomes = effects
    ok = sum(1 for o in outcomes if o[1])
    if (attempted, succeeded, failed) == (len(outcomes), ok, len(outcomes) - ok):
        return list(outcomes)
    return effects


def _effects(packed: list[Any]) -> list[Any]:
    """The inverse of :func:`_packed_effects` (outcomes are lists, counts are numbers)."""
    if packed and not isinstance(packed[0], list):
        return packed
    ok = sum(1 for o in packed if o[1])
    return [len(packed), ok, len(packed) - ok, packed]


def unpack(t0: int, rows: list[list[Any]]) -> list[list[Any]]:
    """A chunk's rows as :class:`Encoder` made them (what the viewer does on loading)."""
    out, end, last = [], t0, [None] * len(REPEATED)
    for row in rows:
        r = list(row)
        r[1] = end = end + row[1]
        if r[0] == IDLE:
            r[2] = end = r[1] + row[2]
        elif r[0] == TICK:
            r[4] = _effects(row[4])
            for i, col in enumerate(REPEATED):
                r[col] = last[i] if row[col] == SAME else row[col]
                last[i] = r[col]
        out.append(r)
    return out
