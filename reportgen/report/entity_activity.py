"""What touched each entity of a town's window and how its status changed, in one pass.

The entity pages, their swimlanes and the activity lists of episode and
finding pages all read one :class:`Activity` per town, computed once from the
:class:`~reportgen.town_run.TownRun` (its ticks, its bead events and, for a
source with no journal, its own history). It holds plain data, no links: the
links are the views' business (:mod:`reportgen.report.lanes`).

It also decides where each entity's section lives: entities are grouped by
kind into a few pages (``e/<kind>-<n>.html``), each filled up to
:data:`PAGE_BUDGET` bytes by an upper estimate of every section's size, so
the number of entity files stays small and no page grows with the window's
length (a section's lane and lists are bounded, see :data:`LANE_BUCKETS`).
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from reportgen.diagnose.episodes import to_ms
from reportgen.report.entity_fields import KINDS, ids_in, kind_of_field, violation_ids
from reportgen.report.format import compact, ellipsis
from reportgen.town_run import TownRun

#: Columns of a swimlane: status segments and marks are merged per column beyond this.
LANE_BUCKETS = 48
#: Kinds of item listed per entity (the rest are counted in one line).
MAX_FOLDS = 12
#: Violation episodes listed per entity (the rest are counted).
MAX_ENTITY_EPISODES = 8
#: Characters of an item's detail shown beside its folded line.
SAMPLE_CHARS = 160
#: Estimated bytes of entity sections per page (pages and twins stay well under 500 KB).
PAGE_BUDGET = 400_000

#: ``(what, type, sample text, (kind, id) touched)`` of one item of a tick or of the history.
Item = tuple[str, str, str, list[tuple[str, str]]]
#: Resolves the kind of an id (an agent is a bead in the tables, its page is the agent's).
KindOf = Callable[[str, str], str]
Key = tuple[str, str]


@dataclass
class Group:
    """Items of one kind (``what``, ``type``) that touched an entity, with their times."""

    what: str
    type: str
    sample: str
    first_at: str
    last_at: str
    times: list[int] = field(default_factory=list)


@dataclass
class Touches:
    """Everything that touched one entity: grouped by kind of item, and counted per lane column."""

    groups: dict[tuple[str, str], Group] = field(default_factory=dict)
    #: Lane column → ``what`` → how many items.
    buckets: dict[int, dict[str, int]] = field(default_factory=dict)
    last_ms: int = 0


@dataclass(frozen=True)
class Change:
    """A status change seen in the window: an action, an effect, an event or a bead event."""

    ms: int
    at: str
    before: str | None
    after: str
    via: str


def tick_items(tick: Mapping[str, Any]) -> Iterator[Item]:
    """Every event, action, side effect and violation of a tick that names entities."""
    for e in tick.get("events") or ():
        text = f"{e.get('outcome')}" + (f": {e.get('error')}" if e.get("error") else "")
        yield "event", str(e.get("event_type")), text, sorted(ids_in(e))
    for a in tick.get("actions") or ():
        type_ = str(a.get("type"))
        if a.get("to") is not None:
            type_ += f" → {a.get('to')}"
        # the entities it names are its subjects, linked beside it: the rest is its detail
        body = {k: v for k, v in a.items() if k != "type" and kind_of_field(k) is None}
        yield "action", type_, fields_text(body), sorted(ids_in(a))
    for o in (tick.get("side_effects") or {}).get("outcomes") or ():
        type_ = str(o.get("type")) + ("" if o.get("ok") else " failed")
        yield "effect", type_, str(o.get("detail", "")), sorted(ids_in(o))
    for v in tick.get("violations") or ():
        text = str(v.get("message"))
        yield "violation", f"invariant {v.get('invariant')}", text, sorted(violation_ids(v))


def fields_text(fields: Mapping[str, Any]) -> str:
    """An action's fields as a reader scans them: ``actor: system; to: in_progress``
    (strings as they are, other values as compact JSON), in name order."""
    return "; ".join(
        f"{k}: {v if isinstance(v, str) else compact(v)}" for k, v in sorted(fields.items())
    )


def history_item(entry: Mapping[str, Any]) -> Item:
    """One entry of a dump's own history as an item (its stored type, else its kind)."""
    detail = entry.get("detail") or {}
    what = str(entry.get("kind", "history"))
    type_ = str(detail.get("event_type") or detail.get("type") or what)
    touched = [(str(k), str(i)) for k, i in entry.get("entities") or () if i]
    return what, type_, str(entry.get("label", "")), sorted(touched)


def timed_items(run: TownRun) -> list[tuple[int, str, Item]]:
    """``(ms, at, item)`` for every item of the window, the ticks' and the history's, in time order."""
    found = [
        (to_ms(str(tick["at"])), str(tick["at"]), item)
        for tick in run.ticks
        for item in tick_items(tick)
    ]
    found += [(to_ms(str(e.get("at"))), str(e.get("at")), history_item(e)) for e in run.history]
    found.sort(key=lambda t: t[0])  # stable: within a time, the order they were recorded in
    return found


class Activity:
    """Per entity: what touched it, its status changes, and the page its section is on."""

    def __init__(self, run: TownRun, kind_of: KindOf) -> None:
        self.start = to_ms(run.window_from)
        self.end = max(self.start + 1, to_ms(run.window_to))
        self.titles = {i: e.title or "" for i, e in run.entities.items()}
        self.touches: dict[Key, Touches] = {}
        self.changes: dict[Key, list[Change]] = {}
        #: Every item of the window in time order, and their times (to find a span's items).
        self.items = timed_items(run)
        self.times = [ms for ms, _, _ in self.items]
        #: Lanes already drawn, by entity and final status (an entity's lane is on several pages).
        self.lanes: dict[tuple[Key, str], Any] = {}
        for ms, at, (what, type_, text, touched) in self.items:
            for kind, entity_id in touched:
                self._touch((kind_of(kind, entity_id), entity_id), at, ms, what, type_, text)
        for entity_id, info in run.entities.items():  # every rig has a section, touched or not
            self.touches.setdefault((kind_of(info.kind, entity_id), entity_id), Touches())
        self._collect_changes(run, kind_of)
        self.pages = self._layout()

    def span(self, lo: int, hi: int) -> list[tuple[int, str, Item]]:
        """The items from ``lo`` to ``hi`` (ms, both included)."""
        return self.items[bisect.bisect_left(self.times, lo) : bisect.bisect_right(self.times, hi)]

    def bucket(self, ms: int) -> int:
        """The lane column holding time ``ms``."""
        i = (ms - self.start) * LANE_BUCKETS // (self.end - self.start)
        return min(LANE_BUCKETS - 1, max(0, i))

    def _touch(self, key: Key, at: str, ms: int, what: str, type_: str, text: str) -> None:
        t = self.touches.setdefault(key, Touches())
        group = t.groups.get((what, type_))
        if group is None:
            group = t.groups[(what, type_)] = Group(
                what, type_, ellipsis(text, SAMPLE_CHARS), at, at
            )
        group.times.append(ms)
        group.last_at = at
        counts = t.buckets.setdefault(self.bucket(ms), {})
        counts[what] = counts.get(what, 0) + 1
        t.last_ms = max(t.last_ms, ms)

    def _collect_changes(self, run: TownRun, kind_of: KindOf) -> None:
        """Status changes: transitions, dispatches (→ working), ``agent_done`` (→ idle),
        and the bead events of the window (created, status_changed)."""
        found: dict[Key, dict[tuple[int, str], Change]] = {}

        def add(kind: str, entity_id: Any, change: Change) -> None:
            if isinstance(entity_id, str) and entity_id:
                key = (kind_of(kind, entity_id), entity_id)
                if key[0] == kind:
                    found.setdefault(key, {}).setdefault((change.ms, change.after), change)

        for tick in run.ticks:
            for kind, entity_id, change in tick_changes(tick):
                add(kind, entity_id, change)
        for ev in run.bead_events:
            seen = bead_event_change(ev, run.window_from, run.window_to)
            if seen is not None:
                add("bead", ev.get("bead_id"), seen)
        # at one time, a creation comes before the changes that follow it
        self.changes = {
            k: sorted(v.values(), key=lambda c: (c.ms, c.via != "created"))
            for k, v in found.items()
        }

    def weight(self, key: Key) -> int:
        """An upper estimate of the bytes of the entity's section, in its page or its JSON twin
        (text counted as if every character HTML escapes were escaped)."""
        t = self.touches.get(key, Touches())
        segments = min(LANE_BUCKETS, len(self.changes.get(key, ())) + 2)
        groups = sorted(t.groups.values(), key=lambda g: g.times[0])[:MAX_FOLDS]
        folds = sum(400 + 2 * text_weight(g.sample) + 2 * text_weight(g.type) for g in groups)
        episodes = MAX_ENTITY_EPISODES if any(w == "violation" for w, _ in t.groups) else 0
        return (
            1500
            + 2 * text_weight(self.titles.get(key[1], ""))
            + 100 * (segments + len(t.buckets))
            + folds
            + 500 * episodes
        )

    def _layout(self) -> dict[Key, int]:
        """Page number of every entity's section: by kind, in id order, pages filled to budget."""
        order = {k: i for i, k in enumerate(KINDS)}
        pages: dict[Key, int] = {}
        kind, page, used = "", 0, 0
        for key in sorted(self.touches, key=lambda k: (order.get(k[0], len(order)), k)):
            w = self.weight(key)
            if key[0] != kind:
                kind, page, used = key[0], 1, 0
            elif used + w > PAGE_BUDGET:
                page, used = page + 1, 0
            pages[key] = page
            used += w
        return pages


def text_weight(text: str) -> int:
    """Bytes ``text`` may take in a page: UTF-8, each character HTML escapes counted as six."""
    return len(text.encode("utf-8", "replace")) + 5 * sum(text.count(c) for c in "<>&\"'")


def tick_changes(tick: Mapping[str, Any]) -> Iterator[tuple[str, Any, Change]]:
    """``(kind, id, change)`` for the status changes one tick records."""
    at = str(tick["at"])
    ms = to_ms(at)
    for a in tick.get("actions") or ():
        if a.get("type") == "transition_bead" and a.get("to") is not None:
            yield (
                "bead",
                a.get("bead_id"),
                Change(ms, at, _opt(a.get("from")), str(a["to"]), "transition_bead"),
            )
        elif a.get("type") == "transition_agent" and a.get("to") is not None:
            yield (
                "agent",
                a.get("agent_id"),
                Change(ms, at, _opt(a.get("from")), str(a["to"]), "transition_agent"),
            )
    for o in (tick.get("side_effects") or {}).get("outcomes") or ():
        if o.get("type") == "dispatch_agent" and o.get("ok"):
            yield "agent", o.get("agent_id"), Change(ms, at, None, "working", "dispatch_agent")
    for e in tick.get("events") or ():
        if e.get("event_type") == "agent_done" and e.get("outcome") == "applied":
            yield "agent", e.get("agent_id"), Change(ms, at, None, "idle", "agent_done")


def bead_event_change(ev: Mapping[str, Any], window_from: str, window_to: str) -> Change | None:
    """The status change a bead event records inside the window (``None`` for other events)."""
    at = str(ev.get("created_at"))
    if not window_from <= at <= window_to:
        return None
    if ev.get("event_type") == "status_changed" and ev.get("new_value"):
        return Change(to_ms(at), at, _opt(ev.get("old_value")), str(ev["new_value"]), "bead event")
    if ev.get("event_type") == "created":
        return Change(to_ms(at), at, "absent", str(ev.get("new_value") or "open"), "created")
    return None


def _opt(value: Any) -> str | None:
    return None if value is None else str(value)
