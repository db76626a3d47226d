"""`reportgen build` never loses a user's files, and its history never forgets a town.

Each reproduction of the issue "Never lose a user's files" is a test here:
``--out`` wiping the working directory, a source folder, an unrelated folder
or turning a database into a site; ``--single-file`` overwriting an input
database; a failed build replacing the good site; a town that failed one run
coming back as *new* the next (a second alert, exit 3).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import support.report_fixtures as rf
from click.testing import CliRunner, Result

from reportgen.cli import main
from reportgen.errors import NothingBuiltError
from reportgen.report import history
from reportgen.report.build import BuildSummary, build_site
from reportgen.report.site import CACHE_MARKER, SITE_MARKER, Assets, SiteWriter
from reportgen.sim import simulate_town
from reportgen.town_run import TownRun

STUB_ASSETS = Assets(css="/* css */", js="// js", vega="// vega", vega_version="test")
LATER = "2026-03-01T00:10:00.000Z"
LATEST = "2026-03-01T00:20:00.000Z"


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (dot files too) with its bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def town_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real one-hour simulated town database (what ``reportgen simulate`` writes)."""
    folder = tmp_path_factory.mktemp("sim")
    result = simulate_town("healthy-day", seed=3, hours=1, out_dir=folder)
    assert result.path is not None
    return result.path


@pytest.fixture
def workdir(town_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding ``towns/town.sqlite``, an unrelated file and folder."""
    (tmp_path / "towns").mkdir()
    shutil.copy(town_db, tmp_path / "towns" / "town.sqlite")
    (tmp_path / "notes.txt").write_text("my notes\n", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "plan.md").write_text("# plan\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def reportgen(*args: str) -> Result:
    return CliRunner().invoke(main, ["build", *args, "--jobs", "1"])


# ── --out never replaces what reportgen did not write ─────────────────────


@pytest.mark.parametrize(
    ("out", "says"),
    [
        (".", "contains the source towns/town.sqlite"),
        ("towns", "contains the source towns/town.sqlite"),
        ("towns/site", "is inside the source towns"),
        ("towns/town.sqlite", "is the source towns/town.sqlite"),
    ],
)
def test_out_never_touches_a_source(workdir: Path, out: str, says: str) -> None:
    before = snapshot(workdir)
    for force in ([], ["--force"]):  # a source is never replaced, forced or not
        result = reportgen("towns", "towns/town.sqlite", "--out", out, *force)
        assert result.exit_code == 2, result.output
        assert says in result.output and f"--out {out}" in result.output
        assert result.output.count("\n") == 1  # one line
    assert snapshot(workdir) == before
    assert sorted(p.name for p in workdir.iterdir()) == ["docs", "notes.txt", "towns"]


def test_out_dot_refuses_with_the_sources_given_as_files(workdir: Path) -> None:
    """The probe's command: ``reportgen build towns/*.sqlite --out .``."""
    before = snapshot(workdir)
    result = reportgen("towns/town.sqlite", "--out", ".")
    assert result.exit_code == 2
    assert f"--out . ({workdir}) contains the source towns/town.sqlite" in result.output
    assert snapshot(workdir) == before


def test_out_refuses_an_unrelated_folder_unless_forced(workdir: Path) -> None:
    result = reportgen("towns", "--out", "docs")
    assert result.exit_code == 2
    assert "not written by reportgen" in result.output and "--force" in result.output
    assert (workdir / "docs" / "plan.md").read_text(encoding="utf-8") == "# plan\n"
    forced = reportgen("towns", "--out", "docs", "--force")
    assert forced.exit_code == 0, forced.output
    assert not (workdir / "docs" / "plan.md").exists()
    assert (workdir / "docs" / SITE_MARKER).is_file()


def test_out_refuses_a_regular_file(workdir: Path) -> None:
    for force in ([], ["--force"]):
        result = reportgen("towns", "--out", "notes.txt", *force)
        assert result.exit_code == 2
        assert "is a file, not a site directory" in result.output
    assert (workdir / "notes.txt").read_text(encoding="utf-8") == "my notes\n"


def test_out_replaces_missing_empty_and_its_own_sites(workdir: Path) -> None:
    (workdir / "empty").mkdir()
    for out in ("site", "empty", "site"):  # the second "site" replaces a marked site
        result = reportgen("towns", "--out", out)
        assert result.exit_code == 0, result.output
        marker = json.loads((workdir / out / SITE_MARKER).read_text(encoding="utf-8"))
        assert marker == {"generator": "reportgen", "kind": "site"}
    assert (workdir / ".site.cache" / CACHE_MARKER).is_file()


def test_a_site_built_before_the_marker_is_still_replaced(workdir: Path) -> None:
    legacy = workdir / "old"
    (legacy / "assets").mkdir(parents=True)
    for name in ("index.html", "index.json", "history.jsonl"):
        (legacy / name).write_text("", encoding="utf-8")
    assert reportgen("towns", "--out", "old").exit_code == 0
    (workdir / "old" / SITE_MARKER).unlink()
    (workdir / "old" / "mine.txt").write_text("mine\n", encoding="utf-8")
    assert reportgen("towns", "--out", "old").exit_code == 2  # a user's file beside it
    assert (workdir / "old" / "mine.txt").is_file()


def test_the_cache_beside_the_site_is_never_someone_elses(workdir: Path) -> None:
    cache = workdir / ".site.cache"
    (cache / "towns" / "ab").mkdir(parents=True)
    (cache / "towns" / "ab" / "keep.txt").write_text("mine\n", encoding="utf-8")
    (cache / "passwords.txt").write_text("secret\n", encoding="utf-8")
    result = reportgen("towns", "--out", "site")
    assert result.exit_code == 2, result.output
    assert "the cache of --out site" in result.output
    assert (cache / "towns" / "ab" / "keep.txt").is_file() and not (workdir / "site").exists()
    assert [p.name for p in workdir.iterdir() if p.name.startswith(".site.tmp")] == []


def test_leftovers_that_are_not_reportgens_are_kept(tmp_path: Path) -> None:
    out = tmp_path / "site"
    mine = tmp_path / ".site.tmp-notes"
    mine.mkdir()
    (mine / "a.txt").write_text("mine\n", encoding="utf-8")
    with SiteWriter(out) as writer:
        writer.commit()
    old = tmp_path / ".site.old-999999999"
    old.mkdir()
    (old / "b.txt").write_text("mine\n", encoding="utf-8")
    with SiteWriter(out) as writer:
        writer.commit()
    assert (mine / "a.txt").is_file() and (old / "b.txt").is_file()


# ── --single-file never overwrites a source ───────────────────────────────


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("towns/town.sqlite", "is the source towns/town.sqlite"),
        ("towns/incident.html", "is inside the source towns"),
        (".", "contains the source"),
    ],
)
def test_single_file_never_overwrites_a_source(workdir: Path, target: str, says: str) -> None:
    before = snapshot(workdir)
    result = reportgen("towns", "towns/town.sqlite", "--single-file", target)
    assert result.exit_code == 2, result.output
    assert says in result.output and f"--single-file {target}" in result.output
    assert snapshot(workdir) == before


def test_single_file_beside_a_source_file_is_fine(workdir: Path) -> None:
    result = reportgen("towns/town.sqlite", "--single-file", "towns/incident.html")
    assert result.exit_code == 0, result.output
    assert (workdir / "towns" / "incident.html").stat().st_size > 0


# ── a build where every town failed keeps the previous site ───────────────


def build(runs: dict[str, TownRun], out: Path, names: list[str], **kw: Any) -> BuildSummary:
    return build_site(
        [Path(n) for n in names], out, load_run=rf.loader(runs), assets=STUB_ASSETS, **kw
    )


@pytest.fixture(scope="module")
def runs() -> dict[str, TownRun]:
    """``a``: town-alpha with two episodes; ``b``: town-beta, clean; later windows of both."""
    alpha = rf.scripted_town("town-alpha")
    beta = rf.scripted_town("town-beta", violations=False)
    made = {"a.sqlite": alpha, "b.sqlite": beta}
    for suffix, end in (("2", LATER), ("3", LATEST)):
        for name, run in (("a", alpha), ("b", beta)):
            made[f"{name}{suffix}.sqlite"] = dataclasses.replace(run, window_to=end)
    return made


def test_every_town_failing_keeps_the_previous_site(
    runs: dict[str, TownRun], tmp_path: Path
) -> None:
    out = tmp_path / "site"
    build(runs, out, ["a.sqlite", "b.sqlite"])
    before = snapshot(out)
    with pytest.raises(NothingBuiltError) as caught:
        build(runs, out, ["broken.sqlite", "gone.sqlite"], history_path=out)
    assert caught.value.exit_code == 5
    assert "all 2 towns failed" in str(caught.value) and "broken.sqlite" in str(caught.value)
    assert snapshot(out) == before  # same files, same bytes, same history.jsonl
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_nothing_built_exits_5_and_creates_no_site(
    runs: dict[str, TownRun], workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (workdir / "towns" / "broken.sqlite").write_bytes(b"not a database" * 10)
    (workdir / "towns" / "town.sqlite").write_bytes(b"")
    summary = workdir / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    result = reportgen("towns", "--out", "site")
    assert result.exit_code == 5, result.output
    assert "nothing built: all 2 towns failed, site left as it was" in result.output
    assert "failed: towns/broken.sqlite" in result.output
    assert "Nothing built" in summary.read_text(encoding="utf-8")
    assert not (workdir / "site").exists()


# ── history never forgets a town that failed one run ──────────────────────


def statuses(site: Path) -> dict[str, str]:
    index = json.loads((site / "index.json").read_text(encoding="utf-8"))
    return {e["id"]: e["status"] for e in index["episodes"]}


def test_a_town_that_failed_one_run_is_not_new_the_next(
    runs: dict[str, TownRun], tmp_path: Path
) -> None:
    one, two, three = tmp_path / "one", tmp_path / "two", tmp_path / "three"
    first = build(runs, one, ["a.sqlite", "b.sqlite"])
    assert first.new == 2
    alpha = set(statuses(one))
    # run two: town-alpha fails, town-beta builds
    second = build(runs, two, ["broken-a.sqlite", "b2.sqlite"], history_path=one)
    assert (second.towns_failed, second.new, second.resolved, second.not_rebuilt) == (1, 0, 0, 2)
    last = history.read_history(two)[-1]
    assert last.not_rebuilt == {"town-alpha": history.read_history(one)[-1].run_id}
    assert set(last.episodes) == alpha
    assert {e["status"] for e in last.episodes.values()} == {history.NOT_REBUILT}
    first_record = history.read_history(one)[-1].episodes
    for eid, e in last.episodes.items():  # carried unchanged but for the status
        assert {**e, "status": "x"} == {**first_record[eid], "status": "x"}
    # run three: town-alpha is back, with the same episodes: persisting, nothing new
    third = build(runs, three, ["a3.sqlite", "b3.sqlite"], history_path=two)
    assert (third.new, third.persisting, third.not_rebuilt) == (0, 2, 0)
    assert third.new_episode_records == {}  # what Sentry alerts on: nothing
    assert set(statuses(three).values()) == {"persisting"}
    assert history.read_history(three)[-1].not_rebuilt == {}


def test_not_rebuilt_episodes_are_shown_on_the_index(
    runs: dict[str, TownRun], tmp_path: Path
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    build(runs, one, ["a.sqlite", "b.sqlite"])
    build(runs, two, ["b2.sqlite"], history_path=one)  # town-alpha missing altogether
    index = json.loads((two / "index.json").read_text(encoding="utf-8"))
    assert index["totals"]["not_rebuilt"] == 2
    assert {r["town_id"] for r in index["not_rebuilt"]} == {"town-alpha"}
    assert list(index["not_rebuilt_towns"]) == ["town-alpha"]
    html = (two / "index.html").read_text(encoding="utf-8")
    assert 'id="not-rebuilt"' in html and '<span class="badge b-not-rebuilt">' in html
    for row in index["not_rebuilt"]:  # each permalink says why it is not in this run
        stub = json.loads((two / row["href"]).with_suffix(".json").read_text(encoding="utf-8"))
        assert stub["state"] == history.NOT_REBUILT
        assert "was not rebuilt this run" in (two / row["href"]).read_text(encoding="utf-8")
    assert rf.broken_links(two) == []


def test_a_town_gone_for_longer_than_the_history_is_forgotten(
    runs: dict[str, TownRun], tmp_path: Path
) -> None:
    one, two, three = tmp_path / "one", tmp_path / "two", tmp_path / "three"
    build(runs, one, ["a.sqlite", "b.sqlite"], history_limit=2)
    build(runs, two, ["b2.sqlite"], history_path=one, history_limit=2)
    assert history.read_history(two)[-1].not_rebuilt
    build(runs, three, ["b3.sqlite"], history_path=two, history_limit=2)
    assert history.read_history(three)[-1].not_rebuilt == {}
    assert history.read_history(three)[-1].episodes == {}


def test_cli_no_exit_3_after_a_failed_run(
    runs: dict[str, TownRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nightly sequence under ``--fail-on-violations``: 3, then 4, then 0 (not 3 again)."""
    monkeypatch.setattr(
        "reportgen.diagnose.loader.DiagnosingLoader.__call__",
        lambda self, s, f, t: rf.loader(runs)(s, f, t),
    )
    nights = [["a.sqlite", "b.sqlite"], ["zz.sqlite", "b2.sqlite"], ["a3.sqlite", "b3.sqlite"]]
    codes, outputs = [], []
    for night, names in enumerate(nights):
        folder = tmp_path / f"in{night}"
        folder.mkdir()
        for name in names:
            (folder / name).write_bytes(b"")
        prev = ["--history", str(tmp_path / f"run{night - 1}")] if night else []
        args = [str(folder), "--out", str(tmp_path / f"run{night}"), *prev, "--fail-on-violations"]
        result = reportgen(*args)
        codes.append(result.exit_code)
        outputs.append(result.output)
    assert codes == [3, 4, 0], outputs
    assert "2 carried from towns not rebuilt this run" in outputs[1]
    assert "0 new, 2 persisting" in outputs[2]
