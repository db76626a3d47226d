"""The suite's fixtures live in the repository, and a missing one fails, never skips.

A clone with nothing beside it must run every test: upstream's golden
scenarios and dashboard are in ``tests/fixtures/``, the helpers raise when
they are not, and an empty parametrisation is a collection error.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from support.fixture_files import (
    FIXTURES,
    GOLDEN,
    GRAFANA,
    MissingFixtureError,
    fixture_file,
    scenario_names,
)

ROOT = Path(__file__).resolve().parent.parent


def test_the_twenty_upstream_scenarios_are_in_the_repository() -> None:
    """The README's twenty scenarios, each a real database with its two JSON files."""
    names = scenario_names()
    assert len(names) == 20
    assert GOLDEN.is_relative_to(ROOT / "tests")
    for name in names:
        uri = f"file:{GOLDEN / f'{name}.sqlite'}?mode=ro"
        with sqlite3.connect(uri, uri=True) as conn:
            assert conn.execute("SELECT count(*) FROM beads").fetchone()[0] > 0
        assert json.loads((GOLDEN / f"{name}.json").read_text(encoding="utf-8"))["now"]
        assert json.loads((GOLDEN / f"{name}.tick.json").read_text(encoding="utf-8"))["town_id"]


def test_the_upstream_dashboard_is_in_the_repository() -> None:
    dashboard = json.loads(fixture_file(GRAFANA / "gastown-grafana-dash-1.json").read_text("utf-8"))
    assert dashboard["uid"] == "gastown-ops-1"


@pytest.mark.parametrize("folder", [GOLDEN, GRAFANA], ids=lambda p: p.name)
def test_each_fixture_folder_says_where_its_data_comes_from(folder: Path) -> None:
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert "**Provenance.**" in readme and "copied here unchanged" in readme


def test_a_missing_golden_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MissingFixtureError, match="directory missing"):
        scenario_names(tmp_path / "upstream-golden")


def test_an_empty_golden_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(MissingFixtureError, match="no golden scenarios"):
        scenario_names(tmp_path)


@pytest.mark.parametrize("suffix", [".sqlite", ".json", ".tick.json"])
def test_a_half_copied_scenario_is_an_error(tmp_path: Path, suffix: str) -> None:
    for path in GOLDEN.glob("beads_r1_basic*"):
        shutil.copy(path, tmp_path / path.name)
    assert scenario_names(tmp_path) == ["beads_r1_basic"]
    (tmp_path / f"beads_r1_basic{suffix}").unlink()
    with pytest.raises(MissingFixtureError, match=f"beads_r1_basic{suffix}: fixture missing"):
        scenario_names(tmp_path)


def test_a_missing_fixture_file_is_an_error() -> None:
    with pytest.raises(MissingFixtureError, match="fixture missing"):
        fixture_file(FIXTURES / "grafana" / "no-such-dashboard.json")


def test_an_empty_parametrisation_fails_collection(tmp_path: Path) -> None:
    """With the project's pytest settings an empty group is an error, not a skipped test."""
    options = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert options["tool"]["pytest"]["ini_options"]["empty_parameter_set_mark"] == (
        "fail_at_collect"
    )
    test = tmp_path / "test_empty.py"
    test.write_text(
        "import pytest\n\n@pytest.mark.parametrize('name', [])\n"
        "def test_nothing(name):\n    pass\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
         "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(tmp_path), str(test)],
        capture_output=True, text=True, timeout=120, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode != 0
    assert "Empty parameter set in 'test_nothing'" in result.stdout
    assert "1 error" in result.stdout and "skipped" not in result.stdout
