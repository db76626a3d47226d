"""Entity anchors and swimlanes in a real browser (headless Debian Chromium, pages from file://).

From an episode page, the link to an entity involved lands on that entity's
section of its kind's page, scrolled into view with its lane showing; the
episode page shows the involved entities' lanes itself, each with its text
alternative (``role="img"`` and an ``aria-label``). On the ``review-round-stuck``
demo town, the merge request's lane shows it "in review" (``in_progress``) from its
first feedback round to the window's end, and its text alternative says for how long.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import support.report_fixtures as rf
from test_browser_site import Visit, browser  # noqa: F401 - the browser fixture
from test_browser_timeline import stuck  # noqa: F401 - the review-round-stuck town

from reportgen.diagnose.episodes import to_ms
from reportgen.report.build import build_site
from reportgen.town_run import TownRun

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("browser-lanes") / "site"
    runs = {"a.sqlite": rf.scripted_town("town-alpha")}
    build_site([Path("a.sqlite")], out, load_run=rf.loader(runs))
    return out


def test_an_entity_link_of_an_episode_lands_on_its_lane(browser: Any, site: Path) -> None:  # noqa: F811
    episode = sorted(site.glob("violations/*.html"))[0]
    v = Visit(browser, episode.as_uri())
    lanes = v.page.locator(".lane[role=img]")
    assert lanes.count() >= 1
    assert all(lanes.nth(i).get_attribute("aria-label") for i in range(lanes.count()))
    link = v.page.locator(".ents-list a.ent").first
    anchor = (link.get_attribute("href") or "").partition("#")[2]
    assert anchor.startswith("e-")
    link.click()
    v.page.wait_for_url(lambda url: url.endswith(f"#{anchor}"), timeout=10_000)
    lane = v.page.locator(f"[id='{anchor}'] .lane")
    assert lane.is_visible()
    box = lane.bounding_box()
    assert box is not None and 0 <= box["y"] < v.page.viewport_size["height"]
    assert lane.locator(".seg").count() >= 1
    assert v.errors == [] and v.requests == []
    v.close()


def _boxes(v: Visit, selector: str) -> list[dict[str, Any]]:
    """Each element's class, text and box as Chromium lays it out."""
    boxes: list[dict[str, Any]] = v.page.eval_on_selector_all(
        selector,
        "els => els.map(e => { const r = e.getBoundingClientRect();"
        " return {cls: e.className, text: e.textContent, x: r.left, w: r.width}; })",
    )
    return boxes


def test_the_stuck_merge_request_lane_shows_it_in_review_to_the_end(
    browser: Any,  # noqa: F811
    stuck: tuple[Path, TownRun],  # noqa: F811
) -> None:
    town, run = stuck
    assert run.diagnosis is not None
    loop = next(f for f in run.diagnosis["findings"] if f["kind"] == "review-loop")
    mr = loop["subject"]["id"]
    state = run.entities[mr].status
    assert (run.entities[mr].type, state) == ("merge_request", "in_progress")  # open, in review
    v = Visit(browser, (town / "index.html").as_uri())
    link = v.page.locator(f"a[href*='e/bead-'][href$='#e-bead-{mr}']").first
    link.click()
    v.page.wait_for_url(lambda url: url.endswith(f"#e-bead-{mr}"), timeout=10_000)
    lane = v.page.locator(f"[id='e-bead-{mr}'] .lane[role=img]")
    assert lane.is_visible()
    box = lane.bounding_box()
    assert box is not None
    start, end = to_ms(run.window_from), to_ms(run.window_to)
    first_round = box["x"] + box["width"] * (to_ms(loop["first_at"]) - start) / (end - start)
    after = box["x"] + box["width"] - first_round
    segs = _boxes(v, f"[id='e-bead-{mr}'] .lane .seg")
    in_review = sum(
        max(0.0, min(s["x"] + s["w"], box["x"] + box["width"]) - max(s["x"], first_round))
        for s in segs
        if "s-in_progress" in s["cls"].split()
    )
    assert after > box["width"] / 2  # the first round came early in the window
    assert in_review >= 0.9 * after, (in_review, after, segs)
    # a merge request in progress is in review: the lane says so, in its text and summary
    assert any(s["text"] == "in review" and s["w"] >= after / 2 for s in segs)
    label = lane.get_attribute("aria-label") or ""
    assert "in review at the window's end for the last 1 h" in label, label
    last = segs[-1]
    assert f"s-{state}" in last["cls"].split()
    assert abs(last["x"] + last["w"] - (box["x"] + box["width"])) < 1
    assert v.errors == [] and v.requests == []
    v.close()
