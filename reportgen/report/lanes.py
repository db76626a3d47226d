"""Swimlanes and folded activity lists: an entity's window at a glance, bounded in size.

A :class:`Lane` is one entity's status over the window as segments, with the
items that touched it as marks below, drawn as static HTML (positioned
``<span>`` elements, a ``title`` on each) inside a ``role="img"`` element
whose ``aria-label`` says the same in one sentence, so it reads without
JavaScript and with a screen reader. Beyond
:data:`~reportgen.report.entity_activity.LANE_BUCKETS` segments the lane is
merged per column (the status held longest; the last column shows the status
at the window's end), and marks are counted per column (neighbouring columns
of one class make one mark), so a lane's size does not grow with the window.

A :class:`Fold` is one line of an activity list: items of the same type about
the same subject, however many, as a count, a typical period ("every 30 s")
and the first and last time, each linked to its tick. An episode's or a
finding's list that would run past :data:`MAX_SPAN_LINES` lines merges the
lines of one type across the entities the page is not about ("dispatch_agent
×38 on 38 beads"): every item is still counted, the page stays short, and the
timeline lists them one by one.
"""

from __future__ import annotations

import itertools
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import cast

from reportgen.diagnose.episodes import to_ms
from reportgen.report.entity_activity import (
    LANE_BUCKETS,
    MAX_FOLDS,
    SAMPLE_CHARS,
    Activity,
    Change,
    Group,
    Key,
)
from reportgen.report.entity_fields import KINDS
from reportgen.report.format import clean, ellipsis, fmt_clock, fmt_duration, iso
from reportgen.report.messages import named_text
from reportgen.report.town_data import TownData
from reportgen.report.views_shared import EntityLink

#: Width of a lane in lane units (a segment's ``x`` and ``w``; 10 units are 1 %).
LANE_WIDTH = 1000
#: Lines of an episode's or a finding's activity list (the rest are counted).
MAX_SPAN_FOLDS = 150
#: Past this many lines, a span's lines of one type are merged across the other entities.
MAX_SPAN_LINES = 24
#: A segment narrower than this (lane units) shows no text, only its colour and title.
LABEL_WIDTH = 80
#: What a status means for a type of bead, where it is not the status's name: a merge
#: request in progress is in review (the refinery reviews it, or its pull request is polled).
MEANINGS = {("merge_request", "in_progress"): "in review"}
#: The mark class of a column: the most alarming kind of item in it wins.
MARK_ORDER = ("violation", "failed", "effect", "action", "event")


@dataclass(frozen=True)
class LaneSegment:
    """One status over part of the window: ``x`` and ``w`` in lane units (0–1000)."""

    status: str
    x: int
    w: int
    label: str
    #: What the status means for this entity, where that is not its name ("in review").
    meaning: str = ""

    @property
    def words(self) -> str:
        """The status as the lane writes it."""
        return self.meaning or self.status

    @property
    def style(self) -> str:
        return _style(self.x, self.w)

    @property
    def labelled(self) -> bool:
        """Whether the segment is wide enough to show its status as text."""
        return self.w >= LABEL_WIDTH


@dataclass(frozen=True)
class LaneMark:
    """The items that touched the entity in one column of the lane."""

    x: int
    w: int
    kind: str
    count: int
    label: str

    @property
    def style(self) -> str:
        return _style(self.x, self.w)


@dataclass(frozen=True)
class Lane:
    """An entity's status over the window and what touched it, as static HTML."""

    entity: EntityLink
    #: The status at the window's end (the state's); the last segment always shows it.
    final: str
    #: How many status changes the window shows, and how many items touched the entity.
    changes: int
    items: int
    segments: tuple[LaneSegment, ...]
    marks: tuple[LaneMark, ...]
    start_label: str
    end_label: str
    #: How long the status at the window's end had held by then ("1 h 46 min"): what says
    #: "stuck" when an entity sits in one status for most of the window.
    held: str = ""

    @property
    def summary(self) -> str:
        """The lane in one sentence: its text alternative."""
        end = self.segments[-1].words if self.segments else "unknown"
        held = f" for the last {self.held}" if self.held else ""
        return (
            f"{self.entity.kind} {self.entity.label}: {_n(self.changes, 'status change')} seen,"
            f" {end} at the window's end{held}; {_n(self.items, 'item')} touched it"
        )


def _n(count: int, noun: str) -> str:
    return f"{count} {noun}{'s' if count != 1 else ''}"


@dataclass(frozen=True)
class Fold:
    """Items of one type (about one subject) folded into a line: ``poll_pr ×240, every 30 s``.

    The first and last item link to their ticks on the town's timeline: a line
    holds the anchors (``tick-<ms>``), the page that shows the lines the town
    page's href (a day of an entity page holds thousands of such links).
    """

    what: str
    type: str
    subject: EntityLink | None
    count: int
    period: str
    first_label: str
    first_tick: str
    last_label: str
    last_tick: str
    sample: str
    #: For a line merged across entities, which and how many (``"38 beads"``).
    others: str = ""


def _style(x: int, w: int) -> str:
    """The CSS placing a segment or mark: a share of the lane's width."""
    return f"left:{x / 10:g}%;width:{w / 10:g}%"


# ── Lanes ────────────────────────────────────────────────────────────────


def _points(changes: Sequence[Change], final: str, last_touch: int) -> list[tuple[int, str, str]]:
    """``(ms, status, via)`` change points, ending on ``final`` (the state's) when it is known.

    The ticks do not show every change (an API call, a container's report), so
    when the last change seen is not the state's status, the state's status is
    put at the last time something touched the entity.
    """
    points = [(c.ms, c.after, c.via) for c in changes]
    last = points[-1][1] if points else None
    if final and last != final:
        at = max(last_touch, points[-1][0] if points else 0)
        points.append((at, final, "state at window end"))
    return points


def _spans(
    act: Activity, changes: Sequence[Change], points: list[tuple[int, str, str]]
) -> list[tuple[str, int, int]]:
    """``(status, from_ms, to_ms)`` across the window, the later of two equal times winning."""
    if not points:
        return [("unknown", act.start, act.end)]
    first_before = changes[0].before if changes else None
    spans: list[tuple[str, int, int]] = []
    start = max(act.start, points[0][0])
    if start > act.start:
        spans.append((first_before or "unknown", act.start, start))
    for i, (ms, status, _) in enumerate(points):
        nxt = points[i + 1][0] if i + 1 < len(points) else act.end
        lo, hi = max(act.start, ms), min(act.end, max(ms, nxt))
        if spans and spans[-1][0] == status and spans[-1][2] >= lo:
            spans[-1] = (status, spans[-1][1], max(lo, hi))
        elif hi > lo or i + 1 == len(points):
            spans.append((status, lo, max(lo, hi)))
    return spans


def _bucketed(act: Activity, spans: list[tuple[str, int, int]]) -> list[tuple[str, int, int, int]]:
    """``(status, from, to, changes)``: the spans, merged per lane column when too many."""
    if len(spans) <= LANE_BUCKETS:
        return [(s, a, b, 1) for s, a, b in spans]
    width = (act.end - act.start) / LANE_BUCKETS
    held: list[dict[str, int]] = [{} for _ in range(LANE_BUCKETS)]
    for status, a, b in spans:
        for col in range(act.bucket(a), act.bucket(max(a, b - 1)) + 1):
            lo = max(a, act.start + int(col * width))
            hi = min(b, act.start + int((col + 1) * width))
            held[col][status] = held[col].get(status, 0) + max(0, hi - lo)
    out: list[tuple[str, int, int, int]] = []
    for col, h in enumerate(held):
        status = max(sorted(h), key=lambda s: h[s]) if h else "unknown"
        if col == LANE_BUCKETS - 1:
            status = spans[-1][0]  # the lane ends on the status at the window's end
        lo, hi = act.start + int(col * width), act.start + int((col + 1) * width)
        if out and out[-1][0] == status:
            out[-1] = (status, out[-1][1], hi, out[-1][3] + len(h) - 1)
        else:
            out.append((status, lo, hi, len(h)))
    return out


def _x(act: Activity, ms: int) -> int:
    return round(LANE_WIDTH * (ms - act.start) / (act.end - act.start))


def _segment(act: Activity, status: str, a: int, b: int, merged: int) -> LaneSegment:
    x, right = _x(act, a), _x(act, b)
    label = f"{status} {fmt_clock(iso(a))}–{fmt_clock(iso(b))}"
    if merged > 1:
        label += f" (mostly; {merged} statuses in this stretch)"
    return LaneSegment(clean(status), x, max(1, right - x), label)


def _marks(act: Activity, key: Key) -> tuple[LaneMark, ...]:
    """Marks of the lane columns that items touched, classed by the most alarming item;
    neighbouring columns of one class make one mark (a storm of hours is one mark)."""
    touches = act.touches.get(key)
    if touches is None:
        return ()
    failed = {
        col
        for g in touches.groups.values()
        if g.type.endswith(" failed")
        for col in {act.bucket(t) for t in g.times}
    }
    runs: list[tuple[str, int, int, Counter[str]]] = []  # (class, first col, last col, counts)
    for col in sorted(touches.buckets):
        counts = touches.buckets[col]
        kinds = set(counts) | ({"failed"} if col in failed else set())
        kind = next((k for k in MARK_ORDER if k in kinds), "event")  # a dump's history: events
        if runs and runs[-1][0] == kind and runs[-1][2] == col - 1:
            runs[-1] = (kind, runs[-1][1], col, runs[-1][3] + Counter(counts))
        else:
            runs.append((kind, col, col, Counter(counts)))
    return tuple(_mark(act, *run) for run in runs)


def _mark(act: Activity, kind: str, first: int, last: int, counts: Counter[str]) -> LaneMark:
    width = (act.end - act.start) / LANE_BUCKETS
    a, b = act.start + int(first * width), act.start + int((last + 1) * width)
    words = ", ".join(f"{n} {w}{'s' if n != 1 else ''}" for w, n in sorted(counts.items()))
    x = _x(act, a)
    label = f"{fmt_clock(iso(a))}–{fmt_clock(iso(b))}: {words}"
    return LaneMark(x, max(1, _x(act, b) - x), kind, sum(counts.values()), label)


def lane(data: TownData, link: EntityLink, final: str | None) -> Lane:
    """The entity's lane; its last segment is ``final`` (the state's status) when known."""
    act = data.entities.activity
    key = (link.kind, link.id)
    drawn = act.lanes.get((key, final or ""))
    if drawn is None:
        info = data.entities.info.get(link.id)
        drawn = _draw(act, link, final)
        drawn = act.lanes[(key, final or "")] = _worded(drawn, info.type if info else None)
    return cast(Lane, drawn)


def _worded(drawn: Lane, bead_type: str | None) -> Lane:
    """The lane with each status written as it means for the bead's type (:data:`MEANINGS`)."""
    meanings = {status: m for (t, status), m in MEANINGS.items() if t == bead_type}
    if not meanings:
        return drawn
    segments = tuple(
        replace(s, meaning=meanings[s.status], label=f"{meanings[s.status]} ({s.label})")
        if s.status in meanings
        else s
        for s in drawn.segments
    )
    return replace(drawn, segments=segments)


def _draw(act: Activity, link: EntityLink, final: str | None) -> Lane:
    key = (link.kind, link.id)
    changes = act.changes.get(key, [])
    touches = act.touches.get(key)
    points = _points(changes, final or "", touches.last_ms if touches else act.start)
    spans = _spans(act, changes, points)
    segments = tuple(_segment(act, *s) for s in _bucketed(act, spans))
    marks = _marks(act, key)
    return Lane(
        entity=link,
        final=clean(final or ""),
        changes=len(changes),
        items=sum(m.count for m in marks),
        segments=segments,
        marks=marks,
        start_label=fmt_clock(iso(act.start)),
        end_label=fmt_clock(iso(act.end)),
        held=fmt_duration(spans[-1][2] - spans[-1][1]) if points else "",
    )


# ── Folded activity ──────────────────────────────────────────────────────


def period(times: Sequence[int]) -> str:
    """``every 30 s``: the median gap between items (``""`` for fewer than three)."""
    if len(times) < 3:
        return ""
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return f"every {fmt_duration(int(statistics.median(gaps)))}"


def _fold(data: TownData, g: Group, subject: EntityLink | None) -> Fold:
    return Fold(
        what=g.what,
        type=clean(g.type),
        subject=subject,
        count=len(g.times),
        period=period(g.times),
        first_label=fmt_clock(g.first_at),
        first_tick=data.tick_anchor(g.first_at),
        last_label=fmt_clock(g.last_at) if len(g.times) > 1 else "",
        last_tick=data.tick_anchor(g.last_at) if len(g.times) > 1 else "",
        # a check's message names its entities by name, as everywhere else on the site
        sample=clean(named_text(g.sample, data.entities) if g.what == "violation" else g.sample),
    )


def entity_folds(data: TownData, key: Key) -> tuple[list[Fold], str]:
    """What touched the entity, one line per type (first seen first), and what was left out."""
    touches = data.entities.activity.touches.get(key)
    groups = sorted(touches.groups.values(), key=lambda g: g.times[0]) if touches else []
    return [_fold(data, g, None) for g in groups[:MAX_FOLDS]], _more(groups[MAX_FOLDS:])


def _more(rest: Sequence[Group]) -> str:
    if not rest:
        return ""
    items = sum(len(g.times) for g in rest)
    return f"{len(rest)} more line{'s' if len(rest) != 1 else ''} ({items} items) not listed"


def _subject(touched: Iterable[Key]) -> Key | None:
    """The item's subject: a bead before an agent before a rig (an action names several)."""
    order = {k: i for i, k in enumerate(KINDS)}
    keys = sorted(touched, key=lambda k: (order.get(k[0], len(order)), k))
    return keys[0] if keys else None


def span_folds(
    data: TownData, first_at: str, last_at: str, keep: Iterable[Key] = ()
) -> tuple[list[Fold], str]:
    """Every item between two times, folded by type and subject, in order of first time.

    Past :data:`MAX_SPAN_LINES` lines, the lines of one type about entities
    other than ``keep`` (the page's subjects) are merged into one.
    """
    try:
        lo, hi = to_ms(first_at), to_ms(last_at)
    except ValueError:
        return [], ""
    ents = data.entities
    groups: dict[tuple[str, str, Key | None], Group] = {}
    for ms, at, (what, type_, text, touched) in ents.activity.span(lo, hi):
        subject = _subject((ents.kind(k, i), i) for k, i in touched)
        g = groups.get((what, type_, subject))
        if g is None:
            g = groups[(what, type_, subject)] = Group(
                what, type_, ellipsis(text, SAMPLE_CHARS), at, at
            )
        g.times.append(ms)
        g.last_at = at
    merged = _merged(groups, set(keep)) if len(groups) > MAX_SPAN_LINES else {}
    keys = list(groups)[:MAX_SPAN_FOLDS]
    folds = _told_apart([_span_fold(data, k, groups[k], merged.get(k, [])) for k in keys])
    return folds, _more([groups[k] for k in list(groups)[MAX_SPAN_FOLDS:]])


def _told_apart(folds: list[Fold]) -> list[Fold]:
    """Subjects that share a name get their short id after it: each feedback round of a
    review makes a new bead with the same title, and their lines would read as repeats."""
    ids: dict[str, set[str]] = {}
    for f in folds:
        if f.subject is not None:
            ids.setdefault(f.subject.label, set()).add(f.subject.id)
    shared = {label for label, seen in ids.items() if len(seen) > 1}
    return [
        replace(f, subject=replace(f.subject, label=f"{f.subject.label} · {f.subject.id[:8]}"))
        if f.subject is not None and f.subject.label in shared
        else f
        for f in folds
    ]


SpanKey = tuple[str, str, Key | None]


def _merged(groups: dict[SpanKey, Group], keep: set[Key]) -> dict[SpanKey, list[Key]]:
    """Merge, in place, the lines of each type about entities not in ``keep``: the first
    such line takes the others' items. Returns the entities each merged line covers."""
    first: dict[tuple[str, str], SpanKey] = {}
    covers: dict[SpanKey, list[Key]] = {}
    for key in list(groups):
        what, type_, subject = key
        if subject is None or subject in keep:
            continue
        head = first.setdefault((what, type_), key)
        covers.setdefault(head, []).append(subject)
        if head != key:
            g, into = groups.pop(key), groups[head]
            into.times = sorted(into.times + g.times)
            into.last_at = max(into.last_at, g.last_at)
    return {k: v for k, v in covers.items() if len(v) > 1}


def _span_fold(data: TownData, key: SpanKey, g: Group, covers: list[Key]) -> Fold:
    """A span's line: about its subject, or (merged) about several entities, counted."""
    if not covers:
        return _fold(data, g, data.entities.link(*key[2]) if key[2] else None)
    return replace(_fold(data, g, None), others=_others(covers))


def _others(keys: list[Key]) -> str:
    """``"38 beads, 2 agents"``: how many entities of each kind a merged line covers."""
    order = {k: i for i, k in enumerate(KINDS)}
    counts = Counter(kind for kind, _ in keys)
    kinds = sorted(counts, key=lambda k: (order.get(k, len(order)), k))
    return ", ".join(_n(counts[k], k) for k in kinds)
