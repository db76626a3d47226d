"""Town-level values upstream keeps outside SQLite, kept in ``rg_town_state`` here.

Upstream stores the town config, the town id and the draining flag in Durable
Object KV (spec §2.11, §4.1, §16). A town database is the whole record for
reportgen, so they live in one key/value table next to upstream's tables.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from reportgen import jsonio
from reportgen.errors import BadInputError
from reportgen.town.config import TownConfig
from reportgen.town.db import stored_json
from reportgen.town.schema import ensure_reportgen_tables, table_exists

TOWN_ID = "town_id"
TOWN_CONFIG = "town_config"
DRAINING = "draining"
DRAIN_STARTED_AT = "drain_started_at"
DRAIN_NONCE = "drain_nonce"


def get(conn: sqlite3.Connection, key: str) -> Any:
    """A stored value (decoded JSON), or ``None`` when absent or the table does not exist."""
    if not table_exists(conn, "rg_town_state"):
        return None
    row = conn.execute("SELECT value FROM rg_town_state WHERE key = ?", (key,)).fetchone()
    return (
        None if row is None else stored_json(conn, row[0], "rg_town_state", f"key {key}", "value")
    )


def put(conn: sqlite3.Connection, key: str, value: Any) -> None:
    ensure_reportgen_tables(conn)
    conn.execute(
        "INSERT INTO rg_town_state (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (key, jsonio.canonical(value)),
    )


def delete(conn: sqlite3.Connection, key: str) -> None:
    if table_exists(conn, "rg_town_state"):
        conn.execute("DELETE FROM rg_town_state WHERE key = ?", (key,))


def town_config(conn: sqlite3.Connection) -> TownConfig:
    """The stored raw config parsed with upstream's defaults; ``{}`` (legacy) when none."""
    raw = get(conn, TOWN_CONFIG)
    try:
        return TownConfig.parse({} if raw is None else raw)
    except BadInputError as exc:
        raise BadInputError(f"rg_town_state.town_config: {exc}") from exc


def town_id(conn: sqlite3.Connection, default: str = "") -> str:
    value = get(conn, TOWN_ID)
    return str(value) if value is not None else default


def draining(conn: sqlite3.Connection) -> bool:
    return bool(get(conn, DRAINING))


#: The ``rg_meta`` key of the name a person knows the town by (the simulator's scenario name).
TOWN_NAME = "town_name"


def town_name(conn: sqlite3.Connection) -> str:
    """The town's stored name, or ``""`` when it has none (every upstream dump)."""
    if not table_exists(conn, "rg_meta"):
        return ""
    row = conn.execute("SELECT value FROM rg_meta WHERE key = ?", (TOWN_NAME,)).fetchone()
    return "" if row is None or row[0] is None else str(row[0])


def put_town_name(conn: sqlite3.Connection, name: str) -> None:
    """Store the town's name in ``rg_meta`` (a fact about the file, not upstream state)."""
    ensure_reportgen_tables(conn)
    conn.execute(
        "INSERT INTO rg_meta (key, value) VALUES (?, ?) "
        "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        (TOWN_NAME, name),
    )
