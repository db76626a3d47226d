"""Upstream-shaped dumps (no journal, no tick records) and the ``reportgen diagnose`` command.

Each dump is a real SQLite file holding only upstream's tables, written by
hand in the shape of an incident of the guide: a dead town at the attempt
cap (upstream #1932), a town that went silent (#1361, judged 1.5 h past its
data), and a healthy one. The state kinds judge them; the behaviour kinds
are listed as not judged.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.townbuilder import (
    HOUR,
    MINUTE,
    NOW,
    SECOND,
    add_agent,
    add_bead,
    add_dep,
    add_mr,
    add_rig,
    ago,
)

from reportgen.cli import main
from reportgen.diagnose import diagnose
from reportgen.diagnose.registry import BEHAVIOUR, KINDS
from reportgen.town.db import configure
from reportgen.town.schema import create_upstream_tables


def _dump(path: Path) -> sqlite3.Connection:
    conn = configure(sqlite3.connect(path))
    create_upstream_tables(conn)
    return conn


def dead_town(path: Path) -> Path:
    """Every agent idle at the cap, two reviews in progress on an idle refinery, 12 h of nothing."""
    conn = _dump(path)
    rig = add_rig(conn, "rig-dead", name="webapp")
    last_work = ago(12 * HOUR)
    add_bead(conn, rig_id=rig, status="closed", title="Old work", closed_at=last_work,
             updated_at=last_work, created_at=ago(14 * HOUR))  # fmt: skip
    refinery_hook = None
    for i in range(2):
        issue = add_bead(conn, rig_id=rig, status="in_review", title=f"Issue {i}",
                         created_at=ago(13 * HOUR), updated_at=ago(12 * HOUR))  # fmt: skip
        mr = add_mr(conn, rig_id=rig, status="in_progress", source=issue, title=f"Review {i}",
                    dispatch_attempts=5, created_at=ago(12 * HOUR),
                    updated_at=ago(12 * HOUR))  # fmt: skip
        refinery_hook = refinery_hook or mr
    add_agent(conn, rig_id=rig, role="refinery", status="idle", hook=refinery_hook,
              dispatch_attempts=5, last_activity_at=ago(12 * HOUR))  # fmt: skip
    for _ in range(3):
        add_agent(conn, rig_id=rig, status="idle", dispatch_attempts=5,
                  last_activity_at=ago(12 * HOUR))  # fmt: skip
    conn.commit()
    conn.close()
    return path


def silent_town(path: Path) -> Path:
    """Two polecats working at the file's newest time; then nothing more was written."""
    conn = _dump(path)
    rig = add_rig(conn, name="api")
    add_bead(conn, rig_id=rig, status="closed", closed_at=ago(10 * MINUTE), created_at=ago(HOUR))
    for i in range(2):
        bead = add_bead(conn, rig_id=rig, status="in_progress", title=f"Task {i}",
                        created_at=ago(20 * MINUTE), updated_at=ago(15 * MINUTE))  # fmt: skip
        add_agent(conn, rig_id=rig, status="working", hook=bead, last_activity_at=NOW,
                  last_event_at=NOW)  # fmt: skip
    conn.commit()
    conn.close()
    return path


def healthy_town(path: Path) -> Path:
    """Work flowing: a bead merged minutes ago, one being worked on, one in review."""
    conn = _dump(path)
    rig = add_rig(conn, name="site")
    add_bead(conn, rig_id=rig, status="closed", closed_at=ago(5 * MINUTE), created_at=ago(HOUR))
    bead = add_bead(conn, rig_id=rig, status="in_progress", created_at=ago(10 * MINUTE))
    add_agent(conn, rig_id=rig, status="working", hook=bead, last_event_at=ago(20 * SECOND))
    review = add_bead(conn, rig_id=rig, status="in_review", created_at=ago(40 * MINUTE))
    mr = add_mr(conn, rig_id=rig, status="in_progress", source=review, created_at=ago(3 * MINUTE))
    add_agent(conn, rig_id=rig, role="refinery", status="working", hook=mr,
              last_event_at=ago(10 * SECOND))  # fmt: skip
    add_dep(conn, bead, review, "blocks")
    conn.commit()
    conn.close()
    return path


BEHAVIOUR_KINDS = [k.name for k in KINDS if k.judged_on == BEHAVIOUR]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_dead_town_at_the_attempt_cap_is_stuck(tmp_path: Path) -> None:
    path = dead_town(tmp_path / "dead.sqlite")
    before = _sha(path)
    d = diagnose(path)
    assert (d.fidelity, str(d.verdict), d.ticks) == ("approximate", "stuck", 0)
    assert list(d.not_judged) == BEHAVIOUR_KINDS
    by_kind = {f.kind: f for f in d.findings}
    assert {"no-progress", "attempts-exhausted"} <= set(by_kind)
    progress = by_kind["no-progress"]
    assert progress.subject_name == "webapp" and progress.first_at == ago(12 * HOUR)
    assert "last productive work at 2026-03-15 00:00:00 UTC" in progress.because
    exhausted = by_kind["attempts-exhausted"]
    assert "idle agent hooked to live work sits at the cap" in exhausted.because
    assert _sha(path) == before and sorted(p.name for p in tmp_path.iterdir()) == ["dead.sqlite"]


def test_silent_town_is_healthy_at_its_end_and_stuck_1_5_h_later(tmp_path: Path) -> None:
    path = silent_town(tmp_path / "silent.sqlite")
    at_end = diagnose(path)
    assert at_end.as_of == NOW and str(at_end.verdict) == "healthy" and at_end.findings == ()
    later = NOW.replace("12:00", "13:30")
    d = diagnose(path, end=later)
    assert d.as_of == later and d.window_to == later
    assert str(d.verdict) == "stuck"
    (f,) = [f for f in d.findings if f.kind == "no-progress"]
    assert f.first_at == ago(10 * MINUTE) and f.open_at_end
    assert f.id == diagnose(path, end=NOW.replace("12:00", "14:00")).findings[0].id


def test_healthy_dump_is_healthy(tmp_path: Path) -> None:
    d = diagnose(healthy_town(tmp_path / "ok.sqlite"))
    assert str(d.verdict) == "healthy" and d.findings == ()
    assert "not judged" in d.text()


# --------------------------------------------------------------------------- the command


def _run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_cli_text_json_and_fail_on(tmp_path: Path) -> None:
    dead = str(dead_town(tmp_path / "dead.sqlite"))
    code, out, _ = _run("diagnose", "--db", dead)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("dead: STUCK (approximate;")
    assert lines[1].startswith("critical  ")
    assert "not judged (no journal" in lines[-1]
    code, out, _ = _run("diagnose", "--db", dead, "--json", "--fail-on", "stuck")
    assert code == 3
    data = json.loads(out)
    assert data["verdict"] == "stuck" and data["not_judged"] == BEHAVIOUR_KINDS
    assert {f["kind"] for f in data["findings"]} >= {"no-progress", "attempts-exhausted"}
    ok = str(healthy_town(tmp_path / "ok.sqlite"))
    assert _run("diagnose", "--db", ok, "--fail-on", "degraded")[0] == 0
    assert _run("diagnose", "--db", dead, "--fail-on", "degraded")[0] == 3


def test_cli_diagnosis_config_overrides_and_errors(tmp_path: Path) -> None:
    silent = str(silent_town(tmp_path / "silent.sqlite"))
    later = NOW.replace("12:00", "13:30")
    config = tmp_path / "thresholds.toml"
    config.write_text("[no-progress]\nmin_idle = 120\n", encoding="utf-8")
    code, out, _ = _run("diagnose", "--db", silent, "--to", later, "--diagnosis-config",
                        str(config), "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["verdict"] == "healthy"
    config.write_text("[no-progress]\nmin_idle = 0\n", encoding="utf-8")
    code, _, err = _run("diagnose", "--db", silent, "--diagnosis-config", str(config))
    assert code == 2
    assert (
        err
        == f"error: {config}: [no-progress] min_idle: must be a positive number of minutes, got 0\n"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--from", "yesterday"), "--from: not an ISO-8601 time"),
        (("--to", "2020-01-01T00:00:00Z"), "is outside the data of"),
    ],
)
def test_cli_bad_window(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    ok = str(healthy_town(tmp_path / "ok.sqlite"))
    code, _, err = _run("diagnose", "--db", ok, *args)
    assert code == 2 and message in err and err.count("\n") == 1


def test_cli_missing_database(tmp_path: Path) -> None:
    code, _, err = _run("diagnose", "--db", str(tmp_path / "nope.sqlite"))
    assert code == 2 and "nope.sqlite: no such file" in err


def test_dry_run_prints_the_state_findings_in_text_mode_only(tmp_path: Path) -> None:
    dead = str(dead_town(tmp_path / "dead.sqlite"))
    code, out, _ = _run("dry-run", "--db", dead)
    assert code == 0
    assert "diagnosis of the state as of 2026-03-15T12:00:00.000Z: STUCK" in out
    assert "critical  no-progress" in out
    assert "not judged without ticks: " + ", ".join(BEHAVIOUR_KINDS) in out
    code, out, _ = _run("dry-run", "--db", dead, "--json")
    assert code == 0 and set(json.loads(out)) == {"actions", "metrics", "fidelity"}
