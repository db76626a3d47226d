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
from typing import Any

import altair as alt

from reportgen.diagnose.episodes import to_ms
from reportgen.town.tick import MODEL_FORMULA

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
) -> dict[str, Any]:
    """The page's chart data: ``m`` (metrics per bucket) and ``a`` (actions per bucket and type)."""
    start = to_ms(window_from)
    step = bucket_size(max(1, to_ms(window_to) - start))
    metrics: dict[int, dict[str, float]] = {}
    actions: dict[tuple[int, str], int] = {}
    for tick in ticks:
        t = start + ((to_ms(str(tick["at"])) - start) // step) * step
        m = tick.get("metrics") or {}
        row = metrics.setdefault(
            t,
            {
                "t": t,
                "n": 0,
                "dr": 0,
                "fa": 0,
                "fs": 0,
                "ff": 0,
                "v": 0,
                "w": 0.0,
                "q": 0,
                "co": 0,
                "cr": 0,
            },
        )
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
    return {
        "step": step,
        "m": [metrics[t] for t in sorted(metrics)],
        "a": [{"t": t, "type": k, "n": n} for (t, k), n in sorted(actions.items())],
    }


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


def _spec(chart: Any) -> dict[str, Any]:
    spec: dict[str, Any] = chart.to_dict(validate=False)
    spec.pop("config", None)
    return spec


def actions_chart(step: int) -> dict[str, Any]:
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
) -> dict[str, Any]:
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


def _folded(fields: dict[str, str], title: str, zoom: str) -> dict[str, Any]:
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


def town_charts(step: int, wall_clock: str = "measured") -> list[dict[str, Any]]:
    """The town page's charts, in reading order: ``{id, title, caption, spec, wide}``.

    ``wall_clock`` says what the ticks' wall clock is (:func:`~reportgen.town.tick.wall_clock_kind`):
    a modelled one is labelled with its formula, never passed off as a measurement.
    """
    every = f"per {step // 1000} s bucket" if step < 60_000 else f"per {step // 60_000} min bucket"
    return [
        {
            "id": "actions",
            "title": "Actions by type",
            "wide": True,
            "caption": f"Actions emitted {every}, stacked by type. Drag to pan, scroll to zoom, click a bar to open its ticks.",
            "spec": actions_chart(step),
        },
        {
            "id": "drained",
            "title": "Events drained",
            "wide": False,
            "caption": f"Town events drained {every} (sum).",
            "spec": _metric_line("dr", "events", "zoom_drained"),
        },
        {
            "id": "effects",
            "title": "Side effects",
            "wide": False,
            "caption": f"Side effects attempted, succeeded and failed {every} (sum).",
            "spec": _folded(
                {"fa": "attempted", "fs": "succeeded", "ff": "failed"},
                "side effects",
                "zoom_effects",
            ),
        },
        {
            "id": "violations",
            "title": "Invariant violations",
            "wide": False,
            "caption": f"Violations reported by the checks {every} (sum of the per-tick counter).",
            "spec": _metric_line("v", "violations", "zoom_violations"),
        },
        {
            "id": "wall",
            "title": "Wall clock",
            "wide": False,
            "caption": f"Slowest tick {every} (ms, {_wall_clock_note(wall_clock)}); the dashed line is the {WALL_CLOCK_THRESHOLD_MS} ms alert threshold.",
            "spec": _metric_line(
                "w", "ms", "zoom_wall", mark="line", threshold=WALL_CLOCK_THRESHOLD_MS
            ),
        },
        {
            "id": "pending",
            "title": "Pending event queue",
            "wide": False,
            "caption": f"Deepest pending queue {every}; the dashed line is the {PENDING_THRESHOLD}-event alert threshold.",
            "spec": _metric_line(
                "q", "events", "zoom_pending", mark="line", threshold=PENDING_THRESHOLD
            ),
        },
        {
            "id": "container",
            "title": "container_status events",
            "wide": False,
            "caption": f"Container observations {every}: observed, and recorded as events after the filter.",
            "spec": _folded({"co": "observed", "cr": "recorded"}, "observations", "zoom_container"),
        },
    ]


def trend_chart() -> dict[str, Any]:
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
