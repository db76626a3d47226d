"""The "Reproduce" command of episode and finding pages names a file the reader can get.

A local build names the path ``reportgen build`` was given (and the command
shown runs as it is, from where the build ran); ``--artefact`` names the
town's bundle inside the CI artefact and says where to download it; the demo
fleet names its file under reportgen's cache. The nightly's own pages are
checked against the artefact it uploads in ``tests/test_workflows.py``.
"""

from __future__ import annotations

import html
import re
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from reportgen.cli.main import main
from reportgen.report.reproduce import SourceNames, run_url, with_db
from reportgen.sim import simulate_town
from reportgen.town_run import TownRun


@pytest.fixture(scope="module")
def towns(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with one town that has findings (a review loop) and its site's parent."""
    root = tmp_path_factory.mktemp("reproduce")
    (root / "towns").mkdir()
    result = simulate_town("review-round-stuck", seed=1, hours=1.0, out_dir=root / "towns")
    assert result.path is not None
    return root


def _commands(site: Path) -> set[str]:
    """Every ``reportgen replay`` command the site's pages offer to copy."""
    return {
        html.unescape(c)
        for page in site.rglob("*.html")
        for c in re.findall(r'data-copy="(reportgen replay [^"]*)"', page.read_text("utf-8"))
    }


def _build(*args: str) -> None:
    """``reportgen build ARGS`` in this process, one town at a time."""
    result = CliRunner().invoke(main, ["build", *args, "--jobs", "1", "-q"], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def test_a_local_build_names_the_path_given_and_its_command_runs(
    towns: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(towns)
    _build("towns", "--out", "site")
    commands = _commands(towns / "site")
    assert commands, "the town's findings each offer a command"
    (town,) = (towns / "towns").iterdir()
    for command in commands:
        words = shlex.split(command)
        assert words[words.index("--db") + 1] == f"towns/{town.name}"
    finding = next((towns / "site" / "findings").glob("*.html")).read_text("utf-8")
    assert "the path reportgen build was given, from the folder it ran in" in finding
    ran = CliRunner().invoke(main, [*shlex.split(sorted(commands)[0])[1:], "-q"])
    assert ran.exit_code == 0, ran.output


def test_an_artefact_build_names_the_file_inside_it(
    towns: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """And a rebuild under another artefact name does not reuse the old pages."""
    monkeypatch.chdir(towns)
    monkeypatch.setenv("GITHUB_SERVER_URL", "https://github.example")
    monkeypatch.setenv("GITHUB_REPOSITORY", "org/repo")
    monkeypatch.setenv("GITHUB_RUN_ID", "42")
    (town,) = (towns / "towns").iterdir()
    for name in ("bundles-2026-03-16", "bundles-2026-03-17"):
        _build("towns", "--out", "site-a", "--artefact", name)
        for command in _commands(towns / "site-a"):
            words = shlex.split(command)
            assert words[words.index("--db") + 1] == f"{name}/{town.name}"
        finding = next((towns / "site-a" / "findings").glob("*.html")).read_text("utf-8")
        assert f"the {name} artefact of the nightly run" in finding
        assert "https://github.example/org/repo/actions/runs/42" in finding
        assert f"gh run download -n {name} -D {name}" in finding


def test_the_demo_fleet_is_named_under_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    source = cache / "demo-fleet-1.0-seed7-layout2" / "healthy-day.sqlite"
    names = SourceNames(demo_cache=str(cache))
    assert names.db(source) == "demo-fleet-1.0-seed7-layout2/healthy-day.sqlite"
    assert "$REPORTGEN_CACHE_DIR" in names.where(source)
    elsewhere = tmp_path / "mine.sqlite"
    assert names.db(elsewhere) == str(elsewhere)


def test_with_db_rewrites_only_the_db() -> None:
    run = TownRun("t", "a b.sqlite", "", "", "exact", None, [], replay_db="bundles-x/a b.sqlite")
    command = "reportgen replay --db 'a b.sqlite' --from 2026-03-16T08:00:00Z --ticks"
    assert shlex.split(with_db(command, run)) == [
        "reportgen", "replay", "--db", "bundles-x/a b.sqlite",
        "--from", "2026-03-16T08:00:00Z", "--ticks",
    ]  # fmt: skip
    assert with_db("not 'a command", run) == "not 'a command"
    assert with_db("reportgen replay --db", run) == "reportgen replay --db"


def test_run_url_needs_all_of_github_s_variables() -> None:
    env = {"GITHUB_SERVER_URL": "https://github.com/", "GITHUB_REPOSITORY": "o/r"}
    assert run_url(env) == ""
    assert run_url({**env, "GITHUB_RUN_ID": "7"}) == "https://github.com/o/r/actions/runs/7"
