"""Grafana unified-alerting rules for the Reconciler row (file provisioning, ``apiVersion: 1``).

Three rules watch what the row shows: invariant violations, the reconcile
wall clock and the pending event queue. Each rule links to its panel, so the
rules are computed from the dashboard the row was added to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from reportgen.errors import BadInputError
from reportgen.observability.grafana_json import JSONDict
from reportgen.observability.grafana_panels import (
    DATASET,
    IDLE_TICK_SECONDS,
    TICK_WHERE,
    sorted_keys,
    sql_target,
)
from reportgen.observability.grafana_row import (
    add_reconciler_row,
    concrete_uid,
    dashboard_datasource,
    reconciler_panels,
)

ALERT_FOLDER = "Gastown"
ALERT_GROUP = "gastown-reconciler"
ALERT_INTERVAL = "1m"

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


@dataclass(frozen=True)
class _RuleSpec:
    """One rule's own settings; ``panel_title`` names the panel it links to."""

    uid: str
    title: str
    sql: str
    window_seconds: int
    reducer: str
    threshold: float
    for_: str
    severity: str
    summary: str
    description: str
    panel_title: str


_RULES = (
    _RuleSpec(
        uid="gastown-reconciler-invariants",
        title="Reconciler invariant violations",
        sql=SQL_ALERT_VIOLATIONS,
        window_seconds=5 * 60,
        reducer="sum",
        threshold=0,
        for_="1m",
        severity="critical",
        summary=(
            "Town {{ $labels.town }}: {{ $values.B }} reconciler invariant violation(s) in 5 min"
        ),
        description=(
            "A healthy reconciler never violates an invariant (double7 of reconciler_tick). "
            "Check the Sentry messages tagged with this townId."
        ),
        panel_title="Invariant Violations",
    ),
    _RuleSpec(
        uid="gastown-reconciler-wall-clock",
        title="Reconciler wall clock above 500 ms",
        sql=SQL_ALERT_WALL_CLOCK,
        window_seconds=10 * 60,
        reducer="mean",
        threshold=500,
        for_="5m",
        severity="warning",
        summary="Town {{ $labels.town }}: reconcile takes {{ $values.B }} ms on average (10 min)",
        description=(
            "Average reconcile wall clock (double1) over 10 minutes is above 500 ms; "
            "healthy is under 100 ms."
        ),
        panel_title="Reconciler Wall Clock Time",
    ),
    _RuleSpec(
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
        panel_title="Pending Event Queue Depth (worst town)",
    ),
)


def _expr(ref_id: str, model: JSONDict) -> JSONDict:
    """A server-side expression step (``__expr__`` datasource) of a rule's query chain."""
    return {
        "refId": ref_id,
        "relativeTimeRange": {"from": 0, "to": 0},
        "datasourceUid": "__expr__",
        "model": sorted_keys(
            {
                **model,
                "datasource": {"type": "__expr__", "uid": "__expr__"},
                "intervalMs": 1000,
                "maxDataPoints": 43200,
                "refId": ref_id,
            }
        ),
    }


def _rule_data(spec: _RuleSpec, datasource_type: str, datasource_uid: str) -> list[JSONDict]:
    """Query ``A`` (one number per town), reduce it to ``B``, compare ``B`` in ``C``.

    Grafana evaluates ``C`` (the rule's condition) per town label, so each
    town fires on its own.
    """
    query = {
        **sql_target(spec.sql, "table"),
        "datasource": {"type": datasource_type, "uid": datasource_uid},
        "intervalMs": 1000,
        "maxDataPoints": 43200,
    }
    reduce = {
        "expression": "A",
        "reducer": spec.reducer,
        "settings": {"mode": "dropNN"},
        "type": "reduce",
    }
    threshold = {
        "conditions": [{"evaluator": {"params": [spec.threshold], "type": "gt"}}],
        "expression": "B",
        "type": "threshold",
    }
    return [
        {
            "refId": "A",
            "relativeTimeRange": {"from": spec.window_seconds, "to": 0},
            "datasourceUid": datasource_uid,
            "model": sorted_keys(query),
        },
        _expr("B", reduce),
        _expr("C", threshold),
    ]


def _rule(
    spec: _RuleSpec,
    *,
    dashboard_uid: str,
    panel_id: int,
    datasource_type: str,
    datasource_uid: str,
) -> JSONDict:
    """One provisioned rule, annotated with the dashboard and panel it belongs to."""
    return {
        "uid": spec.uid,
        "title": spec.title,
        "condition": "C",
        "data": _rule_data(spec, datasource_type, datasource_uid),
        "dashboardUid": dashboard_uid,
        "panelId": panel_id,
        # Idle towns tick only every 5 min; a window without ticks is normal,
        # not an outage. Query failures still surface as errors.
        "noDataState": "OK",
        "execErrState": "Error",
        "for": spec.for_,
        "annotations": {
            "__dashboardUid__": dashboard_uid,
            "__panelId__": str(panel_id),
            "summary": spec.summary,
            "description": spec.description,
        },
        "labels": {"service": "gastown", "component": "reconciler", "severity": spec.severity},
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
    ds_uid = concrete_uid(updated, datasource)
    ids = {p["title"]: p["id"] for p in reconciler_panels(updated)}
    rules = [
        _rule(
            spec,
            dashboard_uid=dashboard_uid,
            panel_id=ids[spec.panel_title],
            datasource_type=str(datasource["type"]),
            datasource_uid=ds_uid,
        )
        for spec in _RULES
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


def alerts_yaml(provisioning: dict[str, Any]) -> str:
    """Provisioning YAML: key order kept, one line per SQL query."""
    text: str = yaml.safe_dump(
        provisioning, sort_keys=False, allow_unicode=True, default_flow_style=False, width=4096
    )
    return text
