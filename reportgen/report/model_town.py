"""The town run page, its tick table pages, and the per-town data other pages share.

:class:`TownData` is computed once per town (episodes, their status and
explanations, where each tick's row lives) and every page of that town reads
from it. Long timelines are paged: ticks that did nothing visible (no event,
action, side effect or violation) are folded into "idle" rows, and the rest
is cut into pages of :data:`ROWS_PER_PAGE` rows; a tick's permalink is
``<page>#tick-<epoch-ms>``.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from reportgen.diagnose.episodes import Episode, find_episodes, to_ms, violation_key
from reportgen.report.explain import Explanation, explain, replay_command
from reportgen.report.model import (
    Entities,
    EpisodeRow,
    TownSummary,
    episode_links,
    invariant_description,
    invariant_title,
    tick_anchor,
    ticks_href,
    town_href,
    violation_href,
    window_label,
)
from reportgen.report.text import clean, compact, fmt_clock, fmt_duration, fmt_time
from reportgen.report.touch import ids_in, kind_of_field, tick_ids
from reportgen.report.verdicts import UNKNOWN, FindingRow, TownDiagnosis
from reportgen.runmodel import TownRun
from reportgen.town.tick import wall_clock_kind

#: Rows (active ticks or idle runs) per tick-table page; keeps a page light.
ROWS_PER_PAGE = 40


@dataclass(frozen=True)
class QuarantineRow:
    """One event row the drain could not parse: kept out of the replay, with its reason."""

    event_id: str
    event_type: str
    reason: str
    at: str


def quarantine_row(q: dict[str, Any]) -> QuarantineRow:
    """A quarantined event as the run lists it (``at`` is the tick that met it)."""
    return QuarantineRow(
        event_id=clean(str(q["event_id"])),
        event_type=clean(str(q["event_type"])),
        reason=clean(str(q["reason"])),
        at=str(q["at"]),
    )


@dataclass
class PageRange:
    """Which ticks a tick-table page holds (used by the tick locator script)."""

    number: int
    href: str
    first_ms: int
    last_ms: int
    label: str


@dataclass
class TownData:
    """Everything computed once per town that its pages share."""

    run: TownRun
    entities: Entities
    episodes: list[Episode]
    statuses: dict[str, str]
    explanations: dict[str, Explanation]
    rows: dict[str, EpisodeRow]
    items: list[list[tuple[str, int, int]]]  # per page: ("tick", i, i) or ("idle", i, j)
    page_of_tick: dict[int, tuple[int, int]]  # tick ms -> (page, ms of the row holding it)
    pages: list[PageRange]
    touched: set[tuple[str, str]] = field(default_factory=set)
    #: Tick time → position in ``run.ticks``.
    tick_index: dict[str, int] = field(default_factory=dict)

    def tick_href(self, at: str) -> str:
        """Site-relative link to a tick's row (the idle run that holds it, if idle)."""
        ms = to_ms(at)
        if ms not in self.page_of_tick and self.page_of_tick:
            # not a tick time (a bead event between ticks): the next tick, which saw it
            times = sorted(self.page_of_tick)
            ms = times[min(bisect.bisect_left(times, ms), len(times) - 1)]
        page, row_ms = self.page_of_tick.get(ms, (1, ms))
        return f"{ticks_href(self.run.town_id, page)}#tick-{row_ms}"

    def episode_for(self, violation: Mapping[str, Any], at: str) -> Episode | None:
        key = violation_key(violation)
        ms = to_ms(at)
        for ep in self.episodes:
            if (ep.invariant, ep.subject) == key and to_ms(ep.first_at) <= ms <= to_ms(ep.last_at):
                return ep
        return None


def _busy(tick: Mapping[str, Any]) -> bool:
    effects = tick.get("side_effects") or {}
    return bool(
        tick.get("events")
        or tick.get("actions")
        or effects.get("attempted")
        or (tick.get("container") or {}).get("recorded")
    )


def _vkeys(tick: Mapping[str, Any] | None) -> frozenset[tuple[int, Any]]:
    if tick is None:
        return frozenset()
    return frozenset(violation_key(v) for v in tick.get("violations") or ())


def is_active(ticks: Sequence[Mapping[str, Any]], i: int) -> bool:
    """Whether tick ``i`` gets its own row: it did something, or a violation began or ended.

    A tick where the same violations merely continue is folded with the quiet
    ones, so a stuck bead does not fill pages with identical rows; the first
    and last tick of every episode keep their rows (and their anchors).
    """
    if _busy(ticks[i]):
        return True
    here = _vkeys(ticks[i])
    if not here:
        return False
    before = _vkeys(ticks[i - 1]) if i > 0 else frozenset()
    after = _vkeys(ticks[i + 1]) if i + 1 < len(ticks) else frozenset()
    return here != before or here != after


def _active_flags(ticks: Sequence[Mapping[str, Any]]) -> list[bool]:
    """:func:`is_active` for every tick, computing each tick's violation keys once (not 3×)."""
    keys = [_vkeys(t) for t in ticks]
    last = len(ticks) - 1
    return [
        _busy(tick)
        or bool(
            keys[i]
            and (
                keys[i] != (keys[i - 1] if i > 0 else frozenset())
                or keys[i] != (keys[i + 1] if i < last else frozenset())
            )
        )
        for i, tick in enumerate(ticks)
    ]


def _paginate(
    ticks: Sequence[Mapping[str, Any]], per_page: int = ROWS_PER_PAGE
) -> list[list[tuple[str, int, int]]]:
    items: list[tuple[str, int, int]] = []
    idle_start: int | None = None
    for i, active in enumerate(_active_flags(ticks)):
        if active:
            if idle_start is not None:
                items.append(("idle", idle_start, i - 1))
                idle_start = None
            items.append(("tick", i, i))
        elif idle_start is None:
            idle_start = i
    if idle_start is not None:
        items.append(("idle", idle_start, len(ticks) - 1))
    pages = [items[i : i + per_page] for i in range(0, len(items), per_page)]
    return pages or [[]]


def compute_town(
    run: TownRun,
    episodes: list[Episode] | None = None,
    statuses: Mapping[str, str] | None = None,
    *,
    per_page: int = ROWS_PER_PAGE,
) -> TownData:
    """Per-town data: episodes (found here unless given, e.g. after history adoption), paging."""
    eps = episodes if episodes is not None else find_episodes(run.town_id, run.ticks)
    entities = Entities(run)
    pages_items = _paginate(run.ticks, per_page)
    page_of: dict[int, tuple[int, int]] = {}
    ranges: list[PageRange] = []
    for number, items in enumerate(pages_items, start=1):
        for _, a, b in items:
            row_ms = to_ms(run.ticks[a]["at"])
            for i in range(a, b + 1):
                page_of[to_ms(run.ticks[i]["at"])] = (number, row_ms)
        if items:
            first, last = run.ticks[items[0][1]]["at"], run.ticks[items[-1][2]]["at"]
            ranges.append(
                PageRange(
                    number,
                    ticks_href(run.town_id, number),
                    to_ms(first),
                    to_ms(last),
                    f"{fmt_clock(first)}–{fmt_clock(last)}",
                )
            )
    data = TownData(
        run=run,
        entities=entities,
        episodes=eps,
        statuses={ep.id: (statuses or {}).get(ep.id, "new") for ep in eps},
        explanations={},
        rows={},
        items=pages_items,
        page_of_tick=page_of,
        pages=ranges,
    )
    for i, tick in enumerate(run.ticks):
        data.touched |= tick_ids(tick)
        data.tick_index[str(tick["at"])] = i
    for ep in eps:
        data.explanations[ep.id] = explain(ep, run.ticks, entities)
        data.rows[ep.id] = episode_row(data, ep)
    return data


def episode_row(data: TownData, ep: Episode) -> EpisodeRow:
    return EpisodeRow(
        id=ep.id,
        href=violation_href(ep.id),
        town_id=clean(ep.town_id),
        town_href=town_href(ep.town_id),
        invariant=ep.invariant,
        title=invariant_title(ep.invariant),
        status=data.statuses.get(ep.id, "new"),
        first_at=ep.first_at,
        first_label=fmt_time(ep.first_at),
        first_href=data.tick_href(ep.first_at),
        last_at=ep.last_at,
        last_label=fmt_time(ep.last_at),
        last_href=data.tick_href(ep.last_at),
        duration=fmt_duration(ep.duration_ms),
        duration_ms=ep.duration_ms,
        ticks=ep.ticks,
        open_at_start=ep.open_at_start,
        open_at_end=ep.open_at_end,
        entities=episode_links(data.entities, ep),
        summary=data.explanations[ep.id].summary,
        replay_command=replay_command(data.run.source, ep),
    )


# ── Tick rows ────────────────────────────────────────────────────────────


def _field(data: TownData, key: str, value: Any) -> dict[str, Any]:
    kind = kind_of_field(key)
    link = None
    if kind is not None and isinstance(value, str) and value and key.endswith("_id"):
        link = asdict(data.entities.link(kind, value))
    shown = clean(value) if isinstance(value, str) else compact(value)
    return {"key": clean(key), "value": shown, "link": link}


def _links(data: TownData, obj: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [asdict(data.entities.link(k, i)) for k, i in ids_in(obj)]


def tick_row(data: TownData, index: int) -> dict[str, Any]:
    """One tick as the table shows it: events, full action objects, side effects, violations."""
    tick = data.run.ticks[index]
    at = str(tick["at"])
    applies = {int(a.get("index", -1)): a for a in tick.get("apply") or ()}
    effects = tick.get("side_effects") or {}
    metrics = tick.get("metrics") or {}
    actions = []
    for i, action in enumerate(tick.get("actions") or ()):
        outcome = str(applies.get(i, {}).get("outcome", "applied"))
        actions.append(
            {
                "type": clean(str(action.get("type"))),
                "fields": [_field(data, k, v) for k, v in action.items() if k != "type"],
                "outcome": clean(outcome),
            }
        )
    violations = []
    for v in tick.get("violations") or ():
        ep = data.episode_for(v, at)
        violations.append(
            {
                "invariant": int(v["invariant"]),
                "message": clean(str(v.get("message"))),
                "href": violation_href(ep.id) if ep else None,
            }
        )
    tags = sorted(
        {f"a:{a['type']}" for a in actions}
        | {f"e:{clean(str(e.get('event_type')))}" for e in tick.get("events") or ()}
        | {f"v:{v['invariant']}" for v in violations}
        | ({"fx:failed"} if any(not o.get("ok") for o in effects.get("outcomes") or ()) else set())
    )
    return {
        "kind": "tick",
        "at": at,
        "label": fmt_time(at),
        "anchor": tick_anchor(at),
        "ms": to_ms(at),
        "events": [
            {
                "type": clean(str(e.get("event_type"))),
                "outcome": clean(str(e.get("outcome"))),
                "error": clean(str(e["error"])) if e.get("error") else None,
                "links": _links(data, e),
            }
            for e in tick.get("events") or ()
        ],
        "actions": actions,
        "effects": [
            {
                "type": clean(str(o.get("type"))),
                "ok": bool(o.get("ok")),
                "detail": clean(str(o.get("detail", ""))),
                "links": _links(data, o),
            }
            for o in effects.get("outcomes") or ()
        ],
        "effect_counts": [effects.get(k, 0) for k in ("attempted", "succeeded", "failed")],
        "violations": violations,
        "drained": metrics.get("eventsDrained", 0),
        "pending": metrics.get("pendingEventCount", 0),
        "wall_ms": metrics.get("wallClockMs", 0),
        "draining": bool(tick.get("draining")),
        "tags": " ".join(tags),
    }


def idle_row(data: TownData, start: int, end: int) -> dict[str, Any]:
    first, last = str(data.run.ticks[start]["at"]), str(data.run.ticks[end]["at"])
    ongoing = sorted({inv for i in range(start, end + 1) for inv, _ in _vkeys(data.run.ticks[i])})
    return {
        "kind": "idle",
        "ongoing": ongoing,
        "count": end - start + 1,
        "anchor": tick_anchor(first),
        "from_ms": to_ms(first),
        "to_ms": to_ms(last),
        "label": fmt_time(first),
        "to_label": fmt_time(last),
    }


def page_rows(data: TownData, number: int) -> list[dict[str, Any]]:
    return [
        tick_row(data, a) if kind == "tick" else idle_row(data, a, b)
        for kind, a, b in data.items[number - 1]
    ]


# ── Pages ────────────────────────────────────────────────────────────────


@dataclass
class TicksPage:
    """One page of a town's tick table (page 1 is embedded in the town page)."""

    kind: str
    title: str
    root: str
    town_id: str
    town_href: str
    number: int
    pages: list[PageRange]
    rows: list[dict[str, Any]]


@dataclass
class InvariantGroup:
    number: int
    title: str
    description: str
    episodes: list[EpisodeRow]
    #: Per episode: ``{"id", "summary", "parts", "replay_command", "href"}`` (the "why").
    details: list[dict[str, Any]]


@dataclass
class TownPage:
    """The town run page: status and episodes first, then charts, then the tick table."""

    kind: str
    title: str
    root: str
    town_id: str
    source: str
    window_from: str
    window_to: str
    window_label: str
    fidelity: str
    caveat: str | None
    divergence: dict[str, Any] | None
    compared_ticks: int
    totals: dict[str, Any]
    groups: list[InvariantGroup]
    charts: list[dict[str, Any]]
    datasets: dict[str, Any]
    ticks: TicksPage
    quarantined: list[QuarantineRow]
    #: The town's diagnosis (:mod:`reportgen.report.findings`): its verdict, findings
    #: worst first (the JSON contract, as on the index) and how the page shows them.
    verdict: str = UNKNOWN
    findings: list[FindingRow] = field(default_factory=list)
    diagnosis: TownDiagnosis | None = None


#: A tick page lists every page when there are at most this many, else only its neighbours.
PAGES_LISTED = 12
#: How many pages either side of a tick page it lists (with the first and the last).
PAGES_NEAR = 3


def nearby_pages(pages: list[PageRange], number: int) -> list[PageRange]:
    """The pages a tick page lists: all of a short timeline; else first, last and neighbours.

    Listing every page on every page made a long timeline's output grow with
    the square of its length; the town page (page 1) still lists them all,
    for the tick locator.
    """
    if number == 1 or len(pages) <= PAGES_LISTED:
        return pages
    last = pages[-1].number
    return [p for p in pages if p.number in (1, last) or abs(p.number - number) <= PAGES_NEAR]


def ticks_page(data: TownData, number: int, root: str) -> TicksPage:
    town = clean(data.run.town_id)
    return TicksPage(
        kind="ticks",
        title=f"{town} · ticks page {number}",
        root=root,
        town_id=town,
        town_href=town_href(data.run.town_id),
        number=number,
        pages=nearby_pages(data.pages, number),
        rows=page_rows(data, number),
    )


def totals(run: TownRun) -> dict[str, Any]:
    """Window totals, straight from the tick metrics."""
    t: dict[str, Any] = {
        "ticks": len(run.ticks),
        "active_ticks": 0,
        "events": 0,
        "actions": 0,
        "fx_attempted": 0,
        "fx_succeeded": 0,
        "fx_failed": 0,
        "violations": 0,
        "max_wall_ms": 0.0,
        "wall_clock": wall_clock_kind(run.ticks),
        "max_pending": 0,
    }
    for tick in run.ticks:
        m = tick.get("metrics") or {}
        t["active_ticks"] += 1 if _busy(tick) else 0
        t["events"] += int(m.get("eventsDrained", 0))
        t["actions"] += int(m.get("actionsEmitted", 0))
        t["fx_attempted"] += int(m.get("sideEffectsAttempted", 0))
        t["fx_succeeded"] += int(m.get("sideEffectsSucceeded", 0))
        t["fx_failed"] += int(m.get("sideEffectsFailed", 0))
        t["violations"] += int(m.get("invariantViolations", 0))
        t["max_wall_ms"] = max(t["max_wall_ms"], float(m.get("wallClockMs", 0)))
        t["max_pending"] = max(t["max_pending"], int(m.get("pendingEventCount", 0)))
    return t


def _divergence(data: TownData) -> dict[str, Any] | None:
    d = data.run.divergence
    if d is None:
        return None
    return {
        "tick_at": d.tick_at,
        "label": fmt_time(d.tick_at),
        "href": data.tick_href(d.tick_at),
        "field": clean(d.field),
        "recorded": compact(d.recorded),
        "replayed": compact(d.replayed),
    }


def town_page(data: TownData, charts: list[dict[str, Any]], datasets: dict[str, Any]) -> TownPage:
    run = data.run
    groups: dict[int, list[EpisodeRow]] = {}
    for ep in data.episodes:
        groups.setdefault(ep.invariant, []).append(data.rows[ep.id])
    return TownPage(
        kind="town",
        title=clean(run.town_id),
        root="../../",
        town_id=clean(run.town_id),
        source=clean(run.source),
        window_from=run.window_from,
        window_to=run.window_to,
        window_label=window_label(run.window_from, run.window_to),
        fidelity=clean(run.fidelity),
        caveat=clean(run.caveat) if run.caveat else None,
        divergence=_divergence(data),
        compared_ticks=run.compared_ticks,
        totals=totals(run),
        groups=[
            InvariantGroup(
                n,
                invariant_title(n),
                invariant_description(n),
                rows,
                [_detail(data, r) for r in rows],
            )
            for n, rows in sorted(groups.items())
        ],
        charts=charts,
        datasets=datasets,
        ticks=ticks_page(data, 1, "../../"),
        quarantined=[quarantine_row(q) for q in run.quarantined],
    )


def _detail(data: TownData, row: EpisodeRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "href": row.href,
        "summary": row.summary,
        "parts": data.explanations[row.id].parts,
        "replay_command": row.replay_command,
    }


def town_summary(data: TownData) -> TownSummary:
    run = data.run
    t = totals(run)
    last = str(run.ticks[-1]["at"]) if run.ticks else None
    open_ = sum(1 for ep in data.episodes if ep.open_at_end)
    return TownSummary(
        town_id=clean(run.town_id),
        href=town_href(run.town_id),
        state="violations" if data.episodes else "ok",
        fidelity=clean(run.fidelity),
        caveat=clean(run.caveat) if run.caveat else None,
        window_from=run.window_from,
        window_to=run.window_to,
        ticks=len(run.ticks),
        events=int(t["events"]),
        actions=int(t["actions"]),
        side_effects_failed=int(t["fx_failed"]),
        episodes=len(data.episodes),
        episodes_open=open_,
        episodes_new=sum(1 for s in data.statuses.values() if s == "new"),
        last_tick_at=last,
        last_tick_label=fmt_time(last) if last else "no ticks",
        divergence=run.divergence is not None,
    )
