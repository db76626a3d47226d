"""Exact window replay: state at a time, tick-by-tick replay, divergence, approximate sources."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.worlds import RecordingWorld
from test_replay_towns import Built, Script, at, build_town

from reportgen.cli import main
from reportgen.cli.replay import ticks_json
from reportgen.errors import BadWindowError
from reportgen.replay import (
    dry_run,
    open_source,
    replay_events,
    replay_window,
    state_at,
    state_snapshot,
)
from reportgen.replay.state import base_for
from reportgen.town import checkpoints, clock
from reportgen.town.api import Town
from reportgen.town.db import configure
from reportgen.town.tick import ModelStopwatch


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Built:
    path = tmp_path_factory.mktemp("replay") / "town.sqlite"
    return build_town(path, Script(silent_after=400, work_seconds=900, end=2400))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _copy(town: Built, tmp_path: Path) -> Path:
    out = tmp_path / "copy.sqlite"
    shutil.copyfile(town.path, out)
    return out


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


# --------------------------------------------------------------------------- exact replay


def test_whole_history_replays_with_zero_divergence(town: Built) -> None:
    run = replay_window(town.path, at(0), at(2400))
    assert run.fidelity == "exact" and run.caveat is None
    assert len(run.ticks) == town.ticks
    assert run.compared_ticks == town.ticks
    assert run.divergence is None


def test_a_late_window_starts_from_a_checkpoint_and_still_matches(town: Built) -> None:
    source = open_source(town.path)
    base = base_for(source, at(1500))
    assert base.seq > 0 and at(600) <= base.at < at(1500)
    run = replay_window(town.path, at(1500), at(2000))
    assert run.ticks and run.ticks[0]["at"] >= at(1500) and run.ticks[-1]["at"] <= at(2000)
    assert run.compared_ticks == len(run.ticks) and run.divergence is None


def test_checkpoint_and_full_journal_give_the_same_state(town: Built, tmp_path: Path) -> None:
    without = _copy(town, tmp_path)
    conn = sqlite3.connect(without)
    conn.execute("DELETE FROM rg_checkpoints WHERE seq > 0")
    conn.commit()
    conn.close()
    for t in (at(700), at(1234.5), at(2300)):
        fast = state_at(open_source(town.path), t)
        slow = state_at(open_source(without), t)
        assert checkpoints.snapshot(fast.conn) == checkpoints.snapshot(slow.conn)
        assert (fast.town.ids.next, fast.town.event_ids.next) == (
            slow.town.ids.next,
            slow.town.event_ids.next,
        )


def test_heartbeat_loss_shows_at_the_first_tick_after_90_seconds(town: Built) -> None:
    agent = town.silent_agent
    assert agent is not None
    conn = sqlite3.connect(town.path)
    beats = conn.execute(
        "SELECT max(at) FROM rg_journal WHERE call = 'heartbeat' AND json_extract(args, '$.agent_id') = ?",
        (agent,),
    ).fetchone()[0]
    conn.close()
    run = replay_window(town.path, at(0), at(2400))
    lost = [
        t["at"]
        for t in run.ticks
        for a in t["actions"]
        if a["type"] == "transition_agent"
        and a.get("agent_id") == agent
        and a.get("reason") == "heartbeat lost (3 missed cycles)"
    ]
    first_due = next(
        t["at"] for t in run.ticks if clock.to_ms(t["at"]) - clock.to_ms(beats) > 90_000
    )
    assert lost and lost[0] == first_due
    assert run.entities[agent].kind == "agent" and run.entities[agent].type == "polecat"


def test_divergence_names_tick_field_recorded_and_replayed(town: Built, tmp_path: Path) -> None:
    path = _copy(town, tmp_path)
    conn = sqlite3.connect(path)
    seq, record_text = conn.execute(
        "SELECT seq, record FROM rg_ticks WHERE json_array_length(record, '$.actions') > 0 "
        "ORDER BY seq LIMIT 1 OFFSET 1"
    ).fetchone()
    record = json.loads(record_text)
    emitted = record["metrics"]["actionsEmitted"]
    record["metrics"]["actionsEmitted"] = emitted + 1
    conn.execute("UPDATE rg_ticks SET record = ? WHERE seq = ?", (json.dumps(record), seq))
    conn.commit()
    conn.close()
    run = replay_window(path, at(0), at(2400))
    assert run.divergence is not None
    assert run.divergence.tick_at == record["at"]
    assert run.divergence.field == "metrics.actionsEmitted"
    assert (run.divergence.recorded, run.divergence.replayed) == (emitted + 1, emitted)
    code, out, _ = _cli("replay", "--db", str(path), "--from", at(0), "--to", at(2400), "--ticks")
    assert code == 0
    assert f"DIVERGENCE at tick {record['at']}, metrics.actionsEmitted" in out


def test_a_changed_action_is_reported_down_to_its_field(town: Built, tmp_path: Path) -> None:
    path = _copy(town, tmp_path)
    conn = sqlite3.connect(path)
    seq, record_text = conn.execute(
        "SELECT seq, record FROM rg_ticks WHERE json_extract(record, '$.actions[0].type') = "
        "'dispatch_agent' ORDER BY seq DESC LIMIT 1"
    ).fetchone()
    record = json.loads(record_text)
    replayed_bead = record["actions"][0]["bead_id"]
    record["actions"][0]["bead_id"] = "not-the-bead"
    conn.execute("UPDATE rg_ticks SET record = ? WHERE seq = ?", (json.dumps(record), seq))
    conn.commit()
    conn.close()
    div = replay_window(path, at(0), at(2400)).divergence
    assert div is not None and div.field == "actions[0].bead_id"
    assert (div.recorded, div.replayed) == ("not-the-bead", replayed_bead)


def test_measured_wall_clock_is_not_compared_but_kept(town: Built, tmp_path: Path) -> None:
    path = _copy(town, tmp_path)
    conn = sqlite3.connect(path)
    conn.execute("UPDATE rg_ticks SET record = json_set(record, '$.metrics.wallClockMs', 17.25)")
    conn.commit()
    conn.close()
    run = replay_window(path, at(0), at(2400))
    assert run.divergence is None
    assert {t["metrics"]["wallClockMs"] for t in run.ticks} == {17.25}


def test_modelled_wall_clock_is_compared(town: Built, tmp_path: Path) -> None:
    path = _copy(town, tmp_path)
    conn = sqlite3.connect(path)
    # A modelled value that is wrong for its metrics is a divergence, not a measurement.
    conn.execute(
        "UPDATE rg_ticks SET record = json_set(record, '$.metrics.eventsDrained', 7, "
        "'$.metrics.wallClockMs', 2.0 + 0.4 * 7) WHERE seq = (SELECT min(seq) FROM rg_ticks)"
    )
    conn.commit()
    conn.close()
    div = replay_window(path, at(0), at(2400)).divergence
    assert div is not None and div.field == "metrics.eventsDrained"


# --------------------------------------------------------------------------- dry-run and replay-events


def test_dry_run_equals_the_recorded_tick_at_that_time(town: Built) -> None:
    run = replay_window(town.path, at(0), at(2400))
    checked = 0
    for tick in run.ticks:
        if tick["container"]["recorded"] or not (tick["actions"] or tick["events"]):
            continue
        result = dry_run(town.path, now=tick["at"])
        assert result["actions"] == tick["actions"], tick["at"]
        assert result["metrics"]["eventsDrained"] == tick["metrics"]["eventsDrained"]
        checked += 1
    assert checked >= 5


def test_dry_run_equals_the_next_tick_on_the_same_state(town: Built, tmp_path: Path) -> None:
    path = _copy(town, tmp_path)
    conn = configure(sqlite3.connect(path))
    live = Town(conn)
    rig = conn.execute("SELECT id FROM rigs").fetchone()[0]
    last = conn.execute("SELECT max(at) FROM rg_journal").fetchone()[0]
    now = clock.iso(clock.to_ms(last) + 60_000)
    live.sling_bead(now, rig, "A late bead")
    live.sling_bead(now, rig, "Another late bead")
    conn.commit()
    predicted = dry_run(path, now=now)
    assert {a["type"] for a in predicted["actions"]} >= {"dispatch_agent"}
    result = live.tick(now, RecordingWorld(), stopwatch=ModelStopwatch())
    assert predicted["actions"] == result.actions
    assert predicted["metrics"]["eventsDrained"] == result.metrics["eventsDrained"] == 2


def test_replay_events_equals_the_tick_replay_at_to(town: Built) -> None:
    run = replay_window(town.path, at(300), at(2400))
    ticks = [t for t in run.ticks if t["actions"] and not t["container"]["recorded"]]
    for tick in ticks[:4]:
        window = replay_window(town.path, at(300), tick["at"])
        assert window.ticks[-1]["at"] == tick["at"]
        result = replay_events(town.path, at(300), tick["at"])
        assert result["fidelity"] == "exact" and "caveat" not in result
        assert result["actions"] == window.ticks[-1]["actions"]
        drained = sum(t["metrics"]["eventsDrained"] for t in window.ticks)
        assert result["eventsReplayed"] == drained
        before_tick = state_at(open_source(town.path), tick["at"])
        snap = state_snapshot(before_tick.conn)
        if tick["metrics"]["eventsDrained"] == 0:
            assert result["stateSnapshot"] == snap


def test_state_snapshot_lists_agents_and_open_beads(town: Built) -> None:
    result = replay_events(town.path, at(0), at(1000))
    snap = result["stateSnapshot"]
    assert {a["role"] for a in snap["agents"]} >= {"polecat"}
    assert all(b["status"] not in ("closed", "failed") for b in snap["nonTerminalBeads"])


# --------------------------------------------------------------------------- approximate sources


def _without_journal(town: Built, tmp_path: Path, bad_event_at: str) -> Path:
    path = _copy(town, tmp_path)
    conn = sqlite3.connect(path)
    for table in ("rg_journal", "rg_ticks", "rg_world_log", "rg_checkpoints", "rg_analytics"):
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(
        "INSERT INTO town_events (event_id, event_type, payload, created_at) "
        "VALUES ('bad-row-1', 'bogus_event', '{}', ?)",
        (bad_event_at,),
    )
    conn.commit()
    conn.close()
    return path


def test_simulated_tick_replay_quarantines_a_bad_row_and_goes_on(
    town: Built, tmp_path: Path
) -> None:
    path = _without_journal(town, tmp_path, at(1000))
    run = replay_window(path, at(900), at(1800), simulate=True)
    assert run.fidelity == "simulated"
    assert run.caveat and run.caveat.startswith("simulated on today's state: ")
    assert "no input journal" in run.caveat and "no container or SCM answers" in run.caveat
    assert run.quarantined == [
        {
            "at": run.quarantined[0]["at"],
            "event_id": "bad-row-1",
            "event_type": "bogus_event",
            "reason": "unknown event_type 'bogus_event'",
        }
    ]
    assert at(1000) <= run.quarantined[0]["at"] < at(1000 + 301)
    assert run.ticks[-1]["at"] > run.quarantined[0]["at"]  # the replay went on
    assert run.compared_ticks == 0 and run.divergence is None
    view = ticks_json(run)
    assert view["summary"]["quarantined"] == 1 and view["caveat"] == run.caveat


def test_approximate_replay_events_reapplies_on_current_state(town: Built, tmp_path: Path) -> None:
    path = _without_journal(town, tmp_path, at(1000))
    result = replay_events(path, at(0), at(2400))
    assert result["fidelity"] == "approximate" and "no input journal" in result["caveat"]
    assert [q["event_id"] for q in result["quarantined"]] == ["bad-row-1"]
    conn = sqlite3.connect(path)
    in_window = conn.execute(
        "SELECT count(*) FROM town_events WHERE created_at BETWEEN ? AND ?", (at(0), at(2400))
    ).fetchone()[0]
    conn.close()
    assert result["eventsReplayed"] == in_window


def test_dry_run_that_cannot_rewind_says_so(town: Built, tmp_path: Path) -> None:
    path = _without_journal(town, tmp_path, at(1000))
    result = dry_run(path, now=at(600))
    assert result["fidelity"] == "approximate" and "current state" in result["caveat"]


# --------------------------------------------------------------------------- windows and the CLI


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("yesterday", at(10), "--from: not an ISO-8601 time: 'yesterday'"),
        (at(10), "2026-13-40", "--to: not an ISO-8601 time"),
        (at(100), at(10), "is after --to"),
        ("2027-01-01T00:00:00Z", "2027-01-02T00:00:00Z", "is outside the data of town.sqlite"),
    ],
)
def test_bad_windows_exit_2_with_one_line(town: Built, start: str, end: str, message: str) -> None:
    for extra in ([], ["--ticks"]):
        code, _, err = _cli("replay", "--db", str(town.path), "--from", start, "--to", end, *extra)
        assert code == 2
        assert message in err and err.strip().count("\n") == 0
    with pytest.raises(BadWindowError):
        replay_window(town.path, start, end)


def test_cli_json_outputs(town: Built) -> None:
    code, out, _ = _cli(
        "replay", "--db", str(town.path), "--from", at(0), "--to", at(2400), "--json"
    )
    assert code == 0
    body = json.loads(out)
    assert set(body) >= {"eventsReplayed", "actions", "stateSnapshot", "fidelity"}
    code, out, _ = _cli(
        "replay", "--db", str(town.path), "--from", at(0), "--to", at(2400), "--ticks", "--json"
    )
    assert code == 0
    body = json.loads(out)
    tick = next(t for t in body["ticks"] if t["actions"])
    assert set(tick) == {
        "at", "eventsDrained", "eventsByType", "actions", "sideEffects", "violations",
        "wallClockMs", "pendingEventCount",
    }  # fmt: skip
    assert body["summary"]["ticks"] == town.ticks
    assert body["comparison"] == {"comparedTicks": town.ticks, "divergence": None}


def test_cli_text_output_has_a_line_per_busy_tick_and_a_summary(town: Built) -> None:
    code, out, _ = _cli("replay", "--db", str(town.path), "--from", at(0), "--to", at(2400),
                        "--ticks")  # fmt: skip
    assert code == 0
    assert "dispatch_agent×1" in out
    assert f"{town.ticks} tick(s)" in out and "no divergence over" in out
    code, out, _ = _cli("replay", "--db", str(town.path), "--from", at(0), "--to", at(2400))
    assert code == 0 and "event(s) replayed" in out


def test_auto_recover_without_ticks_is_refused_not_ignored(town: Built) -> None:
    code, _, err = _cli("replay", "--db", str(town.path), "--from", at(0), "--to", at(2400),
                        "--auto-recover", "7")  # fmt: skip
    assert code == 2
    assert "--auto-recover needs --ticks" in err


def test_replay_and_dry_run_never_write_their_input(town: Built) -> None:
    before = _sha(town.path)
    replay_window(town.path, at(0), at(2400))
    replay_events(town.path, at(0), at(2400))
    dry_run(town.path, now=at(700))
    dry_run(town.path)
    assert _sha(town.path) == before
