"""Names everywhere: towns by their stored name, rigs, agents and beads by theirs, and check
messages with the entities they mention named and linked (the raw message in ``title``)."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from pathlib import Path

import pytest
import support.report_fixtures as rf

from reportgen.diagnose.loader import DiagnosingLoader
from reportgen.replay.export import export
from reportgen.replay.loader import ReplayLoader
from reportgen.report import history
from reportgen.report.build import build_site
from reportgen.report.messages import message_parts, named_message, named_text
from reportgen.report.summary import BuildSummary
from reportgen.report.views_shared import Entities, town_name
from reportgen.sim.event_loop import town_name_for
from reportgen.town import clock, store
from reportgen.town_run import EntityInfo, TownRun

SCENARIO = "working-agent-no-hook"


def _run(entities: dict[str, EntityInfo]) -> TownRun:
    return TownRun("t1", "t1.sqlite", rf.T0, rf.T0, "exact", None, [], entities=entities)


AGENT = "cbd61dbb-0000-4000-8000-000000000001"
RIG = "624430ef-0000-4000-8000-000000000002"
ENTITIES = Entities(
    _run(
        {
            AGENT: EntityInfo(AGENT, "agent", "refinery", "refinery", "working"),
            "a-2": EntityInfo("a-2", "agent", "polecat", "Toast", "idle"),
            RIG: EntityInfo(RIG, "rig", "", "webapp", None),
            "b-1": EntityInfo("b-1", "bead", "merge_request", "Review: gt/toast/fix", "open"),
        }
    )
)


# ── Entities: rigs, agents and beads by name ─────────────────────────────


def test_a_rig_is_labelled_by_its_name_and_keeps_its_kind() -> None:
    link = ENTITIES.link("rig", RIG)
    assert (link.label, link.kind) == ("webapp", "rig")
    assert link.href == f"towns/t1/e/rig-1.html#e-rig-{RIG}"


def test_an_agent_is_labelled_by_name_and_role_unless_the_role_is_its_name() -> None:
    assert ENTITIES.label("a-2") == "Toast (polecat)"
    assert ENTITIES.label(AGENT) == "refinery"
    assert ENTITIES.label("b-1") == "Review: gt/toast/fix"
    assert ENTITIES.label("ffffffff-unknown-id") == "ffffffff…"


# ── Check messages ───────────────────────────────────────────────────────


def test_a_check_message_names_the_entities_it_mentions() -> None:
    message = f"Working agent {AGENT} has no hook"
    assert named_text(message, ENTITIES) == "Working agent refinery has no hook"
    assert (
        named_text(f"Rig {RIG} has 2 in_progress MR beads (should be at most 1)", ENTITIES)
        == "Rig webapp has 2 in_progress MR beads (should be at most 1)"
    )
    # quotes and punctuation around an id are not part of it; unknown words stay as they are
    assert named_text("Bead 'b-1'. Not an id: a-2x", ENTITIES) == (
        "Bead 'Review: gt/toast/fix'. Not an id: a-2x"
    )
    assert named_text("No id here", ENTITIES) == "No id here"


def test_message_parts_link_known_ids_and_only_those_with_a_page() -> None:
    message = f"Working agent {AGENT} on rig {RIG}"
    parts = message_parts(message, ENTITIES)
    assert [p.plain for p in parts] == ["Working agent ", "refinery", " on rig ", "webapp"]
    links = [p.link for p in parts if p.is_link]  # type: ignore[union-attr]
    assert [link.href for link in links] == [
        f"towns/t1/e/agent-1.html#e-agent-{AGENT}",
        f"towns/t1/e/rig-1.html#e-rig-{RIG}",
    ]
    only_agent = named_message(message, ENTITIES, {AGENT})
    hrefs = [p.link.href for p in only_agent.parts if p.is_link]  # type: ignore[union-attr]
    assert hrefs == [f"towns/t1/e/agent-1.html#e-agent-{AGENT}", ""]
    assert only_agent.message == message
    assert only_agent.text == "Working agent refinery on rig webapp"


# ── Towns: the stored name, else the file's stem ─────────────────────────


def test_simulated_towns_are_named_after_their_scenario() -> None:
    assert [town_name_for("review-round-stuck", i) for i in range(3)] == [
        "review-round-stuck",
        "review-round-stuck-2",
        "review-round-stuck-3",
    ]


def test_the_simulated_file_stores_its_name(scenario_towns: dict[str, Path]) -> None:
    with sqlite3.connect(scenario_towns[SCENARIO]) as conn:
        assert store.town_name(conn) == SCENARIO


def test_a_town_without_a_stored_name_is_named_by_its_file() -> None:
    assert town_name("/x/fleet/dump-eu-1.sqlite", "dump-eu-1") == "dump-eu-1"
    assert town_name("/x/a.sqlite", "id", "review-round-stuck") == "review-round-stuck"


def test_a_bundle_keeps_the_name_of_its_town(
    scenario_towns: dict[str, Path], tmp_path: Path
) -> None:
    bundle = tmp_path / "incident.sqlite"
    manifest = export(
        scenario_towns[SCENARIO], "2026-03-16T08:30:00.000Z", "2026-03-16T09:00:00.000Z", bundle
    )
    assert manifest["town_name"] == SCENARIO
    run = ReplayLoader()(bundle, None, None)
    assert run.town_name == SCENARIO


def test_an_upstream_dump_is_named_by_its_file(tmp_path: Path) -> None:
    dumps = Path(__file__).parent / "fixtures" / "upstream-dumps"
    dump = sorted(dumps.glob("*.sqlite"))[0]
    copy = tmp_path / "eu-west-town.sqlite"
    shutil.copyfile(dump, copy)
    assert ReplayLoader()(copy, None, None).town_name == "eu-west-town"


# ── A site built from a simulated town ───────────────────────────────────


@pytest.fixture(scope="module")
def site(scenario_towns: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("named")
    # the file's name is its id: the name can only come from the file's contents
    source = folder / scenario_towns[SCENARIO].name
    shutil.copyfile(scenario_towns[SCENARIO], source)
    out = folder / "site"
    build_site([source], out, load_run=DiagnosingLoader(ReplayLoader()))
    return out


def _town_id(site: Path) -> str:
    index = json.loads((site / "index.json").read_text(encoding="utf-8"))
    return str(index["towns"][0]["town_id"])


def _small_id(town_id: str) -> str:
    return f'<span class="mono muted small">{town_id}</span>'


def test_every_page_names_the_town_with_its_id_in_small_print(site: Path) -> None:
    town_id = _town_id(site)
    index = (site / "index.html").read_text(encoding="utf-8")
    assert f'>{SCENARIO}</a><div class="muted small mono">{town_id}</div>' in index
    town = (site / "towns" / town_id / "index.html").read_text(encoding="utf-8")
    assert f"<title>{SCENARIO} · reportgen</title>" in town
    assert re.search(
        rf'<h1><span class="muted">.*?Town</a></span> {SCENARIO} {_small_id(town_id)}', town
    )
    assert f"› <span>{SCENARIO}</span> {_small_id(town_id)}</nav>" in town
    pages = [
        *sorted((site / "violations").glob("*.html")),
        *sorted((site / "findings").glob("*.html")),
        *sorted((site / "towns" / town_id / "e").glob("*.html"))[:3],
    ]
    assert len(pages) > 3
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert f">{SCENARIO}</a> {_small_id(town_id)}" in text, page.name


def test_the_build_summary_names_new_episodes_by_town_name(site: Path) -> None:
    index = json.loads((site / "index.json").read_text(encoding="utf-8"))
    assert index["towns"][0]["name"] == SCENARIO
    summary = BuildSummary(out=site)
    summary.new_episodes = [
        {"town_id": "u-1", "town_name": SCENARIO, "invariant": 7, "title": "t", "first_at": "x",
         "href": "violations/a.html"}
    ]  # fmt: skip
    assert f"new: {SCENARIO} (u-1) invariant 7" in summary.text()
    summary.new_finding_records = {
        "f-1": {"town_id": "u-1", "town_name": SCENARIO, "kind": "review-loop",
                "subject_name": "Review: fix"}
    }  # fmt: skip
    assert summary.finding_lines() == [
        (f"{SCENARIO} (u-1) review-loop (Review: fix)", "findings/f-1.html")
    ]


def test_the_rig_and_the_agents_are_named_on_their_pages(site: Path) -> None:
    town_id = _town_id(site)
    with sqlite3.connect(site.parent / f"{town_id}.sqlite") as conn:
        rig_id, rig_name = conn.execute("SELECT id, name FROM rigs").fetchone()
        agents = conn.execute(
            "SELECT a.bead_id, b.title, a.role FROM agent_metadata a "
            "JOIN beads b USING (bead_id) WHERE a.role = 'polecat'"
        ).fetchall()
    assert rig_name == "webapp"
    entity_dir = site / "towns" / town_id / "e"
    rig_page = (entity_dir / "rig-1.html").read_text(encoding="utf-8")
    assert f'id="e-rig-{rig_id}"' in rig_page and "webapp" in rig_page
    bead_pages = "".join(p.read_text(encoding="utf-8") for p in entity_dir.glob("bead-*.html"))
    assert f'title="rig {rig_id}">webapp</a>' in bead_pages
    timeline = (site / "towns" / town_id / "timeline" / "index.js").read_text(encoding="utf-8")
    _agent_id, name, role = agents[0]
    assert f'"{name} ({role})"' in timeline


def test_a_violation_message_links_the_agent_by_name_and_keeps_the_raw_message(
    site: Path,
) -> None:
    town_id = _town_id(site)
    pages = [p.read_text(encoding="utf-8") for p in sorted((site / "violations").glob("*.html"))]
    no_hook = [p for p in pages if "Working agent " in p]
    assert no_hook, "the scenario violates invariant 7"
    found = re.search(
        r'<span class="msg" title="Working agent ([0-9a-f-]{36}) has no hook">'
        r'Working agent <a class="ent ent-agent" href="([^"]+)" title="agent \1">([^<]+)</a>'
        r" has no hook</span>",
        no_hook[0],
    )
    assert found is not None
    agent_id, href, label = found.groups()
    assert label == "refinery"
    assert href == f"../towns/{town_id}/e/agent-1.html#e-agent-{agent_id}"
    # the JSON twin carries the named text beside the raw message
    twin = json.loads(
        next(p for p in sorted((site / "violations").glob("*.json")) if "Working agent" in
             p.read_text(encoding="utf-8")).read_text(encoding="utf-8")
    )  # fmt: skip
    said = twin["messages"][0]
    assert said["message"] == f"Working agent {agent_id} has no hook"
    assert said["text"] == "Working agent refinery has no hook"


def test_the_named_site_has_no_broken_link(site: Path) -> None:
    assert rf.broken_links(site) == []


# ── Names are user data ──────────────────────────────────────────────────


def test_a_hostile_name_stays_escaped_in_messages_and_headings(tmp_path: Path) -> None:
    base = rf.scripted_town()
    base.town_name = rf.HOSTILE
    hostile = rf.hostile_run(base)
    out = tmp_path / "site"
    build_site([Path("town-alpha.sqlite")], out, load_run=rf.loader({"town-alpha.sqlite": hostile}))
    town = (out / "towns" / "town-alpha" / "index.html").read_text(encoding="utf-8")
    assert "<script>alert" not in town and "<b>bold</b>" not in town
    assert re.search(
        r'<h1><span class="muted">.*?Town</a></span> &lt;script&gt;alert\(&#39;x&#39;\)', town
    )
    violation_pages = sorted((out / "violations").glob("*.html"))
    text = violation_pages[0].read_text(encoding="utf-8")
    assert "<script>alert" not in text
    assert "&lt;script&gt;" in text
    assert rf.broken_links(out) == []


def test_a_hostile_name_replacing_an_id_in_a_message_is_escaped(tmp_path: Path) -> None:
    run = rf.scripted_town()
    for info in run.entities.values():
        info.title = '<img src=x onerror="alert(1)">'
    out = tmp_path / "site"
    build_site([Path("town-alpha.sqlite")], out, load_run=rf.loader({"town-alpha.sqlite": run}))
    pages = "".join(p.read_text(encoding="utf-8") for p in (out / "violations").glob("*.html"))
    assert '<span class="msg" title="Bead ' in pages
    assert "<img" not in pages
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in pages


# ── Pages that outlive their town's build: resolved, not rebuilt ─────────


@pytest.fixture(scope="module")
def nights(site: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Night 1 is :func:`site`; night 2 builds another town only (the named one is not
    rebuilt); night 3 builds the named town again without a violation or a finding
    (everything resolved)."""
    folder = tmp_path_factory.mktemp("nights")
    town_id = _town_id(site)
    other = rf.scripted_town("town-other", violations=False)
    again = rf.scripted_town(town_id, violations=False)
    again.town_name = SCENARIO
    again.window_to = clock.iso(clock.to_ms(again.window_to) + clock.MINUTE_MS)
    load = rf.loader({"other.sqlite": other, f"{town_id}.sqlite": again})
    build_site([Path("other.sqlite")], folder / "2", load_run=load, history_path=site)
    build_site([Path(f"{town_id}.sqlite")], folder / "3", load_run=load, history_path=folder / "2")
    return {"2": folder / "2", "3": folder / "3"}


def _stubs(site: Path, state: str) -> list[str]:
    """The HTML of the site's episode and finding stubs in ``state``."""
    found = []
    for twin in [*(site / "violations").glob("*.json"), *(site / "findings").glob("*.json")]:
        if json.loads(twin.read_text(encoding="utf-8")).get("state") == state:
            found.append(twin.with_suffix(".html").read_text(encoding="utf-8"))
    return found


def test_a_town_not_rebuilt_is_named_on_the_index_and_its_stubs(
    site: Path, nights: dict[str, Path]
) -> None:
    town_id, two = _town_id(site), nights["2"]
    index = (two / "index.html").read_text(encoding="utf-8")
    carried = re.search(r'<p class="muted" id="not-rebuilt-towns">.*?</p>', index)
    assert carried is not None
    assert f"<span>{SCENARIO}</span> {_small_id(town_id)} (last built in run" in carried[0]
    rows = re.search(r'<table class="not-rebuilt">.*?</table>', index, re.S)
    assert rows is not None
    assert rows[0].count(f"<td><span>{SCENARIO}</span> {_small_id(town_id)}</td>") >= 1
    twin = json.loads((two / "index.json").read_text(encoding="utf-8"))
    assert {r["town_name"] for r in twin["not_rebuilt"]} == {SCENARIO}
    assert [b["name"] for b in twin["last_built"]] == [SCENARIO]
    stubs = _stubs(two, "not rebuilt")
    kinds = {"episode": 0, "finding": 0}
    for html in stubs:
        assert f"<p>Town <span>{SCENARIO}</span> {_small_id(town_id)} was not rebuilt" in html
        kinds["episode" if "episode</a> is carried" in html else "finding"] += 1
    assert kinds["episode"] and kinds["finding"], kinds
    names = history.read_history(two)[-1].town_names
    assert names == {"town-other": "town-other", town_id: SCENARIO}
    assert rf.broken_links(two) == []


def test_a_resolved_episode_or_finding_names_its_town_and_links_it(
    site: Path, nights: dict[str, Path]
) -> None:
    town_id, three = _town_id(site), nights["3"]
    named = f">{SCENARIO}</a> {_small_id(town_id)}"
    stubs = _stubs(three, "resolved")
    assert any("episode</a> is not in" in s for s in stubs)
    assert any("finding</a> is not in" in s for s in stubs)
    for html in stubs:
        assert f'in town <a href="../towns/{town_id}/index.html"{named},' in html
    index = (three / "index.html").read_text(encoding="utf-8")
    rows = re.search(r'<table class="resolved">.*?</table>', index, re.S)
    assert rows is not None
    assert f'<td><a href="towns/{town_id}/index.html"{named}</td>' in rows[0]
    assert rf.broken_links(three) == []


def test_an_older_history_without_names_shows_the_town_id(site: Path, tmp_path: Path) -> None:
    town_id = _town_id(site)
    lines = (site / history.FILE_NAME).read_text(encoding="utf-8").splitlines()
    old = [json.loads(line) for line in lines]
    for line in old:
        del line["town_names"]
    (tmp_path / history.FILE_NAME).write_text(
        "".join(json.dumps(line) + "\n" for line in old), encoding="utf-8"
    )
    load = rf.loader({"other.sqlite": rf.scripted_town("town-other", violations=False)})
    out = tmp_path / "site"
    build_site([Path("other.sqlite")], out, load_run=load, history_path=tmp_path)
    for html in _stubs(out, "not rebuilt"):
        assert f"<p>Town <span>{town_id}</span> was not rebuilt" in html
