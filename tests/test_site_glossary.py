"""Reading the site as a newcomer: its order, its glossary, no Markdown left raw, permalinks to copy.

* every list of episodes and findings puts the open ones first, then the newest;
* ``glossary.html`` (and its JSON twin) is written by every build, linked
  from every page's header and footer, and each page links its words' first
  use to their entries (the single-file bundle carries the glossary inline);
* no page shows a literal backtick: Markdown's inline code becomes ``<code>``;
* permalinks (episodes, findings, ticks, the town) have a copy-link button.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
import support.report_fixtures as rf
from markupsafe import Markup

from reportgen.diagnose.loader import DiagnosingLoader
from reportgen.replay.fidelity import RECORDED_CAVEAT
from reportgen.replay.loader import ReplayLoader
from reportgen.report.build import build_site
from reportgen.report.glossary import TERMS, TERMS_BY_SLUG
from reportgen.report.ordering import findings_order, newest_first, open_then_newest
from reportgen.report.render import inline_code
from reportgen.report.single_file import build_single_file
from reportgen.report.site import cache_dir
from reportgen.report.verdicts import finding_row
from reportgen.report.views_index import ResolvedRow
from reportgen.sim.demo import demo_sources

#: The words issue readers asked for, by their glossary slug.
REQUIRED_TERMS = {
    "tick", "bead", "rig", "hook", "polecat", "refinery", "mr-bead", "convoy", "invariant",
    "fidelity", "replayed", "episode", "finding", "verdict", "dry-run",
}  # fmt: skip


def _read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo fleet as the nightly builds it (recorded ticks: the recorded caveat shows)."""
    out = tmp_path_factory.mktemp("glossary") / "site"
    build_site(demo_sources(cache_dir()), out, jobs=2, load_run=DiagnosingLoader(ReplayLoader()))
    return out


@pytest.fixture(scope="module")
def scripted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The scripted town: one episode still open at the window's end, one over before it."""
    out = tmp_path_factory.mktemp("scripted") / "site"
    runs = {"t.sqlite": rf.scripted_town("town-alpha", minutes=12)}
    build_site([Path("t.sqlite")], out, load_run=rf.loader(runs))
    return out


# ── Ordering ─────────────────────────────────────────────────────────────


def _is_open_then_newest(rows: list[dict[str, Any]]) -> bool:
    keys = [(not r["open_at_end"], r["first_at"]) for r in rows]
    opened = [k for k in keys if not k[0]]
    closed = [k for k in keys if k[0]]
    return keys == opened + closed and all(
        [k[1] for k in part] == sorted((k[1] for k in part), reverse=True)
        for part in (opened, closed)
    )


def test_every_episode_list_has_open_ones_first_then_the_newest(scripted: Path) -> None:
    index = _read(scripted / "index.json")
    rows = index["episodes"]
    assert len(rows) == 2 and rows[0]["open_at_end"] and not rows[-1]["open_at_end"]
    # the old order was the oldest first: the open episode began last, so it came last
    assert _is_open_then_newest(rows) and rows != sorted(rows, key=lambda r: r["first_at"])
    html = (scripted / "index.html").read_text(encoding="utf-8")
    shown = re.findall(r'<tr class="episode-row[^"]*" id="ep-([0-9a-f]+)"', html)
    assert shown == [r["id"] for r in rows]
    for entity in sorted((scripted / "towns" / "town-alpha" / "e").glob("*.json")):
        for section in _read(entity)["sections"]:
            assert _is_open_then_newest(section["episodes"]), entity.name
    town = _read(scripted / "towns" / "town-alpha" / "index.json")
    assert all(_is_open_then_newest(g["episodes"]) for g in town["groups"])


def _row(eid: str, first: str, last: str, *, open_: bool = False) -> Any:
    return type("Row", (), {"id": eid, "first_at": first, "last_at": last, "open_at_end": open_})


def test_the_order_is_total_and_puts_bad_times_last() -> None:
    rows = [
        _row("a", "2026-03-01T00:00:00.000Z", "2026-03-01T00:05:00.000Z"),
        _row("b", "2026-03-01T00:10:00.000Z", "2026-03-01T00:11:00.000Z"),
        _row("c", "not a time", "2026-03-01T00:11:00.000Z"),
        _row("d", "2026-03-01T00:01:00.000Z", "2026-03-01T00:30:00.000Z", open_=True),
        _row("e", "2026-03-01T00:10:00.000Z", "2026-03-01T00:11:00.000Z"),
    ]
    assert [r.id for r in open_then_newest(rows)] == ["d", "b", "e", "a", "c"]
    resolved = [
        ResolvedRow(r.id, "t", 6, "x", r.first_at, r.last_at, f"violations/{r.id}.html")
        for r in rows
    ]
    assert [r.id for r in newest_first(resolved)] == ["b", "e", "d", "a", "c"]


def test_findings_keep_the_worst_first_then_open_ones_then_the_newest() -> None:
    def finding(fid: str, severity: str, first: str, *, open_: bool, expected: bool = False) -> Any:
        return finding_row(
            {"id": fid, "kind": "no-progress", "severity": severity, "expected": expected,
             "first_at": first, "last_at": "2026-03-01T02:00:00.000Z", "open_at_end": open_}
        )  # fmt: skip

    rows = [
        finding("old-critical", "critical", "2026-03-01T00:00:00.000Z", open_=True),
        finding("new-critical", "critical", "2026-03-01T01:00:00.000Z", open_=True),
        finding("expected", "critical", "2026-03-01T01:30:00.000Z", open_=True, expected=True),
        finding("closed-warning", "warning", "2026-03-01T01:40:00.000Z", open_=False),
        finding("open-warning", "warning", "2026-03-01T00:10:00.000Z", open_=True),
    ]
    assert [f.id for f in findings_order(rows)] == [
        "new-critical", "old-critical", "open-warning", "closed-warning", "expected",
    ]  # fmt: skip


# ── Glossary ─────────────────────────────────────────────────────────────


def test_the_glossary_is_written_with_every_term_and_linked_from_every_page(
    scripted: Path,
) -> None:
    twin = _read(scripted / "glossary.json")
    assert twin["kind"] == "glossary"
    assert {t["slug"] for t in twin["terms"]} >= REQUIRED_TERMS
    assert all(0 < t["definition"].count(". ") + 1 <= 3 for t in twin["terms"])
    html = (scripted / "glossary.html").read_text(encoding="utf-8")
    for term in TERMS:
        assert f'<dt id="{term.anchor}">' in html
    for page in sorted(scripted.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        root = "../" * len(page.relative_to(scripted).parent.parts)
        assert text.count(f'href="{root}glossary.html"') == 2, page  # the header and the footer
    assert rf.broken_links(scripted) == []


#: Words each kind of page links to the glossary (at their first use).
PAGE_TERMS = {
    "index.html": {"tick", "town", "episode", "verdict", "finding", "invariant", "fidelity"},
    "towns/town-alpha/index.html": {"town", "fidelity", "tick", "finding", "episode", "invariant"},
    "violations/*.html": {"invariant", "episode", "town", "fidelity", "tick"},
    "towns/town-alpha/e/agent-*.html": {"agent", "rig"},
    "towns/town-alpha/e/bead-*.html": {"bead"},
}


@pytest.mark.parametrize("pattern", sorted(PAGE_TERMS))
def test_pages_link_their_words_to_the_glossary_once(scripted: Path, pattern: str) -> None:
    page = sorted(scripted.glob(pattern))[0]
    linked = re.findall(
        r'<a class="term" href="[./]*glossary\.html#term-([\w-]+)"', page.read_text()
    )
    assert PAGE_TERMS[pattern] <= set(linked)
    assert len(linked) == len(set(linked)), "a word links to the glossary only at its first use"


def test_the_single_file_bundle_carries_the_glossary(tmp_path: Path) -> None:
    out = tmp_path / "incident.html"
    build_single_file([Path("a.sqlite")], out, load_run=rf.loader({"a.sqlite": rf.scripted_town()}))
    html = out.read_text(encoding="utf-8")
    ids = rf.parse(out).ids
    assert "glossary" in ids and {t.anchor for t in TERMS} <= ids
    targets = set(re.findall(r'href="#(term-[\w-]+|glossary)"', html))
    assert targets and targets <= ids and "term-tick" in targets


def test_an_unknown_term_fails_the_render() -> None:
    assert "tick" in TERMS_BY_SLUG and TERMS_BY_SLUG["merge_request"].slug == "mr-bead"
    from reportgen.report.render import environment

    template = environment().from_string(
        '{% import "_macros.html" as m with context %}{{ m.term("no-such-word") }}'
    )
    with pytest.raises(Exception, match="no-such-word"):
        template.render(url=lambda href: href)


# ── No Markdown left raw ─────────────────────────────────────────────────


class _Visible(HTMLParser):
    """The text a reader sees: everything outside ``<script>`` and ``<style>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hidden = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hidden += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self.hidden -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.text.append(data)


def visible_text(html: str) -> str:
    parser = _Visible()
    parser.feed(html)
    return "".join(parser.text)


def test_inline_code_escapes_first_and_keeps_a_lone_backtick() -> None:
    assert inline_code("run `a <b>` now") == Markup("run <code>a &lt;b&gt;</code> now")
    assert inline_code("`<script>`") == Markup("<code>&lt;script&gt;</code>")
    assert inline_code("it's a ` alone") == Markup("it&#39;s a ` alone")
    assert "`" in RECORDED_CAVEAT


def test_no_page_shows_a_backtick(demo: Path, tmp_path: Path) -> None:
    pages = sorted(demo.rglob("*.html"))
    shown = {p: visible_text(p.read_text(encoding="utf-8")) for p in pages}
    # the demo's ticks are shown as recorded: its caveat (with inline code) is on the pages
    assert any("--ticks replay" in text for text in shown.values())
    out = tmp_path / "incident.html"
    run = rf.scripted_town()
    run.fidelity, run.caveat = "recorded", RECORDED_CAVEAT
    build_single_file([Path("a.sqlite")], out, load_run=rf.loader({"a.sqlite": run}))
    shown[out] = visible_text(out.read_text(encoding="utf-8"))
    assert "<code>reportgen build --ticks replay</code>" in out.read_text(encoding="utf-8")
    assert [str(p) for p, text in shown.items() if "`" in text] == []


# ── Copy-link buttons ────────────────────────────────────────────────────


def test_every_permalink_has_a_labelled_copy_link_button(scripted: Path) -> None:
    index = _read(scripted / "index.json")
    html = (scripted / "index.html").read_text(encoding="utf-8")
    for row in index["episodes"]:
        assert f'data-href="{row["href"]}" aria-label="Copy link to episode {row["id"]}"' in html
    town = (scripted / "towns" / "town-alpha" / "index.html").read_text(encoding="utf-8")
    assert 'aria-label="Copy link to this town"' in town
    episode = sorted((scripted / "violations").glob("*.html"))[0]
    assert f'aria-label="Copy link to episode {episode.stem}"' in episode.read_text()
