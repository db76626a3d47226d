"""Times taken from the data, event times upstream would not write, and towns without an id.

* One far-future timestamp must not move the default ``now`` or window: the
  newest *plausible* timestamp is used and the value set aside is named on
  stderr; a time the user gives is never adjusted; every command says on
  stderr which time or window it used.
* A ``town_events`` row whose ``created_at`` is not upstream's canonical form
  is quarantined (with the value in the reason) by replays, exports and
  builds; dry-run drains it as upstream would, and warns.
* Upstream keeps the town id outside SQLite: a folder of upstream dumps builds
  one town per file, each under its file name.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from reportgen.cli import main
from reportgen.replay import open_source, replay_events, replay_window
from reportgen.replay.export import export
from reportgen.replay.loader import ReplayLoader
from reportgen.replay.source import choose_window, newest_plausible
from reportgen.town import clock, store
from reportgen.town.schema import ensure_reportgen_tables

DUMPS = Path(__file__).resolve().parent / "fixtures" / "upstream-dumps"
CANCELLED = DUMPS / "event_bead_cancelled.sqlite"
#: The newest timestamp of ``event_bead_cancelled`` (its last event).
NEWEST = "2026-03-15T11:59:58.003Z"
FAR = "9999-12-31T23:59:59.999Z"


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _copy(src: Path, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dest)
    return dest


def _edit(path: Path, sql: str, params: tuple[object, ...] = ()) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql, params)
    conn.close()


def _first_bead(path: Path) -> str:
    conn = sqlite3.connect(path)
    bead = str(conn.execute("SELECT bead_id FROM beads ORDER BY rowid LIMIT 1").fetchone()[0])
    conn.close()
    return bead


@pytest.fixture
def far(tmp_path: Path) -> tuple[Path, str]:
    """The dump with one bead updated in year 9999; its data otherwise spans 10 minutes
    (so that a default window replays 120 ticks, not a day's worth)."""
    path = _copy(CANCELLED, tmp_path / "far.sqlite")
    floor = "2026-03-15T11:50:00.000Z"
    for table, column in (("beads", "created_at"), ("beads", "updated_at"),
                          ("agent_metadata", "last_activity_at")):  # fmt: skip
        _edit(path, f"UPDATE {table} SET {column} = max({column}, ?)", (floor,))
    bead = _first_bead(path)
    _edit(path, "UPDATE beads SET updated_at = ? WHERE bead_id = ?", (FAR, bead))
    return path, bead


# --------------------------------------------------------------------------- plausible "now"


def _times(*values: str | None) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE beads (bead_id text primary key, updated_at text, created_at text)")
    conn.executemany(
        "INSERT INTO beads VALUES (?, ?, NULL)", [(f"b{i}", v) for i, v in enumerate(values)]
    )
    return conn


def test_newest_drops_each_value_more_than_a_day_after_the_next() -> None:
    conn = _times(
        "2026-03-15T12:00:00.000Z", "2026-03-15T11:00:00.000Z", "2026-03-20T00:00:00.000Z",
        "2030-01-01T00:00:00.000Z", "9999-12-31", "9999-12-31", "not a time", None,
    )  # fmt: skip
    newest = newest_plausible(conn)
    assert newest.at == "2026-03-15T12:00:00.000Z"
    assert [(t.table, t.key, t.column, t.value) for t in newest.dropped] == [
        ("beads", "b4", "updated_at", "9999-12-31"),
        ("beads", "b5", "updated_at", "9999-12-31"),
        ("beads", "b3", "updated_at", "2030-01-01T00:00:00.000Z"),
        ("beads", "b2", "updated_at", "2026-03-20T00:00:00.000Z"),
    ]


def test_newest_keeps_values_within_a_day_and_reads_other_forms_by_their_time() -> None:
    day = _times("2026-03-15T12:00:00.000Z", "2026-03-16T11:59:59.999Z")
    assert newest_plausible(day).at == "2026-03-16T11:59:59.999Z"
    assert newest_plausible(day).dropped == ()
    offset = _times("2026-03-15T12:00:00.000Z", "2026-03-15T13:30:00.000+02:00")
    assert newest_plausible(offset).at == "2026-03-15T12:00:00.000Z"
    assert newest_plausible(_times(None, "garbage")).at is None


def test_newest_finds_other_forms_under_a_dropped_value() -> None:
    # the 15th is dropped (4 days after the next); the next is the 11th, written with a space
    conn = _times(
        "2026-03-15T00:00:00.000Z", "2026-03-10T00:00:00.000Z", "2026-03-09T12:00:00.000Z",
        "2026-03-11 00:00:00.000Z",
    )  # fmt: skip
    newest = newest_plausible(conn)
    assert newest.at == "2026-03-11T00:00:00.000Z"
    assert [t.value for t in newest.dropped] == ["2026-03-15T00:00:00.000Z"]


_BASE = clock.to_ms("2026-03-15T00:00:00.000Z")
_FORMS = (
    lambda ms: clock.iso(ms),
    lambda ms: clock.iso(ms)[:19] + "+00:00",
    lambda ms: clock.iso(ms).replace("T", " "),
    lambda ms: clock.iso(ms)[:19] + "Z",
    lambda ms: clock.iso(ms - ms % 86_400_000)[:10],
    lambda ms: (datetime.fromtimestamp(ms / 1000, UTC) - timedelta(hours=3)).strftime(
        "%Y-%m-%dT%H:%M:%S-03:00"
    ),
)
_VALUE = st.one_of(
    st.none(),
    st.sampled_from(["garbage", " 2026-03-15T00:00:00.000Z", "2026-02-30T00:00:00.000Z"]),
    st.builds(
        lambda offset, form: _FORMS[form](_BASE + offset * 1000),
        st.one_of(
            st.integers(-120, 120).map(lambda hours: hours * 3600),
            st.integers(-5 * 86_400, 5 * 86_400),
            st.sampled_from([40 * 86_400, 400 * 86_400, 90_000 * 86_400]),
        ),
        st.integers(0, len(_FORMS) - 1),
    ),
)


def _reference(
    values: dict[tuple[str, str, str], str | None],
) -> tuple[str | None, set[tuple[str, ...]]]:
    """The rule, read literally: every value parsed, distinct times, drop while the gap > 24 h."""
    by_ms: dict[int, list[tuple[str, ...]]] = {}
    for (table, key, column), value in values.items():
        if isinstance(value, str) and value == value.strip() and not clock.is_nan(value):
            by_ms.setdefault(clock.to_ms(value), []).append((table, key, column, value))
    times = sorted(by_ms, reverse=True)
    dropped: set[tuple[str, ...]] = set()
    while len(times) > 1 and times[0] - times[1] > 24 * clock.HOUR_MS:
        dropped |= set(by_ms[times.pop(0)])
    return (clock.iso(times[0]) if times else None), dropped


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_VALUE, _VALUE), max_size=12), st.lists(_VALUE, max_size=6))
def test_newest_matches_the_rule_read_literally(
    beads: list[tuple[str | None, str | None]], events: list[str | None]
) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE beads (bead_id text primary key, updated_at text, created_at text)")
    conn.execute("CREATE TABLE bead_events (bead_event_id text primary key, created_at text)")
    conn.executemany("INSERT INTO beads VALUES (?, ?, ?)",
                     [(f"b{i}", u, c) for i, (u, c) in enumerate(beads)])  # fmt: skip
    conn.executemany("INSERT INTO bead_events VALUES (?, ?)",
                     [(f"e{i}", v) for i, v in enumerate(events)])  # fmt: skip
    values: dict[tuple[str, str, str], str | None] = {}
    for i, (updated, created) in enumerate(beads):
        values[("beads", f"b{i}", "updated_at")] = updated
        values[("beads", f"b{i}", "created_at")] = created
    for i, value in enumerate(events):
        values[("bead_events", f"e{i}", "created_at")] = value
    newest = newest_plausible(conn)
    at, dropped = _reference(values)
    assert newest.at == at
    assert {(t.table, t.key, t.column, t.value) for t in newest.dropped} == dropped


def test_dry_run_ignores_a_far_future_timestamp_and_says_so(far: tuple[Path, str]) -> None:
    path, bead = far
    code, out, err = _cli("dry-run", "--db", str(path), "--json")
    assert code == 0, err
    explicit = _cli("dry-run", "--db", str(path), "--now", NEWEST, "--json")
    assert json.loads(out) == json.loads(explicit[1])
    assert json.loads(out)["actions"] == []
    lines = err.splitlines()
    assert lines[-1] == f"now {NEWEST} (newest plausible timestamp in far.sqlite)"
    assert f"'{FAR}' (table beads, key {bead}, column updated_at)" in lines[0]
    assert lines[0].startswith(f"warning: {path}: ignored implausible timestamp")
    assert explicit[2] == f"now {NEWEST} (given by --now)\n"


def test_a_given_now_is_never_adjusted(far: tuple[Path, str]) -> None:
    path, _ = far
    code, out, err = _cli("dry-run", "--db", str(path), "--now", "9999-12-30T00:00:00Z", "--json")
    assert code == 0, err
    assert err == "now 9999-12-30T00:00:00.000Z (given by --now)\n"
    assert json.loads(out)["actions"]  # the far future: every agent idle for ages


def test_build_windows_up_to_the_newest_plausible_timestamp(
    far: tuple[Path, str], tmp_path: Path
) -> None:
    path, bead = far
    code, out, err = _cli("build", str(path), "--out", str(tmp_path / "site"), "--jobs", "1")
    assert code == 0, out + err
    assert "0 failed" in out
    assert f"window     2026-03-15T11:50:00.000Z → {NEWEST}" in out
    lines = err.splitlines()
    assert "column updated_at): more than 24 h after the next newest" in lines[0]
    assert bead in lines[0]
    assert lines[-1] == (
        f"window 2026-03-15T11:50:00.000Z .. {NEWEST} "
        "(the last 24 h up to the newest plausible timestamp in far.sqlite)"
    )
    chosen = choose_window(open_source(path), None, None)
    assert (chosen.start, chosen.end) == ("2026-03-15T11:50:00.000Z", NEWEST)


def test_build_never_adjusts_a_given_window(far: tuple[Path, str], tmp_path: Path) -> None:
    path, _ = far
    start, end = "2026-03-15T11:58:00Z", "2026-03-15T12:00:00Z"
    run = ReplayLoader()(path, start, end)
    assert (run.window_from, run.window_to) == (clock.normalize(start), clock.normalize(end))
    assert run.ignored_times == [] and run.window_reason == "given by --from and --to"


# --------------------------------------------------------------------------- event times


#: ``created_at`` values upstream never writes, by the event id they are given
#: (upstream's schema forbids NULL; :func:`test_the_reason_names_the_value` covers it).
ODD_TIMES: dict[str, str] = {
    "odd-offset": "2026-03-15T13:59:59.000+02:00",
    "odd-space": "2026-03-15 11:59:59.000Z",
    "odd-seconds": "2026-03-15T11:59:59Z",
    "odd-empty": "",
    "odd-garbage": "garbage",
}


@pytest.fixture
def odd(tmp_path: Path) -> Path:
    """The dump with four more pending events, copies of a real one but for their time."""
    path = _copy(CANCELLED, tmp_path / "odd.sqlite")
    for event_id, created_at in ODD_TIMES.items():
        _edit(
            path,
            """INSERT INTO town_events (event_id, event_type, agent_id, bead_id, payload,
                                       created_at, processed_at)
               SELECT ?, event_type, agent_id, bead_id, payload, ?, NULL FROM town_events
               ORDER BY created_at LIMIT 1""",
            (event_id, created_at),
        )
    return path


def _assert_quarantined(entries: list[dict[str, object]]) -> None:
    reasons = {str(q["event_id"]): str(q["reason"]) for q in entries}
    assert set(reasons) == set(ODD_TIMES)
    for event_id, value in ODD_TIMES.items():
        assert reasons[event_id] == clock.canonical_problem(value, "created_at")


def test_the_reason_names_the_value() -> None:
    form = "is not a canonical ISO-8601 UTC time (YYYY-MM-DDTHH:MM:SS.mmmZ)"
    assert clock.canonical_problem("2026-03-15T12:00:00+02:00", "created_at") == (
        f"created_at '2026-03-15T12:00:00+02:00' {form}"
    )
    assert clock.canonical_problem(None, "created_at") == f"created_at NULL {form}"
    assert clock.canonical_problem("2026-02-30T12:00:00.000Z", "at") is not None
    assert clock.canonical_problem("2026-03-15T12:00:00.000Z", "at") is None


WINDOW = ("2026-03-15T11:55:00.000Z", "2026-03-15T12:05:00.000Z")


def test_tick_replay_quarantines_event_times_upstream_never_writes(odd: Path) -> None:
    run = replay_window(odd, *WINDOW, simulate=True)
    _assert_quarantined(run.quarantined)
    assert {q["at"] for q in run.quarantined} == {WINDOW[0]}
    drained = [e["event_id"] for t in run.ticks for e in t["events"]]
    assert not set(drained) & set(ODD_TIMES)
    assert len(drained) == 4  # the dump's own events are still replayed, at their time
    assert run.town_id == "odd"


def test_replay_events_quarantines_them_too(odd: Path) -> None:
    result = replay_events(odd, *WINDOW)
    _assert_quarantined(result["quarantined"])
    assert result["eventsReplayed"] == 4
    code, out, err = _cli("replay", "--db", str(odd), "--from", WINDOW[0], "--to", WINDOW[1])
    assert code == 0, err
    assert out.count("quarantined odd-") == len(ODD_TIMES)
    assert err == f"window {WINDOW[0]} .. {WINDOW[1]} (given by --from and --to)\n"


def test_export_quarantines_them_in_the_bundle(odd: Path, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle.sqlite"
    manifest = export(odd, *WINDOW, bundle)
    _assert_quarantined(manifest["quarantined"])
    assert manifest["counts"]["quarantined"] == len(ODD_TIMES)
    conn = sqlite3.connect(bundle)
    window_events = {r[0] for r in conn.execute("SELECT event_id FROM rg_window_events")}
    stored = conn.execute("SELECT event_id, reason FROM rg_quarantine").fetchall()
    conn.close()
    assert len(window_events) == 4 and not window_events & set(ODD_TIMES)
    _assert_quarantined([{"event_id": e, "reason": r} for e, r in stored])
    _assert_quarantined(replay_window(bundle, *WINDOW).quarantined)
    code, _, err = _cli("export", "--db", str(odd), "--from", WINDOW[0], "--to", WINDOW[1],
                        "--out", str(tmp_path / "again.sqlite"))  # fmt: skip
    assert code == 0
    assert err.count("warning: ") == len(ODD_TIMES) and "quarantined event odd-garbage" in err
    assert err.splitlines()[0] == f"window {WINDOW[0]} .. {WINDOW[1]} (given by --from and --to)"


def test_build_quarantines_them(odd: Path) -> None:
    _assert_quarantined(ReplayLoader()(odd, *WINDOW).quarantined)


def test_dry_run_drains_them_as_upstream_would_and_warns(odd: Path) -> None:
    code, out, err = _cli("dry-run", "--db", str(odd), "--json")
    assert code == 0, err
    assert json.loads(out)["metrics"]["eventsDrained"] == 4 + len(ODD_TIMES)
    warning = [line for line in err.splitlines() if "not a canonical" in line]
    assert len(warning) == 1
    for event_id in ODD_TIMES:
        assert event_id in warning[0]


# --------------------------------------------------------------------------- town ids


def test_a_folder_of_upstream_dumps_builds_every_town_under_its_file_name(
    tmp_path: Path,
) -> None:
    dumps = sorted(DUMPS.glob("*.sqlite"))
    assert len(dumps) == 3
    code, out, err = _cli("build", str(DUMPS), "--out", str(tmp_path / "site"), "--jobs", "1",
                          "--from", "2026-03-15T11:58:00Z", "--to", "2026-03-15T12:00:00Z")  # fmt: skip
    assert code == 0, out + err
    assert "towns      3 (0 skipped as unchanged, 0 failed)" in out
    for dump in dumps:
        assert (tmp_path / "site" / "towns" / dump.stem / "index.html").is_file()
        assert open_source(dump, copy=False).town_id == dump.stem
    assert err.splitlines()[-1] == (
        "window 2026-03-15T11:58:00.000Z .. 2026-03-15T12:00:00.000Z over 3 towns "
        "(given by --from and --to)"
    )


def test_two_sources_of_one_town_fail_naming_both_files(tmp_path: Path) -> None:
    paths = [_copy(CANCELLED, tmp_path / "towns" / name) for name in ("a.sqlite", "b.sqlite")]
    for path in paths:
        conn = sqlite3.connect(path)
        ensure_reportgen_tables(conn)
        store.put(conn, store.TOWN_ID, "t1")
        conn.commit()
        conn.close()
    code, out, _ = _cli("build", str(tmp_path / "towns"), "--out", str(tmp_path / "site"),
                        "--jobs", "1", "--from", WINDOW[0], "--to", WINDOW[1])  # fmt: skip
    assert code == 4
    assert f"town t1 appears in more than one source: {paths[0]} and {paths[1]}" in out


def test_the_file_name_is_the_town_id_of_a_dump_in_every_command(tmp_path: Path) -> None:
    path = _copy(CANCELLED, tmp_path / "north.sqlite")
    code, out, _ = _cli("replay", "--db", str(path), "--from", WINDOW[0], "--to", WINDOW[1],
                        "--ticks", "--json")  # fmt: skip
    assert code == 0 and json.loads(out)["townId"] == "north"
    manifest = export(path, *WINDOW, tmp_path / "incident.sqlite")
    assert manifest["town_id"] == "north"
    assert open_source(tmp_path / "incident.sqlite").town_id == "north"
