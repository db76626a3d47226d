"""``reportgen dashboard``: the Reconciler row, its alert rules, and ``--check``.

Runs against upstream's real "Gastown Operations" dashboard (30 panels, before
upstream added its own reconciler row) from ``tests/fixtures/grafana``.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from support.fixture_files import GRAFANA, fixture_file

from reportgen.cli.dashboard import dashboard as dashboard_cmd
from reportgen.errors import BadInputError
from reportgen.observability import grafana

FIXTURE = fixture_file(GRAFANA / "gastown-grafana-dash-1.json")
DS = {"type": "vertamedia-clickhouse-datasource", "uid": "bffxugc31cnpcc"}
NEW_IDS = list(range(200, 207))
IDLE_TICK_MS = 5 * 60 * 1000

_BASE = "thresholds base step has value 0; the first step should be null (-Infinity)"
#: What --check says about upstream's file: every thresholds block (22 panels'
#: defaults plus the error_count overrides of tables 17 and 18) starts with
#: ``value: 0`` instead of null (spec quirk 6). Nothing else is wrong.
UPSTREAM_PROBLEMS = [
    f'warning: panel 1 "Total Events": {_BASE}',
    f'warning: panel 2 "Unique Users": {_BASE}',
    f'warning: panel 3 "Avg Latency": {_BASE}',
    f'warning: panel 4 "Error Rate": {_BASE}',
    f'warning: panel 5 "Requests Per Second (by delivery)": {_BASE}',
    f'warning: panel 6 "Event Volume (by delivery)": {_BASE}',
    f'warning: panel 7 "Event Volume (all events)": {_BASE}',
    f'warning: panel 8 "Error Count Over Time (by event)": {_BASE}',
    f'warning: panel 9 "Error Rate Over Time (by delivery)": {_BASE}',
    f'warning: panel 10 "Error Counts by Event": {_BASE}',
    f'warning: panel 11 "Top Error Messages": {_BASE}',
    f'warning: panel 12 "Avg Latency Over Time (by delivery)": {_BASE}',
    f'warning: panel 14 "Slowest Endpoints": {_BASE}',
    f'warning: panel 15 "Active Users Over Time": {_BASE}',
    f'warning: panel 16 "Active Towns Over Time": {_BASE}',
    f'warning: panel 17 "Top Users by Event Count": {_BASE}',
    f'warning: panel 17 "Top Users by Event Count" override 1 (byName "error_count"): {_BASE}',
    f'warning: panel 18 "Top Users by Error Count": {_BASE}',
    f'warning: panel 18 "Top Users by Error Count" override 1 (byName "error_count"): {_BASE}',
    f'warning: panel 19 "Events by Delivery Type": {_BASE}',
    f'warning: panel 20 "Events by Count": {_BASE}',
    f'warning: panel 21 "All Events Summary": {_BASE}',
    f'warning: panel 22 "Bead Lifecycle Events": {_BASE}',
    f'warning: panel 23 "Agent & Review Events": {_BASE}',
]


# --------------------------------------------------------------------------- #
# Fixtures and helpers
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def original() -> dict[str, Any]:
    if not FIXTURE.exists():
        pytest.fail(f"upstream dashboard fixture missing: {FIXTURE}")
    data: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def updated(original: dict[str, Any]) -> dict[str, Any]:
    return grafana.add_reconciler_row(original)


def new_panels(dashboard: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {p["id"]: p for p in dashboard["panels"] if p["id"] in NEW_IDS}


def queries(panel: dict[str, Any]) -> list[str]:
    return [t["query"] for t in panel.get("targets", [])]


def steps(panel: dict[str, Any]) -> list[tuple[float | None, str]]:
    thresholds = panel["fieldConfig"]["defaults"]["thresholds"]
    return [(s["value"], s["color"]) for s in thresholds["steps"]]


def null_base_steps(dashboard: dict[str, Any]) -> dict[str, Any]:
    """``dashboard`` with every thresholds base step set to null (quirk 6 fixed)."""
    fixed = copy.deepcopy(dashboard)
    for panel in fixed["panels"]:
        field_config = panel.get("fieldConfig", {})
        blocks = [field_config.get("defaults", {}).get("thresholds")]
        for override in field_config.get("overrides", []):
            blocks += [p["value"] for p in override["properties"] if p["id"] == "thresholds"]
        for block in blocks:
            if block:
                block["steps"][0]["value"] = None
    return fixed


def run(*args: str) -> Any:
    return CliRunner().invoke(dashboard_cmd, list(args), catch_exceptions=False)


# --------------------------------------------------------------------------- #
# The upstream file as it is
# --------------------------------------------------------------------------- #


def test_fixture_is_upstream_30_panel_dashboard(original: dict[str, Any]) -> None:
    assert original["uid"] == "gastown-ops-1"
    assert len(original["panels"]) == 30
    assert max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in original["panels"]) == 104


def test_check_upstream_reports_exact_problems(original: dict[str, Any]) -> None:
    assert grafana.check_dashboard(original) == UPSTREAM_PROBLEMS


def test_check_cli_on_upstream_lists_warnings_and_passes() -> None:
    result = run("--check", str(FIXTURE))
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [*UPSTREAM_PROBLEMS, f"{FIXTURE}: ok (24 warning(s))"]


def test_check_cli_strict_fails_on_warnings() -> None:
    result = run("--check", str(FIXTURE), "--strict")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == UPSTREAM_PROBLEMS
    assert f"{FIXTURE}: 24 problem(s)" in result.stderr


def test_check_passes_on_the_upstream_dashboard_after_dashboard(tmp_path: Path) -> None:
    out = tmp_path / "dash.json"
    assert run("--in", str(FIXTURE), "--out", str(out)).exit_code == 0
    result = run("--check", str(out))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == f"{out}: ok (24 warning(s))"


def test_upstream_is_clean_once_base_steps_are_null(original: dict[str, Any]) -> None:
    assert grafana.check_dashboard(null_base_steps(original)) == []


# --------------------------------------------------------------------------- #
# dashboard --in/--out on the upstream file
# --------------------------------------------------------------------------- #


def test_cli_adds_row_and_keeps_the_30_original_panels(
    tmp_path: Path, original: dict[str, Any]
) -> None:
    out, alerts = tmp_path / "dash.json", tmp_path / "alerts.yaml"
    result = run("--in", str(FIXTURE), "--out", str(out), "--alerts", str(alerts))
    assert result.exit_code == 0, result.output
    written = json.loads(out.read_text(encoding="utf-8"))
    assert written["panels"][:30] == original["panels"]
    assert [p["id"] for p in written["panels"][30:]] == NEW_IDS
    for key in original:
        if key not in ("panels", "templating"):
            assert written[key] == original[key], key
    assert written["templating"]["list"][0] == original["templating"]["list"][0]
    assert [v["name"] for v in written["templating"]["list"]] == ["DS_GASTOWN", "town"]
    text = out.read_text(encoding="utf-8")
    assert text.endswith("}\n") and text.startswith('{\n  "annotations"')
    assert yaml.safe_load(alerts.read_text(encoding="utf-8"))["apiVersion"] == 1


def test_add_is_pure(original: dict[str, Any]) -> None:
    before = copy.deepcopy(original)
    grafana.add_reconciler_row(original)
    assert original == before


def test_original_panels_unchanged_library(
    original: dict[str, Any], updated: dict[str, Any]
) -> None:
    assert updated["panels"][:30] == original["panels"]
    assert len(updated["panels"]) == 37


def test_check_after_dashboard_adds_no_problems(
    original: dict[str, Any], updated: dict[str, Any]
) -> None:
    # The 30 original panels must stay byte-for-byte, so their quirk-6 base
    # steps remain; the generated row itself adds nothing.
    assert grafana.check_dashboard(updated) == UPSTREAM_PROBLEMS
    assert grafana.check_dashboard(grafana.add_reconciler_row(null_base_steps(original))) == []


def test_check_cli_passes_on_output_of_fixed_upstream(
    tmp_path: Path, original: dict[str, Any]
) -> None:
    src, out = tmp_path / "fixed.json", tmp_path / "out.json"
    src.write_text(json.dumps(null_base_steps(original), indent=2), encoding="utf-8")
    assert run("--in", str(src), "--out", str(out)).exit_code == 0
    result = run("--check", str(out))
    assert result.exit_code == 0
    assert result.stdout == f"{out}: ok\n"


def test_row_placed_below_existing_panels(updated: dict[str, Any]) -> None:
    panels = new_panels(updated)
    row = panels[200]
    assert row["type"] == "row" and row["title"] == "Reconciler"
    assert row["gridPos"] == {"h": 1, "w": 24, "x": 0, "y": 104}
    assert row["collapsed"] is False and row["panels"] == []
    for pid in NEW_IDS[1:]:
        assert panels[pid]["gridPos"]["y"] > 104
        assert panels[pid]["gridPos"]["x"] + panels[pid]["gridPos"]["w"] <= 24


@pytest.mark.parametrize(
    ("pid", "ptype", "unit", "expected_steps"),
    [
        (201, "timeseries", "short", [(None, "green")]),
        (202, "timeseries", "short", [(None, "green")]),
        (203, "timeseries", "short", [(None, "green")]),
        (204, "stat", "none", [(None, "green"), (1, "red")]),
        (205, "timeseries", "ms", [(None, "green"), (500, "red")]),
        (206, "gauge", "none", [(None, "green"), (25, "yellow"), (50, "red")]),
    ],
)
def test_new_panel_types_units_thresholds(
    updated: dict[str, Any],
    pid: int,
    ptype: str,
    unit: str,
    expected_steps: list[tuple[float | None, str]],
) -> None:
    panel = new_panels(updated)[pid]
    assert panel["type"] == ptype
    assert panel["fieldConfig"]["defaults"]["unit"] == unit
    assert steps(panel) == expected_steps
    assert panel["datasource"] == DS
    assert panel["pluginVersion"] == "12.4.1"
    assert [t["refId"] for t in panel["targets"]] == ["A"]
    for target in panel["targets"]:
        assert target["query"] == target["rawSql"]
        assert "blob1 = 'reconciler_tick'" in target["query"]
        assert target["table"] == "gastown_events"


def test_panel_columns_follow_upstream_mapping(updated: dict[str, Any]) -> None:
    panels = new_panels(updated)
    assert "double2" in queries(panels[201])[0]
    assert "JSONExtractKeysAndValues(blob10, 'Float64')" in queries(panels[202])[0]
    assert all(f"double{n}" in queries(panels[203])[0] for n in (4, 5, 6))
    assert "double7" in queries(panels[204])[0]
    assert "double1" in queries(panels[205])[0]
    assert "double8" in queries(panels[206])[0]
    for pid in (201, 202, 203, 204, 205):
        assert "_sample_interval" in queries(panels[pid])[0]


def test_bars_are_stacked(updated: dict[str, Any]) -> None:
    custom = new_panels(updated)[202]["fieldConfig"]["defaults"]["custom"]
    assert custom["drawStyle"] == "bars"
    assert custom["stacking"] == {"group": "A", "mode": "normal"}


def test_side_effects_fixed_colours(updated: dict[str, Any]) -> None:
    overrides = new_panels(updated)[203]["fieldConfig"]["overrides"]
    colours = {
        o["matcher"]["options"]: o["properties"][0]["value"]
        for o in overrides
        if o["matcher"]["id"] == "byName"
    }
    assert colours == {
        "attempted": {"fixedColor": "blue", "mode": "fixed"},
        "succeeded": {"fixedColor": "green", "mode": "fixed"},
        "failed": {"fixedColor": "red", "mode": "fixed"},
    }


def test_invariant_counter_is_red_above_zero(updated: dict[str, Any]) -> None:
    panel = new_panels(updated)[204]
    assert panel["options"]["colorMode"] == "background"
    assert panel["options"]["reduceOptions"]["calcs"] == ["sum"]


def test_wall_clock_threshold_line(updated: dict[str, Any]) -> None:
    custom = new_panels(updated)[205]["fieldConfig"]["defaults"]["custom"]
    assert custom["thresholdsStyle"] == {"mode": "line"}


def test_gauge_shows_latest_depth_of_worst_town(updated: dict[str, Any]) -> None:
    panel = new_panels(updated)[206]
    assert panel["options"]["reduceOptions"] == {
        "calcs": ["lastNotNull"],
        "fields": "",
        "values": False,
    }
    (sql,) = queries(panel)
    assert panel["targets"][0]["format"] == "table"
    assert "argMax(double8, timestamp)" in sql  # latest tick per town …
    assert "GROUP BY town" in sql
    assert sql.endswith("ORDER BY pending DESC LIMIT 1")  # … worst town
    assert "$timeSeries" not in sql and "avg" not in sql.lower()  # no window average
    assert panel["fieldConfig"]["defaults"]["min"] == 0


def test_town_variable_filters_every_new_panel(updated: dict[str, Any]) -> None:
    (town,) = [v for v in updated["templating"]["list"] if v["name"] == "town"]
    assert town["type"] == "query"
    assert town["datasource"] == DS
    assert town["multi"] is True and town["includeAll"] is True
    assert town["refresh"] == 2  # re-query towns when the time range changes
    assert "blob1 = 'reconciler_tick'" in town["query"] and "blob6" in town["query"]
    assert town["definition"] == town["query"]
    for pid, panel in new_panels(updated).items():
        if pid == 200:
            continue
        for sql in queries(panel):
            assert "blob6 IN (${town:singlequote})" in sql, pid


def test_no_gap_settings(updated: dict[str, Any]) -> None:
    """A healthy idle town (one tick per 5 min) must draw a continuous line."""
    for pid, panel in new_panels(updated).items():
        if panel["type"] == "timeseries":
            custom = panel["fieldConfig"]["defaults"]["custom"]
            # Grafana joins a null run when the gap is *strictly* below spanNulls:
            # one empty 5-minute bucket leaves neighbours 10 min apart.
            assert isinstance(custom["spanNulls"], int) and not isinstance(
                custom["spanNulls"], bool
            )
            assert custom["spanNulls"] >= IDLE_TICK_MS, pid
            assert custom["spanNulls"] > 2 * IDLE_TICK_MS, pid
            assert custom["insertNulls"] is False
        if any("$timeSeries" in sql for sql in queries(panel)):
            # Buckets never shorter than the idle cadence.
            assert panel["interval"] == "5m", pid
            assert all(t["extrapolate"] is False for t in panel["targets"])
    assert grafana.SPAN_NULLS_MS == 900_000


# --------------------------------------------------------------------------- #
# Idempotency and ids
# --------------------------------------------------------------------------- #


def test_second_run_is_byte_identical(tmp_path: Path) -> None:
    first, second = tmp_path / "first.json", tmp_path / "second.json"
    alerts1, alerts2 = tmp_path / "a1.yaml", tmp_path / "a2.yaml"
    assert run("--in", str(FIXTURE), "--out", str(first), "--alerts", str(alerts1)).exit_code == 0
    assert run("--in", str(first), "--out", str(second), "--alerts", str(alerts2)).exit_code == 0
    assert first.read_bytes() == second.read_bytes()
    assert alerts1.read_bytes() == alerts2.read_bytes()
    # in place, too
    assert run("--in", str(second), "--out", str(second)).exit_code == 0
    assert second.read_bytes() == first.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a1.yaml",
        "a2.yaml",
        "first.json",
        "second.json",
    ]


def test_rerun_after_user_collapsed_the_row(updated: dict[str, Any]) -> None:
    collapsed = copy.deepcopy(updated)
    row = next(p for p in collapsed["panels"] if p["id"] == 200)
    children = [p for p in collapsed["panels"] if p["id"] in NEW_IDS[1:]]
    row["collapsed"], row["panels"] = True, children
    collapsed["panels"] = [p for p in collapsed["panels"] if p["id"] not in NEW_IDS[1:]]
    assert grafana.add_reconciler_row(collapsed) == updated


def test_ids_never_collide(original: dict[str, Any]) -> None:
    crowded = copy.deepcopy(original)
    extra = copy.deepcopy(original["panels"][1])
    extra["id"], extra["gridPos"] = 203, {"h": 4, "w": 6, "x": 0, "y": 104}
    crowded["panels"].append(extra)
    out = grafana.add_reconciler_row(crowded)
    ids = [p["id"] for p in out["panels"]]
    assert len(ids) == len(set(ids))
    assert ids[31:] == list(range(300, 307))
    assert out["panels"][31]["gridPos"]["y"] == 108
    assert grafana.add_reconciler_row(out) == out
    assert grafana.check_dashboard(out) == grafana.check_dashboard(crowded)


def test_reuses_templated_datasource(original: dict[str, Any]) -> None:
    templated = copy.deepcopy(original)
    for panel in templated["panels"]:
        if "datasource" in panel:
            panel["datasource"] = {"type": DS["type"], "uid": "${DS_GASTOWN}"}
    out = grafana.add_reconciler_row(templated)
    for panel in new_panels(out).values():
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": DS["type"], "uid": "${DS_GASTOWN}"}
    rules = grafana.alert_rules(out)["groups"][0]["rules"]
    assert {r["data"][0]["datasourceUid"] for r in rules} == {"bffxugc31cnpcc"}


def test_foreign_town_variable_is_refused(original: dict[str, Any]) -> None:
    clash = copy.deepcopy(original)
    clash["templating"]["list"].append({"name": "town", "type": "custom", "query": "a,b"})
    with pytest.raises(BadInputError, match="already has a template variable 'town'"):
        grafana.add_reconciler_row(clash)


def test_dashboard_without_clickhouse_datasource_is_refused() -> None:
    with pytest.raises(BadInputError, match="no vertamedia-clickhouse-datasource"):
        grafana.add_reconciler_row({"panels": [], "templating": {"list": []}})


# --------------------------------------------------------------------------- #
# Alert rules
# --------------------------------------------------------------------------- #


def test_alert_rules_structure(updated: dict[str, Any]) -> None:
    provisioning = grafana.alert_rules(updated)
    assert provisioning["apiVersion"] == 1
    (group,) = provisioning["groups"]
    assert group["orgId"] == 1 and group["folder"] and group["interval"] == "1m"
    rules = {r["uid"]: r for r in group["rules"]}
    expected = {
        # uid: (panel id, window s, reducer, threshold, for)
        "gastown-reconciler-invariants": (204, 300, "sum", 0, "1m"),
        "gastown-reconciler-wall-clock": (205, 600, "mean", 500, "5m"),
        "gastown-reconciler-pending-queue": (206, 600, "last", 50, "5m"),
    }
    assert set(rules) == set(expected)
    panel_titles = {p["id"]: p["title"] for p in updated["panels"]}
    for uid, (panel_id, window, reducer, threshold, for_) in expected.items():
        rule = rules[uid]
        assert len(uid) <= 40
        query, reduce, thresh = rule["data"]
        assert rule["condition"] == "C"
        assert query["refId"] == "A" and query["datasourceUid"] == DS["uid"]
        assert query["relativeTimeRange"] == {"from": window, "to": 0}
        assert query["model"]["datasource"] == DS
        assert query["model"]["refId"] == "A"
        assert query["model"]["query"] == query["model"]["rawSql"]
        assert "blob1 = 'reconciler_tick'" in query["model"]["query"]
        assert "GROUP BY town" in query["model"]["query"]
        assert "${town" not in query["model"]["query"]  # no dashboard variables in alerting
        assert reduce["datasourceUid"] == "__expr__"
        assert reduce["model"]["type"] == "reduce" and reduce["model"]["expression"] == "A"
        assert reduce["model"]["reducer"] == reducer
        assert thresh["datasourceUid"] == "__expr__"
        assert thresh["model"]["type"] == "threshold" and thresh["model"]["expression"] == "B"
        assert thresh["model"]["conditions"] == [
            {"evaluator": {"params": [threshold], "type": "gt"}}
        ]
        assert rule["for"] == for_
        # Idle towns tick only every 5 min: an empty window is not an outage.
        assert rule["noDataState"] == "OK"
        assert rule["execErrState"] == "Error"
        assert rule["annotations"]["__dashboardUid__"] == "gastown-ops-1"
        assert rule["annotations"]["__panelId__"] == str(panel_id)
        assert rule["dashboardUid"] == "gastown-ops-1" and rule["panelId"] == panel_id
        assert panel_id in NEW_IDS and panel_titles[panel_id]
        assert rule["labels"]["severity"] in {"critical", "warning"}
        assert "{{ $labels.town }}" in rule["annotations"]["summary"]
    assert grafana.alert_rules(updated) == provisioning
    assert grafana.alert_rules(grafana.add_reconciler_row(updated)) == provisioning


def test_alert_rules_need_dashboard_uid(original: dict[str, Any]) -> None:
    no_uid = {k: v for k, v in original.items() if k != "uid"}
    with pytest.raises(BadInputError, match="no 'uid'"):
        grafana.alert_rules(no_uid)


# --------------------------------------------------------------------------- #
# Snapshots
# --------------------------------------------------------------------------- #


def test_snapshot_reconciler_row(updated: dict[str, Any], snapshot: Any) -> None:
    row = grafana.reconciler_panels(updated)
    variable = updated["templating"]["list"][-1]
    text = json.dumps({"panels": row, "town_variable": variable}, indent=2)
    assert text == snapshot


def test_snapshot_alerts_yaml(tmp_path: Path, snapshot: Any) -> None:
    out, alerts = tmp_path / "d.json", tmp_path / "alerts.yaml"
    assert run("--in", str(FIXTURE), "--out", str(out), "--alerts", str(alerts)).exit_code == 0
    assert alerts.read_text(encoding="utf-8") == snapshot


# --------------------------------------------------------------------------- #
# Checker negatives
# --------------------------------------------------------------------------- #


def _panel(pid: int, x: int, y: int, w: int = 12, h: int = 8, **extra: Any) -> dict[str, Any]:
    panel: dict[str, Any] = {
        "datasource": dict(DS),
        "fieldConfig": {
            "defaults": {
                "thresholds": {
                    "mode": "absolute",
                    "steps": [{"color": "green", "value": None}, {"color": "red", "value": 80}],
                }
            },
            "overrides": [],
        },
        "gridPos": {"h": h, "w": w, "x": x, "y": y},
        "id": pid,
        "targets": [{"refId": "A", "query": "SELECT 1"}],
        "title": f"P{pid}",
        "type": "timeseries",
    }
    panel.update(extra)
    return panel


def _dashboard(*panels: dict[str, Any]) -> dict[str, Any]:
    return {
        "panels": list(panels),
        "templating": {
            "list": [
                {
                    "current": {"text": "kilo", "value": DS["uid"]},
                    "name": "DS_GASTOWN",
                    "query": DS["type"],
                    "type": "datasource",
                }
            ]
        },
        "uid": "x",
    }


def test_checker_accepts_a_clean_dashboard() -> None:
    row = {"collapsed": False, "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}, "id": 9}
    row |= {"panels": [], "title": "R", "type": "row"}
    clean = _dashboard(row, _panel(1, 0, 1), _panel(2, 12, 1))
    clean["panels"][2]["datasource"] = {"type": DS["type"], "uid": "${DS_GASTOWN}"}
    clean["panels"][2]["targets"].append({"refId": "B", "datasource": {"uid": "-- Mixed --"}})
    assert grafana.check_dashboard(clean) == []


def _set_steps(panel: dict[str, Any], values: list[float | None]) -> None:
    panel["fieldConfig"]["defaults"]["thresholds"]["steps"] = [
        {"color": "green", "value": v} for v in values
    ]


def _broken(kind: str) -> dict[str, Any]:  # noqa: C901 - one flat branch per kind of breakage
    a, b = _panel(1, 0, 0), _panel(2, 12, 0)
    if kind == "duplicate id":
        b["id"] = 1
    elif kind == "duplicate refId":
        a["targets"].append({"refId": "A", "query": "SELECT 2"})
    elif kind == "out of grid":
        b["gridPos"]["w"] = 13
    elif kind == "negative x":
        b["gridPos"]["x"] = -1
    elif kind == "overlap":
        b["gridPos"]["x"] = 6
    elif kind == "descending thresholds":
        _set_steps(a, [None, 80, 50])
    elif kind == "non-null base":
        _set_steps(a, [0, 80])
    elif kind == "override thresholds":
        a["fieldConfig"]["overrides"] = [
            {
                "matcher": {"id": "byName", "options": "x"},
                "properties": [
                    {"id": "thresholds", "value": {"mode": "absolute", "steps": [{"value": 5}]}}
                ],
            }
        ]
    elif kind == "unknown datasource uid":
        b["datasource"] = {"type": DS["type"], "uid": "nope"}
    elif kind == "unknown datasource variable":
        b["targets"][0]["datasource"] = {"type": DS["type"], "uid": "${DS_OTHER}"}
    elif kind == "datasource type mismatch":
        b["datasource"] = {"type": "prometheus", "uid": DS["uid"]}
    elif kind == "missing refId":
        b["targets"] = [{"query": "SELECT 1"}]
    return _dashboard(a, b)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("duplicate id", ['panel id 1 is used by 2 panels: panel 1 "P1", panel 1 "P2"']),
        ("duplicate refId", ["panel 1 \"P1\": refId 'A' is used by 2 targets"]),
        (
            "out of grid",
            [
                'panel 2 "P2": gridPos x=12 y=0 w=13 h=8 is outside the 24-column grid '
                "(needs x >= 0, y >= 0, w >= 1, h >= 1, x + w <= 24)"
            ],
        ),
        (
            "negative x",
            [
                'panel 2 "P2": gridPos x=-1 y=0 w=12 h=8 is outside the 24-column grid '
                "(needs x >= 0, y >= 0, w >= 1, h >= 1, x + w <= 24)",
                'panel 1 "P1" (x=0 y=0 w=12 h=8) overlaps panel 2 "P2" (x=-1 y=0 w=12 h=8)',
            ],
        ),
        (
            "overlap",
            ['panel 1 "P1" (x=0 y=0 w=12 h=8) overlaps panel 2 "P2" (x=6 y=0 w=12 h=8)'],
        ),
        (
            "descending thresholds",
            ['panel 1 "P1": thresholds not ascending: step 3 (50) is not above step 2 (80)'],
        ),
        (
            "non-null base",
            [
                'warning: panel 1 "P1": thresholds base step has value 0; '
                "the first step should be null (-Infinity)"
            ],
        ),
        (
            "override thresholds",
            [
                'warning: panel 1 "P1" override 1 (byName "x"): thresholds base step has '
                "value 5; the first step should be null (-Infinity)"
            ],
        ),
        (
            "unknown datasource uid",
            [
                "panel 2 \"P2\": datasource uid 'nope' is not resolvable "
                "(no datasource variable or __inputs entry declares it)"
            ],
        ),
        (
            "unknown datasource variable",
            [
                'panel 2 "P2" target A: datasource ${DS_OTHER} names no datasource '
                "variable or __inputs entry"
            ],
        ),
        (
            "datasource type mismatch",
            [
                "panel 2 \"P2\": datasource bffxugc31cnpcc has type 'prometheus' but is "
                "declared as 'vertamedia-clickhouse-datasource'"
            ],
        ),
        ("missing refId", ['panel 2 "P2": target 1 has no refId']),
    ],
)
def test_checker_detects(kind: str, expected: list[str]) -> None:
    assert grafana.check_dashboard(_broken(kind)) == expected


def test_checker_sees_inside_collapsed_rows() -> None:
    child_a, child_b = _panel(5, 0, 1), _panel(5, 6, 1)
    row = {"collapsed": True, "gridPos": {"h": 1, "w": 24, "x": 0, "y": 0}, "id": 9}
    row |= {"panels": [child_a, child_b], "title": "R", "type": "row"}
    problems = grafana.check_dashboard(_dashboard(row))
    assert problems == [
        'panel id 5 is used by 2 panels: panel 5 "P5", panel 5 "P5"',
        'panel 5 "P5" (x=0 y=1 w=12 h=8) overlaps panel 5 "P5" (x=6 y=1 w=12 h=8)',
    ]


def test_checker_known_datasource_uids() -> None:
    dash = _broken("unknown datasource uid")
    assert grafana.check_dashboard(dash, known_datasource_uids={"nope"}) == []


def test_check_cli_lists_problems(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(_broken("overlap")), encoding="utf-8")
    result = run("--check", str(path))
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        'panel 1 "P1" (x=0 y=0 w=12 h=8) overlaps panel 2 "P2" (x=6 y=0 w=12 h=8)'
    ]


# --------------------------------------------------------------------------- #
# Bad input and usage
# --------------------------------------------------------------------------- #


def test_missing_input_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    result = run("--in", str(missing), "--out", str(tmp_path / "o.json"))
    assert result.exit_code == 2
    assert result.stderr == f"error: {missing}: no such file\n"
    assert not (tmp_path / "o.json").exists()


def test_invalid_json(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"panels": [}\n', encoding="utf-8")
    result = run("--check", str(bad))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {bad}: invalid JSON at line 1 column 13")


def test_non_object_json(tmp_path: Path) -> None:
    bad = tmp_path / "list.json"
    bad.write_text("[]", encoding="utf-8")
    with pytest.raises(BadInputError, match="top level is a JSON list"):
        grafana.load_dashboard(bad)


def test_input_without_datasource_names_the_file(tmp_path: Path) -> None:
    src = tmp_path / "empty.json"
    src.write_text('{"panels": []}', encoding="utf-8")
    result = run("--in", str(src), "--out", str(tmp_path / "o.json"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {src}: dashboard has no vertamedia")


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--in", "a.json"],
        ["--check", "a.json", "--in", "b.json"],
        ["--check", "a.json", "--alerts", "b.yaml"],
    ],
)
def test_usage_errors(args: list[str]) -> None:
    result = CliRunner().invoke(dashboard_cmd, args)
    assert result.exit_code == 2
    assert "Usage:" in result.output
