"""Grafana: add the reconciler row to a dashboard, emit alert rules, check dashboards.

The input is upstream's "Gastown Operations" dashboard (classic JSON model,
Grafana 12.4 export). Its one datasource is the Altinity ClickHouse plugin
(``vertamedia-clickhouse-datasource``) over the Cloudflare Workers Analytics
Engine SQL API; the dataset is ``gastown_events``. The engine writes one
``reconciler_tick`` row per tick and town with upstream's column mapping:

========  ===================================================
blob6     town id
blob10    actions by type, a JSON object ``{"type": count}``
double1   reconcile wall clock (ms)
double2   events drained
double3   actions emitted
double4   side effects attempted
double5   side effects succeeded
double6   side effects failed
double7   invariant violations
double8   pending event count
========  ===================================================

Analytics Engine samples rows, so sums are ``SUM(_sample_interval * x)`` and
averages ``SUM(_sample_interval * x) / SUM(_sample_interval)``.

Everything here is hand-written JSON built by small functions (no Grafana SDK):
the generated objects are sorted by key the way Grafana exports them, and the
rest of the dashboard keeps its key order, so output is byte-stable.
"""

from __future__ import annotations

import copy
import json
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Literal

import yaml

from reportgen.errors import BadInputError
from reportgen.observability.grafana_check import WARNING, check_dashboard, is_warning
from reportgen.observability.grafana_json import (
    GRID_COLUMNS,
    JSONDict,
    is_id,
    panel_label,
    panels_of,
    var_name,
    variables_of,
    walk_panels,
)

__all__ = [
    "WARNING",
    "add_reconciler_row",
    "alert_rules",
    "check_dashboard",
    "check_dashboard_file",
    "is_warning",
    "reconciler_panels",
    "update_dashboard_file",
]


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


ALERT_FOLDER = "Gastown"
ALERT_GROUP = "gastown-reconciler"
ALERT_INTERVAL = "1m"


# --------------------------------------------------------------------------- #
# Small builders
# --------------------------------------------------------------------------- #


def _sorted(obj: Any) -> Any:
    """Sort mapping keys recursively, matching Grafana's export order."""
    if isinstance(obj, dict):
        return {k: _sorted(obj[k]) for k in sorted(obj)}
    if isinstance(obj, list):
        return [_sorted(v) for v in obj]
    return obj


def _grid(x: int, y: int, w: int, h: int) -> JSONDict:
    return {"h": h, "w": w, "x": x, "y": y}


def _thresholds(*steps: tuple[float | None, str]) -> JSONDict:
    return {
        "mode": "absolute",
        "steps": [{"color": color, "value": value} for value, color in steps],
    }


def _target(sql: str, fmt: Literal["time_series", "table"], ref_id: str = "A") -> JSONDict:
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
        "targets": [_target(sql, "time_series")],
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
        "targets": [_target(sql, "time_series")],
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
        "targets": [_target(sql, "table")],
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

# Alert queries: no dashboard variables exist in alerting, so they group by
# town instead; format "table" gives one number per town, labelled ``town``.
SQL_ALERT_VIOLATIONS = (
    "SELECT blob6 AS town, SUM(_sample_interval * double7) AS violations "
    f"FROM {DATASET} WHERE {TICK_WHERE} GROUP BY town"
)
SQL_ALERT_WALL_CLOCK = (
    "SELECT blob6 AS town, "
    "SUM(_sample_interval * double1) / SUM(_sample_interval) AS wall_clock_ms "
    f"FROM {DATASET} WHERE {TICK_WHERE} GROUP BY town"
)
SQL_ALERT_PENDING = (
    "SELECT blob6 AS town, argMax(double8, timestamp) AS pending "
    f"FROM {DATASET} WHERE {TICK_WHERE} GROUP BY town"
)


def _town_variable(datasource: JSONDict) -> JSONDict:
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


def _reconciler_panels(base_id: int, y: int, datasource: JSONDict) -> list[JSONDict]:
    """The row and its six panels, ids ``base_id`` … ``base_id + 6``, top at ``y``."""
    ds = datasource
    top, mid, low = y + 1, y + 9, y + 17
    return [
        _row(base_id, y),
        _timeseries(
            panel_id=base_id + 1,
            title="Events Drained per Tick",
            description=(
                "Average events drained per reconciler tick (double2), one line per town. "
                f"Buckets are at least {MIN_INTERVAL} (the idle tick cadence) and nulls are "
                f"spanned up to {SPAN_NULLS_MS // 60000} min, so an idle town draws a "
                "continuous line."
            ),
            grid=_grid(0, top, 12, 8),
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
            grid=_grid(12, top, 12, 8),
            datasource=ds,
            sql=SQL_ACTIONS_BY_TYPE,
            unit="short",
            bars=True,
        ),
        _timeseries(
            panel_id=base_id + 3,
            title="Side Effects (attempted / succeeded / failed)",
            description=(
                "Side effects per bucket across the selected towns: attempted (double4), "
                "succeeded (double5), failed (double6)."
            ),
            grid=_grid(0, mid, 12, 8),
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
            grid=_grid(12, mid, 12, 8),
            datasource=ds,
            sql=SQL_INVARIANT_VIOLATIONS,
            thresholds=_thresholds((None, "green"), (1, "red")),
        ),
        _timeseries(
            panel_id=base_id + 5,
            title="Reconciler Wall Clock Time",
            description=(
                "Average reconcile wall clock per tick (double1), one line per town. "
                "Healthy is under 100 ms; the red line marks 500 ms."
            ),
            grid=_grid(0, low, 12, 8),
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
            grid=_grid(12, low, 12, 8),
            datasource=ds,
            sql=SQL_PENDING_WORST_TOWN,
            thresholds=_thresholds((None, "green"), (25, "yellow"), (50, "red")),
            maximum=100,
        ),
    ]


# --------------------------------------------------------------------------- #
# Dashboard helpers
# --------------------------------------------------------------------------- #


def _is_own(obj: Any) -> bool:
    return isinstance(obj, dict) and MARKER in str(obj.get("description", ""))


def dashboard_datasource(dashboard: JSONDict) -> JSONDict:
    """The ClickHouse-plugin datasource reference the dashboard's panels use most.

    Ties go to the first one seen. A dashboard whose panels name none, but that
    has a datasource variable for the plugin, gets ``${VARIABLE}``.
    """
    counts: Counter[tuple[str, str]] = Counter()
    for panel in walk_panels(panels_of(dashboard)):
        if _is_own(panel):
            continue
        refs = [panel.get("datasource")]
        targets = panel.get("targets")
        if isinstance(targets, list):
            refs += [t.get("datasource") for t in targets if isinstance(t, dict)]
        for ref in refs:
            if (
                isinstance(ref, dict)
                and ref.get("type") == PLUGIN_TYPE
                and isinstance(ref.get("uid"), str)
            ):
                counts[(PLUGIN_TYPE, ref["uid"])] += 1
    if counts:
        (ds_type, uid), _ = counts.most_common(1)[0]
        return {"type": ds_type, "uid": uid}
    for var in variables_of(dashboard):
        if (
            isinstance(var, dict)
            and var.get("type") == "datasource"
            and var.get("query") == PLUGIN_TYPE
            and isinstance(var.get("name"), str)
        ):
            return {"type": PLUGIN_TYPE, "uid": "${" + var["name"] + "}"}
    raise BadInputError(
        f"dashboard has no {PLUGIN_TYPE} datasource (on a panel or as a datasource "
        "variable) to reuse for the reconciler panels"
    )


def _concrete_uid(dashboard: JSONDict, datasource: JSONDict) -> str:
    """Resolve ``${VAR}`` to the variable's current uid (alert rules need one)."""
    uid = str(datasource["uid"])
    name = var_name(uid)
    if name is None:
        return uid
    for var in variables_of(dashboard):
        if isinstance(var, dict) and var.get("name") == name:
            current = var.get("current")
            value = current.get("value") if isinstance(current, dict) else None
            if isinstance(value, list) and len(value) == 1:
                value = value[0]
            if isinstance(value, str) and value and var_name(value) is None:
                return value
    raise BadInputError(
        f"datasource {uid} has no concrete uid (variable {name!r} has no current value)"
    )


def _own_base_id(panels: list[Any]) -> int | None:
    ids = [p["id"] for p in walk_panels(panels) if _is_own(p) and is_id(p.get("id"))]
    return min(ids) - 1 if ids else None


def _strip_own(panels: list[Any], own_row_id: int | None) -> list[Any]:
    kept: list[Any] = []
    for panel in panels:
        if _is_own(panel):
            continue
        if (
            isinstance(panel, dict)
            and panel.get("type") == "row"
            and panel.get("title") == ROW_TITLE
            and own_row_id is not None
            and panel.get("id") == own_row_id
        ):
            continue
        if isinstance(panel, dict) and isinstance(panel.get("panels"), list):
            children = _strip_own(panel["panels"], own_row_id)
            if children != panel["panels"]:
                panel = {**panel, "panels": children}
        kept.append(panel)
    return kept


def _bottom(panels: list[Any]) -> int:
    bottom = 0
    for panel in panels:
        grid = panel.get("gridPos") if isinstance(panel, dict) else None
        if not isinstance(grid, dict):
            raise BadInputError(f"{panel_label(panel)} has no gridPos")
        y, h = grid.get("y", 0), grid.get("h", 0)
        if not (is_id(y) and is_id(h)):
            raise BadInputError(f"{panel_label(panel)} has a non-integer gridPos y/h")
        bottom = max(bottom, y + h)
    return bottom


def _pick_base_id(panels: list[Any]) -> int:
    used = {p["id"] for p in walk_panels(panels) if is_id(p.get("id"))}
    base = PREFERRED_BASE_ID
    if any(base + i in used for i in range(7)):
        base = (max(used) // 100 + 1) * 100
    return base


def _plugin_version(panels: list[Any]) -> str | None:
    versions = Counter(
        p["pluginVersion"]
        for p in walk_panels(panels)
        if p.get("type") != "row" and isinstance(p.get("pluginVersion"), str)
    )
    return versions.most_common(1)[0][0] if versions else None


def add_reconciler_row(dashboard: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of ``dashboard`` with the Reconciler row and ``town`` variable.

    The row goes below every other panel; ids start at 200 unless any of
    200–206 is taken, then at the next free hundred. Panels and the variable
    carry :data:`MARKER`, and a previous run's objects are removed first, so
    running this on its own output returns an equal dashboard.
    """
    if not isinstance(dashboard, dict):
        raise BadInputError("dashboard JSON is not an object")
    result = copy.deepcopy(dashboard)
    panels = panels_of(result)
    kept = _strip_own(panels, _own_base_id(panels))
    datasource = dashboard_datasource({**result, "panels": kept})
    base_id = _pick_base_id(kept)
    new = _reconciler_panels(base_id, _bottom(kept), datasource)
    version = _plugin_version(kept)
    if version is not None:
        for panel in new[1:]:
            panel["pluginVersion"] = version
    result["panels"] = kept + [_sorted(p) for p in new]

    templating = result.get("templating")
    if templating is None:
        templating = result["templating"] = {"list": []}
    if not isinstance(templating, dict) or not isinstance(templating.get("list", []), list):
        raise BadInputError("dashboard 'templating.list' is not a list")
    variables: list[Any] = templating.setdefault("list", [])
    variable = _sorted(_town_variable(datasource))
    for index, var in enumerate(variables):
        if isinstance(var, dict) and var.get("name") == TOWN_VARIABLE:
            if not _is_own(var):
                raise BadInputError(
                    f"dashboard already has a template variable {TOWN_VARIABLE!r} "
                    "that reportgen did not create; rename or remove it"
                )
            variables[index] = variable
            break
    else:
        variables.append(variable)
    return result


def reconciler_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """The generated row and panels in a dashboard (as after :func:`add_reconciler_row`)."""
    panels = panels_of(dashboard)
    base = _own_base_id(panels)
    return [
        p
        for p in walk_panels(panels)
        if _is_own(p) or (base is not None and p.get("type") == "row" and p.get("id") == base)
    ]


# --------------------------------------------------------------------------- #
# Alert rules
# --------------------------------------------------------------------------- #


def _expr(ref_id: str, model: JSONDict) -> JSONDict:
    return {
        "refId": ref_id,
        "relativeTimeRange": {"from": 0, "to": 0},
        "datasourceUid": "__expr__",
        "model": _sorted(
            {
                **model,
                "datasource": {"type": "__expr__", "uid": "__expr__"},
                "intervalMs": 1000,
                "maxDataPoints": 43200,
                "refId": ref_id,
            }
        ),
    }


def _rule(
    *,
    uid: str,
    title: str,
    sql: str,
    window_seconds: int,
    reducer: str,
    threshold: float,
    for_: str,
    severity: str,
    summary: str,
    description: str,
    dashboard_uid: str,
    panel_id: int,
    datasource_type: str,
    datasource_uid: str,
) -> JSONDict:
    query = {
        **_target(sql, "table"),
        "datasource": {"type": datasource_type, "uid": datasource_uid},
        "intervalMs": 1000,
        "maxDataPoints": 43200,
    }
    return {
        "uid": uid,
        "title": title,
        "condition": "C",
        "data": [
            {
                "refId": "A",
                "relativeTimeRange": {"from": window_seconds, "to": 0},
                "datasourceUid": datasource_uid,
                "model": _sorted(query),
            },
            _expr(
                "B",
                {
                    "expression": "A",
                    "reducer": reducer,
                    "settings": {"mode": "dropNN"},
                    "type": "reduce",
                },
            ),
            _expr(
                "C",
                {
                    "conditions": [{"evaluator": {"params": [threshold], "type": "gt"}}],
                    "expression": "B",
                    "type": "threshold",
                },
            ),
        ],
        "dashboardUid": dashboard_uid,
        "panelId": panel_id,
        # Idle towns tick only every 5 min; a window without ticks is normal,
        # not an outage. Query failures still surface as errors.
        "noDataState": "OK",
        "execErrState": "Error",
        "for": for_,
        "annotations": {
            "__dashboardUid__": dashboard_uid,
            "__panelId__": str(panel_id),
            "summary": summary,
            "description": description,
        },
        "labels": {"service": "gastown", "component": "reconciler", "severity": severity},
        "isPaused": False,
    }


def alert_rules(dashboard: dict[str, Any]) -> dict[str, Any]:
    """Grafana unified-alerting file provisioning (``apiVersion: 1``) for the row.

    Works on the input or the output of :func:`add_reconciler_row` (the row is
    computed the same way); annotations link each rule to its panel.
    """
    updated = add_reconciler_row(dashboard)
    dashboard_uid = updated.get("uid")
    if not isinstance(dashboard_uid, str) or not dashboard_uid:
        raise BadInputError("dashboard has no 'uid'; alert annotations need it to link panels")
    datasource = dashboard_datasource(updated)
    ds_uid = _concrete_uid(updated, datasource)
    ids = {p["title"]: p["id"] for p in reconciler_panels(updated)}
    common = {
        "dashboard_uid": dashboard_uid,
        "datasource_type": str(datasource["type"]),
        "datasource_uid": ds_uid,
    }
    rules = [
        _rule(
            uid="gastown-reconciler-invariants",
            title="Reconciler invariant violations",
            sql=SQL_ALERT_VIOLATIONS,
            window_seconds=5 * 60,
            reducer="sum",
            threshold=0,
            for_="1m",
            severity="critical",
            summary=(
                "Town {{ $labels.town }}: {{ $values.B }} reconciler invariant "
                "violation(s) in 5 min"
            ),
            description=(
                "A healthy reconciler never violates an invariant (double7 of reconciler_tick). "
                "Check the Sentry messages tagged with this townId."
            ),
            panel_id=ids["Invariant Violations"],
            **common,
        ),
        _rule(
            uid="gastown-reconciler-wall-clock",
            title="Reconciler wall clock above 500 ms",
            sql=SQL_ALERT_WALL_CLOCK,
            window_seconds=10 * 60,
            reducer="mean",
            threshold=500,
            for_="5m",
            severity="warning",
            summary=(
                "Town {{ $labels.town }}: reconcile takes {{ $values.B }} ms on average (10 min)"
            ),
            description=(
                "Average reconcile wall clock (double1) over 10 minutes is above 500 ms; "
                "healthy is under 100 ms."
            ),
            panel_id=ids["Reconciler Wall Clock Time"],
            **common,
        ),
        _rule(
            uid="gastown-reconciler-pending-queue",
            title="Reconciler pending event queue above 50",
            sql=SQL_ALERT_PENDING,
            window_seconds=2 * IDLE_TICK_SECONDS,
            reducer="last",
            threshold=50,
            for_="5m",
            severity="warning",
            summary="Town {{ $labels.town }}: {{ $values.B }} pending events at the latest tick",
            description=(
                "The latest tick's pending event count (double8) is above 50; it should "
                "drain to 0 between ticks. The 10-minute window always holds an idle "
                "town's latest tick."
            ),
            panel_id=ids["Pending Event Queue Depth (worst town)"],
            **common,
        ),
    ]
    return {
        "apiVersion": 1,
        "groups": [
            {
                "orgId": 1,
                "name": ALERT_GROUP,
                "folder": ALERT_FOLDER,
                "interval": ALERT_INTERVAL,
                "rules": rules,
            }
        ],
    }


# --------------------------------------------------------------------------- #
# Files
# --------------------------------------------------------------------------- #


def load_dashboard(path: Path) -> dict[str, Any]:
    """Read a dashboard JSON file; :class:`BadInputError` names the file and problem."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInputError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise BadInputError(f"{path}: cannot read: {err}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise BadInputError(
            f"{path}: invalid JSON at line {err.lineno} column {err.colno}: {err.msg}"
        ) from None
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: top level is a JSON {type(data).__name__}, not an object")
    if not isinstance(data.get("panels", []), list):
        raise BadInputError(f"{path}: 'panels' is not a list")
    return data


def dashboard_json(dashboard: dict[str, Any]) -> str:
    """Grafana-style JSON: key order kept, indent 2, trailing newline."""
    return json.dumps(dashboard, indent=2, ensure_ascii=False) + "\n"


def alerts_yaml(provisioning: dict[str, Any]) -> str:
    """Provisioning YAML: key order kept, one line per SQL query."""
    text: str = yaml.safe_dump(
        provisioning, sort_keys=False, allow_unicode=True, default_flow_style=False, width=4096
    )
    return text


def write_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temp file in the same folder and ``os.replace``."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = 0o644
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as err:
        raise BadInputError(f"{path}: cannot write: {err}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise BadInputError(f"{path}: cannot write: {err}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def update_dashboard_file(in_path: Path, out_path: Path, alerts_path: Path | None = None) -> None:
    """``reportgen dashboard --in --out [--alerts]``: add the row, optionally write rules."""
    dashboard = load_dashboard(in_path)
    try:
        updated = add_reconciler_row(dashboard)
        rules = alert_rules(updated) if alerts_path is not None else None
    except BadInputError as err:
        raise BadInputError(f"{in_path}: {err}") from None
    write_atomic(out_path, dashboard_json(updated))
    if alerts_path is not None and rules is not None:
        write_atomic(alerts_path, alerts_yaml(rules))


def check_dashboard_file(path: Path) -> list[str]:
    """``reportgen dashboard --check FILE``: the problems :func:`check_dashboard` finds."""
    return check_dashboard(load_dashboard(path))
