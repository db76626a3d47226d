"""End to end: the demo fleet, simulated and replayed for real, built into a site."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import support.report_fixtures as rf

from reportgen.diagnose.loader import DiagnosingLoader
from reportgen.diagnose.scenarios import EXPECTATIONS
from reportgen.replay.loader import ReplayLoader
from reportgen.report.build import build_site
from reportgen.report.site import cache_dir
from reportgen.sim import simulate_town
from reportgen.sim.demo import DEMO_FLEET, demo_sources

#: The town page budget (bytes) for a 24 h healthy day, shared assets excluded.
TOWN_PAGE_BUDGET = 150_000
#: Any one of a town's timeline files (docs/performance.md: no file over 500 KB).
TIMELINE_FILE_BUDGET = 500_000


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "site"
    summary = build_site(
        demo_sources(cache_dir()),
        out,
        jobs=2,
        load_run=DiagnosingLoader(ReplayLoader(ticks="replay")),
    )
    assert summary.towns_failed == 0, summary.failures
    return out


def test_demo_site_links_resolve(demo: Path) -> None:
    assert rf.broken_links(demo) == []


def test_demo_site_reports_every_town_with_replay_fidelity(demo: Path) -> None:
    index = json.loads((demo / "index.json").read_text(encoding="utf-8"))
    assert len(index["towns"]) == len(demo_sources(cache_dir()))
    assert {t["fidelity"] for t in index["towns"]} == {"exact"}
    assert index["totals"]["episodes"] == len(index["episodes"]) > 0
    town = json.loads(
        (demo / index["towns"][0]["href"]).with_suffix(".json").read_text(encoding="utf-8")
    )
    assert town["compared_ticks"] == town["totals"]["ticks"] and town["divergence"] is None


def test_demo_index_gives_every_town_its_documented_verdict(demo: Path) -> None:
    """The verdicts of docs/diagnosis.md's scenario table, stuck towns listed first."""
    index = json.loads((demo / "index.json").read_text(encoding="utf-8"))
    towns = {t["name"]: t for t in index["towns"]}
    assert sorted(towns) == sorted(name for name, _ in DEMO_FLEET)
    assert {"stuck", "healthy"} <= {t["verdict"] for t in index["towns"]}
    for name, town in towns.items():
        wanted = EXPECTATIONS[name]
        assert town["verdict"] == wanted.verdict, name
        counted = {f["kind"] for f in town["findings"] if not f["expected"]}
        assert set(wanted.kinds) <= counted, name
        assert set(wanted.expected) <= {f["kind"] for f in town["findings"] if f["expected"]}
    ranks = ["stuck", "degraded", "healthy", "unknown"]
    verdicts = [t["verdict"] for t in index["towns"]]
    assert verdicts == sorted(verdicts, key=ranks.index)
    multi_pr = towns["multi-pr-rig"]
    rows = [e for e in index["episodes"] if e["town_id"] == multi_pr["town_id"]]
    assert rows and all(e["invariant"] == 3 and e["expected"] for e in rows)
    assert multi_pr["state"] == "expected"


def test_healthy_day_town_page_is_light(tmp_path: Path) -> None:
    result = simulate_town("healthy-day", seed=3, hours=24, out_dir=tmp_path)
    assert result.path is not None
    conn = sqlite3.connect(result.path)
    conn.row_factory = sqlite3.Row
    first, last = conn.execute("SELECT min(at), max(at) FROM rg_ticks").fetchone()
    run = rf.run_from_db(conn, str(result.path), first, last)
    assert len(run.ticks) > 10_000  # a real 24 h of 5 s ticks
    build_site([result.path], tmp_path / "site", load_run=rf.loader({result.path.name: run}))
    town = tmp_path / "site" / "towns" / run.town_id / "index.html"
    assert town.stat().st_size <= TOWN_PAGE_BUDGET
    files = sorted((town.parent / "timeline").iterdir())
    assert 2 <= len(files) <= 4 and max(p.stat().st_size for p in files) <= TIMELINE_FILE_BUDGET
    assert not list(town.parent.glob("ticks-*"))  # one timeline, no tick pages
