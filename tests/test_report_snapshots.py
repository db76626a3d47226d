"""Snapshots of rendered pages and of every page type's view-model (its JSON twin).

The fixture is small and fixed (the scripted town of ``report_fixtures``, plus a
history with a resolved episode), and the assets are stubs, so a snapshot only
changes when a template or a view-model does.

To update after an intended change, run::

    .venv/bin/pytest tests/test_report_snapshots.py --snapshot-update

then open the changed ``tests/__snapshots__/test_report_snapshots/*.html`` in a
browser and review the diff like code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import support.report_fixtures as rf
from support.timeline_data import chunks_of, read_part
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.json import JSONSnapshotExtension
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from reportgen.report.build import build_site
from reportgen.report.site import Assets

STUB_ASSETS = Assets(
    css="/* css */", js="// js", vega="// vega", vega_version="test", timeline="// timeline"
)


class HTMLSnapshotExtension(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT
    file_extension = "html"


@pytest.fixture
def html_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(HTMLSnapshotExtension)


@pytest.fixture
def json_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.use_extension(JSONSnapshotExtension)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Run one has the scripted violations; run two (a later window) has none, so they resolve."""
    root = tmp_path_factory.mktemp("snap")
    first = {"t.sqlite": rf.scripted_town("town-alpha", minutes=12)}
    build_site([Path("t.sqlite")], root / "one", load_run=rf.loader(first), assets=STUB_ASSETS)
    build_site(
        [Path("t.sqlite")],
        root / "two",
        load_run=rf.loader(first),
        assets=STUB_ASSETS,
        history_path=root / "one",
    )
    return root / "two"


def _first(site: Path, pattern: str) -> Path:
    return sorted(site.glob(pattern))[0]


PAGES = {
    "index": "index.html",
    "town": "towns/town-alpha/index.html",
    "violation": "violations/*.html",
}
TWINS = {
    **PAGES,
    "entity_bead": "towns/town-alpha/e/bead-*.html",
    "entity_agent": "towns/town-alpha/e/agent-*.html",
}


@pytest.mark.parametrize("name", sorted(PAGES))
def test_rendered_html(site: Path, name: str, html_snapshot: SnapshotAssertion) -> None:
    assert _first(site, PAGES[name]).read_text(encoding="utf-8") == html_snapshot


@pytest.mark.parametrize("name", sorted(TWINS))
def test_view_model(site: Path, name: str, json_snapshot: SnapshotAssertion) -> None:
    model: Any = json.loads(
        _first(site, TWINS[name]).with_suffix(".json").read_text(encoding="utf-8")
    )
    assert model == json_snapshot


def test_timeline_data(site: Path, json_snapshot: SnapshotAssertion) -> None:
    """The town's timeline files (its tick twin): the index and every chunk."""
    folder = site / "towns" / "town-alpha" / "timeline"
    assert [read_part(folder / "index.js"), *chunks_of(folder)] == json_snapshot


def test_resolved_page_view_model(tmp_path: Path, json_snapshot: SnapshotAssertion) -> None:
    first = {"t.sqlite": rf.scripted_town("town-alpha")}
    later = rf.scripted_town("town-alpha", violations=False)
    later.window_to = "2026-03-01T00:10:00.000Z"
    build_site([Path("t.sqlite")], tmp_path / "one", load_run=rf.loader(first), assets=STUB_ASSETS)
    build_site(
        [Path("t.sqlite")],
        tmp_path / "two",
        load_run=rf.loader({"t.sqlite": later}),
        assets=STUB_ASSETS,
        history_path=tmp_path / "one",
    )
    resolved = [
        json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((tmp_path / "two" / "violations").glob("*.json"))
    ]
    assert [r["kind"] for r in resolved] == ["resolved", "resolved"]
    assert resolved == json_snapshot
