"""The data a town page's charts draw: ticks and history cut into buckets, and annotation bands.

Ticks are aggregated into at most :data:`MAX_BUCKETS` time buckets before
charting (a 24 h window of 5 s ticks is 17,280 points; a chart needs no more
points than it has pixels), and the aggregated rows live once per page in
named datasets that every spec references by name, so a page carries its data
once, not once per chart:

* ``m``: tick metrics per bucket (:class:`MetricBucket`);
* ``a``: actions per bucket and type;
* ``h``: for a source with no ticks (a bare upstream dump), its own history
  entries per bucket and kind;
* ``b``: the episode and finding bands drawn over the charts, like Grafana's
  region annotations, each laid in a lane so overlapping ones stay apart;
* ``k``: where a click on a bucket leads: the permalink of the bucket's first
  tick that did something (``TownData.tick_href``), split into a page path
  (``tick_pages``, listed once) and a fragment, so the page does not carry
  the same path hundreds of times.

Every time is epoch milliseconds; ``window`` holds the window's bounds, the
x domain of every chart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reportgen.diagnose.episodes import to_ms
from reportgen.report.town_data import TownData, busy
from reportgen.report.verdicts import finding_row
from reportgen.report.views_shared import EpisodeRow


@dataclass(frozen=True)
class MetricBucket:
    """Tick metrics of one time bucket (dataset ``m``; short names, a page holds hundreds)."""

    t: int  # bucket start, epoch ms
    n: int  # ticks in the bucket
    dr: int  # events drained (sum)
    fa: int  # side effects attempted (sum)
    fs: int  # side effects succeeded (sum)
    ff: int  # side effects failed (sum)
    vt: int  # violating ticks: ticks reporting at least one violation
    vm: int  # most violations reported by one tick
    w: float  # slowest tick's wall clock, ms
    q: int  # deepest pending event queue
    co: int  # container observations (sum)
    cr: int  # container observations recorded as events (sum)


@dataclass(frozen=True)
class ActionBucket:
    """Actions of one type in one time bucket (dataset ``a``)."""

    t: int
    type: str
    n: int


@dataclass(frozen=True)
class HistoryBucket:
    """History entries of one kind in one time bucket (dataset ``h``, a run with no ticks)."""

    t: int
    kind: str  # bead_event, town_event or dry_run
    n: int


@dataclass(frozen=True)
class Band:
    """An episode or a finding over the time it lasted (dataset ``b``)."""

    s: int  # first tick (a finding: when it began), clipped to the window
    e: int  # last tick (a finding: last seen, or the window's end while open)
    lane: int  # row of its marker, so that overlapping bands stay apart
    kind: str  # "episode" or "finding"
    label: str  # what it is, for the tooltip
    href: str  # its page, site-relative


@dataclass(frozen=True)
class BucketLink:
    """Where a click on a bucket leads (dataset ``k``): ``tick_pages[p].href + '#' + f``."""

    t: int
    p: int
    f: str


@dataclass(frozen=True)
class TickPage:
    """A page holding linked ticks (site-relative)."""

    href: str


@dataclass(frozen=True)
class Window:
    """The charts' x domain: the run's window, epoch ms, and the bucket size."""

    start: int
    end: int
    step: int


@dataclass(frozen=True)
class TownDatasets:
    """The named datasets of a town page's charts."""

    window: Window
    m: list[MetricBucket]
    a: list[ActionBucket]
    h: list[HistoryBucket]
    b: list[Band]
    k: list[BucketLink]
    tick_pages: list[TickPage]

    @property
    def hrefs(self) -> list[str]:
        """Every page a click on a chart may open (the template maps each through ``url()``)."""
        return sorted({b.href for b in self.b} | {p.href for p in self.tick_pages})

    @property
    def guide(self) -> str:
        """How to read and use the charts, said once above them."""
        bands = (
            " Shaded bands are violation episodes (red) and findings (purple) from first to "
            "last tick: hover or click the strip along a chart's top to open one."
            if self.b
            else ""
        )
        return (
            "Hover for a bucket's figures and times (UTC), click to open its tick, drag to pan, "
            f"scroll to zoom.{bands}"
        )

    @property
    def note(self) -> str:
        """One line in place of charts that would be empty ("" when there are ticks)."""
        if self.m:
            return ""
        if self.h:
            return (
                "No ticks in this window (the source has no journal): the chart counts "
                "the source's own history entries instead."
            )
        return "No ticks and no history entries in this window: there is nothing to chart."


#: The most buckets a window is cut into.
MAX_BUCKETS = 300
#: Bucket sizes to choose from (ms): the smallest that keeps ≤ MAX_BUCKETS wins.
STEPS_MS = (
    1_000,
    5_000,
    10_000,
    15_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    900_000,
    1_800_000,
    3_600_000,
    7_200_000,
    21_600_000,
    43_200_000,
    86_400_000,
)
#: Most marker lanes of the bands (more overlapping bands share the last lane).
MAX_LANES = 6


def bucket_size(window_ms: int) -> int:
    """The bucket size (ms) for a window: the smallest step giving ≤ MAX_BUCKETS buckets."""
    for step in STEPS_MS:
        if window_ms / step <= MAX_BUCKETS:
            return step
    return STEPS_MS[-1] * (1 + window_ms // (STEPS_MS[-1] * MAX_BUCKETS))


def window_of(window_from: str, window_to: str) -> Window:
    """The window in epoch ms with its bucket size."""
    start, end = to_ms(window_from), to_ms(window_to)
    return Window(start, max(end, start + 1), bucket_size(max(1, end - start)))


def town_datasets(data: TownData) -> TownDatasets:
    """A town page's chart data: its ticks (or, with none, its history), bands and links."""
    run = data.run
    window = window_of(run.window_from, run.window_to)
    m, a = tick_buckets(run.ticks, window)
    h = history_buckets(run.history, window) if not run.ticks else []
    pages, links = bucket_links(_targets(data, window), data.tick_href)
    spans = [*episode_spans(data.rows.values()), *finding_spans(run.diagnosis, run.window_to)]
    return TownDatasets(window, m, a, h, bands(spans, window), links, pages)


def _bucket(at: str, window: Window) -> int:
    """The start of the bucket holding ``at``."""
    return window.start + ((to_ms(at) - window.start) // window.step) * window.step


def tick_buckets(
    ticks: Iterable[Mapping[str, Any]], window: Window
) -> tuple[list[MetricBucket], list[ActionBucket]]:
    """Metrics per bucket, and actions per bucket and type."""
    metrics: dict[int, dict[str, Any]] = {}
    actions: dict[tuple[int, str], int] = {}
    for tick in ticks:
        t = _bucket(str(tick["at"]), window)
        m = tick.get("metrics") or {}
        row = metrics.setdefault(t, _empty_bucket(t))
        row["n"] += 1
        row["dr"] += m.get("eventsDrained", 0)
        row["fa"] += m.get("sideEffectsAttempted", 0)
        row["fs"] += m.get("sideEffectsSucceeded", 0)
        row["ff"] += m.get("sideEffectsFailed", 0)
        violations = len(tick.get("violations") or ()) or m.get("invariantViolations", 0)
        row["vt"] += 1 if violations else 0
        row["vm"] = max(row["vm"], violations)
        row["w"] = max(row["w"], float(m.get("wallClockMs", 0)))
        row["q"] = max(row["q"], m.get("pendingEventCount", 0))
        container = tick.get("container") or {}
        row["co"] += container.get("observed", 0)
        row["cr"] += container.get("recorded", 0)
        for type_, n in sorted((m.get("actionsByType") or {}).items()):
            actions[(t, str(type_))] = actions.get((t, str(type_)), 0) + int(n)
    return (
        [MetricBucket(**metrics[t]) for t in sorted(metrics)],
        [ActionBucket(t, k, n) for (t, k), n in sorted(actions.items())],
    )


def _empty_bucket(t: int) -> dict[str, Any]:
    """A bucket's running sums (the record's numbers are added as they are, never coerced)."""
    return {"t": t, "n": 0, "dr": 0, "fa": 0, "fs": 0, "ff": 0, "vt": 0, "vm": 0, "w": 0.0,
            "q": 0, "co": 0, "cr": 0}  # fmt: skip


def history_buckets(history: Iterable[Mapping[str, Any]], window: Window) -> list[HistoryBucket]:
    """A source's own history entries per bucket and kind (entries without a time are left out)."""
    counts: dict[tuple[int, str], int] = {}
    for entry in history:
        try:
            t = _bucket(str(entry["at"]), window)
        except (KeyError, ValueError):
            continue
        key = (t, str(entry.get("kind", "")))
        counts[key] = counts.get(key, 0) + 1
    return [HistoryBucket(t, kind, n) for (t, kind), n in sorted(counts.items())]


def _targets(data: TownData, window: Window) -> dict[int, str]:
    """Bucket start → the time a click on it opens: its first tick that did something (or saw
    a violation), else its first tick; with no ticks, its first history entry."""
    first: dict[int, str] = {}
    chosen: dict[int, str] = {}
    for tick in data.run.ticks:
        at = str(tick["at"])
        t = _bucket(at, window)
        first.setdefault(t, at)
        if t not in chosen and (busy(tick) or tick.get("violations")):
            chosen[t] = at
    if not data.run.ticks:
        for entry in data.run.history:
            try:
                first.setdefault(_bucket(str(entry["at"]), window), str(entry["at"]))
            except (KeyError, ValueError):
                continue
    return {t: chosen.get(t, at) for t, at in sorted(first.items())}


def bucket_links(
    targets: Mapping[int, str], tick_href: Callable[[str], str]
) -> tuple[list[TickPage], list[BucketLink]]:
    """Each bucket's permalink (``tick_href`` of its target time), its page path listed once."""
    paths: dict[str, int] = {}
    links = []
    for t, at in targets.items():
        path, _, fragment = tick_href(at).partition("#")
        p = paths.setdefault(path, len(paths))
        links.append(BucketLink(t, p, fragment))
    return [TickPage(path) for path in paths], links


#: A band before its lane is chosen: start, end, kind, label, href (times as stored).
Span = tuple[str, str, str, str, str]


def episode_spans(rows: Iterable[EpisodeRow]) -> list[Span]:
    """Every episode from its first to its last tick."""
    spans = []
    for r in rows:
        subject = ", ".join(link.label for link in r.entities[:2])
        label = f"Episode: invariant {r.invariant}, {r.title}" + (
            f" ({subject})" if subject else ""
        )
        spans.append((r.first_at, r.last_at, "episode", label, r.href))
    return spans


def finding_spans(diagnosis: Mapping[str, Any] | None, window_to: str) -> list[Span]:
    """Every finding from when it began to when it was last seen (the window's end if open)."""
    spans = []
    for raw in (diagnosis or {}).get("findings") or ():
        row = finding_row(raw)
        end = window_to if row.open_at_end else row.last_at
        name = row.subject_name or row.subject.id
        label = f"Finding: {row.kind.replace('-', ' ')} ({row.severity})" + (
            f" on {name}" if name else ""
        )
        spans.append((row.first_at, end, "finding", label, row.href))
    return spans


def bands(spans: Iterable[Span], window: Window) -> list[Band]:
    """The spans inside the window, clipped to it, each in the first lane free at its start."""
    timed = []
    for first, last, kind, label, href in spans:
        try:
            s, e = to_ms(first), to_ms(last)
        except ValueError:
            continue  # a time that does not parse: nothing to draw
        if s <= window.end and max(e, s) >= window.start:
            timed.append((max(s, window.start), min(max(e, s), window.end), kind, label, href))
    placed: list[Band] = []
    lane_ends: list[int] = []
    for s, e, kind, label, href in sorted(timed):
        lane = next((i for i, end in enumerate(lane_ends) if end < s), len(lane_ends))
        lane = min(lane, MAX_LANES - 1)
        if lane == len(lane_ends):
            lane_ends.append(e)
        lane_ends[lane] = max(lane_ends[lane], e)
        placed.append(Band(s, e, lane, kind, label, href))
    return placed
