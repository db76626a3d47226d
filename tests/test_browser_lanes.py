"""Entity anchors and swimlanes in a real browser (headless Debian Chromium, pages from file://).

From an episode page, the link to an entity involved lands on that entity's
section of its kind's page, scrolled into view with its lane showing; the
episode page shows the involved entities' lanes itself, each with its text
alternative (``role="img"`` and an ``aria-label``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import support.report_fixtures as rf
from test_browser_site import Visit, browser  # noqa: F401 - the browser fixture

from reportgen.report.build import build_site

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
