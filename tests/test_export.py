"""``reportgen export``: self-contained, reproducible bundles that replay like the town."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_replay_towns import Built, Script, at, build_town

from reportgen.cli import main
from reportgen.errors import BadInputError, BadWindowError
from reportgen.replay import dry_run, replay_events, replay_window
from reportgen.replay.export import export


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return build_town(tmp_path_factory.mktemp("export") / "town.sqlite", Script(end=2400))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _manifest(path: Path) -> dict[str, object]:
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT key, value FROM manifest").fetchall()
    conn.close()
    return {k: json.loads(v) for k, v in rows}


def test_exporting_twice_gives_the_same_bytes(town: Built, tmp_path: Path) -> None:
    before = _sha(town.path)
    export(town.path, at(1300), at(2000), tmp_path / "a.sqlite")
    export(town.path, at(1300), at(2000), tmp_path / "sub" / "b.sqlite")
    assert (tmp_path / "a.sqlite").read_bytes() == (tmp_path / "sub" / "b.sqlite").read_bytes()
    assert _sha(town.path) == before
    assert not [p for p in tmp_path.rglob(".*")]  # no temporary file left behind


def test_manifest_and_base(town: Built, tmp_path: Path) -> None:
    out = tmp_path / "bundle.sqlite"
    export(town.path, at(1300), at(2000), out)
    m = _manifest(out)
    assert m["format"] == "reportgen-bundle" and m["fidelity"] == "exact"
    assert m["town_id"] == "town-replay-test"
    assert (m["from"], m["to"]) == (at(1300), at(2000))
    assert m["source_sha256"] == _sha(town.path) and m["source_name"] == "town.sqlite"
    assert isinstance(m["base_seq"], int) and m["base_seq"] > 0  # a checkpoint, not the start
    assert isinstance(m["base_at"], str) and m["base_at"] < at(1300)
    counts = m["counts"]
    assert isinstance(counts, dict) and counts["journal"] > 0 and counts["ticks"] > 0
    conn = sqlite3.connect(out)
    assert conn.execute("SELECT min(seq) FROM rg_journal").fetchone()[0] == m["base_seq"] + 1
    assert conn.execute("SELECT max(at) FROM rg_journal").fetchone()[0] <= at(2000)
    conn.close()


def test_a_window_at_the_start_exports_from_the_empty_town(town: Built, tmp_path: Path) -> None:
    out = tmp_path / "start.sqlite"
    export(town.path, at(0), at(400), out)
    m = _manifest(out)
    assert (m["base_seq"], m["base_at"]) == (0, "")
    conn = sqlite3.connect(out)
    assert conn.execute("SELECT count(*) FROM beads").fetchone()[0] == 0
    conn.close()


def test_bundle_replays_like_the_town(town: Built, tmp_path: Path) -> None:
    out = tmp_path / "bundle.sqlite"
    code = CliRunner().invoke(
        main, ["export", "--db", str(town.path), "--from", at(1300), "--to", at(2000),
               "--out", str(out)],
    )  # fmt: skip
    assert code.exit_code == 0, code.stderr
    assert "exact bundle of town-replay-test" in code.stdout
    from_bundle = replay_window(out, at(1300), at(2000))
    from_town = replay_window(town.path, at(1300), at(2000))
    assert from_bundle.ticks == from_town.ticks
    assert from_bundle.divergence is None and from_bundle.compared_ticks == len(from_town.ticks)
    assert replay_events(out, at(1400), at(2000)) == replay_events(town.path, at(1400), at(2000))
    # The bundle opens as a town database: dry-run sees the state at its window end.
    assert dry_run(out, now=at(2000)) == dry_run(town.path, now=at(2000))
    assert dry_run(out)["actions"] == dry_run(town.path, now=at(2000))["actions"]


def test_bundle_refuses_windows_it_does_not_cover(town: Built, tmp_path: Path) -> None:
    out = tmp_path / "bundle.sqlite"
    export(town.path, at(1300), at(2000), out)
    with pytest.raises(BadWindowError, match="not inside bundle"):
        replay_window(out, at(1300), at(2300))


def test_database_without_journal_gives_an_approximate_bundle(town: Built, tmp_path: Path) -> None:
    path = tmp_path / "upstream.sqlite"
    shutil.copyfile(town.path, path)
    conn = sqlite3.connect(path)
    for table in ("rg_journal", "rg_ticks", "rg_world_log", "rg_checkpoints"):
        conn.execute(f"DROP TABLE {table}")
    conn.commit()
    conn.close()
    out = tmp_path / "approx.sqlite"
    export(path, at(300), at(2000), out)
    m = _manifest(out)
    assert m["fidelity"] == "approximate" and "no input journal" in str(m["caveat"])
    assert m["base_seq"] is None
    run = replay_window(out, at(300), at(2000))
    assert run.fidelity == "approximate" and run.caveat
    assert replay_events(out, at(300), at(2000))["fidelity"] == "approximate"


def test_export_errors(town: Built, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="refusing to overwrite"):
        export(town.path, at(0), at(100), town.path)
    result = CliRunner().invoke(
        main, ["export", "--db", str(town.path), "--from", at(500), "--to", at(100),
               "--out", str(tmp_path / "x.sqlite")],
    )  # fmt: skip
    assert result.exit_code == 2 and "is after --to" in result.stderr
    assert not (tmp_path / "x.sqlite").exists()
