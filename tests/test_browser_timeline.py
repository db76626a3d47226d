"""The town's timeline in a real browser: whole-window search, permalinks into any chunk, no JS.

The town is the demo's ``review-round-stuck`` (an MR polled every minute and
sent back for feedback again and again), built with small timeline chunks so
that the viewer has several files to load: a search must cover them all and a
permalink must load the chunk that holds its tick.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import support.report_fixtures as rf
from support.timeline_data import IDLE, TICK, actions, chunks_of, index_of, inline_parts
from test_browser_site import Visit, browser  # noqa: F401 (the fixture)
from test_timeline import huge_tick_run

from reportgen.diagnose.episodes import to_ms
from reportgen.diagnose.loader import DiagnosingLoader
from reportgen.replay.loader import ReplayLoader
from reportgen.report import timeline_files
from reportgen.report.build import build_site
from reportgen.report.entity_fields import tick_ids
from reportgen.report.single_file import build_single_file
from reportgen.report.site import cache_dir
from reportgen.report.views_shared import Entities
from reportgen.sim.demo import demo_sources
from reportgen.town_run import TownRun

pytestmark = pytest.mark.browser

#: Small enough that the two-hour town needs several chunks.
SMALL_CHUNKS = 5_000


@pytest.fixture(scope="module")
def stuck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, TownRun]]:
    """The town's directory in a site built in this process (one job) with small chunks."""
    source = next(p for p in demo_sources(cache_dir()) if p.stem == "review-round-stuck")
    load = DiagnosingLoader(ReplayLoader())
    out = tmp_path_factory.mktemp("timeline") / "site"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(timeline_files, "CHUNK_BYTES", SMALL_CHUNKS)
        build_site([source], out, load_run=load, jobs=1, incremental=False)
    run = load(source, None, None)
    yield out / "towns" / run.town_id, run


def _state(v: Visit) -> dict[str, Any]:
    state: dict[str, Any] = v.page.evaluate("window.reportgenTimelineState()")
    return state


def _open(browser: Any, town: Path, suffix: str = "") -> Visit:  # noqa: F811
    v = Visit(browser, (town / "index.html").as_uri() + suffix)
    v.page.wait_for_selector("#timeline:not([hidden])")
    return v


def test_the_town_has_several_chunks_each_small(stuck: tuple[Path, TownRun]) -> None:
    town, run = stuck
    index = index_of(town / "timeline")
    assert len(index["chunks"]) >= 3
    assert sum(c["rows"] for c in index["chunks"]) == index["rows"]
    for c in index["chunks"]:
        assert (town / "timeline" / c["href"]).stat().st_size <= SMALL_CHUNKS + 2_000
    assert index["ticks"] == len(run.ticks)


def test_a_search_over_the_whole_window_finds_ticks_in_the_last_chunk(
    browser: Any,  # noqa: F811
    stuck: tuple[Path, TownRun],
) -> None:
    town, _ = stuck
    chunks = chunks_of(town / "timeline")
    polls = [r[1] for c in chunks for r in c["rows"] if "poll_pr" in actions(c, r)]
    last = {r[1] for r in chunks[-1]["rows"] if "poll_pr" in actions(chunks[-1], r)}
    assert last
    v = _open(browser, town)
    v.page.select_option("#tl-action", "poll_pr")
    v.page.wait_for_function("window.reportgenTimelineState().view !== null")
    state = _state(v)
    assert state["shownMs"] == polls and last <= set(state["shownMs"])
    assert v.page.locator("#tl-count").inner_text() == f"{len(polls)} of {state['rows']} rows"
    assert "action=poll_pr" in v.page.url
    assert v.page.locator(".tl-row").count() < 60  # only the visible rows are in the DOM
    assert v.errors == [] and v.requests == []
    v.close()


def test_a_permalink_into_the_last_chunk_selects_its_row(
    browser: Any,  # noqa: F811
    stuck: tuple[Path, TownRun],
) -> None:
    town, _ = stuck
    last = chunks_of(town / "timeline")[-1]
    tick = next(r for r in reversed(last["rows"]) if r[0] == TICK)
    quiet = next(r for r in last["rows"] if r[0] == IDLE and r[2] > r[1])
    v = _open(browser, town, f"#tick-{tick[1]}")
    v.page.wait_for_selector(f"#tl-detail[data-ms='{tick[1]}']", timeout=10_000)
    row = v.page.locator(f".tl-row.selected[data-ms='{tick[1]}']")
    assert row.is_visible() and row.get_attribute("aria-selected") == "true"
    assert actions(last, tick)[0] in v.page.locator("#tl-detail").inner_text()
    # a quiet tick inside a folded run lands on the run's row
    v.page.evaluate(f"location.hash = '#tick-{quiet[2]}'")
    v.page.wait_for_selector(f"#tl-detail[data-ms='{quiet[1]}']", timeout=10_000)
    assert "quiet tick" in v.page.locator("#tl-detail").inner_text()
    assert v.errors == [] and v.requests == []
    v.close()


def test_a_click_on_the_actions_chart_lands_on_a_tick(
    browser: Any,  # noqa: F811
    stuck: tuple[Path, TownRun],
) -> None:
    town, _ = stuck
    v = _open(browser, town)
    v.charts_drawn()
    v.page.locator("#chart-drained g.layer_0_marks path >> nth=0").click(force=True)
    v.page.wait_for_selector("#tl-detail[data-ms]", timeout=10_000)
    assert _state(v)["selected"] >= 0
    assert v.page.locator(".tl-row.selected").is_visible()
    assert v.errors == [] and v.requests == []
    v.close()


def test_without_javascript_the_page_shows_the_timelines_summary(
    browser: Any,  # noqa: F811
    stuck: tuple[Path, TownRun],
) -> None:
    town, run = stuck
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto((town / "index.html").as_uri())
    summary = page.locator("#timeline-summary")
    assert summary.is_visible() and f"{len(run.ticks)} ticks" in summary.inner_text()
    assert "poll_pr ×" in summary.inner_text()
    assert not page.locator("#timeline").is_visible()
    hrefs = summary.locator("a").evaluate_all("els => els.map(e => e.getAttribute('href'))")
    assert hrefs[0].endswith("timeline/index.js") and len(hrefs) == 1 + len(
        index_of(town / "timeline")["chunks"]
    )
    context.close()


def test_a_search_for_the_mrs_name_lists_every_poll_and_feedback_dispatch(
    browser: Any,  # noqa: F811
    stuck: tuple[Path, TownRun],
) -> None:
    """The issue's "done when": one search, the MR's whole story in one list."""
    town, run = stuck
    mr = next(e for e in run.entities.values() if e.type == "merge_request")
    name = Entities(run).label(mr.id)
    touching = [t for t in run.ticks if ("bead", mr.id) in tick_ids(t)]
    polls = [a for t in run.ticks for a in t["actions"] if a["type"] == "poll_pr"]
    feedback = [
        t
        for t in run.ticks
        if any(e["event_type"] == "pr_feedback_detected" for e in t["events"])
        and any(a["type"] == "dispatch_agent" for a in t["actions"])
    ]
    assert len(polls) > 50 and len(feedback) > 3
    v = _open(browser, town)
    v.page.fill("#tl-q", name)
    v.page.wait_for_function("window.reportgenTimelineState().view !== null")
    shown = _state(v)["shownMs"]
    by_ms = {r[1]: (c, r) for c in chunks_of(town / "timeline") for r in c["rows"]}
    listed_polls = sum(actions(*by_ms[ms]).count("poll_pr") for ms in shown)
    assert listed_polls == len(polls)
    assert set(shown) >= {to_ms(t["at"]) for t in feedback}
    assert len(shown) == len(touching)
    assert v.page.locator("#tl-count").inner_text().startswith(f"{len(touching)} of ")
    assert v.errors == [] and v.requests == []
    v.close()


def test_the_bundle_holds_the_same_viewer_inline_at_a_fixed_height(
    browser: Any,  # noqa: F811
    stuck: tuple[Path, TownRun],
    tmp_path: Path,
) -> None:
    _, run = stuck
    out = tmp_path / "incident.html"
    build_single_file([Path("t.sqlite")], out, load_run=lambda _s, _f, _t: run)
    v = Visit(browser, out.as_uri())
    v.page.wait_for_selector("#timeline:not([hidden])")
    state = _state(v)
    assert state["loaded"] == len(index_of_inline(out)) - 1 and state["rows"] > 100
    tick = next(r for r in inline_rows(out) if r[0] == TICK and r[3])
    v.page.evaluate(f"location.hash = '#tick-{tick[1]}'")
    v.page.wait_for_selector(f"#tl-detail[data-ms='{tick[1]}']", timeout=10_000)
    height = v.page.evaluate("document.documentElement.scrollHeight")
    assert height < 12_000, height  # the timeline scrolls inside its viewport
    assert v.errors == [] and v.requests == []
    v.close()


def index_of_inline(out: Path) -> list[dict[str, Any]]:
    return inline_parts(out.read_text(encoding="utf-8"))


def inline_rows(out: Path) -> list[list[Any]]:
    return [r for p in index_of_inline(out) if p["part"] == "chunk" for r in p["rows"]]


def test_arrow_keys_walk_the_rows_across_a_chunk_boundary_but_not_from_the_search_box(
    browser: Any,  # noqa: F811
    stuck: tuple[Path, TownRun],
) -> None:
    town, _ = stuck
    chunks = chunks_of(town / "timeline")
    rows = [r for c in chunks for r in c["rows"]]
    boundary = len(chunks[0]["rows"])  # the first row of the second chunk
    start = boundary - 3
    v = _open(browser, town, f"#tick-{rows[start][1]}")
    v.page.wait_for_selector(f"#tl-detail[data-ms='{rows[start][1]}']", timeout=10_000)
    v.page.locator(f".tl-row[data-row='{start}']").click()
    assert v.page.evaluate("document.activeElement.id") == "tl-viewport"
    for step in range(1, 6):
        v.page.keyboard.press("ArrowDown" if step % 2 else "j")
        g = start + step
        v.page.wait_for_selector(f"#tl-detail[data-ms='{rows[g][1]}']", timeout=10_000)
        assert _state(v)["selected"] == g
        assert v.page.url.endswith(f"#tick-{rows[g][1]}")
        row = v.page.locator(f".tl-row.selected[data-row='{g}']")
        assert row.is_visible() and row.get_attribute("aria-selected") == "true"
        active = v.page.get_attribute("#tl-viewport", "aria-activedescendant")
        assert active == f"tl-row-{g}"
    assert start + 5 > boundary  # the walk crossed into the second chunk
    v.page.keyboard.press("ArrowUp")
    v.page.wait_for_function(f"window.reportgenTimelineState().selected === {start + 4}")
    v.page.keyboard.press("End")
    v.page.wait_for_function(f"window.reportgenTimelineState().selected === {len(rows) - 1}")
    v.page.wait_for_selector(f"#tl-detail[data-ms='{rows[-1][1]}']", timeout=10_000)
    assert v.page.locator(f".tl-row.selected[data-row='{len(rows) - 1}']").is_visible()
    v.page.keyboard.press("Home")
    v.page.wait_for_selector(f"#tl-detail[data-ms='{rows[0][1]}']", timeout=10_000)
    assert _state(v)["selected"] == 0 and v.page.url.endswith(f"#tick-{rows[0][1]}")
    # typing j or k in the search box searches; the selection stays
    v.page.locator("#tl-q").press("j")
    v.page.locator("#tl-q").press("ArrowDown")
    v.page.wait_for_function("window.reportgenTimelineState().view !== null")
    assert _state(v)["selected"] == 0 and v.page.input_value("#tl-q") == "j"
    assert v.errors == [] and v.requests == []
    v.close()


def test_with_a_filter_on_the_keys_walk_the_rows_it_shows(
    browser: Any,  # noqa: F811
    stuck: tuple[Path, TownRun],
) -> None:
    town, _ = stuck
    v = _open(browser, town, "?action=poll_pr")
    v.page.wait_for_function("window.reportgenTimelineState().view !== null")
    shown = _state(v)["shownMs"]
    v.page.locator(".tl-row >> nth=0").click()
    v.page.wait_for_selector(f"#tl-detail[data-ms='{shown[0]}']", timeout=10_000)
    for ms in shown[1:4]:
        v.page.keyboard.press("ArrowDown")
        v.page.wait_for_selector(f"#tl-detail[data-ms='{ms}']", timeout=10_000)
        assert v.page.url.endswith(f"#tick-{ms}") and "action=poll_pr" in v.page.url
    assert v.errors == [] and v.requests == []
    v.close()


def test_a_row_that_left_items_out_says_how_many_and_is_still_found(
    browser: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    run = huge_tick_run(600)  # its actions' long notes leave room for 100 of each kind
    build_site([Path("t.sqlite")], tmp_path / "site", load_run=rf.loader({"t.sqlite": run}))
    town = tmp_path / "site" / "towns" / run.town_id
    v = _open(browser, town, "?action=close_bead")  # only among the actions the row left out
    v.page.wait_for_function("window.reportgenTimelineState().view !== null")
    ms = to_ms(run.ticks[0]["at"])
    assert _state(v)["shownMs"] == [ms]
    v.page.locator(".tl-row >> nth=0").click()
    v.page.wait_for_selector(f"#tl-detail[data-ms='{ms}']", timeout=10_000)
    detail = v.page.locator("#tl-detail").inner_text()
    assert "and 500 more actions not shown (dispatch_agent ×499, close_bead ×1)" in detail
    assert "and 500 more events not shown" in detail
    assert f"reportgen replay --db {run.source} --from {run.ticks[0]['at']}" in detail
    assert "dispatch_agent ×599" in v.page.locator(".tl-row.selected").inner_text()
    assert v.errors == [] and v.requests == []
    v.close()
