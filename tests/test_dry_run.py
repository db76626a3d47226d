"""``reportgen dry-run``: upstream's dry-run response, read-only, clear errors."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.fixture_files import GOLDEN, scenario_names
from support.golden import action_multiset, known_ids, load, mask_new_ids

from reportgen.cli import main


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("name", scenario_names())
def test_dry_run_matches_upstream_and_never_writes(name: str, tmp_path: Path) -> None:
    dry, _ = load(name)
    db = GOLDEN / f"{name}.sqlite"
    before = _sha(db)
    config = tmp_path / "config.json"
    config.write_text(json.dumps(dry["town_config"]))
    args = ["dry-run", "--db", str(db), "--now", dry["now"], "--config", str(config), "--json"]
    if dry["draining"]:
        args.append("--draining")
    code, out, err = _run(*args)
    assert code == 0, err
    result = json.loads(out)
    known = known_ids(name)
    assert action_multiset(mask_new_ids(result["actions"], known)) == action_multiset(
        mask_new_ids(dry["actions"], known)
    )
    metrics = result["metrics"]
    assert metrics["actionsEmitted"] == len(dry["actions"])
    assert metrics["eventsDrained"] == len(dry["events"])
    assert sum(metrics["actionsByType"].values()) == len(dry["actions"])
    pending = sum(1 for e in dry["events"] if e["outcome"] == "failed_left_pending")
    assert metrics["pendingEventCount"] == pending
    assert _sha(db) == before


def test_dry_run_defaults_now_to_newest_timestamp_in_the_database() -> None:
    db = GOLDEN / "beads_r2_dispatch.sqlite"
    conn = sqlite3.connect(f"{db.as_uri()}?mode=ro", uri=True)
    newest = max(
        conn.execute("SELECT max(updated_at) FROM beads").fetchone()[0],
        conn.execute("SELECT max(last_activity_at) FROM agent_metadata").fetchone()[0] or "",
    )
    conn.close()
    code, out, _ = _run("dry-run", "--db", str(db), "--json")
    assert code == 0
    explicit = json.loads(_run("dry-run", "--db", str(db), "--now", newest, "--json")[1])
    assert json.loads(out) == explicit


def test_dry_run_table_output_lists_each_action() -> None:
    dry, _ = load("beads_r2_dispatch")
    code, out, _ = _run("dry-run", "--db", str(GOLDEN / "beads_r2_dispatch.sqlite"),
                        "--now", dry["now"])  # fmt: skip
    assert code == 0
    assert out.count("dispatch_agent") == 3
    assert "3 action(s); 0 event(s) drained" in out


def test_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    code, _, err = _run("dry-run", "--db", str(tmp_path / "nope.sqlite"), "--json")
    assert code == 2
    assert err.strip().count("\n") == 0
    assert "nope.sqlite: no such file" in err


def test_file_that_is_not_sqlite(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.sqlite"
    bogus.write_bytes(b"this is not a database, just text" * 100)
    code, _, err = _run("dry-run", "--db", str(bogus), "--json")
    assert code == 2
    assert "not a SQLite database" in err


def test_database_without_town_tables(tmp_path: Path) -> None:
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE beads (bead_id text)")
    conn.commit()
    conn.close()
    code, _, err = _run("dry-run", "--db", str(other), "--json")
    assert code == 2
    assert "missing table(s): agent_metadata, town_events" in err


def test_bad_now_and_bad_config_name_the_option(tmp_path: Path) -> None:
    db = str(GOLDEN / "beads_r2_dispatch.sqlite")
    code, _, err = _run("dry-run", "--db", db, "--now", "yesterday", "--json")
    assert code == 2 and "--now" in err
    cfg = tmp_path / "c.json"
    cfg.write_text("[1, 2]")
    code, _, err = _run("dry-run", "--db", db, "--config", str(cfg), "--json")
    assert code == 2 and "town config must be a JSON object" in err
    cfg.write_text("{not json")
    code, _, err = _run("dry-run", "--db", db, "--config", str(cfg), "--json")
    assert code == 2 and "not valid JSON" in err


def test_version_option() -> None:
    code, out, _ = _run("--version")
    assert code == 0 and out.startswith("reportgen, version ")


def test_python_dash_m_runs_the_same_command_line() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "reportgen", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert done.stdout.startswith("Usage: reportgen ") and "dry-run" in done.stdout
