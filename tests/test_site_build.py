"""Building whole sites: links, JSON twins, determinism, escaping, atomic swaps, history, the CLI."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import support.report_fixtures as rf
from click.testing import CliRunner
from support.timeline_data import inline_lands

from reportgen.cli import main
from reportgen.report.build import BuildSummary, build_site
from reportgen.report.single_file import build_single_file
from reportgen.report.site import SiteWriter

HOSTILE_TOWN = 'town-<hostile> & "x"'


@pytest.fixture(scope="module")
def runs() -> dict[str, Any]:
    hostile = rf.hostile_run(rf.scripted_town("town-hostile"))
    hostile.town_id = HOSTILE_TOWN
    return {
        "a.sqlite": rf.scripted_town("town-alpha"),
        "b.sqlite": rf.scripted_town("town-beta", violations=False),
        "h.sqlite": hostile,
    }


def build(
    runs: dict[str, Any], out: Path, names: list[str] | None = None, **kw: Any
) -> BuildSummary:
    sources = [Path(n) for n in (names or sorted(runs))]
    return build_site(sources, out, load_run=rf.loader(runs), **kw)


@pytest.fixture(scope="module")
def site(runs: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fixture") / "site"
    build(runs, out)
    return out


def html_files(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def test_every_link_and_fragment_resolves(site: Path) -> None:
    assert rf.broken_links(site) == []


def test_every_page_has_a_json_twin_with_its_data(site: Path) -> None:
    for page in html_files(site):
        twin = page.with_suffix(".json")
        data = json.loads(twin.read_text(encoding="utf-8"))
        assert data["kind"] in {
            "index", "town", "ticks", "entity", "violation", "resolved", "glossary"
        }  # fmt: skip
    index = json.loads((site / "index.json").read_text(encoding="utf-8"))
    assert [t["town_id"] for t in index["towns"]] == [HOSTILE_TOWN, "town-alpha", "town-beta"]


def test_pages_exist_for_towns_entities_and_violations(site: Path, runs: dict[str, Any]) -> None:
    index = json.loads((site / "index.json").read_text(encoding="utf-8"))
    assert len(index["episodes"]) == 4
    for ep in index["episodes"]:
        page = json.loads((site / ep["href"]).with_suffix(".json").read_text(encoding="utf-8"))
        assert page["episode"]["id"] == ep["id"]
        for entity in page["episode"]["entities"]:  # the index lists an episode in one line
            path, _, anchor = entity["href"].partition("#")
            assert f'id="{anchor}"' in (site / path).read_text(encoding="utf-8")
    alpha = runs["a.sqlite"]
    touched = {
        b for t in alpha.ticks for a in t["actions"] for k, b in a.items() if k == "bead_id" and b
    }
    entity_files = sorted(site.glob("towns/town-alpha/e/bead-*.html"))
    beads = "".join(p.read_text(encoding="utf-8") for p in entity_files)
    for bead in touched:
        assert f'id="e-bead-{bead}"' in beads


def test_same_inputs_give_byte_identical_sites(
    runs: dict[str, Any], tmp_path: Path, site: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1")
    again = tmp_path / "again"
    build(runs, again)

    def tree(root: Path) -> dict[str, bytes]:
        return {
            str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
        }

    first, second = tree(site), tree(again)
    assert sorted(first) == sorted(second)
    assert [k for k in first if first[k] != second[k]] == []


def test_hostile_strings_are_escaped_everywhere(site: Path) -> None:
    town_dir = next(p for p in (site / "towns").iterdir() if p.name.startswith("h-"))
    pages = (
        sorted(town_dir.rglob("*.html")) + html_files(site / "violations") + [site / "index.html"]
    )
    for page in pages:
        text = page.read_text(encoding="utf-8")  # valid UTF-8 (undecodable bytes replaced)
        assert "<script>alert" not in text, page
        assert "<b>bold</b>" not in text, page
        # inline JSON cannot close its <script> element
        for block in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', text, re.S):
            assert "<" not in block
        assert text.count("<script") == text.count("</script>")
    town = (town_dir / "index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in town
    assert "\ufffd" in town  # the non-UTF-8 bytes, replaced
    assert "town-&lt;hostile&gt; &amp; &#34;x&#34;" in (site / "index.html").read_text(
        encoding="utf-8"
    )


def test_no_page_loads_anything_from_the_network(site: Path) -> None:
    for page in html_files(site):
        for tag, ref in rf.parse(page).refs:
            assert not (tag in ("script", "link", "img") and ref.startswith(("http", "//"))), page
    assert not any("cdn.jsdelivr" in p.read_text(encoding="utf-8") for p in html_files(site))


def test_failed_build_keeps_the_previous_site(runs: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "site"
    build(runs, out, names=["a.sqlite"])
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def explode(done: int, total: int, label: str) -> None:
        raise KeyboardInterrupt  # a user's ^C half-way through

    with pytest.raises(KeyboardInterrupt):
        build(runs, out, progress=explode)
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["site"]  # no temporary directory left


def test_a_killed_build_is_cleaned_up_and_an_interrupted_swap_restored(tmp_path: Path) -> None:
    out = tmp_path / "site"
    stale = tmp_path / ".site.tmp-999999999"
    stale.mkdir()
    old = tmp_path / ".site.old-999999999"
    old.mkdir()
    (old / "index.html").write_text("previous", encoding="utf-8")
    with SiteWriter(out) as writer:  # noqa: F841 - opening it cleans up
        assert not stale.exists()
        assert (out / "index.html").read_text(encoding="utf-8") == "previous"


def test_failing_town_is_listed_with_its_reason(runs: dict[str, Any], tmp_path: Path) -> None:
    summary = build(runs, tmp_path / "s", names=["a.sqlite", "missing.sqlite"])
    assert (summary.towns, summary.towns_failed) == (2, 1)
    index = json.loads((tmp_path / "s" / "index.json").read_text(encoding="utf-8"))
    failed = [t for t in index["towns"] if t["state"] == "failed"]
    assert failed[0]["town_id"] == "missing" and "not a fixture" in failed[0]["error"]


def test_history_marks_episodes_across_runs(runs: dict[str, Any], tmp_path: Path) -> None:
    first = build(runs, tmp_path / "one", names=["a.sqlite"])
    assert (first.new, first.persisting, first.resolved) == (2, 0, 0)
    second = build(runs, tmp_path / "two", names=["a.sqlite"], history_path=tmp_path / "one")
    assert (second.new, second.persisting, second.resolved) == (0, 2, 0)
    clean_run = rf.scripted_town("town-alpha", violations=False)
    clean_run.window_to = "2026-03-01T00:10:00.000Z"  # a later nightly window
    third = build_site(
        [Path("a.sqlite")],
        tmp_path / "three",
        load_run=rf.loader({"a.sqlite": clean_run}),
        history_path=tmp_path / "two",
    )
    assert (third.new, third.persisting, third.resolved) == (0, 0, 2)
    lines = (tmp_path / "three" / "history.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2  # run two replaced run one (same window), then run three
    # resolved permalinks stay alive, and the index shows the trend
    for ep in first.new_episodes:
        assert "resolved" in (tmp_path / "three" / ep["href"]).read_text(encoding="utf-8")
    assert rf.broken_links(tmp_path / "three") == []


def test_single_file_bundle_is_self_contained(runs: dict[str, Any], tmp_path: Path) -> None:
    out = tmp_path / "incident.html"
    size = build_single_file(
        [Path("a.sqlite"), Path("b.sqlite")], out, town="town-alpha", load_run=rf.loader(runs)
    )
    assert size == out.stat().st_size < 1_500_000
    page = rf.parse(out)
    assert [r for t, r in page.refs if t in ("script", "link")] == []  # everything inline
    assert [r for t, r in page.refs if t == "a" and not r.startswith("#")] == []
    text = out.read_text(encoding="utf-8")
    fragments = [r[1:] for t, r in page.refs if t == "a" and r.startswith("#") and r != "#"]
    ticks = [int(f.removeprefix("tick-")) for f in fragments if f.startswith("tick-")]
    assert ticks and all(inline_lands(text, ms) for ms in ticks)  # the timeline selects them
    assert all(f in page.ids for f in fragments if not f.startswith("tick-"))
    assert "window.vegaEmbed" in text and 'id="spec-actions"' in text


def test_cli_exit_codes_and_step_summary(
    runs: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(
        "reportgen.diagnose.loader.DiagnosingLoader.__call__",
        lambda self, s, f, t: rf.loader(runs)(s, f, t),
    )
    for name in ("a.sqlite", "b.sqlite"):
        (tmp_path / name).write_bytes(b"")
    summary_file = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary_file))
    runner = CliRunner()
    args = ["build", str(tmp_path / "a.sqlite"), "--out", str(tmp_path / "site"), "--jobs", "1"]
    result = runner.invoke(main, [*args, "--fail-on-violations"])
    assert result.exit_code == 3, result.output
    assert "2 new" in result.output and "site/index.html" in result.output
    assert "### New violation episodes" in summary_file.read_text(encoding="utf-8")
    assert runner.invoke(main, args).exit_code == 0
    clean_only = ["build", str(tmp_path / "b.sqlite"), "--out", str(tmp_path / "s2"), "--jobs", "1"]
    assert runner.invoke(main, [*clean_only, "--fail-on-violations"]).exit_code == 0
    towns = tmp_path / "towns"
    towns.mkdir()
    for name in ("a.sqlite", "zz.sqlite"):
        (towns / name).write_bytes(b"")
    partial = runner.invoke(
        main, ["build", str(towns), "--out", str(tmp_path / "s3"), "--jobs", "1"]
    )
    assert partial.exit_code == 4, partial.output
    assert runner.invoke(main, ["build", str(tmp_path / "nope.sqlite")]).exit_code == 2
    assert os.path.exists(tmp_path / "s3" / "index.html")


def test_quarantine_table_shows_when_each_row_was_met(site: Path, runs: dict[str, Any]) -> None:
    town_dir = next(p for p in (site / "towns").iterdir() if p.name.startswith("h-"))
    town = (town_dir / "index.html").read_text(encoding="utf-8")
    row = re.search(r"<tr><td class=\"mono small\">q1</td>.*?</tr>", town, re.S)
    assert row is not None
    assert f'<td class="mono small">{runs["h.sqlite"].quarantined[0]["at"]}</td>' in row.group(0)


def test_a_town_without_ticks_is_written_where_the_index_links(tmp_path: Path) -> None:
    """A town id that is not a safe file name lives under its slug, ticks or none."""
    empty = rf.scripted_town("con")  # a reserved device name on Windows: slugged
    empty.ticks = []
    build({"e.sqlite": empty}, tmp_path / "site")
    assert not (tmp_path / "site" / "towns" / "con").exists()
    assert rf.broken_links(tmp_path / "site") == []
