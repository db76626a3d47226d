"""The site in a real browser: headless Debian Chromium through Playwright, pages from file://.

Checks what only a browser can: no console errors, no network request of any
kind, charts drawn (an SVG with marks), violation permalinks landing on their
element (tick permalinks and the timeline: test_browser_timeline.py), keyboard navigation, the single-file bundle offline, and
verdicts as people see them: stuck towns first in red, a finding's link
landing on the tick that shows the loop, healthy towns green, expected
episodes muted.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import support.report_fixtures as rf
from support.browser import Visit, launch_browser

from reportgen.diagnose.loader import DiagnosingLoader
from reportgen.replay.loader import ReplayLoader
from reportgen.report.build import build_site
from reportgen.report.single_file import build_single_file
from reportgen.report.site import cache_dir
from reportgen.sim.demo import demo_sources

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launch_browser() as b:
        yield b


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "site"
    build_site(demo_sources(cache_dir()), out, jobs=2, load_run=DiagnosingLoader(ReplayLoader()))
    return out


def _index(demo: Path) -> dict[str, Any]:
    return json.loads((demo / "index.json").read_text(encoding="utf-8"))


def test_index_loads_offline_and_filters_via_url(browser: Any, demo: Path) -> None:
    v = Visit(browser, (demo / "index.html").as_uri() + "?state=violations")
    rows = v.page.locator("#town-table tbody tr:not([hidden])")
    assert rows.count() == sum(1 for t in _index(demo)["towns"] if t["state"] == "violations")
    v.page.fill("input.filter[data-param=q]", "zzz-no-such-town")
    assert rows.count() == 0
    assert "q=zzz-no-such-town" in v.page.url
    v.page.click("#town-table th[data-key=ticks] button")
    assert "sort=ticks" in v.page.url
    assert v.errors == [] and v.requests == []
    v.close()


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_town_page_draws_every_chart(browser: Any, demo: Path, scheme: str) -> None:
    town = _index(demo)["towns"][0]
    v = Visit(browser, (demo / town["href"]).as_uri(), scheme)
    assert v.charts_drawn() == v.page.locator(".chart").count() == 7
    assert v.errors == [] and v.requests == []
    shot = os.environ.get("REPORTGEN_SCREENSHOT")
    if shot and scheme == "light":  # the README's screenshot: REPORTGEN_SCREENSHOT=docs/img/…
        v.page.screenshot(path=shot, full_page=False)
    v.close()


def test_violation_permalink_and_keyboard_navigation(browser: Any, demo: Path) -> None:
    # the index lists the unexpected episodes one by one (the expected ones by town)
    episodes = [e for e in _index(demo)["episodes"] if not e["expected"]]
    assert len(episodes) >= 2
    v = Visit(browser, (demo / "index.html").as_uri() + f"#ep-{episodes[1]['id']}")
    assert v.page.evaluate("document.querySelector(':target').id") == f"ep-{episodes[1]['id']}"
    v.page.keyboard.press("j")
    v.page.keyboard.press("j")
    assert (
        v.page.evaluate("document.querySelector('.nav-item.current').id")
        == f"ep-{episodes[1]['id']}"
    )
    v.page.keyboard.press("k")
    assert (
        v.page.evaluate("document.querySelector('.nav-item.current').id")
        == f"ep-{episodes[0]['id']}"
    )
    v.close()
    # an episode page with a next one in its town (lists put open episodes first, so the
    # index's first may be its town's only one)
    first = next(e for e in episodes if 'rel="next"' in (demo / e["href"]).read_text())
    page = Visit(browser, (demo / first["href"]).as_uri())
    assert page.page.locator(".explain").inner_text().startswith("Because ")
    page.page.keyboard.press("n")
    page.page.wait_for_url(lambda url: first["id"] not in url, timeout=10_000)
    assert "/violations/" in page.page.url
    assert page.errors == [] and page.requests == []
    page.close()


def test_single_file_bundle_works_offline(browser: Any, tmp_path: Path) -> None:
    runs = {"a.sqlite": rf.scripted_town("town-alpha")}
    out = tmp_path / "incident.html"
    build_single_file([Path("a.sqlite")], out, load_run=rf.loader(runs))
    v = Visit(browser, out.as_uri(), "dark")
    assert v.charts_drawn() == 7
    first = v.page.locator(".episode-row a").first
    href = first.get_attribute("href")
    assert href is not None and href.startswith("#v-")
    first.click()
    assert v.page.evaluate("location.hash") == href
    assert v.page.locator(href).is_visible()
    assert v.errors == [] and v.requests == []
    v.close()


#: The site's light-scheme colours (templates/assets/site.css): --bad, --good, --muted.
RED, GREEN, MUTED = "rgb(179, 38, 30)", "rgb(30, 123, 60)", "rgb(93, 100, 112)"


def _color(locator: Any, prop: str = "color") -> str:
    return str(locator.evaluate(f"e => getComputedStyle(e).{prop}"))


def test_stuck_towns_come_first_in_red_and_healthy_ones_are_green(browser: Any, demo: Path) -> None:
    towns = _index(demo)["towns"]
    v = Visit(browser, (demo / "index.html").as_uri())
    rows = v.page.locator("#town-table tbody tr")
    shown = [rows.nth(i).get_attribute("data-verdict") for i in range(rows.count())]
    stuck = shown.count("stuck")
    assert (
        stuck >= 2 and shown[:stuck] == ["stuck"] * stuck and shown == [t["verdict"] for t in towns]
    )
    for i, verdict in enumerate(shown):
        badge = rows.nth(i).locator("td").first.locator(".badge")
        assert badge.inner_text() == verdict
        if verdict in ("stuck", "healthy"):
            assert _color(badge) == {"stuck": RED, "healthy": GREEN}[verdict]
    headline = rows.first.locator(".town-headline")
    assert headline.is_visible() and headline.inner_text().startswith("Stuck: ")
    assert _color(headline) == RED and " since " in headline.inner_text()
    assert v.errors == [] and v.requests == []
    v.close()


def test_a_findings_link_lands_on_the_tick_showing_the_looping_action(
    browser: Any, demo: Path
) -> None:
    town = _index(demo)["towns"][0]
    twin = json.loads((demo / town["href"]).with_suffix(".json").read_text(encoding="utf-8"))
    v = Visit(browser, (demo / town["href"]).as_uri())
    banner = v.page.locator("#verdict")
    assert "v-stuck" in str(banner.get_attribute("class"))
    assert _color(banner, "borderTopColor") == RED
    first = v.page.locator(".finding").first
    assert first.locator(".sentence").inner_text().startswith("Stuck: ")
    link = first.locator("a.tick-link")
    anchor = str(link.get_attribute("href")).split("#", 1)[1]
    assert anchor.startswith("tick-")
    link.click()  # one click from the finding to the looping actions, selected in the timeline
    ms = anchor.removeprefix("tick-")
    v.page.wait_for_selector(f"#tl-detail[data-ms='{ms}']", timeout=10_000)
    assert v.page.locator(f".tl-row.selected[data-ms='{ms}']").is_visible()
    actions = v.page.locator("#tl-detail .item.act .t").all_inner_texts()
    meanwhile = twin["diagnosis"]["views"][0]["meanwhile"]
    assert actions and any(a in meanwhile for a in actions), (actions, meanwhile)
    assert v.errors == [] and v.requests == []
    v.close()


def test_expected_invariant_3_of_the_multi_pr_rig_is_muted(browser: Any, demo: Path) -> None:
    index = _index(demo)
    town = next(t for t in index["towns"] if t["name"] == "multi-pr-rig")
    assert town["verdict"] == "healthy"
    v = Visit(browser, (demo / "index.html").as_uri())
    # not one line per episode among the others, but one muted line with their count
    listed = v.page.locator(f"#episode-table tr.episode-row:has(a[href$='{town['href']}'])")
    assert listed.count() == 0
    (row,) = v.page.locator(f"table.expected-groups tr:has(a[href$='{town['href']}'])").all()
    ours = [e for e in index["episodes"] if e["town_id"] == town["town_id"]]
    assert ours and all(e["expected"] for e in ours)
    assert "PR-strategy MRs" in row.inner_text() and f"\t{len(ours)}" in row.inner_text()
    assert _color(row) == MUTED
    row.locator("a[href*='#inv-3']").click()
    v.page.wait_for_url(lambda url: url.endswith("#inv-3"))
    v.close()
    page = Visit(browser, (demo / town["href"]).as_uri())
    banner = page.page.locator("#verdict")
    assert (
        "v-healthy" in str(banner.get_attribute("class"))
        and _color(banner, "borderTopColor") == GREEN
    )
    assert "expected: PR-strategy MRs" in banner.inner_text()
    assert page.page.locator(".verdict.v-stuck, .verdict.bad").count() == 0
    assert _color(page.page.locator("#inv-3")) == MUTED
    assert page.errors == [] and page.requests == []
    page.close()
