"""An upstream dump (no journal) is shown by its own history, never by ticks that did not happen.

* A dump's window (``--ticks auto``, ``replay``, ``recorded``) has no ticks: its
  history holds the dump's ``bead_events`` and ``town_events`` inside the window at
  their stored times (each town event saying when it was processed), then a
  dry-run at the window's end labelled as not having happened.
* ``--ticks simulate`` still runs ticks on the stored state, labelled "simulated on
  today's state" (fidelity and caveat), on ``build`` and on ``replay``.
* A folder of every public golden upstream database builds in one ``reportgen build
  DIR``, each town under its file name, each page saying what a dump can and cannot show.
* ``reportgen diagnose`` judges what the build's loader loads; the debug API answers
  on a dump.
"""

from __future__ import annotations

import html
import json
import re
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from support.townbuilder import add_agent, add_bead, add_rig, insert

from reportgen.cli import main
from reportgen.diagnose import diagnose
from reportgen.diagnose.loader import DiagnosingLoader
from reportgen.diagnose.registry import BEHAVIOUR, KINDS
from reportgen.replay.loader import ReplayLoader
from reportgen.server import create_app
from reportgen.town.db import configure
from reportgen.town.schema import create_upstream_tables

GOLDEN = Path(__file__).resolve().parent / "fixtures" / "upstream-golden"
START, END = "2026-03-15T10:00:00.000Z", "2026-03-15T11:00:00.000Z"
#: What every town page of a dump says it shows and cannot show.
SHOWS = "has no input journal and no tick record. Shown: its own history over the window"
CANNOT = "Not shown: the reconciler's ticks, actions and invariant checks"
SIMULATED = "simulated on today's state"


def _text(page: Path) -> str:
    """A page's text as a reader sees it (tags dropped, entities decoded)."""
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))


def _at(clock: str) -> str:
    return f"2026-03-15T{clock}.000Z"


def _dump(path: Path) -> Path:
    """An upstream-shaped dump: upstream's tables only, with bead and town events inside,
    before and after the window (the stored rows are data newer than the window)."""
    conn = configure(sqlite3.connect(path))
    create_upstream_tables(conn)
    rig = add_rig(conn, "rig-web", name="webapp")
    bead = add_bead(conn, "bead-login", rig_id=rig, title="Fix login", status="in_progress")
    agent = add_agent(conn, "agent-toast", rig_id=rig, status="working", hook=bead)
    events = [
        ("be-0", "status_changed", None, "open", "in_review", _at("09:59:59")),
        ("be-1", "status_changed", agent, "open", "in_progress", _at("10:05:00")),
        ("be-2", "hooked", agent, None, agent, _at("10:05:00")),
        ("be-3", "closed", None, None, None, "2026-03-15T11:00:00.001Z"),
    ]
    for event_id, kind, who, old, new, at in events:
        insert(conn, "bead_events", {"bead_event_id": event_id, "bead_id": bead, "agent_id": who,
               "event_type": kind, "old_value": old, "new_value": new, "created_at": at})  # fmt: skip
    town_events = [
        ("te-1", "agent_done", agent, bead, "{}", _at("10:07:00"), _at("10:07:05")),
        ("te-2", "container_status", agent, None, json.dumps({"status": "x" * 5000}),
         _at("10:30:00"), None),
        ("te-3", "container_status", agent, None, "{}", _at("11:30:00"), None),
    ]  # fmt: skip
    for row in town_events:
        insert(conn, "town_events", dict(zip(("event_id", "event_type", "agent_id", "bead_id",
               "payload", "created_at", "processed_at"), row, strict=True)))  # fmt: skip
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def dump(tmp_path: Path) -> Path:
    (tmp_path / "dumps").mkdir()
    return _dump(tmp_path / "dumps" / "north.sqlite")


@pytest.mark.parametrize("ticks", ["auto", "replay", "recorded"])
def test_a_dumps_window_has_no_ticks_but_its_own_history(dump: Path, ticks: str) -> None:
    run = ReplayLoader(ticks=ticks)(dump, START, END)
    assert run.ticks == [] and run.fidelity == "approximate"
    assert [(h["at"], h["kind"], h["detail"].get("bead_event_id") or h["detail"].get("event_id"))
            for h in run.history] == [
        (_at("10:05:00"), "bead_event", "be-1"),
        (_at("10:05:00"), "bead_event", "be-2"),
        (_at("10:07:00"), "town_event", "te-1"),
        (_at("10:30:00"), "town_event", "te-2"),
        (END, "dry_run", None),
    ]  # fmt: skip
    labels = [h["label"] for h in run.history]
    assert labels[0] == "bead Fix login: status open → in_progress (agent agent-toast)"
    assert labels[1] == "bead Fix login: hooked (agent agent-toast)"
    assert labels[2] == (
        "town event agent_done from agent agent-toast for bead Fix login; "
        f"processed at {_at('10:07:05')}"
    )
    assert labels[3].endswith("; not processed when the dump was taken")
    assert labels[4].startswith("dry-run on the stored state at the window's end")
    assert "it did not happen" in labels[4]
    assert run.history[0]["entities"] == [["bead", "bead-login"], ["agent", "agent-toast"]]
    assert run.history[2]["detail"]["processed_at"] == _at("10:07:05")
    assert len(run.history[3]["detail"]["payload"]) <= 240  # cut, not the 5,000 stored
    assert json.loads(json.dumps(run.history)) == run.history  # plain JSON
    assert {"bead-login", "agent-toast"} <= set(run.entities)
    assert run.caveat and SHOWS in run.caveat and CANNOT in run.caveat


def test_the_dry_run_entry_says_what_the_next_tick_would_do_on_the_stored_state(
    dump: Path,
) -> None:
    entry = ReplayLoader()(dump, START, END).history[-1]
    assert entry["kind"] == "dry_run" and entry["at"] == END
    assert entry["detail"]["fidelity"] == "approximate"
    assert "current state was used" in entry["detail"]["caveat"]  # the window ends before the data
    assert entry["detail"]["actions_total"] == len(entry["detail"]["actions"])


def test_simulated_ticks_only_when_asked_and_labelled_so(dump: Path) -> None:
    run = ReplayLoader(ticks="simulate")(dump, START, _at("10:10:00"))
    assert run.ticks and run.fidelity == "simulated"
    assert run.caveat and run.caveat.startswith(f"{SIMULATED}: north.sqlite has no input journal")
    assert [h["kind"] for h in run.history] == ["bead_event", "bead_event", "town_event", "dry_run"]
    judged = DiagnosingLoader(ReplayLoader(ticks="simulate"))(dump, START, _at("10:10:00"))
    assert judged.diagnosis is not None  # simulated ticks are shown, never judged
    assert judged.diagnosis["not_judged"] == [k.name for k in KINDS if k.judged_on == BEHAVIOUR]


def test_build_and_replay_offer_ticks_simulate(dump: Path, tmp_path: Path) -> None:
    window = ["--from", START, "--to", _at("10:10:00")]
    site = tmp_path / "site"
    result = CliRunner().invoke(main, ["build", str(dump), "--out", str(site), "--jobs", "1",
                                       "--ticks", "simulate", *window])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "(1 simulated on today's state)" in result.stdout
    page = _text(site / "towns" / "north" / "index.html")
    assert f"{SIMULATED}: north.sqlite" in page and "simulated fidelity" in page
    replayed = CliRunner().invoke(main, ["replay", "--db", str(dump), *window, "--ticks",
                                         "simulate", "--json"])  # fmt: skip
    out = json.loads(replayed.stdout)
    assert out["fidelity"] == "simulated" and out["caveat"].startswith(SIMULATED) and out["ticks"]
    plain = CliRunner().invoke(main, ["replay", "--db", str(dump), *window, "--ticks", "--json"])
    out = json.loads(plain.stdout)
    assert out["ticks"] == [] and [h["kind"] for h in out["history"]][-1] == "dry_run"


def test_diagnose_judges_what_the_build_loads(dump: Path) -> None:
    alone = diagnose(dump, START, END)
    built = DiagnosingLoader()(dump, START, END).diagnosis
    assert built is not None
    assert (alone.fidelity, alone.ticks, str(alone.verdict)) == ("approximate", 0, built["verdict"])
    assert [f.id for f in alone.findings] == [f["id"] for f in built["findings"]]
    assert list(alone.not_judged) == built["not_judged"]


def test_the_debug_api_answers_on_a_dump(dump: Path) -> None:
    client = TestClient(create_app(dump.parent))
    dry = client.post("/api/towns/north/debug/reconcile-dry-run")
    assert dry.status_code == 200 and dry.json()["fidelity"] == "exact"  # the state as it is
    replayed = client.post("/api/towns/north/debug/replay-events", json={"from": START, "to": END})
    assert replayed.status_code == 200, replayed.text
    assert replayed.json()["fidelity"] == "approximate"
    assert replayed.json()["eventsReplayed"] == 2


def test_a_folder_of_every_golden_upstream_database_builds(tmp_path: Path) -> None:
    """Issue 16: ``reportgen build DIR`` over every public golden upstream database."""
    dumps = sorted(GOLDEN.glob("*.sqlite"))
    assert len(dumps) == 20
    before = sorted(p.name for p in GOLDEN.iterdir())
    site = tmp_path / "site"
    result = CliRunner().invoke(main, ["build", str(GOLDEN), "--out", str(site), "--jobs", "1"])
    assert result.exit_code == 0, result.output
    assert "towns      20 (0 skipped as unchanged, 0 failed)" in result.stdout
    assert "ticks      0 (20 with no journal shown by their history)" in result.stdout
    for path in dumps:
        text = _text(site / "towns" / path.stem / "index.html")
        assert f"upstream dump: {path.name} {SHOWS}" in text, path.stem
        assert CANNOT in text and "dry-run of what the reconciler would do" in text
    assert sorted(p.name for p in GOLDEN.iterdir()) == before  # nothing written beside them


def test_episodes_of_simulated_ticks_are_shown_muted_and_never_alert(
    dump: Path, tmp_path: Path
) -> None:
    """Ticks simulated on today's state never happened: their episodes do not fail a build,
    enter the history the next build continues, or reach Sentry."""
    conn = configure(sqlite3.connect(dump))
    add_agent(conn, "agent-lost", rig_id="rig-web", status="working")  # working, no hook
    conn.commit()
    conn.close()
    site = tmp_path / "site"
    window = ["--from", START, "--to", _at("10:10:00")]
    result = CliRunner().invoke(main, ["build", str(dump), "--out", str(site), "--jobs", "1",
                                       "--ticks", "simulate", "--fail-on", "violations",
                                       *window])  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads((site / "index.json").read_text(encoding="utf-8"))["episodes"]
    assert rows and all(r["expected"] and "never happened" in r["expected_why"] for r in rows)
    town = json.loads((site / "towns" / "north" / "index.json").read_text(encoding="utf-8"))
    full = [r for group in town["groups"] for r in group["episodes"]]
    assert full and all(r["replay_command"].endswith("--ticks simulate") for r in full)
    records = [json.loads(line) for line in (site / "history.jsonl").read_text().splitlines()]
    assert records and all(r["episodes"] == {} for r in records)
    assert "never happened" in _text(site / "towns" / "north" / "index.html")
