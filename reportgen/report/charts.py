"""The charts of the town page and the index: what each one shows, in words and as a spec.

A town page's charts read named datasets (:mod:`chart_data`: metrics,
actions, history and bands per bucket, carried once per page) and are drawn
by specs built from :mod:`chart_specs`. Every time chart spans exactly the
run's window, says in its caption what one bar or line point is and whether
the figures were recorded or replayed (measured or modelled, for the wall
clock), and opens the bucket's tick on a click. The action, violation and
history charts carry the episode and finding bands.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import altair as alt

from reportgen.report import chart_specs as cs
from reportgen.report.chart_data import ActionBucket, HistoryBucket, TownDatasets, Window
from reportgen.report.chart_specs import ChartSpec, Json, JsonValue
from reportgen.town.tick import MODEL_FORMULA

__all__ = ["NO_DATA", "Chart", "ChartSpec", "JsonValue", "NoData", "TownDatasets", "TrendData"]


@dataclass(frozen=True)
class Chart:
    """One chart card: what the page says about the chart, and the spec that draws it."""

    id: str
    title: str
    wide: bool
    caption: str
    spec: ChartSpec


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

    @property
    def hrefs(self) -> list[str]:
        """Pages a click on the chart opens: none."""
        return []


@dataclass(frozen=True)
class NoData:
    """The datasets of a page without charts (``{}`` in its JSON twin)."""


NO_DATA = NoData()

#: Upstream's alert thresholds, drawn on the charts.
WALL_CLOCK_THRESHOLD_MS = 500
PENDING_THRESHOLD = 50


def _every(step: int) -> str:
    """``15 s`` / ``5 min`` / ``2 h``: a bucket's size in words."""
    if step < 60_000:
        return f"{step // 1000} s"
    if step < 3_600_000:
        return f"{step // 60_000} min"
    return f"{step // 3_600_000} h"


def _origin(fidelity: str) -> str:
    """Where the ticks come from: read from the town's own record, or replayed from its inputs."""
    if fidelity == "recorded":
        return "recorded ticks"
    return f"replayed ticks, {fidelity}" if fidelity else "replayed ticks"


def _wall_clock_note(kind: str) -> str:
    """What the wall-clock figures are, in words (the model's formula when modelled)."""
    if kind == "measured":
        return "measured by the town"
    return f"{kind}, not measured: {MODEL_FORMULA}"


def town_charts(ds: TownDatasets, wall_clock: str = "measured", fidelity: str = "") -> list[Chart]:
    """The town page's charts, in reading order: what the reconciler did, then its health.

    With no ticks, the source's own history per bucket (or nothing, and the page says so
    in one line: :attr:`TownDatasets.note`). ``wall_clock`` says what the ticks' wall
    clock is (:func:`~reportgen.town.tick.wall_clock_kind`): a modelled one is labelled
    with its formula, never passed off as a measurement.
    """
    if not ds.m:
        return [_history_chart(ds)] if ds.h else []
    origin = _origin(fidelity)
    return _activity_charts(ds, origin) + _health_charts(ds.window, origin, wall_clock)


def _with_bands(ds: TownDatasets, layers: list[Json]) -> list[Json]:
    """``layers`` with the bands behind the marks and their markers on top (when any)."""
    if not ds.b:
        return layers
    region, marker = cs.band_layers(ds.window)
    return [layers[0], region, *layers[1:], marker]


def _breakdown(ds: TownDatasets, data: str, field: str, title: str, legend: str) -> ChartSpec:
    """Stacked bars of a breakdown per bucket (actions by type, history entries by kind)."""
    w = ds.window
    rows: list[ActionBucket] | list[HistoryBucket] = ds.a if data == "a" else ds.h
    stacked = cs.bars(
        w,
        data,
        cs.count_y("n", title, not any(r.n for r in rows)),
        {
            "color": {"field": field, "type": "nominal", "legend": cs.legend(legend)},
            "tooltip": [cs.when_tip(), cs.tip(field, legend, "nominal"), cs.tip("n", title)],
        },
        stack_by=field,
    )
    hover = cs.hover_layer(w, "k", [], f"zoom_{data}")
    return cs.spec(_with_bands(ds, [hover, stacked]), height=200)


def _metric_bars(
    ds: TownDatasets, field: str, title: str, tips: list[Json], bands: bool
) -> ChartSpec:
    """One count of dataset ``m`` per bucket as bars."""
    empty = not any(getattr(r, field) for r in ds.m)
    layers = [
        cs.hover_layer(ds.window, "m", tips, f"zoom_{field}"),
        cs.bars(ds.window, "m", cs.count_y(field, title, empty)),
    ]
    return cs.spec(_with_bands(ds, layers) if bands else layers)


def _metric_lines(
    w: Window, fields: dict[str, str], title: str, threshold: float | None = None
) -> ChartSpec:
    """Metrics of dataset ``m`` as step lines (``fields``: name → series), a threshold when given."""
    tips = [cs.tip(k, v) for k, v in fields.items()]
    hover = cs.hover_layer(w, "m", tips, "zoom_" + "_".join(fields))
    y: Json = {"field": "v", "type": "quantitative", "title": title, "axis": {"tickCount": 4}}
    if len(fields) == 1:
        field = next(iter(fields))
        line = cs.lines(w, {**y, "field": field})
    else:
        color: Json = {"field": "series", "type": "nominal", "sort": list(fields.values()),
                       "legend": cs.legend(None)}  # fmt: skip
        line = cs.lines(w, y, color)
        line["transform"] = [
            {"fold": list(fields), "as": ["k", "v"]},
            {
                "calculate": " + ".join(
                    f"(datum.k == '{k}' ? '{v}' : '')" for k, v in fields.items()
                ),
                "as": "series",
            },
        ]
    layers = [hover, line] + ([cs.threshold(threshold)] if threshold is not None else [])
    return cs.spec(layers)


def _activity_charts(ds: TownDatasets, origin: str) -> list[Chart]:
    """Actions, events drained, side effects and violating ticks per bucket."""
    every = _every(ds.window.step)
    ticks = cs.tip("n", "ticks")
    return [
        Chart("actions", "Actions by type", True,
              f"One bar per {every} bucket: the actions emitted, stacked by type ({origin}).",
              _breakdown(ds, "a", "type", "actions", "action type")),
        Chart("drained", "Events drained", False,
              f"One bar per {every} bucket: the town events its ticks drained ({origin}).",
              _metric_bars(ds, "dr", "events", [cs.tip("dr", "events drained"), ticks], False)),
        Chart("effects", "Side effects", False,
              f"One point per {every} bucket: side effects attempted, succeeded and failed "
              f"({origin}).",
              _metric_lines(ds.window, {"fa": "attempted", "fs": "succeeded", "ff": "failed"},
                            "side effects")),
        Chart("violations", "Violating ticks", False,
              f"One bar per {every} bucket: its ticks that reported a violation, each counted "
              f"once however many it reported ({origin}).",
              _metric_bars(ds, "vt", "violating ticks",
                           [cs.tip("vt", "violating ticks"), ticks,
                            cs.tip("vm", "most violations in one tick")], True)),
    ]  # fmt: skip


def _health_charts(window: Window, origin: str, wall_clock: str) -> list[Chart]:
    """Wall clock and pending queue against upstream's alert thresholds, and container events."""
    every = _every(window.step)
    return [
        Chart("wall", "Wall clock", False,
              f"One point per {every} bucket: its slowest tick (ms, {_wall_clock_note(wall_clock)}); "
              f"the dashed line is the {WALL_CLOCK_THRESHOLD_MS} ms alert threshold.",
              _metric_lines(window, {"w": "slowest tick (ms)"}, "ms", WALL_CLOCK_THRESHOLD_MS)),
        Chart("pending", "Pending event queue", False,
              f"One point per {every} bucket: its deepest pending queue ({origin}); the dashed line is "
              f"the {PENDING_THRESHOLD}-event alert threshold.",
              _metric_lines(window, {"q": "deepest queue"}, "events", PENDING_THRESHOLD)),
        Chart("container", "container_status events", False,
              f"One point per {every} bucket: container observations, and those recorded as events "
              f"after the filter ({origin}).",
              _metric_lines(window, {"co": "observed", "cr": "recorded"}, "observations")),
    ]  # fmt: skip


def _history_chart(ds: TownDatasets) -> Chart:
    """A source with no ticks: its own history entries (bead and town events) per bucket."""
    every = _every(ds.window.step)
    caption = (
        f"One bar per {every} bucket: the source's own history entries (bead_events, town_events), "
        "stacked by kind; recorded by the town, not replayed."
    )
    return Chart(
        "history", "History entries", True, caption,
        _breakdown(ds, "h", "kind", "entries", "kind"),
    )  # fmt: skip


def trend_chart() -> ChartSpec:
    """Episodes per invariant over the last runs (dataset ``trends``: run, invariant, n)."""
    chart = (
        alt.Chart(alt.NamedData(name="trends"))
        .mark_line(point=True)
        .encode(
            x=alt.X(
                "run:O",
                title="run (data window end)",
                sort=None,
                axis=alt.Axis(labelAngle=-30, labelOverlap="greedy"),
            ),
            y=alt.Y("n:Q", title="episodes"),
            color=alt.Color("invariant:N", title="invariant", legend=cs.legend("invariant")),
            tooltip=["run:O", "invariant:N", alt.Tooltip("n:Q", title="episodes")],
        )
        .properties(width="container", height=cs.HEIGHT)
    )
    spec: dict[str, JsonValue] = chart.to_dict(validate=False)
    spec.pop("config", None)  # the page's CSS and site.js theme it
    return ChartSpec(spec)


def trend_charts(labels: Sequence[str]) -> list[Chart]:
    """The index's trend chart: only when there is more than one run to compare."""
    if len(labels) <= 1:
        return []
    caption = "One point: the violation episodes of one invariant in one of the last runs."
    return [Chart("trends", "Episodes per invariant", True, caption, trend_chart())]


def trend_data(labels: Sequence[str], counts: Mapping[int, Sequence[int]]) -> TrendData | NoData:
    """The trend chart's dataset (:class:`NoData` when there is no chart)."""
    if len(labels) <= 1:
        return NO_DATA
    points = [
        TrendPoint(labels[i], str(n), c[i]) for n, c in counts.items() for i in range(len(labels))
    ]
    return TrendData(points)
