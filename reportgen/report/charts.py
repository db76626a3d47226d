"""Vega-Lite specs for the town page and the index, built with altair.

Ticks are aggregated into at most :data:`MAX_BUCKETS` time buckets before
charting (a 24 h window of 5 s ticks is 17,280 points; a chart needs no more
points than it has pixels), and the aggregated rows live once per page in
named datasets (``m`` for metrics, ``a`` for actions by type) that every
spec references by name, so a page carries its data once, not once per
chart. Specs never carry a random name: selections are named explicitly so
the output is byte-identical run to run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NewType

import altair as alt

from reportgen.diagnose.episodes import to_ms
from reportgen.town.tick import MODEL_FORMULA

#: A JSON value: what Vega-Lite specs are made of.
JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]
#: A Vega-Lite spec, as altair writes it: the one JSON value a page model holds as such
#: (its shape is Vega-Lite's, not the report's; site.js hands it to vega-embed).
ChartSpec = NewType("ChartSpec", dict[str, JsonValue])


@dataclass(frozen=True)
class Chart:
    """One chart card: what the page says about the chart, and the spec that draws it."""

    id: str
    title: str
    wide: bool
    caption: str
    spec: ChartSpec


@dataclass(frozen=True)
class MetricBucket:
    """Tick metrics of one time bucket (dataset ``m``; short names, a page holds hundreds)."""

    t: int  # bucket start, epoch ms
    n: int  # ticks in the bucket
    dr: int  # events drained (sum)
    fa: int  # side effects attempted (sum)
    fs: int  # side effects succeeded (sum)
    ff: int  # side effects failed (sum)
    v: int  # invariant violations (sum of the per-tick counter)
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
class TownDatasets:
    """The named datasets of a town page's charts."""

    m: list[MetricBucket]
    a: list[ActionBucket]


@dataclass(frozen=True)
class TrendPoint:
    """Episodes of one invariant in one run (dataset ``trends`` of the index)."""

    run: str
    invariant: str
    n: int


@dataclass(frozen=True)
class TrendData:
    """The named dataset of the index's trend chart."""

    trends: list[TrendPoint]


@dataclass(frozen=True)
class NoData:
    """The datasets of a page without charts (``{}`` in its JSON twin)."""


NO_DATA = NoData()


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
#: Upstream's alert thresholds, drawn on the charts.
WALL_CLOCK_THRESHOLD_MS = 500
PENDING_THRESHOLD = 50
HEIGHT = 150


def bucket_size(window_ms: int) -> int:
    """The bucket size (ms) for a window: the smallest step giving ≤ MAX_BUCKETS buckets."""
    for step in STEPS_MS:
        if window_ms / step <= MAX_BUCKETS:
            return step
    return STEPS_MS[-1] * (1 + window_ms // (STEPS_MS[-1] * MAX_BUCKETS))


def datasets(
    ticks: Sequence[Mapping[str, Any]], window_from: str, window_to: str
) -> tuple[int, TownDatasets]:
    """The bucket size (ms) and the page's chart data: metrics, and actions by type, per bucket."""
    start = to_ms(window_from)
    step = bucket_size(max(1, to_ms(window_to) - start))
    metrics: dict[int, dict[str, Any]] = {}
    actions: dict[tuple[int, str], int] = {}
    for tick in ticks:
        t = start + ((to_ms(str(tick["at"])) - start) // step) * step
        m = tick.get("metrics") or {}
        row = metrics.setdefault(t, _empty_bucket(t))
        row["n"] += 1
        row["dr"] += m.get("eventsDrained", 0)
        row["fa"] += m.get("sideEffectsAttempted", 0)
        row["fs"] += m.get("sideEffectsSucceeded", 0)
        row["ff"] += m.get("sideEffectsFailed", 0)
        row["v"] += m.get("invariantViolations", 0)
        row["w"] = max(row["w"], float(m.get("wallClockMs", 0)))
        row["q"] = max(row["q"], m.get("pendingEventCount", 0))
        container = tick.get("container") or {}
        row["co"] += container.get("observed", 0)
        row["cr"] += container.get("recorded", 0)
        for type_, n in sorted((m.get("actionsByType") or {}).items()):
            actions[(t, str(type_))] = actions.get((t, str(type_)), 0) + int(n)
    return step, TownDatasets(
        m=[MetricBucket(**metrics[t]) for t in sorted(metrics)],
        a=[ActionBucket(t, k, n) for (t, k), n in sorted(actions.items())],
    )


def _empty_bucket(t: int) -> dict[str, Any]:
    """A bucket's running sums (the record's numbers are added as they are, never coerced)."""
    return {"t": t, "n": 0, "dr": 0, "fa": 0, "fs": 0, "ff": 0, "v": 0, "w": 0.0, "q": 0,
            "co": 0, "cr": 0}  # fmt: skip


def _x(step: int) -> alt.X:
    return alt.X(
        "t:T",
        scale=alt.Scale(type="utc"),
        title=None,
        axis=alt.Axis(format="%H:%M", labelOverlap=True),
    )


def _time_tip() -> alt.Tooltip:
    return alt.Tooltip(
        "t:T", title="bucket from (UTC)", format="%Y-%m-%d %H:%M:%S", formatType="utc"
    )


def _zoom(name: str) -> Any:
    return alt.selection_interval(name=name, bind="scales", encodings=["x"])


def _spec(chart: Any) -> ChartSpec:
    """altair's spec without its default config (the page's CSS and site.js theme it)."""
    spec: dict[str, JsonValue] = chart.to_dict(validate=False)
    spec.pop("config", None)
    return ChartSpec(spec)


def actions_chart(step: int) -> ChartSpec:
    """Actions per bucket, stacked by type; drag to pan, wheel to zoom, click to open the ticks."""
    chart = (
        alt.Chart(alt.NamedData(name="a"))
        .mark_bar()
        .encode(
            x=_x(step),
            y=alt.Y("sum(n):Q", title="actions"),
            color=alt.Color(
                "type:N", title="action type", legend=alt.Legend(orient="bottom", columns=4)
            ),
            tooltip=[
                _time_tip(),
                alt.Tooltip("type:N", title="type"),
                alt.Tooltip("sum(n):Q", title="actions"),
            ],
        )
        .add_params(_zoom("zoom_actions"))
        .properties(width="container", height=220)
    )
    return _spec(chart)


def _metric_line(
    field: str, title: str, zoom: str, *, mark: str = "bar", threshold: float | None = None
) -> ChartSpec:
    """One metric of dataset ``m`` over time, with an alert threshold when given."""
    base = alt.Chart(alt.NamedData(name="m"))
    marked = base.mark_bar() if mark == "bar" else base.mark_line(interpolate="step-after")
    layer = marked.encode(
        x=_x(0),
        y=alt.Y(f"{field}:Q", title=title),
        tooltip=[
            _time_tip(),
            alt.Tooltip(f"{field}:Q", title=title),
            alt.Tooltip("n:Q", title="ticks"),
        ],
    ).add_params(_zoom(zoom))
    if threshold is None:
        return _spec(layer.properties(width="container", height=HEIGHT))
    rule = base.mark_rule(color="#d62728", strokeDash=[4, 3]).encode(y=alt.datum(threshold))
    return _spec(alt.layer(layer, rule).properties(width="container", height=HEIGHT))


def _folded(fields: dict[str, str], title: str, zoom: str) -> ChartSpec:
    """Several metrics of dataset ``m`` as one line each (``fields``: name → legend)."""
    chart = (
        alt.Chart(alt.NamedData(name="m"))
        .transform_fold(list(fields), as_=["k", "v"])
        .transform_calculate(
            series=" + ".join(f"(datum.k == '{k}' ? '{v}' : '')" for k, v in fields.items())
        )
        .mark_line(interpolate="step-after")
        .encode(
            x=_x(0),
            y=alt.Y("v:Q", title=title),
            color=alt.Color(
                "series:N",
                title=None,
                sort=list(fields.values()),
                legend=alt.Legend(orient="bottom"),
            ),
            tooltip=[
                _time_tip(),
                alt.Tooltip("series:N", title="series"),
                alt.Tooltip("v:Q", title=title),
            ],
        )
        .add_params(_zoom(zoom))
        .properties(width="container", height=HEIGHT)
    )
    return _spec(chart)


def _wall_clock_note(kind: str) -> str:
    """What the wall-clock figures are, in words (the model's formula when modelled)."""
    if kind == "measured":
        return "measured by the town"
    return f"{kind}, not measured: {MODEL_FORMULA}"


def town_charts(step: int, wall_clock: str = "measured") -> list[Chart]:
    """The town page's charts, in reading order: what the reconciler did, then its health.

    ``wall_clock`` says what the ticks' wall clock is (:func:`~reportgen.town.tick.wall_clock_kind`):
    a modelled one is labelled with its formula, never passed off as a measurement.
    """
    every = f"per {step // 1000} s bucket" if step < 60_000 else f"per {step // 60_000} min bucket"
    return _activity_charts(step, every) + _health_charts(every, wall_clock)


def _activity_charts(step: int, every: str) -> list[Chart]:
    """Actions, events drained, side effects and violations per bucket."""
    effects = {"fa": "attempted", "fs": "succeeded", "ff": "failed"}
    return [
        Chart(
            "actions",
            "Actions by type",
            True,
            f"Actions emitted {every}, stacked by type. Drag to pan, scroll to zoom, "
            "click a bar to open its ticks.",
            actions_chart(step),
        ),
        Chart(
            "drained",
            "Events drained",
            False,
            f"Town events drained {every} (sum).",
            _metric_line("dr", "events", "zoom_drained"),
        ),
        Chart(
            "effects",
            "Side effects",
            False,
            f"Side effects attempted, succeeded and failed {every} (sum).",
            _folded(effects, "side effects", "zoom_effects"),
        ),
        Chart(
            "violations",
            "Invariant violations",
            False,
            f"Violations reported by the checks {every} (sum of the per-tick counter).",
            _metric_line("v", "violations", "zoom_violations"),
        ),
    ]


def _health_charts(every: str, wall_clock: str) -> list[Chart]:
    """Wall clock and pending queue against upstream's alert thresholds, and container events."""
    return [
        Chart(
            "wall",
            "Wall clock",
            False,
            f"Slowest tick {every} (ms, {_wall_clock_note(wall_clock)}); the dashed line is "
            f"the {WALL_CLOCK_THRESHOLD_MS} ms alert threshold.",
            _metric_line("w", "ms", "zoom_wall", mark="line", threshold=WALL_CLOCK_THRESHOLD_MS),
        ),
        Chart(
            "pending",
            "Pending event queue",
            False,
            f"Deepest pending queue {every}; the dashed line is the {PENDING_THRESHOLD}-event "
            "alert threshold.",
            _metric_line("q", "events", "zoom_pending", mark="line", threshold=PENDING_THRESHOLD),
        ),
        Chart(
            "container",
            "container_status events",
            False,
            f"Container observations {every}: observed, and recorded as events after the filter.",
            _folded({"co": "observed", "cr": "recorded"}, "observations", "zoom_container"),
        ),
    ]


def trend_chart() -> ChartSpec:
    """Episodes per invariant over the last runs (dataset ``trends``: run, invariant, n)."""
    chart = (
        alt.Chart(alt.NamedData(name="trends"))
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "run:O", title="run (data window end)", sort=None, axis=alt.Axis(labelAngle=-30)
            ),
            y=alt.Y("n:Q", title="episodes"),
            color=alt.Color("invariant:N", title="invariant", legend=alt.Legend(orient="bottom")),
            tooltip=["run:O", "invariant:N", alt.Tooltip("n:Q", title="episodes")],
        )
        .properties(width="container", height=HEIGHT)
    )
    return _spec(chart)


def trend_charts(labels: Sequence[str]) -> list[Chart]:
    """The index's trend chart: only when there is more than one run to compare."""
    if len(labels) <= 1:
        return []
    caption = "Violation episodes per invariant in each of the last runs."
    return [Chart("trends", "Episodes per invariant", True, caption, trend_chart())]


def trend_data(labels: Sequence[str], counts: Mapping[int, Sequence[int]]) -> TrendData | NoData:
    """The trend chart's dataset (:class:`NoData` when there is no chart)."""
    if len(labels) <= 1:
        return NO_DATA
    points = [
        TrendPoint(labels[i], str(n), c[i]) for n, c in counts.items() for i in range(len(labels))
    ]
    return TrendData(points)
