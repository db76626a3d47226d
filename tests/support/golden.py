"""Loading upstream's golden scenarios and comparing engine state with them.

The scenarios live in ``tests/fixtures/upstream-golden`` (see its README):
a town database before the tick, the dry-run result, and the full tick
without side effects, all produced by upstream's own TypeScript.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from typing import Any

from reportgen.town.config import TownConfig
from reportgen.town.context import TownCtx
from reportgen.town.db import load_copy
from reportgen.town.ids import CounterIds
from reportgen.town.schema import UPSTREAM_TABLES, ensure_reportgen_tables
from support.fixture_files import GOLDEN

NEW_ID_PREFIX = "00000000-0000-4000-8000-"


def load(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The dry-run JSON and the tick JSON of a scenario."""
    dry = json.loads((GOLDEN / f"{name}.json").read_text())
    tick = json.loads((GOLDEN / f"{name}.tick.json").read_text())
    return dry, tick


def context(name: str) -> TownCtx:
    """A context on an in-memory copy of the scenario's database, set up as upstream ran it."""
    dry, tick = load(name)
    conn = load_copy(GOLDEN / f"{name}.sqlite")
    ensure_reportgen_tables(conn)
    return TownCtx(
        conn=conn,
        now=dry["now"],
        town_id=tick["town_id"],
        config=TownConfig.parse(dry["town_config"]),
        ids=CounterIds(1),
        draining=dry["draining"],
    )


def dump_state(conn: sqlite3.Connection) -> dict[str, list[dict[str, Any]]]:
    """Every row of every upstream table, in a canonical order (sorted by all columns)."""
    state: dict[str, list[dict[str, Any]]] = {}
    for table in UPSTREAM_TABLES:
        cur = conn.execute(f"SELECT * FROM {table}")
        cols = [d[0] for d in cur.description]
        rows = [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        state[table] = sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))
    return state


def canonical_state(state: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Rows as sorted JSON strings per table, for exact multiset comparison."""
    return {
        table: sorted(json.dumps(r, sort_keys=True) for r in rows) for table, rows in state.items()
    }


def action_multiset(actions: list[dict[str, Any]]) -> Counter[str]:
    return Counter(json.dumps(a, sort_keys=True) for a in actions)


def known_ids(name: str) -> set[str]:
    """Every bead id (agents are beads) in the scenario's database before the tick."""
    conn = load_copy(GOLDEN / f"{name}.sqlite")
    return {r[0] for r in conn.execute("SELECT bead_id FROM beads")}


def mask_new_ids(value: Any, known: set[str]) -> Any:
    """Replace ids minted during the run (anything id-shaped not in ``known``) by ``<new>``.

    Upstream's golden runs minted ``00000000-0000-4000-8000-…`` ids; other
    id sources mint others. The README says to compare them as "a new id".
    """
    if isinstance(value, dict):
        return {k: mask_new_ids(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [mask_new_ids(v, known) for v in value]
    if isinstance(value, str) and len(value) == 36 and value.count("-") == 4:
        return value if value in known else "<new>"
    return value
