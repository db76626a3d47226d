"""The Reconciler row's panels, template variable and queries, as Grafana JSON.

Built by small functions, no Grafana SDK: :mod:`.grafana_row` places these
objects in a dashboard, :mod:`.alerts` reuses the queries' datasource target
for its rules. The objects are sorted by key the way Grafana exports them, so
output is byte-stable.
"""

from __future__ import annotations

from typing import Any, Literal

from reportgen.observability.grafana_json import GRID_COLUMNS, JSONDict

PLUGIN_TYPE = "vertamedia-clickhouse-datasource"
DATASET = "gastown_events"
TICK_EVENT = "reconciler_tick"

#: Idle towns re-arm their alarm every 5 minutes (5 s while work is active).
IDLE_TICK_SECONDS = 300
#: Panel "Min interval": the ``$timeSeries`` bucket is never shorter than the
#: idle cadence, so every bucket of a healthy idle town holds a tick.
MIN_INTERVAL = "5m"
#: ``custom.spanNulls`` in ms. Grafana joins a null run when the distance
#: between the surrounding points is *strictly less* than this. The alarm
#: re-arms 5 min after a tick *ends*, so the period is a little over 5 min and
#: an epoch-aligned 5-minute bucket occasionally gets no tick: its neighbours
#: are then 10 min apart. 15 min bridges that one empty bucket but still
#: breaks the line when a town misses two ticks in a row (>= 15 min silent).
SPAN_NULLS_MS = 3 * IDLE_TICK_SECONDS * 1000

ROW_TITLE = "Reconciler"
TOWN_VARIABLE = "town"
PREFERRED_BASE_ID = 200
#: Written into the description of every generated panel and of the ``town``
#: variable; re-running ``dashboard`` replaces exactly the objects carrying it.
MARKER = "Managed by `reportgen dashboard`; re-running it replaces this."

TOWN_FILTER = "blob6 IN (${town:singlequote})"
TICK_WHERE = f"$timeFilter AND blob1 = '{TICK_EVENT}'"
PANEL_WHERE = f"{TICK_WHERE} AND {TOWN_FILTER}"


# --------------------------------------------------------------------------- #
# Small builders
# --------------------------------------------------------------------------- #


def sorted_keys(obj: Any) -> Any:
    """Sort mapping keys recursively, matching Grafana's export order."""
    if isinstance(obj, dict):
        return {k: sorted_keys(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [sorted_keys(v) for v in obj]
    return obj


def _grid(x: int, y: int, w: int, h: int) -> JSONDict:
    return {"h": h, "w": w, "x": x, "y": y}


def _thresholds(*steps: tuple[float | None, str]) -> JSONDict:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


def sql_target(sql: str, fmt: Literal["time_series", "table"], ref_id: str = "A") -> JSONDict:
    """An Altinity-plugin SQL target; ``query`` and ``rawSql`` kept identical.

    ``extrapolate`` is off: the plugin would scale the partial first/last
    bucket, which is wrong for averages and invents fractional counts.
    """
    return {
        "adHocFilters": [],
        "adHocValuesQuery": "",
        "add_metadata": True,
        "contextWindowSize": "10",
        "dateTimeColDataType": "timestamp",
        "dateTimeType": "DATETIME",
        "editorMode": "sql",
        "extrapolate": False,
        "format": fmt,
        "interval": "",
        "intervalFactor": 1,
        "nullifySparse": False,
        "query": sql,
        "rawSql": sql,
        "refId": ref_id,
        "round": "0s",
        "showFormattedSQL": False,
        "showHelp": False,
        "skip_comments": True,
        "table": DATASET,
        "useWindowFuncForMacros": True,
    }


def _description(text: str) -> str:
    return f"{text}\n\n{MARKER}"


def _fixed_color(series: str, color: str) -> JSONDict:
    return {
        "matcher": {"id": "byName", "options": series},
        "properties": [{"id": "color", "value": {"fixedColor": color, "mode": "fixed"}}],
    }


def _timeseries_custom(*, bars: bool, threshold_line: bool) -> JSONDict:
    """``fieldConfig.defaults.custom`` of a time series: stacked bars or thin lines.

    Every key Grafana 12 exports is written, so that saving the dashboard
    in Grafana leaves the generated panels unchanged.
    """
    custom = {
        "axisBorderShow": False,
        "axisCenteredZero": False,
        "axisColorMode": "text",
        "axisLabel": "",
        "axisPlacement": "auto",
        "axisSoftMin": 0,
        "barAlignment": 0,
        "barWidthFactor": 0.6,
        "drawStyle": "bars" if bars else "line",
        "fillOpacity": 80 if bars else 10,
        "gradientMode": "none",
        "hideFrom": {"legend": False, "tooltip": False, "viz": False},
        "insertNulls": False,
        "lineInterpolation": "linear",
        "lineWidth": 0 if bars else 1,
        "pointSize": 5,
        "scaleDistribution": {"type": "linear"},
        "showPoints": "auto",
        "showValues": False,
        "spanNulls": SPAN_NULLS_MS,
        "stacking": {"group": "A", "mode": "normal" if bars else "none"},
        "thresholdsStyle": {"mode": "line" if threshold_line else "off"},
    }
    return custom


def _timeseries(
    *,
    panel_id: int,
    title: str,
    description: str,
    grid: JSONDict,
    datasource: JSONDict,
    sql: str,
    unit: str,
    bars: bool = False,
    thresholds: JSONDict | None = None,
    threshold_line: bool = False,
    overrides: list[JSONDict] | None = None,
) -> JSONDict:
    """A time series panel; ``bars`` stacks series as bars with a sum legend."""
    custom = _timeseries_custom(bars=bars, threshold_line=threshold_line)
    legend: JSONDict = {
        "calcs": ["sum"] if bars else [],
        "displayMode": "table" if bars else "list",
        "placement": "bottom",
        "showLegend": True,
    }
    return {
        "datasource": dict(datasource),
        "description": _description(description),
        "fieldConfig": {
            "defaults": {
                "color": {"mode": "palette-classic"},
                "custom": custom,
                "mappings": [],
                "min": 0,
                "thresholds": thresholds or _thresholds((None, "green")),
                "unit": unit,
            },
            "overrides": overrides or [],
        },
        "gridPos": grid,
        "id": panel_id,
        "interval": MIN_INTERVAL,
        "options": {
            "legend": legend,
            "tooltip": {"hideZeros": False, "mode": "multi", "sort": "desc"},
        },
        "targets": [sql_target(sql, "time_series")],
        "title": title,
        "type": "timeseries",
    }


def _stat(
    *,
    panel_id: int,
    title: str,
    description: str,
    grid: JSONDict,
    datasource: JSONDict,
    sql: str,
    thresholds: JSONDict,
) -> JSONDict:
    return {
        "datasource": dict(datasource),
        "description": _description(description),
        "fieldConfig": {
            "defaults": {
                "color": {"mode": "thresholds"},
                "decimals": 0,
                "mappings": [],
                "thresholds": thresholds,
                "unit": "none",
            },
            "overrides": [],
        },
        "gridPos": grid,
        "id": panel_id,
        "interval": MIN_INTERVAL,
        "options": {
            "colorMode": "background",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "percentChangeColorMode": "standard",
            "reduceOptions": {"calcs": ["sum"], "fields": "", "values": False},
            "showPercentChange": False,
            "textMode": "auto",
            "wideLayout": True,
        },
        "targets": [sql_target(sql, "time_series")],
        "title": title,
        "type": "stat",
    }


def _gauge(
    *,
    panel_id: int,
    title: str,
    description: str,
    grid: JSONDict,
    datasource: JSONDict,
    sql: str,
    thresholds: JSONDict,
    maximum: float,
) -> JSONDict:
    return {
        "datasource": dict(datasource),
        "description": _description(description),
        "fieldConfig": {
            "defaults": {
                "color": {"mode": "thresholds"},
                "decimals": 0,
                "mappings": [],
                "max": maximum,
                "min": 0,
                "thresholds": thresholds,
                "unit": "none",
            },
            "overrides": [],
        },
        "gridPos": grid,
        "id": panel_id,
        "options": {
            "minVizHeight": 75,
            "minVizWidth": 75,
            "orientation": "auto",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
            "showThresholdLabels": False,
            "showThresholdMarkers": True,
            "sizing": "auto",
        },
        "targets": [sql_target(sql, "table")],
        "title": title,
        "type": "gauge",
    }


def _row(panel_id: int, y: int) -> JSONDict:
    return {
        "collapsed": False,
        "gridPos": _grid(0, y, GRID_COLUMNS, 1),
        "id": panel_id,
        "panels": [],
        "title": ROW_TITLE,
        "type": "row",
    }


# --------------------------------------------------------------------------- #
# Queries
# --------------------------------------------------------------------------- #

SQL_EVENTS_DRAINED = (
    "SELECT $timeSeries AS t, blob6 AS label, "
    "SUM(_sample_interval * double2) / SUM(_sample_interval) AS events_drained "
    f"FROM {DATASET} WHERE {PANEL_WHERE} GROUP BY t, label ORDER BY t"
)
SQL_ACTIONS_BY_TYPE = (
    "SELECT $timeSeries AS t, "
    "tupleElement(arrayJoin(JSONExtractKeysAndValues(blob10, 'Float64')) AS kv, 1) AS label, "
    "SUM(_sample_interval * tupleElement(kv, 2)) AS actions "
    f"FROM {DATASET} WHERE {PANEL_WHERE} GROUP BY t, label ORDER BY t"
)
SQL_SIDE_EFFECTS = (
    "SELECT $timeSeries AS t, "
    "SUM(_sample_interval * double4) AS attempted, "
    "SUM(_sample_interval * double5) AS succeeded, "
    "SUM(_sample_interval * double6) AS failed "
    f"FROM {DATASET} WHERE {PANEL_WHERE} GROUP BY t ORDER BY t"
)
SQL_INVARIANT_VIOLATIONS = (
    "SELECT $timeSeries AS t, SUM(_sample_interval * double7) AS violations "
    f"FROM {DATASET} WHERE {PANEL_WHERE} GROUP BY t ORDER BY t"
)
SQL_WALL_CLOCK = (
    "SELECT $timeSeries AS t, blob6 AS label, "
    "SUM(_sample_interval * double1) / SUM(_sample_interval) AS wall_clock_ms "
    f"FROM {DATASET} WHERE {PANEL_WHERE} GROUP BY t, label ORDER BY t"
)
#: Latest tick per town (argMax by timestamp), then the worst town
#: (ORDER BY … DESC LIMIT 1): the current depth, never a window average.
SQL_PENDING_WORST_TOWN = (
    "SELECT blob6 AS town, argMax(double8, timestamp) AS pending "
    f"FROM {DATASET} WHERE {PANEL_WHERE} GROUP BY town ORDER BY pending DESC LIMIT 1"
)
SQL_TOWNS = (
    f"SELECT blob6 AS town FROM {DATASET} WHERE {TICK_WHERE} AND blob6 != '' "
    "GROUP BY town ORDER BY town"
)


def town_variable(datasource: JSONDict) -> JSONDict:
    """The multi-select ``town`` variable every panel filters on (all towns by default)."""
    return {
        "current": {"text": ["All"], "value": ["$__all"]},
        "datasource": dict(datasource),
        "definition": SQL_TOWNS,
        "description": _description(
            f"Towns that wrote a {TICK_EVENT} in the time range (blob6). "
            "Filters every panel of the Reconciler row."
        ),
        "includeAll": True,
        "label": "Town",
        "multi": True,
        "name": TOWN_VARIABLE,
        "options": [],
        "query": SQL_TOWNS,
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "type": "query",
    }


def row_and_panels(base_id: int, y: int, datasource: JSONDict) -> list[JSONDict]:
    """The row and its six panels, ids ``base_id`` … ``base_id + 6``, top at ``y``.

    Three lines of two half-width panels, 8 units high: what a tick handles,
    how its work turned out, and how loaded the reconciler is.
    """
    return [
        _row(base_id, y),
        *_throughput_panels(base_id, y + 1, datasource),
        *_outcome_panels(base_id, y + 9, datasource),
        *_load_panels(base_id, y + 17, datasource),
    ]


def _throughput_panels(base_id: int, y: int, ds: JSONDict) -> list[JSONDict]:
    """Panels 1–2 at ``y``: events drained per tick and actions emitted by type."""
    return [
        _timeseries(
            panel_id=base_id + 1,
            title="Events Drained per Tick",
            description=(
                "Average events drained per reconciler tick (double2), one line per town. "
                f"Buckets are at least {MIN_INTERVAL} (the idle tick cadence) and nulls are "
                f"spanned up to {SPAN_NULLS_MS // 60000} min, so an idle town draws a "
                "continuous line."
            ),
            grid=_grid(0, y, 12, 8),
            datasource=ds,
            sql=SQL_EVENTS_DRAINED,
            unit="short",
        ),
        _timeseries(
            panel_id=base_id + 2,
            title="Actions Emitted by Type",
            description=(
                "Actions the reconciler emitted, stacked by type (the actionsByType JSON "
                "in blob10), summed per bucket across the selected towns. Analytics "
                "Engine SQL cannot divide by the tick count of the bucket in the same "
                "query, so this is a per-bucket total, not a per-tick mean."
            ),
            grid=_grid(12, y, 12, 8),
            datasource=ds,
            sql=SQL_ACTIONS_BY_TYPE,
            unit="short",
            bars=True,
        ),
    ]


def _outcome_panels(base_id: int, y: int, ds: JSONDict) -> list[JSONDict]:
    """Panels 3–4 at ``y``: side effects by outcome and invariant violations."""
    return [
        _timeseries(
            panel_id=base_id + 3,
            title="Side Effects (attempted / succeeded / failed)",
            description=(
                "Side effects per bucket across the selected towns: attempted (double4), "
                "succeeded (double5), failed (double6)."
            ),
            grid=_grid(0, y, 12, 8),
            datasource=ds,
            sql=SQL_SIDE_EFFECTS,
            unit="short",
            overrides=[
                _fixed_color("attempted", "blue"),
                _fixed_color("succeeded", "green"),
                _fixed_color("failed", "red"),
            ],
        ),
        _stat(
            panel_id=base_id + 4,
            title="Invariant Violations",
            description=(
                "Invariant violations (double7) in the time range, selected towns. "
                "Red above 0: a healthy reconciler never violates an invariant."
            ),
            grid=_grid(12, y, 12, 8),
            datasource=ds,
            sql=SQL_INVARIANT_VIOLATIONS,
            thresholds=_thresholds((None, "green"), (1, "red")),
        ),
    ]


def _load_panels(base_id: int, y: int, ds: JSONDict) -> list[JSONDict]:
    """Panels 5–6 at ``y``: reconcile wall clock and the worst pending queue."""
    return [
        _timeseries(
            panel_id=base_id + 5,
            title="Reconciler Wall Clock Time",
            description=(
                "Average reconcile wall clock per tick (double1), one line per town. "
                "Healthy is under 100 ms; the red line marks 500 ms."
            ),
            grid=_grid(0, y, 12, 8),
            datasource=ds,
            sql=SQL_WALL_CLOCK,
            unit="ms",
            thresholds=_thresholds((None, "green"), (500, "red")),
            threshold_line=True,
        ),
        _gauge(
            panel_id=base_id + 6,
            title="Pending Event Queue Depth (worst town)",
            description=(
                "Current pending event count (double8): each town's latest tick, then the "
                "worst of the selected towns. Select one town to see its own depth. "
                "Yellow from 25, red from 50."
            ),
            grid=_grid(12, y, 12, 8),
            datasource=ds,
            sql=SQL_PENDING_WORST_TOWN,
            thresholds=_thresholds((None, "green"), (25, "yellow"), (50, "red")),
            maximum=100,
        ),
    ]
