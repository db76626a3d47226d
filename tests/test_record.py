"""What Town.tick records: the tick record, the analytics rows, violation counters."""

from __future__ import annotations

import json

from support.townbuilder import NOW, SECOND, add_agent, add_rig, new_town

from reportgen.town import clock, store
from reportgen.town.api import Town
from reportgen.town.effects import NullWorld
from reportgen.town.record import load_ticks, violation_counts
from reportgen.town.tick import ModelStopwatch


def _draining_town_with_two_unhooked_workers() -> Town:
    conn = new_town()
    rig = add_rig(conn)
    for _ in range(2):
        add_agent(conn, rig_id=rig, status="working", hook=None, last_activity_at=NOW)
    store.put(conn, store.TOWN_ID, "town-rec")
    store.put(conn, store.DRAINING, True)
    store.put(conn, store.DRAIN_STARTED_AT, NOW)
    return Town(conn)


def _at(i: int) -> str:
    return clock.iso(clock.to_ms(NOW) + i * 5 * SECOND)


def test_each_tick_writes_reconciler_tick_with_upstream_columns() -> None:
    town = _draining_town_with_two_unhooked_workers()
    result = town.tick(_at(0), NullWorld(), stopwatch=ModelStopwatch())
    row = town.conn.execute("SELECT * FROM rg_analytics WHERE blob1 = 'reconciler_tick'").fetchone()
    m = result.metrics
    assert row["blob6"] == "town-rec"
    assert json.loads(row["blob10"]) == m["actionsByType"]
    assert [row[f"double{i}"] for i in range(1, 9)] == [
        m["wallClockMs"], m["eventsDrained"], m["actionsEmitted"], m["sideEffectsAttempted"],
        m["sideEffectsSucceeded"], m["sideEffectsFailed"], m["invariantViolations"],
        m["pendingEventCount"],
    ]  # fmt: skip


def test_violations_are_counted_per_invariant_and_reported_as_upstream() -> None:
    town = _draining_town_with_two_unhooked_workers()
    for i in range(3):
        town.tick(_at(i), NullWorld(), stopwatch=ModelStopwatch())
    assert violation_counts(town.conn) == {7: 6}
    assert violation_counts(town.conn, "other-town") == {}
    labels = town.conn.execute(
        "SELECT blob10, double2 FROM rg_analytics WHERE blob1 = 'reconciler.invariant_violations'"
    ).fetchall()
    assert len(labels) == 3
    assert all(r[1] == 2 and r[0].count("[7] Working agent ") == 2 for r in labels)


def test_tick_records_are_stored_in_order_with_entities() -> None:
    town = _draining_town_with_two_unhooked_workers()
    for i in range(2):
        town.tick(_at(i), NullWorld(), stopwatch=ModelStopwatch())
    records = load_ticks(town.conn, _at(0), _at(1))
    assert [r["at"] for r in records] == [_at(0), _at(1)]
    violation = records[0]["violations"][0]
    assert violation["invariant"] == 7
    assert violation["agent_ids"] and violation["agent_ids"][0] in violation["message"]
    assert records[0]["next_tick_at"] == _at(1)


def test_auto_recovery_through_the_town_is_journaled_and_recorded() -> None:
    town = _draining_town_with_two_unhooked_workers()
    town.tick(_at(0), NullWorld(), auto_recover=frozenset({7}))
    town.tick(_at(1), NullWorld(), auto_recover=frozenset({7}))
    records = load_ticks(town.conn, _at(0), _at(1))
    assert [len(r["recoveries"]) for r in records] == [2, 0]
    assert [len(r["violations"]) for r in records] == [2, 0]
    args = town.conn.execute("SELECT args FROM rg_journal WHERE call = 'tick'").fetchall()
    assert all(json.loads(a[0])["auto_recover"] == [7] for a in args)
