"""Entity sections, swimlanes and folded activity: right about status, bounded in size.

The regressions: an agent's section said "working at window end" while its
status bar ended "idle" (the bar only knew transition actions), and a rig's
section said "not in the town's tables" for a rig that is in ``rigs`` (the
note was shown for every entity the bead and agent tables do not hold).
The size checks build the entity, episode and finding pages of a long, busy
synthetic window and check that none grows with the window's length.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import support.report_fixtures as rf
from support.long_run import AGENT, MR, RIG, long_run

from reportgen.report.build import build_site
from reportgen.report.entity_activity import LANE_BUCKETS, PAGE_BUDGET, tick_items
from reportgen.report.findings import finding_pages, town_findings
from reportgen.report.lanes import lane, span_folds
from reportgen.report.ordering import open_then_newest
from reportgen.report.pages import page_files
from reportgen.report.site import Assets
from reportgen.report.timeline_files import build_timeline
from reportgen.report.town_data import compute_town
from reportgen.report.views_detail import entity_pages, violation_pages
from reportgen.report.views_town import GROUP_DETAILS, GROUP_ROWS, town_page
from reportgen.town_run import EntityInfo, TownRun

STUB_ASSETS = Assets(css="/* css */", js="// js", vega="// vega", vega_version="test")
MAX_PAGE = 500_000


def _with_late_idle(run: TownRun) -> tuple[TownRun, str]:
    """``run`` where a working agent's last transition action says idle (the state: working)."""
    out = copy.deepcopy(run)
    agent = next(i for i, e in sorted(out.entities.items()) if e.status == "working")
    out.ticks[-1]["actions"].append(
        {"type": "transition_agent", "agent_id": agent, "from": "working", "to": "idle"}
    )
    return out, agent


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TownRun, str]:
    run, agent = _with_late_idle(rf.scripted_town("town-lanes", minutes=4))
    out = tmp_path_factory.mktemp("lanes") / "site"
    build_site([Path("t.sqlite")], out, load_run=rf.loader({"t.sqlite": run}), assets=STUB_ASSETS)
    return out, run, agent


def section(site: Path, anchor: str) -> str:
    """The HTML of the section with id ``anchor``, wherever the town's entity pages hold it."""
    for page in sorted(site.glob("towns/*/e/*.html")):
        text = page.read_text(encoding="utf-8")
        at = text.find(f'id="{anchor}"')
        if at >= 0:
            return text[at : text.index("</section>", at)]
    raise AssertionError(f"no entity section #{anchor}")


def test_agent_status_at_window_end_and_its_lane_agree(built: tuple[Path, TownRun, str]) -> None:
    site, _, agent = built
    html = section(site, f"e-agent-{agent}")
    badge = re.search(r'status at window end</dt><dd><span class="badge b-([\w-]+)"', html)
    segments = re.findall(r'class="seg s-([\w-]+)"', html)
    assert badge is not None and badge.group(1) == "working"
    assert segments[-1] == "working"


def test_a_rig_of_the_rigs_table_is_not_said_to_be_missing(
    built: tuple[Path, TownRun, str],
) -> None:
    site, run, _ = built
    rigs = {r for t in run.ticks for a in t["actions"] for k, r in a.items() if k == "rig_id" and r}
    assert rigs
    for rig in rigs:
        assert "Not in the town" not in section(site, f"e-rig-{rig}")


def test_entities_are_few_files_with_an_anchor_per_entity(
    built: tuple[Path, TownRun, str],
) -> None:
    site, run, _ = built
    files = sorted(p.name for p in site.glob("towns/town-lanes/e/*"))
    assert files == [f"{k}-1.{x}" for k in ("agent", "bead", "rig") for x in ("html", "json")]
    for bead, info in run.entities.items():
        if info.kind == "bead" and any(bead in str(t["actions"]) for t in run.ticks):
            assert 'class="lane"' in section(site, f"e-bead-{bead}")
    assert rf.broken_links(site) == []


def _page_sizes(run: TownRun) -> dict[str, int]:
    """Bytes of every entity, episode and finding page and twin of the run's town."""
    data = compute_town(run)
    refs = STUB_ASSETS.refs()
    pages = [(path, p) for path, p in entity_pages(data)]
    pages += [(v.episode.href, v) for v in violation_pages(data)]
    pages += [(f.finding.href, f) for f in finding_pages(data, town_findings(run, str))]
    return {
        name: len(text.encode("utf-8"))
        for path, page in pages
        for name, text in page_files(page, path, refs)
    }


def _largest(sizes: dict[str, int], prefix: str) -> int:
    return max(size for name, size in sizes.items() if name.startswith(prefix))


def test_pages_stay_bounded_however_long_the_window() -> None:
    short, long = _page_sizes(long_run(1200)), _page_sizes(long_run(4800))
    assert max(long.values()) <= MAX_PAGE
    # 302 entities (300 beads) on a few pages; 4 times the ticks add at most one page (a
    # section grows only until its lane's columns are all marked)
    entity_files = [n for n in long if "/e/" in n]
    assert len(entity_files) <= 12
    assert len(entity_files) <= len([n for n in short if "/e/" in n]) + 2
    # entity pages are filled up to the budget, whatever the window; the others do not grow
    assert _largest(long, "towns/town-long/e/") <= PAGE_BUDGET
    for prefix in ("violations/", "findings/"):
        assert _largest(long, prefix) <= 1.1 * _largest(short, prefix) + 10_000, prefix


def test_a_busy_lane_is_merged_per_column_and_ends_on_the_state() -> None:
    run = long_run(3000)
    data = compute_town(run)
    for entity_id, kind in ((MR, "bead"), (AGENT, "agent")):
        drawn = lane(data, data.entities.link(kind, entity_id), run.entities[entity_id].status)
        assert len(drawn.segments) <= LANE_BUCKETS and len(drawn.marks) <= LANE_BUCKETS
        assert drawn.segments[-1].status == run.entities[entity_id].status
        assert sum(m.count for m in drawn.marks) == drawn.items > 3000
        # neighbouring columns of one class are one mark: the storms alternate with calm
        pairs = list(zip(drawn.marks, drawn.marks[1:], strict=False))
        assert pairs and all(a.kind != b.kind for a, b in pairs if a.x + a.w == b.x)
        assert len(drawn.marks) < LANE_BUCKETS / 2
    assert drawn.segments[-1].status == "stalled"  # no tick shows it: the state says so


def test_repeated_items_fold_into_one_line_with_count_and_period() -> None:
    run = long_run(1200)
    data = compute_town(run)
    (finding,) = finding_pages(data, town_findings(run, str))
    polls = [a for a in finding.activity if a.type == "poll_pr" and a.what == "action"]
    assert [(p.subject and p.subject.id, p.count, p.period) for p in polls] == [
        (MR, 1200, "every 5 s")
    ]
    assert polls[0].first_tick == data.tick_anchor(run.ticks[0]["at"])
    # the lines about other beads (kind_0…kind_19 on 300 beads) merge, one per type, counted
    others = [a for a in finding.activity if a.others]
    assert sorted(a.type for a in others) == sorted(f"kind_{n}" for n in range(20))
    assert all(a.subject is None and a.others == "15 beads" and a.count == 60 for a in others)
    assert all(a.subject is not None for a in finding.activity if not a.others)
    items = sum(len(list(tick_items(t))) for t in run.ticks)
    assert sum(a.count for a in finding.activity) == items and finding.activity_more == ""


def test_subjects_that_share_a_name_are_told_apart_by_their_short_id() -> None:
    """Each feedback round makes a new bead with the same title: its lines must not read as
    repeats of one line."""
    run = long_run(3)  # short enough that no line is merged across subjects
    renamed = {"bead-0001": "11111111-aaaa", "bead-0002": "22222222-bbbb"}
    for tick in run.ticks:
        for action in tick["actions"]:
            action["bead_id"] = renamed.get(action.get("bead_id"), action.get("bead_id"))
    for new in renamed.values():
        run.entities[new] = EntityInfo(new, "bead", "issue", "Address failing CI", "open", RIG)
    folds, _ = span_folds(compute_town(run), run.ticks[0]["at"], run.ticks[-1]["at"])
    labels = {
        f.subject.id: f.subject.label
        for f in folds
        if f.subject and f.subject.id in renamed.values()
    }
    assert labels == {
        "11111111-aaaa": "Address failing CI · 11111111",
        "22222222-bbbb": "Address failing CI · 22222222",
    }
    # names no other subject shares stay as they are
    assert any(
        f.subject and f.subject.label.startswith("Review ") and "·" not in f.subject.label
        for f in folds
    )


def test_a_town_page_shows_the_first_episodes_in_full_and_the_rest_one_line_each() -> None:
    """A day of a flapping invariant holds dozens of episodes: the town page stays short."""
    data = compute_town(long_run(6000))  # the violation comes and goes every 250 ticks
    page = town_page(data, build_timeline(data).summary)
    (group,) = page.groups
    assert len(data.episodes) == group.count == 12
    assert len(group.episodes) == GROUP_ROWS and len(group.older) == 12 - GROUP_ROWS
    assert len(group.details) == GROUP_DETAILS and group.some_unexplained
    shown = [r.id for r in group.episodes] + [r.id for r in group.older]
    assert shown == [r.id for r in open_then_newest(data.rows.values())]
    html = dict(page_files(page, "towns/town-long/index.html", STUB_ASSETS.refs()))
    text = html["towns/town-long/index.html"]
    assert "12 episodes" in text and f"{12 - GROUP_ROWS} older episodes" in text
