"""What a town's pages share, computed once per town: episodes, their rows, the timeline's rows.

:class:`TownData` holds the town's episodes (with their status and
explanation), the entities its ticks touch, and the rows of its timeline;
every page of the town reads from it. Ticks that did nothing visible (no
event, action, side effect or violation) are folded into "idle" rows; the
whole window is one timeline on the town page (:mod:`reportgen.report.timeline`),
and a tick's permalink is ``towns/<dir>/index.html#tick-<epoch-ms>``.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from reportgen.diagnose.episodes import Episode, find_episodes, to_ms, violation_key
from reportgen.report.entity_fields import tick_ids
from reportgen.report.explain import Explanation, explain, replay_command
from reportgen.report.format import clean, fmt_duration, fmt_time
from reportgen.report.views_shared import (
    Entities,
    EpisodeRow,
    episode_links,
    invariant_title,
    town_href,
    town_name,
    violation_href,
)
from reportgen.town_run import TownRun

#: A row of the timeline: ``("tick", i, i)``, or ``("idle", first, last)`` for quiet ticks.
RowSpan = tuple[Literal["tick", "idle"], int, int]


@dataclass
class TownData:
    """Everything computed once per town that its pages share."""

    run: TownRun
    entities: Entities
    episodes: list[Episode]
    statuses: dict[str, str]
    explanations: dict[str, Explanation]
    rows: dict[str, EpisodeRow]
    #: The timeline's tick rows, in time order (active ticks alone, quiet runs folded).
    spans: list[RowSpan]
    #: Every tick's time (epoch ms), in order: where a permalink to any time lands.
    tick_ms: list[int]
    touched: set[tuple[str, str]] = field(default_factory=set)
    #: Tick time → position in ``run.ticks``.
    tick_index: dict[str, int] = field(default_factory=dict)

    def tick_href(self, at: str) -> str:
        """A tick's permalink: the town page's timeline, which selects the row holding it
        (the folded quiet row when the tick was idle)."""
        return f"{town_href(self.run.town_id)}#{self.tick_anchor(at)}"

    def tick_anchor(self, at: str) -> str:
        """A tick's anchor on the town page (``tick-<ms>``).

        A time that is no tick (a bead event between ticks) names the next
        tick, which saw it; the timeline's viewer lands on the row holding it.
        """
        ms = to_ms(at)
        times = self.tick_ms
        if times:
            ms = times[min(bisect.bisect_left(times, ms), len(times) - 1)]
        return f"tick-{ms}"

    def episode_for(self, violation: Mapping[str, Any], at: str) -> Episode | None:
        """The episode a violation record of the tick at ``at`` belongs to."""
        key = violation_key(violation)
        ms = to_ms(at)
        for ep in self.episodes:
            if (ep.invariant, ep.subject) == key and to_ms(ep.first_at) <= ms <= to_ms(ep.last_at):
                return ep
        return None


def busy(tick: Mapping[str, Any]) -> bool:
    """Whether a tick did something: drained an event, emitted an action, tried a side effect."""
    effects = tick.get("side_effects") or {}
    return bool(
        tick.get("events")
        or tick.get("actions")
        or effects.get("attempted")
        or (tick.get("container") or {}).get("recorded")
    )


def violation_keys(tick: Mapping[str, Any] | None) -> frozenset[tuple[int, Any]]:
    """``(invariant, subject)`` of every violation a tick reported."""
    if tick is None:
        return frozenset()
    return frozenset(violation_key(v) for v in tick.get("violations") or ())


def is_active(ticks: Sequence[Mapping[str, Any]], i: int) -> bool:
    """Whether tick ``i`` gets its own row: it did something, or a violation began or ended.

    A tick where the same violations merely continue is folded with the quiet
    ones, so a stuck bead does not fill pages with identical rows; the first
    and last tick of every episode keep their rows (and their anchors).
    """
    if busy(ticks[i]):
        return True
    here = violation_keys(ticks[i])
    if not here:
        return False
    before = violation_keys(ticks[i - 1]) if i > 0 else frozenset()
    after = violation_keys(ticks[i + 1]) if i + 1 < len(ticks) else frozenset()
    return here != before or here != after


def _active_flags(ticks: Sequence[Mapping[str, Any]]) -> list[bool]:
    """:func:`is_active` for every tick, computing each tick's violation keys once (not 3×)."""
    keys = [violation_keys(t) for t in ticks]
    last = len(ticks) - 1
    return [
        busy(tick)
        or bool(
            keys[i]
            and (
                keys[i] != (keys[i - 1] if i > 0 else frozenset())
                or keys[i] != (keys[i + 1] if i < last else frozenset())
            )
        )
        for i, tick in enumerate(ticks)
    ]


def fold_ticks(ticks: Sequence[Mapping[str, Any]]) -> list[RowSpan]:
    """The timeline's tick rows: active ticks alone, runs of quiet ticks folded into one."""
    items: list[RowSpan] = []
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
    return items


def compute_town(
    run: TownRun,
    episodes: list[Episode] | None = None,
    statuses: Mapping[str, str] | None = None,
    *,
    expected: Mapping[str, str] | None = None,
) -> TownData:
    """Per-town data: episodes (found here unless given, e.g. after history adoption), rows.

    ``expected`` maps the ids of the episodes the diagnosis marks expected to why: their
    rows are muted on every page of the town.
    """
    eps = episodes if episodes is not None else find_episodes(run.town_id, run.ticks)
    entities = Entities(run)
    data = TownData(
        run=run,
        entities=entities,
        episodes=eps,
        statuses={ep.id: (statuses or {}).get(ep.id, "new") for ep in eps},
        explanations={},
        rows={},
        spans=fold_ticks(run.ticks),
        tick_ms=[to_ms(t["at"]) for t in run.ticks],
    )
    for i, tick in enumerate(run.ticks):
        data.touched |= tick_ids(tick)
        data.tick_index[str(tick["at"])] = i
    for ep in eps:
        data.explanations[ep.id] = explain(ep, run.ticks, entities)
        data.rows[ep.id] = episode_row(data, ep, (expected or {}).get(ep.id))
    return data


def episode_row(data: TownData, ep: Episode, expected_why: str | None = None) -> EpisodeRow:
    """An episode as the tables of the index, the town and its entities list it."""
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
        replay_command=replay_command(
            data.run.replay_db or data.run.source, ep, simulated=data.run.fidelity == "simulated"
        ),
        expected=expected_why is not None,
        expected_why=expected_why or "",
        town_name=town_name(data.run.source, data.run.town_id, data.run.town_name),
    )
