"""Bidi controls from the data are shown on pages, never obeyed; JSON twins keep them.

A right-to-left override (U+202E) in a bead title reverses the text after it
on the page, so a title can pass itself off as something else. Every page
shows each control as ``⟨U+202E⟩``; the JSON twins are data and keep it raw.
The town is a real database, built by the real CLI.
"""

from __future__ import annotations

import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import support.report_fixtures as rf
from click.testing import CliRunner

from reportgen.cli import main
from reportgen.report.format import script_json
from reportgen.report.render import environment

#: Every bidi control, as written in the data, and as a page must show it.
CONTROLS = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
RAW = re.compile(f"[{CONTROLS}]")
RLO = "\u202e"
SHOWN_RLO = "⟨U+202E⟩"


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recorded town whose bead titles, agent names and rig name hold bidi controls."""
    path = tmp_path_factory.mktemp("bidi") / "town.sqlite"
    rf.scripted_town("town-bidi", db_path=path)
    agents = "SELECT bead_id FROM agent_metadata"
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(
            f"UPDATE beads SET title = title || ? WHERE bead_id NOT IN ({agents})",
            (f" bead{RLO}eltit {CONTROLS}",),
        )
        conn.execute(
            f"UPDATE beads SET title = title || ? WHERE bead_id IN ({agents})", (f" {RLO}tnega",)
        )
        conn.execute("UPDATE rigs SET name = name || ?", (f" {RLO}gir",))
        conn.commit()
    return path


@pytest.fixture(scope="module")
def site(town: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bidi-site") / "site"
    result = CliRunner().invoke(main, ["build", str(town), "--out", str(out), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    return out


def _raw_controls(path: Path) -> list[str]:
    return [f"U+{ord(c):04X}" for c in RAW.findall(path.read_text(encoding="utf-8"))]


def test_no_page_of_the_site_holds_a_raw_bidi_control(site: Path) -> None:
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 5
    assert {
        str(p.relative_to(site)): _raw_controls(p) for p in pages if RAW.search(p.read_text())
    } == {}


def test_titles_and_agent_names_show_each_control(site: Path) -> None:
    town = site / "towns" / "town-bidi"
    named = {  # the sections of the beads and agents the data names
        f"{section['entity']['kind']}:{section['anchor']}": html.split(
            f'id="{section["anchor"]}"', 1
        )[1].split("</section>", 1)[0]
        for page in sorted((town / "e").glob("*.html"))
        for html in [page.read_text(encoding="utf-8")]
        for section in json.loads(page.with_suffix(".json").read_text(encoding="utf-8"))["sections"]
        if RLO in (section["entity"]["title"] or "")
    }
    agents = [text for key, text in named.items() if key.startswith("agent:")]
    beads = [text for key, text in named.items() if key.startswith("bead:")]
    assert len(agents) == 2 and len(beads) == 4, sorted(named)
    assert all(f"{SHOWN_RLO}tnega" in text for text in agents)
    for text in beads:
        assert f"bead{SHOWN_RLO}eltit" in text
        assert all(f"⟨U+{ord(control):04X}⟩" in text for control in CONTROLS)
    assert f"{SHOWN_RLO}tnega" in (town / "index.html").read_text(encoding="utf-8")


def test_json_twins_keep_the_data_as_it_is(site: Path) -> None:
    twins = sorted((site / "towns" / "town-bidi" / "e").glob("bead-*.json"))
    assert twins
    for twin in twins:
        for section in json.loads(twin.read_text(encoding="utf-8"))["sections"]:
            title = section["entity"]["title"]
            assert title.endswith(f" bead{RLO}eltit {CONTROLS}"), section["anchor"]
        assert SHOWN_RLO not in twin.read_text(encoding="utf-8")


def test_the_single_file_bundle_holds_no_raw_bidi_control(town: Path, tmp_path: Path) -> None:
    out = tmp_path / "incident.html"
    result = CliRunner().invoke(main, ["build", str(town), "--single-file", str(out)])
    assert result.exit_code == 0, result.output
    assert _raw_controls(out) == []
    assert f"bead{SHOWN_RLO}eltit" in out.read_text(encoding="utf-8")


def test_every_kind_of_template_output_is_covered() -> None:
    """Plain values, filters, ``~`` joins (``Markup`` under autoescape), attributes and
    chart data in ``<script>`` JSON all go through the environment's one hook."""
    template = environment().from_string(
        '<a title="{{ x }}">{{ x }}|{{ "inv " ~ x }}|{{ x|ellipsis(50) }}</a>'
        '<script type="application/json">{{ {"type": x}|script_json }}</script>'
    )
    html = template.render(x=f"a{RLO}b<c>")
    assert not RAW.search(html)
    assert html.count(f"a{SHOWN_RLO}b&lt;c&gt;") == 4
    assert f'{{"type":"a{SHOWN_RLO}b\\u003cc\\u003e"}}' in html
    assert json.loads(script_json([RLO])) == [SHOWN_RLO]
