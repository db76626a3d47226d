"""Phase 0 against upstream's golden scenarios: every scenario with pending events.

For each, the drain runs on a copy of the scenario's database at the
scenario's ``now`` with its town config; the per-event outcomes must equal
``events`` and every row of every upstream table must equal
``state_after_events`` exactly (new ids included: they are minted in
upstream's order from ``CounterIds(1)``).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from support.fixture_files import scenario_names
from support.golden import context as golden_context
from support.golden import load

from reportgen.town import events
from reportgen.town.schema import UPSTREAM_TABLES


def _event_scenarios() -> list[str]:
    return [name for name in scenario_names() if load(name)[0].get("events")]


EVENT_SCENARIOS = _event_scenarios()


def _sort_key(table_pk: list[str], row: dict[str, Any]) -> str:
    return json.dumps([row.get(c) for c in table_pk], default=str)


def _pk(conn: sqlite3.Connection, table: str) -> list[str]:
    info = conn.execute(f'PRAGMA table_info("{table}")').fetchall()
    pk = [r[1] for r in sorted(info, key=lambda r: r[5]) if r[5] > 0]
    return pk or [r[1] for r in info]


def _by_pk(
    conn: sqlite3.Connection, state: dict[str, list[dict[str, Any]]]
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for table, rows in state.items():
        pk = _pk(conn, table)
        out[table] = sorted(rows, key=lambda r, pk=pk: _sort_key(pk, r))
    return out


def _dump(conn: sqlite3.Connection) -> dict[str, list[dict[str, Any]]]:
    state: dict[str, list[dict[str, Any]]] = {}
    for table in UPSTREAM_TABLES:
        cur = conn.execute(f'SELECT * FROM "{table}"')
        cols = [d[0] for d in cur.description]
        state[table] = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
    return _by_pk(conn, state)


def test_there_are_event_scenarios() -> None:
    assert len(EVENT_SCENARIOS) >= 4


@pytest.mark.parametrize("name", EVENT_SCENARIOS)
def test_drain_outcomes_match(name: str) -> None:
    dry, _ = load(name)
    ctx = golden_context(name)
    result = events.drain_events(ctx)
    assert result.drained == len(dry["events"])
    got = [
        {"event_id": o.event_id, "event_type": o.event_type, "outcome": o.outcome}
        for o in result.outcomes
    ]
    want = [
        {"event_id": e["event_id"], "event_type": e["event_type"], "outcome": e["outcome"]}
        for e in dry["events"]
    ]
    assert got == want


@pytest.mark.parametrize("name", EVENT_SCENARIOS)
def test_state_after_events_matches(name: str) -> None:
    dry, _ = load(name)
    ctx = golden_context(name)
    events.drain_events(ctx)
    got = _dump(ctx.conn)
    want = _by_pk(ctx.conn, dry["state_after_events"])
    assert set(want) == set(UPSTREAM_TABLES)
    for table in UPSTREAM_TABLES:
        assert got[table] == want[table], f"{name}: table {table} differs"


@pytest.mark.parametrize("name", EVENT_SCENARIOS)
def test_a_second_drain_finds_nothing(name: str) -> None:
    ctx = golden_context(name)
    first = events.drain_events(ctx)
    left = sum(1 for o in first.outcomes if o.outcome == events.FAILED_LEFT_PENDING)
    assert events.pending_event_count(ctx) == left
    assert events.drain_events(ctx).drained == left
