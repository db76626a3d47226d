"""Applying each golden scenario's actions reproduces upstream's tick state exactly.

For every scenario: start from the state the actions were computed on (the
``.sqlite`` for scenarios without pending events, ``state_after_events``
otherwise), apply the fixture's ``actions`` in emission order, and compare
the per-action outcomes, the deferred flags, the analytics events, the
invariant violations after the actions and every row of every upstream table with ``<name>.tick.json`` (side effects were
never executed there, so none are run here).

Ids minted during the tick are compared exactly: the counter starts right
after the ids minted during the event phase, and the engine mints in
upstream's order.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from support.fixture_files import scenario_names
from support.golden import NEW_ID_PREFIX, context, dump_state, load

from reportgen.town.actions import apply_actions
from reportgen.town.context import TownCtx
from reportgen.town.ids import CounterIds
from reportgen.town.invariants import check_invariants
from reportgen.town.schema import UPSTREAM_TABLES

NEW_ID = re.compile(re.escape(NEW_ID_PREFIX) + r"([0-9a-f]{12})")

#: Primary key columns; ``bead_dependencies`` has none (sorted by all columns).
PRIMARY_KEYS = {
    "beads": "bead_id",
    "bead_events": "bead_event_id",
    "agent_metadata": "bead_id",
    "review_metadata": "bead_id",
    "escalation_metadata": "bead_id",
    "convoy_metadata": "bead_id",
    "rigs": "id",
    "town_events": "event_id",
    "agent_nudges": "nudge_id",
}


def _minted_max(state: dict[str, list[dict[str, Any]]]) -> int:
    """The highest counter value of any minted id present in ``state`` (0 if none)."""
    found = [int(m, 16) for m in NEW_ID.findall(json.dumps(state))]
    return max(found, default=0)


def pre_action_context(name: str) -> TownCtx:
    """The state upstream computed the actions on, with the id counter positioned after it."""
    dry, _ = load(name)
    ctx = context(name)
    state = dry.get("state_after_events")
    if dry["events"] and state is not None:
        conn = ctx.conn
        conn.commit()  # the pragma is a no-op inside a transaction
        conn.execute("PRAGMA foreign_keys = OFF")
        for table in UPSTREAM_TABLES:
            conn.execute(f"DELETE FROM {table}")
        for table, rows in state.items():
            for row in rows:
                cols = list(row)
                conn.execute(
                    f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                    [row[c] for c in cols],
                )
        conn.commit()
        conn.execute("PRAGMA foreign_keys = ON")
        ctx.ids = CounterIds(_minted_max(state) + 1)
    return ctx


def _sort(table: str, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    pk = PRIMARY_KEYS.get(table)
    if pk is not None:
        return sorted(rows, key=lambda r: str(r[pk]))
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


@pytest.mark.parametrize("name", scenario_names())
def test_apply_matches_golden(name: str) -> None:
    _, tick = load(name)
    ctx = pre_action_context(name)
    records = apply_actions(ctx, tick["actions"])

    got_apply = [
        {
            "index": r.index,
            "type": r.type,
            "outcome": r.outcome,
            "side_effect_deferred": r.side_effect_deferred,
        }
        for r in records
    ]
    want_apply = [
        {k: e[k] for k in ("index", "type", "outcome", "side_effect_deferred")}
        for e in tick["apply"]
    ]
    assert got_apply == want_apply
    assert sum(r.side_effect_deferred for r in records) == tick["side_effects_deferred"]
    assert [a for r in records for a in r.analytics] == tick["emitted_events"]

    # Upstream's own log lines where we reproduce them (notify_mayor).
    for rec, want in zip(records, tick["apply"], strict=True):
        if rec.type == "notify_mayor":
            assert rec.logs == want["logs"]

    got_violations = sorted(json.dumps(v, sort_keys=True) for v in check_invariants(ctx))
    want_violations = sorted(
        json.dumps(v, sort_keys=True) for v in tick["invariants_after_actions"]
    )
    assert got_violations == want_violations

    got = dump_state(ctx.conn)
    want_state = tick["state_after_tick"]
    for table in want_state:
        assert _sort(table, got[table]) == _sort(table, want_state[table]), table
