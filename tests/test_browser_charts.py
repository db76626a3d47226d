"""The town page's charts in a real browser (headless Debian Chromium through Playwright).

What only drawing shows: a tooltip's text (it once read "bucket from (UTC): NaN"),
where a click leads, that every chart of the single-file bundle ends at the
window's end (its "Actions by type" once ended 13 minutes early), and that at
400 px no chart is wider than its card and no two x labels overlap.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import support.report_fixtures as rf
from support.browser import Visit, launch_browser

from reportgen.report.build import build_site
from reportgen.report.format import fmt_clock
from reportgen.report.single_file import build_single_file
from reportgen.town_run import TownRun

pytestmark = pytest.mark.browser

#: A bucket's span as the tooltips say it: ``2026-03-01 00:00:05–00:00:10 UTC``.
SPAN = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d–\d\d:\d\d:\d\d UTC")
#: The window runs 3 minutes past the last tick, and the last 2 minutes of ticks emit no
#: action: a chart whose domain followed its data would end early (and not with the others).
WINDOW_TO = "2026-03-01T00:09:00.000Z"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_browser() as b:
        yield b


def _run() -> TownRun:
    run = copy.deepcopy(rf.scripted_town("town-alpha"))
    run.window_to = WINDOW_TO
    for tick in run.ticks:
        if tick["at"] >= "2026-03-01T00:04:00":
            tick["actions"] = []
            tick["metrics"]["actionsByType"] = {}
    return run


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The town page of a small site."""
    out = tmp_path_factory.mktemp("charts") / "site"
    build_site([Path("a.sqlite")], out, load_run=rf.loader({"a.sqlite": _run()}))
    return next((out / "towns").glob("*/index.html"))


def _open(browser: Any, url: str, width: int = 1280) -> Visit:
    v = Visit(browser, url)
    v.page.set_viewport_size({"width": width, "height": 900})
    v.charts_drawn()
    return v


def _tooltip(v: Visit, selector: str) -> str:
    """Hover the element and return the tooltip's text."""
    target = v.page.locator(selector)
    target.scroll_into_view_if_needed()
    target.hover(force=True)
    tip = v.page.locator("#vg-tooltip-element.visible")
    tip.wait_for(timeout=5_000)
    return str(tip.inner_text())


def test_every_tooltip_shows_its_buckets_time(browser: Any, town: Path) -> None:
    v = _open(browser, town.as_uri())
    ids = v.page.eval_on_selector_all(".chart", "cs => cs.map(c => c.id)")
    assert len(ids) == 7
    for chart in ids:  # the bucket under the pointer, on every chart
        text = _tooltip(v, f"#{chart} g.layer_0_marks path >> nth=3")
        assert SPAN.search(text) and "NaN" not in text, (chart, text)
    # a bar of the stacked actions says its type and count, and its time
    text = _tooltip(v, "#chart-actions path[aria-label*='action type'] >> nth=0")
    assert SPAN.search(text) and "action type" in text and "NaN" not in text, text
    # an episode's band names it, with its first and last tick
    text = _tooltip(v, "#chart-actions path[aria-label*='band: Episode'] >> nth=0")
    assert text.startswith("band") and "Episode: invariant" in text and "NaN" not in text, text
    assert v.errors == [] and v.requests == []
    v.close()


def test_a_click_opens_the_buckets_tick_and_a_band_its_episode(browser: Any, town: Path) -> None:
    twin = json.loads(town.with_suffix(".json").read_text(encoding="utf-8"))
    ds = twin["datasets"]
    v = _open(browser, town.as_uri())
    v.page.locator("#chart-drained g.layer_0_marks path >> nth=0").click(force=True)
    first = ds["k"][0]
    assert first["t"] == ds["m"][0]["t"]
    v.page.wait_for_function(f"location.hash === '#{first['f']}'", timeout=5_000)
    assert v.page.url.split("#")[0] == town.as_uri()
    v.page.wait_for_selector("#tl-detail[data-ms]", timeout=5_000)  # the timeline selected it
    band = ds["b"][0]
    v.page.locator("#chart-violations path[aria-label*='band: '] >> nth=0").click(force=True)
    v.page.wait_for_url(f"**/{band['href']}", timeout=5_000)
    assert v.errors == [] and v.requests == []
    v.close()


def _visible_x_labels(v: Visit, chart: str) -> list[dict[str, Any]]:
    """The x labels a reader sees (Vega hides those it drops with opacity 0), left to right."""
    labels = v.page.eval_on_selector_all(
        f"#{chart} g.role-axis[aria-label^='X-axis'] .role-axis-label text",
        """ts => ts.filter(t => t.getAttribute('opacity') !== '0')
                  .map(t => { const r = t.getBoundingClientRect();
                              return {x: r.left, w: r.width, text: t.textContent}; })""",
    )
    return sorted(labels, key=lambda r: float(r["x"]))


#: The least room (px) between two x labels: touching labels read as one ("08:0008:15").
MIN_GAP = 3


@pytest.mark.parametrize("width", [400, 1280])
def test_no_chart_overflows_and_no_x_labels_overlap(browser: Any, town: Path, width: int) -> None:
    v = _open(browser, town.as_uri(), width)
    assert v.page.evaluate("document.documentElement.scrollWidth") <= width
    sizes = v.page.eval_on_selector_all(
        ".chart",
        """cs => cs.map(c => ({id: c.id, box: c.getBoundingClientRect().width,
                               card: c.closest('figure').getBoundingClientRect().width,
                               svg: c.querySelector('svg').getBoundingClientRect().width}))""",
    )
    for s in sizes:
        assert s["svg"] <= s["box"] + 0.5 and s["box"] <= s["card"], s
    for s in sizes:  # apart, and each saying another time (not "00:00 00:00 00:00")
        labels = _visible_x_labels(v, s["id"])
        assert len(labels) >= 2, s["id"]
        gaps = [b["x"] - a["x"] - a["w"] for a, b in itertools.pairwise(labels)]
        assert min(gaps) >= MIN_GAP, (s["id"], labels)
        texts = [label["text"] for label in labels]
        assert len(set(texts)) == len(texts), (s["id"], texts)
    shot = os.environ.get("REPORTGEN_CHART_SCREENSHOTS")
    if shot:  # look at them: REPORTGEN_CHART_SCREENSHOTS=/tmp/charts pytest -k overflows
        Path(shot).mkdir(parents=True, exist_ok=True)
        v.page.locator("section:has(#charts)").screenshot(path=f"{shot}/charts-{width}.png")
    v.close()


def test_every_chart_of_the_bundle_ends_at_the_windows_end(browser: Any, tmp_path: Path) -> None:
    out = tmp_path / "incident.html"
    build_single_file([Path("a.sqlite")], out, load_run=rf.loader({"a.sqlite": _run()}))
    v = _open(browser, out.as_uri())
    axes = v.page.eval_on_selector_all(
        ".chart g.role-axis[aria-label^='X-axis']",
        "gs => gs.map(g => g.getAttribute('aria-label'))",
    )
    assert len(axes) == 7
    spans = {re.sub(r"^.* from ", "", a) for a in axes}
    assert spans == {f"00:00:00 to {fmt_clock(WINDOW_TO)}"}, axes
    assert v.errors == [] and v.requests == []
    v.close()
