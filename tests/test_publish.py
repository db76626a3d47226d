"""``reportgen publish``: the permalink ledger, thinning, retention, and what it refuses.

The runs here are small hand-made sites with the layout and ``index.json``
fields a build writes (tests/test_nightly_retention.py runs the real
nightly); each says exactly which episode and finding a run showed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import support.report_fixtures as rf
from click.testing import CliRunner

from reportgen.cli import main
from reportgen.errors import BadInputError
from reportgen.report import ledger as ledgers
from reportgen.report.publish import publish
from reportgen.report.retention import drop_dead_links
from reportgen.report.site import SITE_MARKER

PAGE = (
    '<!doctype html><html><head><link rel="stylesheet" href="{root}assets/site-1.css"></head>'
    "<body>{body}"
    '<script src="{root}assets/vega-1.js"></script><script src="{root}assets/site-1.js"></script>'
    "</body></html>\n"
)


def _episode(eid: str, town: str, *, open_at_end: bool = True) -> dict[str, Any]:
    return {
        "id": eid, "town_id": town, "invariant": 7, "title": "Working agent without a hook",
        "first_at": "2026-03-16T08:00:00.000Z", "last_at": "2026-03-16T09:00:00.000Z",
        "open_at_end": open_at_end, "status": "new", "summary": f"episode {eid}",
        "href": f"violations/{eid}.html",
    }  # fmt: skip


def _finding(fid: str) -> dict[str, Any]:
    return {
        "id": fid, "kind": "dispatch-loop", "severity": "critical", "subject_name": "a bead",
        "first_at": "2026-03-16T08:00:00.000Z", "last_at": "2026-03-16T09:00:00.000Z",
        "open_at_end": True, "status": "new", "because": "it kept dispatching",
        "href": f"findings/{fid}.html",
    }  # fmt: skip


def make_run(
    pages: Path,
    label: str,
    episodes: list[dict[str, Any]],
    towns: dict[str, str] | None = None,
    findings: dict[str, list[str]] | None = None,
) -> Path:
    """A run as a build writes it: towns ``{id: state}`` (default: town-a built)."""
    run = pages / "runs" / label
    towns = towns or {"town-a": "violations"}
    (run / "assets").mkdir(parents=True)
    for name in ("site-1.css", "site-1.js", "vega-1.js"):
        (run / "assets" / name).write_text("/* asset */\n", encoding="utf-8")
    (run / SITE_MARKER).write_text("{}\n", encoding="utf-8")
    (run / "history.jsonl").write_text("", encoding="utf-8")
    rows = [
        {"town_id": t, "name": f"Town {t[-1].upper()}", "state": state,
         "findings": [_finding(f) for f in (findings or {}).get(t, [])]}
        for t, state in towns.items()
    ]  # fmt: skip
    index = {"towns": rows, "episodes": episodes, "not_rebuilt_towns": {}}
    (run / "index.json").write_text(json.dumps(index), encoding="utf-8")
    links = "".join(
        f'<a href="towns/{t}/index.html">{t}</a> <a href="towns/{t}/index.html#tick-1">tick</a>'
        for t in towns
    )
    links += "".join(f'<a href="violations/{e["id"]}.html">{e["id"]}</a>' for e in episodes)
    (run / "index.html").write_text(PAGE.format(root="", body=links), encoding="utf-8")
    for t in towns:
        (run / "towns" / t).mkdir(parents=True)
        body = '<p id="tick-1"><a href="../../index.html">up</a></p>'
        (run / "towns" / t / "index.html").write_text(PAGE.format(root="../../", body=body))
    for page in [f"violations/{e['id']}" for e in episodes] + [
        f"findings/{f}" for fs in (findings or {}).values() for f in fs
    ]:
        (run / page).parent.mkdir(exist_ok=True)
        body = '<a class="ent" href="../towns/town-a/index.html">the <b>agent</b></a>'
        body += '<a href="../index.html">run</a><a href="https://example.invalid/">out</a>'
        (run / f"{page}.html").write_text(PAGE.format(root="../", body=body), encoding="utf-8")
        (run / f"{page}.json").write_text("{}\n", encoding="utf-8")
    return run


def tree(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def test_drop_dead_links_keeps_the_text_and_removes_dead_assets() -> None:
    html = (
        '<p><a class="x" title="a > b" href="gone.html">kept <b>text</b></a> '
        '<a href="here.html#f">here</a> <a href="#top">top</a> <a href="https://e.invalid/">e</a>'
        '<link rel="stylesheet" href="gone.css"><script src="gone.js">var x = "</a>";</script>'
        '<script src="here.js"></script></p>'
    )
    out = drop_dead_links(html, lambda ref: ref.startswith("here"))
    assert out == (
        '<p>kept <b>text</b> <a href="here.html#f">here</a> <a href="#top">top</a> '
        '<a href="https://e.invalid/">e</a><script src="here.js"></script></p>'
    )


def test_an_episode_is_open_then_resolved_in_the_first_run_that_built_its_town_without_it(
    tmp_path: Path,
) -> None:
    view = ledgers.read_run
    make_run(tmp_path, "2026-03-09", [_episode("e1", "town-a")])
    make_run(tmp_path, "2026-03-10", [_episode("e1", "town-a", open_at_end=False)])
    make_run(tmp_path, "2026-03-10.2", [], towns={"town-a": "failed"})  # not built: no change
    make_run(tmp_path, "2026-03-11", [], towns={"town-a": "ok", "town-b": "ok"})
    make_run(tmp_path, "2026-03-12", [])
    runs = ledgers.sort_runs([p.name for p in (tmp_path / "runs").iterdir()])
    assert runs == ["2026-03-09", "2026-03-10", "2026-03-10.2", "2026-03-11", "2026-03-12"]
    ledger = ledgers.Ledger()
    states = []
    for label in runs:
        ledgers.apply_run(ledger, view(label, tmp_path / "runs" / label / "index.json"))
        states.append((ledger.episodes["e1"].state, ledger.episodes["e1"].resolved_in))
    assert states == [
        ("open", ""), ("ended", ""), ("ended", ""), ("resolved", "2026-03-11"),
        ("resolved", "2026-03-11"),
    ]  # fmt: skip
    entry = ledger.episodes["e1"]
    assert entry.runs == ["2026-03-09", "2026-03-10"] and entry.town_name == "Town A"
    before = ledger.dump()
    for label in runs:  # the same runs again (every night re-reads the kept runs): no change
        ledgers.apply_run(ledger, view(label, tmp_path / "runs" / label / "index.json"))
    assert ledger.dump() == before


def test_publish_thins_deletes_and_writes_permalinks_deterministically(tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    for day in range(1, 7):
        make_run(pages, f"2026-03-0{day}", [_episode("e1", "town-a")] if day < 5 else [],
                 findings={"town-a": ["f1"]})  # fmt: skip
    (pages / "runs" / "notes").mkdir()  # not reportgen's: never touched
    (pages / "runs" / "notes" / "todo.txt").write_text("mine\n", encoding="utf-8")
    copy = tmp_path / "copy"
    shutil.copytree(pages, copy)
    done = publish(pages, full_runs=2, keep_runs=4)
    assert done.deleted == ["2026-03-01", "2026-03-02"] and done.foreign == ["notes"]
    assert done.thinned == ["2026-03-03", "2026-03-04"] and done.runs[-1] == "2026-03-06"
    thinned = pages / "runs" / "2026-03-04"
    assert not (thinned / "towns").exists() and not (thinned / "assets" / "vega-1.js").exists()
    assert not (thinned / "violations" / "e1.json").exists()
    page = (thinned / "violations" / "e1.html").read_text(encoding="utf-8")
    assert "the <b>agent</b>" in page and "towns/" not in page and 'href="../index.html"' in page
    assert (pages / "runs" / "notes" / "todo.txt").read_text(encoding="utf-8") == "mine\n"
    assert rf.broken_links(pages) == []
    e1 = (pages / "permalinks" / "episodes" / "e1.html").read_text(encoding="utf-8")
    assert "Resolved in run" in e1 and "runs/2026-03-05/index.html" in e1
    assert "Town A" in e1 and "2 older run(s) no longer kept" in e1
    assert (pages / "permalinks" / "findings" / "f1.html").is_file()
    # the same tree gives the same bytes; publishing again changes nothing
    publish(copy, full_runs=2, keep_runs=4)
    assert tree(copy) == tree(pages)
    publish(pages, full_runs=2, keep_runs=4)
    assert tree(copy) == tree(pages)


def test_permalinks_outlive_every_run_that_showed_them(tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    make_run(pages, "2026-03-01", [_episode("e1", "town-a")])
    publish(pages, full_runs=1, keep_runs=1)
    for day in range(2, 5):
        make_run(pages, f"2026-03-0{day}", [])
        publish(pages, full_runs=1, keep_runs=1)
    assert sorted(p.name for p in (pages / "runs").iterdir()) == ["2026-03-04"]
    e1 = (pages / "permalinks" / "episodes" / "e1.html").read_text(encoding="utf-8")
    assert "Resolved in run" in e1 and "2026-03-02" in e1 and "runs/2026-03-01" not in e1
    assert rf.broken_links(pages) == []


def test_permalinks_name_the_town_with_its_id_in_small_print(tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    make_run(pages, "2026-03-01", [_episode("e1", "town-a")], findings={"town-a": ["f1"]})
    publish(pages)
    folder = pages / "permalinks"
    for kind, eid in (("episodes", "e1"), ("findings", "f1")):
        page = (folder / kind / f"{eid}.html").read_text(encoding="utf-8")
        assert (
            '<p>Town <strong>Town A</strong> <span class="muted small mono">town-a</span>' in page
        )
        twin = json.loads((folder / kind / f"{eid}.json").read_text(encoding="utf-8"))
        assert (twin["town_name"], twin["town_id"]) == ("Town A", "town-a")
    index = (folder / "index.html").read_text(encoding="utf-8")
    cell = '<td><span>Town A</span> <span class="mono muted small">town-a</span></td>'
    assert index.count(cell) == 2  # the episode's row and the finding's


def test_a_ledger_written_before_towns_had_names_still_reads(tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    make_run(pages, "2026-03-01", [_episode("e1", "town-a")])
    publish(pages)
    path = pages / "permalinks" / ledgers.FILE_NAME
    old = json.loads(path.read_text(encoding="utf-8"))
    del old["episodes"]["e1"]["town_name"]
    path.write_text(json.dumps(old), encoding="utf-8")
    ledger = ledgers.read_ledger(path)
    assert ledger.episodes["e1"].town_name == "town-a"  # the id stands for the name
    # an index.json without names (older runs) names the town by its id as well
    unnamed = tmp_path / "index.json"
    index = json.loads((pages / "runs" / "2026-03-01" / "index.json").read_text("utf-8"))
    for town in index["towns"]:
        del town["name"]
    unnamed.write_text(json.dumps(index), encoding="utf-8")
    assert ledgers.read_run("2026-03-02", unnamed).episodes["e1"].town_name == "town-a"
    # the next run that shows it names it
    make_run(pages, "2026-03-02", [_episode("e1", "town-a")])
    publish(pages)
    assert ledgers.read_ledger(path).episodes["e1"].town_name == "Town A"
    e1 = (pages / "permalinks" / "episodes" / "e1.html").read_text(encoding="utf-8")
    assert "<strong>Town A</strong>" in e1


def _cli(*args: str) -> Any:
    return CliRunner().invoke(main, ["publish", *args])


def test_publish_never_replaces_a_permalinks_folder_it_did_not_write(tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    make_run(pages, "2026-03-01", [_episode("e1", "town-a")])
    mine = pages / "permalinks" / "notes.txt"
    mine.parent.mkdir()
    mine.write_text("mine\n", encoding="utf-8")
    before = tree(pages)
    done = _cli(str(pages))
    assert done.exit_code == 2
    assert "permalinks/" in done.output and "not written by reportgen" in done.output
    assert tree(pages) == before  # nothing thinned, nothing written


def test_publish_bad_input_is_one_line_naming_the_file(tmp_path: Path) -> None:
    pages = tmp_path / "pages"
    run = make_run(pages, "2026-03-01", [])
    (run / "index.json").write_text("{not json", encoding="utf-8")
    done = _cli(str(pages))
    assert done.exit_code == 2 and str(run / "index.json") in done.output
    missing = _cli(str(tmp_path / "nowhere"))
    assert missing.exit_code == 2 and "no such directory" in missing.output
    assert not (tmp_path / "nowhere").exists()
    with pytest.raises(BadInputError, match="at least 1"):
        publish(pages, full_runs=0)


@pytest.mark.parametrize("labels", [["2026-03-16.10", "2026-03-16.2", "2026-03-16", "2026-03-17"]])
def test_runs_are_ordered_as_sort_v_orders_them(labels: list[str]) -> None:
    assert ledgers.sort_runs(labels) == [
        "2026-03-16",
        "2026-03-16.2",
        "2026-03-16.10",
        "2026-03-17",
    ]


def test_the_extrapolation_adds_full_runs_thinned_runs_and_permalinks() -> None:
    from reportgen.report.budget import Measured, extrapolate

    measured = Measured(
        towns=3, full_runs=3, thinned_runs=7, full_town_bytes=1000, full_run_bytes=900,
        thinned_town_bytes=100, thinned_run_bytes=30, permalink_entry_bytes=10,
        entries_per_town_night=0.5,
    )  # fmt: skip
    plan = extrapolate(measured, towns=100, nights=90, full_runs=4, scale=2)
    assert plan.full_bytes == 4 * (100 * 2000 + 900)
    assert plan.thinned_bytes == 86 * (100 * 200 + 30)
    assert plan.permalink_bytes == 100 * 90 * 1 * 10
    modelled = extrapolate(measured, towns=100, nights=90, full_runs=4, full_town_bytes=5)
    assert modelled.full_bytes == 4 * (100 * 5 + 900)
