"""Vega-Lite building blocks of the town page's time charts (data: :mod:`chart_data`).

Every time chart is a layer over one x scale whose domain is exactly the
run's window (so every chart of a page, and of the single-file bundle, starts
and ends at the same times whatever its data), with:

* a transparent rect per bucket under the marks, carrying the bucket's
  tooltip (its start–end in UTC and the chart's figures) and its click;
* the episode and finding bands, a translucent region from first to last
  tick behind the marks, and a marker strip along the top with the band's
  tooltip and link (Grafana's region annotations);
* the marks themselves, which take no pointer events (the bucket's rect
  answers), except the stacked bars of a breakdown, which say their part.

Axes are readable at any width: the tick count follows the width, labels
that would overlap are dropped, the first and last stay inside the plot.
Specs are plain JSON (no random names: the output is byte-identical run to run).
"""

from __future__ import annotations

from typing import NewType

import altair as alt

from reportgen.report.chart_data import Window

#: A JSON value: what Vega-Lite specs are made of.
JsonValue = str | int | float | bool | None | list["JsonValue"] | dict[str, "JsonValue"]
#: A Vega-Lite spec: the one JSON value a page model holds as such (its shape is
#: Vega-Lite's, not the report's; site.js hands it to vega-embed).
ChartSpec = NewType("ChartSpec", dict[str, JsonValue])
#: One layer, encoding or transform of a spec.
Json = dict[str, JsonValue]

HEIGHT = 150
#: Band colours: an episode (a violation) and a finding (the diagnosis).
EPISODE_COLOR = "#d62728"
FINDING_COLOR = "#7b4ab8"
#: Height (px) of one lane of band markers along the top of a chart.
LANE_PX = 7
DAY_MS = 86_400_000


def spec(layers: list[Json], height: int = HEIGHT) -> ChartSpec:
    """A layered chart as wide as its container."""
    return ChartSpec(
        {
            "$schema": alt.SCHEMA_URL,
            "width": "container",
            "height": height,
            "autosize": {"type": "fit-x", "contains": "padding"},
            "layer": list(layers),
        }
    )


def time_formats(window: Window) -> tuple[str, str, int]:
    """``(axis label format, bucket start format, px per axis label)`` for a window."""
    span = window.end - window.start
    if span <= 1_800_000:
        return "%H:%M:%S", "%Y-%m-%d %H:%M:%S", 80
    if span <= 36 * 3_600_000:
        return "%H:%M", "%Y-%m-%d %H:%M:%S" if window.step < 60_000 else "%Y-%m-%d %H:%M", 64
    return "%d %b %H:%M", "%Y-%m-%d %H:%M", 110


def x_encoding(window: Window, field: str = "t", *, domain: bool = False) -> Json:
    """The x channel on the one UTC time scale of a chart. The layer that carries the
    ``domain`` (one per chart, so the layers never disagree) sets it to the window exactly,
    never nice-rounded, and draws the axis: readable at any width (the tick count follows
    the width, labels that would crowd are dropped, the first and last stay inside)."""
    x: Json = {"field": field, "type": "temporal", "title": None, "scale": {"type": "utc"}}
    if not domain:
        return x
    label, _, px = time_formats(window)
    # the domain as an expression: a literal list is parsed once per channel (x and x2),
    # and the two parses disagree in form (Vega-Lite warns), though not in value
    x["scale"] = {
        "type": "utc",
        "domain": {"expr": f"[{window.start}, {window.end}]"},
        "nice": False,
    }
    x["axis"] = {
        "format": label,
        "labelOverlap": "greedy",
        "labelSeparation": 8,
        "labelFlush": True,
        "tickCount": {"expr": f"max(2, floor(width / {px}))"},
    }
    return x


def bucket_fields(window: Window) -> list[JsonValue]:
    """Calculated ``e`` (the bucket's end, within the window) and ``when`` (its span, in words)."""
    _, start, _ = time_formats(window)
    end = start if window.step >= DAY_MS else start.split(" ", 1)[1]
    return [
        {"calculate": f"min(datum.t + {window.step}, {window.end})", "as": "e"},
        {"calculate": _span_words("datum.t", "datum.e", start, end), "as": "when"},
    ]


def _span_words(a: str, b: str, fmt_a: str, fmt_b: str) -> str:
    """A Vega expression: ``2026-03-16 08:15–08:30 UTC`` (the end's date only when it differs)."""
    return f"utcFormat({a}, '{fmt_a}') + '–' + utcFormat({b}, '{fmt_b}') + ' UTC'"


def tip(field: str, title: str, type_: str = "quantitative") -> Json:
    """One tooltip line."""
    return {"field": field, "type": type_, "title": title}


def when_tip(title: str = "bucket") -> Json:
    return tip("when", title, "nominal")


def zoom(name: str) -> list[JsonValue]:
    """Drag to pan, wheel to zoom along x (named, so the spec is the same every run)."""
    return [{"name": name, "select": {"type": "interval", "encodings": ["x"]}, "bind": "scales"}]


def hover_layer(window: Window, data: str, tips: list[Json], zoom_name: str) -> Json:
    """A transparent rect per bucket, the full plot height: its tooltip and its click."""
    return {
        "data": {"name": data},
        "transform": list(bucket_fields(window)),
        "params": zoom(zoom_name),
        "mark": {"type": "rect", "fill": "#888", "opacity": 0, "cursor": "pointer", "clip": True},
        "encoding": {
            "x": x_encoding(window, domain=True),
            "x2": {"field": "e"},
            "tooltip": [when_tip(), *tips],
        },
    }


def count_y(field: str, title: str, empty: bool) -> Json:
    """A y channel of counts: whole numbers, 0 to 1 when all are 0 (``empty``: the chart keeps
    an axis)."""
    return {
        "field": field,
        "type": "quantitative",
        "title": title,
        "scale": {"domain": [0, 1]} if empty else {"zero": True},
        "axis": {
            "format": "d",
            "tickCount": {"expr": "min(ceil(height / 40), max(1, span(domain('y'))))"},
        },
    }


def bars(window: Window, data: str, y: Json, more: Json | None = None, stack_by: str = "") -> Json:
    """Bars spanning their bucket, from 0 up to ``y`` (stacked within the bucket by ``stack_by``
    when given). Without a tooltip in ``more`` they take no pointer events (the bucket's rect
    answers); with one, they answer for their part of a stack."""
    transform = bucket_fields(window)
    top: Json = y
    bottom: Json = {"datum": 0}
    if stack_by:
        order: list[JsonValue] = [{"field": stack_by}]
        transform.append({"stack": y["field"], "groupby": ["t"], "sort": order, "as": ["y0", "y1"]})
        top, bottom = {**y, "field": "y1"}, {"field": "y0"}
    encoding: Json = {
        "x": x_encoding(window),
        "x2": {"field": "e"},
        "y": top,
        "y2": bottom,
        **(more or {}),
    }
    interactive = "tooltip" in encoding
    mark: Json = {"type": "rect", "interactive": interactive, "clip": True}
    if interactive:
        mark["cursor"] = "pointer"
    return {
        "data": {"name": data},
        "transform": list(transform),
        "mark": mark,
        "encoding": encoding,
    }


def lines(window: Window, y: Json, color: Json | None = None) -> Json:
    """A step line per series of dataset ``m`` (no pointer events: the bucket's rect answers)."""
    encoding: Json = {"x": x_encoding(window), "y": y}
    if color is not None:
        encoding["color"] = color
    return {
        "data": {"name": "m"},
        "mark": {"type": "line", "interpolate": "step-after", "interactive": False, "clip": True},
        "encoding": encoding,
    }


def threshold(value: float) -> Json:
    """Upstream's alert threshold as a dashed rule."""
    return {
        "mark": {
            "type": "rule",
            "color": EPISODE_COLOR,
            "strokeDash": [4, 3],
            "interactive": False,
        },
        "encoding": {"y": {"datum": value}},
    }


def legend(title: str | None) -> Json:
    """A legend under the plot that wraps to the width (never wider than the chart)."""
    return {
        "orient": "bottom",
        "title": title,
        "columns": {"expr": "max(1, floor(width / 150))"},
        "labelLimit": 130,
    }


def _band_color() -> Json:
    return {"condition": {"test": "datum.kind == 'finding'", "value": FINDING_COLOR},
            "value": EPISODE_COLOR}  # fmt: skip


def band_layers(window: Window) -> list[Json]:
    """Episode and finding bands (dataset ``b``): a region behind the marks, and a marker per
    band along the top (its lane) with the band's tooltip and link."""
    x = x_encoding(window, "s")
    _, start, _ = time_formats(window)
    region: Json = {
        "data": {"name": "b"},
        "mark": {
            "type": "rect",
            "opacity": 0.07,
            "strokeOpacity": 0.35,
            "strokeWidth": 1,
            "interactive": False,
            "clip": True,
        },
        "encoding": {"x": x, "x2": {"field": "e"}, "fill": _band_color(), "stroke": _band_color()},
    }
    marker: Json = {
        "data": {"name": "b"},
        "transform": [
            {"calculate": f"datum.lane * {LANE_PX} + 1", "as": "y0"},
            {"calculate": f"datum.lane * {LANE_PX} + {LANE_PX - 1}", "as": "y1"},
            {"calculate": _span_words("datum.s", "datum.e", start, start), "as": "when"},
        ],
        "mark": {"type": "rect", "cursor": "pointer", "strokeWidth": 2, "clip": True},
        "encoding": {
            "x": x,
            "x2": {"field": "e"},
            "y": {"field": "y0", "type": "quantitative", "scale": None, "axis": None},
            "y2": {"field": "y1"},
            "fill": _band_color(),
            "stroke": _band_color(),
            "tooltip": [tip("label", "band", "nominal"), when_tip("from–to")],
        },
    }
    return [region, marker]
