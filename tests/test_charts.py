"""The town page's charts at spec level: what they count, the window they span, their bands.

The page's charts read named datasets (``reportgen.report.chart_data``) and are
drawn from Vega-Lite specs (``reportgen.report.charts``); these tests read both
as the page carries them, without a browser (the browser tests draw them).
"""

from __future__ import annotations

import copy
import json
import posixpath
import re
from pathlib import Path
from typing import Any

import pytest
import support.report_fixtures as rf

from reportgen.diagnose.episodes import to_ms
from reportgen.report import chart_data
from reportgen.report.build import build_site
from reportgen.report.charts import Chart
from reportgen.report.timeline_files import build_timeline
from reportgen.report.town_data import TownData, compute_town
from reportgen.report.views_town import TownPage, town_page
from reportgen.town_run import TownRun


def _town_page(data: TownData) -> TownPage:
    """The town page's view-model, with its timeline built as a build builds it."""
    return town_page(data, build_timeline(data).summary)


@pytest.fixture(scope="module")
def alpha() -> TownRun:
    return rf.scripted_town("town-alpha")


def _page(run: TownRun) -> TownPage:
    return _town_page(compute_town(run))


def _layers(chart: Chart) -> list[dict[str, Any]]:
    layers = chart.spec["layer"]
    assert isinstance(layers, list)
    return [layer for layer in layers if isinstance(layer, dict)]


def _domains(chart: Chart) -> list[list[int]]:
    """Every explicit x domain of a chart's layers, as ``[start, end]`` epoch ms."""
    found = []
    for layer in _layers(chart):
        domain = layer["encoding"].get("x", {}).get("scale", {}).get("domain")
        if domain is not None:
            found.append([int(n) for n in re.findall(r"\d+", domain["expr"])])
    return found


def _datasets_of(layer: dict[str, Any]) -> str:
    return str(layer.get("data", {}).get("name", ""))


@pytest.mark.parametrize(
    ("window_ms", "step"), [(60_000, 1_000), (3_600_000, 15_000), (86_400_000, 300_000)]
)
def test_buckets_keep_charts_small(window_ms: int, step: int) -> None:
    assert chart_data.bucket_size(window_ms) == step
    assert window_ms / step <= chart_data.MAX_BUCKETS


def test_datasets_aggregate_per_bucket(alpha: TownRun) -> None:
    ds = _page(alpha).datasets
    assert sum(r.n for r in ds.m) == len(alpha.ticks)
    assert sum(r.n for r in ds.a) == sum(t["metrics"]["actionsEmitted"] for t in alpha.ticks)
    assert len(ds.m) <= chart_data.MAX_BUCKETS


def test_every_chart_spans_exactly_the_window(alpha: TownRun) -> None:
    """One explicit domain per chart, the run's window: the charts of a page end together
    (the bundle's "Actions by type" once ended at its last action, 13 minutes early)."""
    # the window runs past the last tick and the last action: data-driven domains would not
    run = copy.copy(alpha)
    run.window_to = "2026-03-01T00:09:00.000Z"
    page = _page(run)
    window = [to_ms(run.window_from), to_ms(run.window_to)]
    assert [c.id for c in page.charts] == [
        "actions", "drained", "effects", "violations", "wall", "pending", "container",
    ]  # fmt: skip
    for chart in page.charts:
        assert _domains(chart) == [window], chart.id
        for layer in _layers(chart):
            x = layer["encoding"].get("x")
            if x is not None:  # every layer on the one UTC time scale, none nice-rounded
                assert x["type"] == "temporal" and x["scale"]["type"] == "utc", chart.id
                assert x["scale"].get("nice", False) is False


def test_tooltips_say_the_buckets_start_and_end_in_utc(alpha: TownRun) -> None:
    """Every time chart has a tooltip naming its bucket's span as text (the old tooltip
    formatted the time with a format type Vega-Lite does not know, and read "NaN")."""
    page = _page(alpha)
    text = json.dumps([c.spec for c in page.charts])
    assert '"formatType"' not in text
    for chart in page.charts:
        tips = [t for layer in _layers(chart) for t in layer["encoding"].get("tooltip", [])]
        assert {"field": "when", "type": "nominal", "title": "bucket"} in tips, chart.id
        calc = [
            t["calculate"]
            for layer in _layers(chart)
            for t in layer.get("transform", [])
            if t.get("as") == "when"
        ]
        assert calc and "utcFormat(datum.t, '%Y-%m-%d %H:%M:%S')" in calc[0] and "UTC" in calc[0]


def _tick(at: str, violations: int) -> dict[str, Any]:
    v = {"invariant": 7, "message": "x", "agent_ids": ["a"], "bead_ids": [], "rig_ids": []}
    return {
        "at": at,
        "metrics": {"invariantViolations": violations},
        "violations": [dict(v, agent_ids=[f"a{i}"]) for i in range(violations)],
    }


def test_violating_ticks_count_ticks_not_violations() -> None:
    """Three violations held for two ticks of one bucket: 2 violating ticks (the old chart
    summed the per-tick counter and read 6), at most 3 at once."""
    window = chart_data.window_of("2026-03-01T00:00:00.000Z", "2026-03-01T01:00:00.000Z")
    ticks = [
        _tick("2026-03-01T00:00:00.000Z", 3),
        _tick("2026-03-01T00:00:05.000Z", 3),
        _tick("2026-03-01T00:00:10.000Z", 0),
    ]
    (bucket,), _ = chart_data.tick_buckets(ticks, window)
    assert (bucket.n, bucket.vt, bucket.vm) == (3, 2, 3)
    assert not hasattr(bucket, "v")


def test_violation_chart_is_named_and_drawn_as_ticks(alpha: TownRun) -> None:
    chart = next(c for c in _page(alpha).charts if c.id == "violations")
    assert chart.title == "Violating ticks"
    assert "each counted once however many it reported" in chart.caption
    ys = [layer["encoding"]["y"]["field"] for layer in _layers(chart) if "y" in layer["encoding"]]
    assert "vt" in ys


def test_episodes_are_bands_on_the_action_and_violation_charts(alpha: TownRun) -> None:
    data = compute_town(alpha)
    page = _town_page(data)
    bands = [b for b in page.datasets.b if b.kind == "episode"]
    assert len(bands) == len(data.episodes) >= 2
    for ep in data.episodes:
        band = next(b for b in bands if b.href == data.rows[ep.id].href)
        assert (band.s, band.e) == (to_ms(ep.first_at), to_ms(ep.last_at))
        assert f"invariant {ep.invariant}" in band.label
    with_bands = {c.id for c in page.charts if "b" in {_datasets_of(x) for x in _layers(c)}}
    assert with_bands == {"actions", "violations"}
    # overlapping bands take different marker lanes
    for a in page.datasets.b:
        for b in page.datasets.b:
            if a is not b and a.s <= b.e and b.s <= a.e:
                assert a.lane != b.lane


def _finding(first: str, last: str, open_at_end: bool) -> dict[str, Any]:
    return {
        "id": "f1", "kind": "no-progress", "severity": "critical",
        "subject": {"kind": "bead", "id": "b1"}, "subject_name": "Fix the flaky login test",
        "first_at": first, "last_at": last, "open_at_end": open_at_end,
    }  # fmt: skip


def test_findings_are_bands_to_the_window_end_while_open(alpha: TownRun) -> None:
    run = copy.copy(alpha)
    run.diagnosis = {
        "verdict": "stuck",
        "findings": [
            _finding("2026-02-28T23:00:00.000Z", "2026-03-01T00:02:00.000Z", True),
            dict(_finding("2026-03-01T00:01:00.000Z", "2026-03-01T00:02:00.000Z", False), id="f2"),
        ],
    }
    found = [b for b in _page(run).datasets.b if b.kind == "finding"]
    start, end = to_ms(run.window_from), to_ms(run.window_to)
    assert [(b.s, b.e, b.href) for b in found] == [
        (start, end, "findings/f1.html"),  # began before the window: clipped to it
        (start + 60_000, start + 120_000, "findings/f2.html"),
    ]
    assert "no progress (critical) on Fix the flaky login test" in found[0].label


def test_a_click_on_a_bucket_opens_the_tick_href_of_its_tick(alpha: TownRun) -> None:
    """Each bucket links to ``TownData.tick_href`` of its first tick that did something."""
    data = compute_town(alpha)
    ds = _town_page(data).datasets
    assert {k.t for k in ds.k} == {m.t for m in ds.m}
    busy = next(t for t in alpha.ticks if t["actions"])
    link = next(k for k in ds.k if k.t <= to_ms(busy["at"]) < k.t + ds.window.step)
    assert f"{ds.tick_pages[link.p].href}#{link.f}" == data.tick_href(busy["at"])
    assert all(p.href in ds.hrefs for p in ds.tick_pages)


def test_every_chart_says_what_one_mark_is_and_where_it_comes_from(alpha: TownRun) -> None:
    page = _page(alpha)
    for chart in page.charts:
        assert chart.caption.startswith("One "), chart.id
        assert "recorded" in chart.caption or "replayed" in chart.caption or chart.id == "wall"
    wall = next(c for c in page.charts if c.id == "wall")
    assert "modelled, not measured" in wall.caption


def _history_run(alpha: TownRun) -> TownRun:
    run = copy.copy(alpha)
    run.ticks = []
    run.history = [
        {"at": "2026-03-01T00:00:10.000Z", "kind": "bead_event", "label": "open", "entities": [],
         "detail": {}},
        {"at": "2026-03-01T00:00:12.000Z", "kind": "bead_event", "label": "hooked",
         "entities": [], "detail": {}},
        {"at": "2026-03-01T00:03:00.000Z", "kind": "town_event", "label": "x", "entities": [],
         "detail": {}},
    ]  # fmt: skip
    return run


def test_a_run_without_ticks_charts_its_own_history(alpha: TownRun) -> None:
    page = _page(_history_run(alpha))
    assert [c.id for c in page.charts] == ["history"]
    assert "not replayed" in page.charts[0].caption
    assert [(h.kind, h.n) for h in page.datasets.h] == [
        ("bead_event", 2),
        ("town_event", 1),
    ]
    assert page.datasets.note.startswith("No ticks in this window")
    assert _domains(page.charts[0]) == [[to_ms(alpha.window_from), to_ms(alpha.window_to)]]


def test_a_run_with_neither_ticks_nor_history_says_so_in_one_line(
    alpha: TownRun, tmp_path: Path
) -> None:
    run = _history_run(alpha)
    run.history = []
    page = _page(run)
    assert page.charts == []
    assert page.datasets.note == (
        "No ticks and no history entries in this window: there is nothing to chart."
    )
    build_site([Path("a.sqlite")], tmp_path / "site", load_run=rf.loader({"a.sqlite": run}))
    html = next((tmp_path / "site" / "towns").glob("*/index.html")).read_text(encoding="utf-8")
    assert "there is nothing to chart" in html
    assert 'class="chart"' not in html and 'id="datasets"' not in html


def test_chart_links_are_mapped_by_the_page(alpha: TownRun, tmp_path: Path) -> None:
    """Band and tick-page hrefs reach the script through the page's url() (site-relative here)."""
    build_site([Path("a.sqlite")], tmp_path / "site", load_run=rf.loader({"a.sqlite": alpha}))
    html = next((tmp_path / "site" / "towns").glob("*/index.html")).read_text(encoding="utf-8")
    block = re.search(r'<script type="application/json" id="chart-hrefs">(.*?)</script>', html)
    assert block is not None
    hrefs = json.loads(block.group(1))
    assert hrefs and all(v == posixpath.relpath(k, "towns/town-alpha") for k, v in hrefs.items())
    assert any(k.startswith("violations/") for k in hrefs)
