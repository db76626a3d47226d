"""The reconcile pass and the invariants against upstream's golden scenarios.

Each scenario under ``tests/fixtures/upstream-golden`` holds what
upstream's own reconciler returned. For scenarios with pending events the
expected actions were computed *after* the events were applied; we rebuild
that state from ``state_after_events`` instead of applying events here (that
is the event engine's job and has its own tests).

Upstream's queries have no ORDER BY, so actions are compared as a multiset
within each pass, and the passes must come in upstream's order: the golden
sequence is cut at our pass boundaries and each slice compared with the pass.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from typing import Any

import pytest
from support.fixture_files import GOLDEN, scenario_names

from reportgen.town.config import TownConfig
from reportgen.town.context import TownCtx
from reportgen.town.db import load_copy
from reportgen.town.invariants import check_invariants, check_invariants_detailed
from reportgen.town.reconciler import PASSES, reconcile, reconcile_by_pass

SCENARIOS = scenario_names()


def _restore_state(conn: sqlite3.Connection, state: dict[str, list[dict[str, Any]]]) -> None:
    """Replace every table's rows with ``state`` (foreign keys off while doing it)."""
    conn.execute("PRAGMA foreign_keys = OFF")
    for table in state:
        conn.execute(f'DELETE FROM "{table}"')
    for table, rows in state.items():
        for row in rows:
            cols = ", ".join(f'"{c}"' for c in row)
            marks = ", ".join("?" for _ in row)
            conn.execute(f'INSERT INTO "{table}" ({cols}) VALUES ({marks})', list(row.values()))
    conn.execute("PRAGMA foreign_keys = ON")


def load_scenario(name: str) -> tuple[TownCtx, dict[str, Any]]:
    """The scenario's town (post-event state when events were pending) and its expectations."""
    expected = json.loads((GOLDEN / f"{name}.json").read_text())
    conn = load_copy(GOLDEN / f"{name}.sqlite")
    if expected.get("state_after_events"):
        _restore_state(conn, expected["state_after_events"])
    ctx = TownCtx(
        conn=conn,
        now=expected["now"],
        config=TownConfig.parse(expected["town_config"]),
        draining=expected["draining"],
    )
    return ctx, expected


def _key(action: dict[str, Any]) -> str:
    return json.dumps(action, sort_keys=True)


@pytest.mark.parametrize("name", SCENARIOS)
def test_actions_match_per_pass(name: str) -> None:
    ctx, expected = load_scenario(name)
    golden = expected["actions"]
    start = 0
    for pass_name, ours in reconcile_by_pass(ctx):
        upstream = golden[start : start + len(ours)]
        assert Counter(map(_key, ours)) == Counter(map(_key, upstream)), pass_name
        start += len(ours)
    assert start == len(golden), "upstream emitted more actions than we did"


@pytest.mark.parametrize("name", SCENARIOS)
def test_action_keys_are_upstreams(name: str) -> None:
    """Same key names (and order) per action type as upstream emitted."""
    ctx, expected = load_scenario(name)
    shapes = {a["type"]: list(a) for a in expected["actions"]}
    for action in reconcile(ctx):
        if action["type"] in shapes:
            assert list(action) == shapes[action["type"]]


@pytest.mark.parametrize("name", SCENARIOS)
def test_invariants_before_actions(name: str) -> None:
    ctx, expected = load_scenario(name)
    assert check_invariants(ctx) == expected["invariants_before_actions"]


@pytest.mark.parametrize("name", SCENARIOS)
def test_detailed_invariants_agree_with_plain(name: str) -> None:
    ctx, _ = load_scenario(name)
    detailed = check_invariants_detailed(ctx)
    assert [v.as_upstream() for v in detailed] == check_invariants(ctx)
    for v in detailed:
        assert v.agent_ids or v.bead_ids or v.rig_ids


@pytest.mark.parametrize("name", SCENARIOS)
def test_reconcile_never_writes(name: str) -> None:
    ctx, _ = load_scenario(name)
    before = ctx.conn.total_changes
    reconcile(ctx)
    check_invariants(ctx)
    assert ctx.conn.total_changes == before


def test_passes_are_upstreams_seven_in_order() -> None:
    assert [name for name, _ in PASSES] == [
        "reconcileAgents",
        "reconcileBeads",
        "reconcileReviewQueue",
        "reconcileConvoys",
        "reconcileGUPP",
        "reconcileGC",
        "reconcileWastelandClaims",
    ]
