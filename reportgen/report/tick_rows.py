"""The rows of a tick table: one tick in full, or a run of quiet ticks folded into one row.

A tick row shows what the reconciler saw and did on that tick: the events it
drained, the full action objects (entity ids linked), the side effects and
the violations (linked to their episode). The episode pages show them as
witness ticks; the town's timeline (:mod:`reportgen.report.timeline`) encodes
the same rows compactly for its viewer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from reportgen.diagnose.episodes import to_ms
from reportgen.report.entity_fields import ids_in, kind_of_field, violation_ids
from reportgen.report.explain import Part
from reportgen.report.format import clean, compact, fmt_time
from reportgen.report.messages import named_message
from reportgen.report.town_data import TownData, violation_keys
from reportgen.report.views_shared import EntityLink, tick_anchor, violation_href


@dataclass(frozen=True)
class EventItem:
    """A town event the tick drained, and how the drain handled it."""

    type: str
    outcome: str
    error: str | None
    links: list[EntityLink]


@dataclass(frozen=True)
class ActionField:
    """One field of an action object; ``link`` when it holds an entity id."""

    key: str
    value: str
    link: EntityLink | None


@dataclass(frozen=True)
class ActionItem:
    """An action the tick emitted, in full, and what applying it did."""

    type: str
    fields: list[ActionField]
    outcome: str

    @property
    def failed(self) -> bool:
        return self.outcome != "applied"


@dataclass(frozen=True)
class EffectItem:
    """A side effect the tick attempted."""

    type: str
    ok: bool
    detail: str
    links: list[EntityLink]


@dataclass(frozen=True)
class ViolationItem:
    """A violation the tick's checks reported; ``href`` is its episode's page.

    ``message`` is the check's own text (ids and all, the HTML's ``title``),
    ``text`` the same with names (:mod:`reportgen.report.messages`), ``parts``
    what the row shows: text and links to the entities it names.
    """

    invariant: int
    message: str
    href: str | None
    text: str
    parts: list[Part]


@dataclass(frozen=True, kw_only=True)
class TickRow:
    """One tick, in full."""

    at: str
    label: str
    anchor: str
    ms: int
    events: list[EventItem]
    actions: list[ActionItem]
    effects: list[EffectItem]
    #: Side effects attempted, succeeded, failed.
    effect_counts: list[int]
    violations: list[ViolationItem]
    drained: int
    pending: int
    wall_ms: float
    draining: bool
    #: What the tick table's filter matches: ``a:<action> e:<event> v:<invariant> fx:failed``.
    tags: str
    kind: Literal["tick"] = "tick"


@dataclass(frozen=True, kw_only=True)
class WitnessRow(TickRow):
    """A tick on an episode's page: only the items touching its entities, and its role."""

    #: The tick's row in the town's tick table.
    href: str
    #: ``before``, ``first tick``, ``last tick`` or ``cleared``.
    role: str


@dataclass(frozen=True)
class IdleRow:
    """Consecutive ticks that did nothing visible, folded into one row."""

    ongoing: list[int]  # invariants whose violations continue through them
    count: int
    anchor: str
    from_ms: int
    to_ms: int
    label: str
    to_label: str
    kind: Literal["idle"] = "idle"


def _field(data: TownData, key: str, value: Any) -> ActionField:
    kind = kind_of_field(key)
    link = None
    if kind is not None and isinstance(value, str) and value and key.endswith("_id"):
        link = data.entities.link(kind, value)
    shown = clean(value) if isinstance(value, str) else compact(value)
    return ActionField(clean(key), shown, link)


def _links(data: TownData, obj: Mapping[str, Any]) -> list[EntityLink]:
    return [data.entities.link(k, i) for k, i in ids_in(obj)]


def _actions(data: TownData, tick: Mapping[str, Any]) -> list[ActionItem]:
    applies = {int(a.get("index", -1)): a for a in tick.get("apply") or ()}
    return [
        ActionItem(
            type=clean(str(action.get("type"))),
            fields=[_field(data, k, v) for k, v in action.items() if k != "type"],
            outcome=clean(str(applies.get(i, {}).get("outcome", "applied"))),
        )
        for i, action in enumerate(tick.get("actions") or ())
    ]


def _violations(data: TownData, tick: Mapping[str, Any], at: str) -> list[ViolationItem]:
    items = []
    for v in tick.get("violations") or ():
        ep = data.episode_for(v, at)
        href = violation_href(ep.id) if ep else None
        named = named_message(
            str(v.get("message")), data.entities, {i for _, i in violation_ids(v)}, 200
        )
        items.append(
            ViolationItem(int(v["invariant"]), named.message, href, named.text, named.parts)
        )
    return items


def _events(data: TownData, tick: Mapping[str, Any]) -> list[EventItem]:
    return [
        EventItem(
            type=clean(str(e.get("event_type"))),
            outcome=clean(str(e.get("outcome"))),
            error=clean(str(e["error"])) if e.get("error") else None,
            links=_links(data, e),
        )
        for e in tick.get("events") or ()
    ]


def _effects(data: TownData, outcomes: list[Mapping[str, Any]]) -> list[EffectItem]:
    return [
        EffectItem(
            type=clean(str(o.get("type"))),
            ok=bool(o.get("ok")),
            detail=clean(str(o.get("detail", ""))),
            links=_links(data, o),
        )
        for o in outcomes
    ]


def tick_row(data: TownData, index: int) -> TickRow:
    """One tick as the table shows it: events, full action objects, side effects, violations."""
    tick = data.run.ticks[index]
    at = str(tick["at"])
    effects = tick.get("side_effects") or {}
    outcomes = effects.get("outcomes") or []
    metrics = tick.get("metrics") or {}
    actions = _actions(data, tick)
    violations = _violations(data, tick, at)
    tags = sorted(
        {f"a:{a.type}" for a in actions}
        | {f"e:{clean(str(e.get('event_type')))}" for e in tick.get("events") or ()}
        | {f"v:{v.invariant}" for v in violations}
        | ({"fx:failed"} if any(not o.get("ok") for o in outcomes) else set())
    )
    return TickRow(
        at=at,
        label=fmt_time(at),
        anchor=tick_anchor(at),
        ms=to_ms(at),
        events=_events(data, tick),
        actions=actions,
        effects=_effects(data, outcomes),
        effect_counts=[effects.get(k, 0) for k in ("attempted", "succeeded", "failed")],
        violations=violations,
        drained=metrics.get("eventsDrained", 0),
        pending=metrics.get("pendingEventCount", 0),
        wall_ms=metrics.get("wallClockMs", 0),
        draining=bool(tick.get("draining")),
        tags=" ".join(tags),
    )


def idle_row(data: TownData, start: int, end: int) -> IdleRow:
    """Ticks ``start``..``end`` (all quiet) as one row, naming the violations that go on."""
    ticks = data.run.ticks
    first, last = str(ticks[start]["at"]), str(ticks[end]["at"])
    ongoing = sorted({n for i in range(start, end + 1) for n, _ in violation_keys(ticks[i])})
    return IdleRow(
        ongoing=ongoing,
        count=end - start + 1,
        anchor=tick_anchor(first),
        from_ms=to_ms(first),
        to_ms=to_ms(last),
        label=fmt_time(first),
        to_label=fmt_time(last),
    )
