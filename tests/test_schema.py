"""The catalogue helpers every "is this table there" question goes through."""

from __future__ import annotations

import sqlite3

from reportgen.town.schema import missing_tables, table_exists, table_names


def _db() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.executescript(
        """
        CREATE TABLE zeta (a);
        CREATE TABLE alpha (b integer primary key autoincrement);
        CREATE VIEW beta AS SELECT 1;
        CREATE INDEX idx_zeta ON zeta(a);
        """
    )
    return conn


def test_table_names_in_creation_order_tables_only() -> None:
    """Views and indexes are not tables; SQLite's own tables (``sqlite_sequence``) are."""
    assert table_names(_db()) == ["zeta", "alpha", "sqlite_sequence"]
    assert table_names(sqlite3.connect(":memory:")) == []


def test_table_exists() -> None:
    conn = _db()
    assert table_exists(conn, "zeta")
    assert not table_exists(conn, "beta")  # a view
    assert not table_exists(conn, "idx_zeta")  # an index
    assert not table_exists(conn, "missing")
    assert not table_exists(conn, "zeta' OR '1'='1")  # a name, never SQL


def test_missing_tables_keeps_the_wanted_order() -> None:
    assert missing_tables(_db(), ("omega", "alpha", "beta", "zeta")) == ["omega", "beta"]
