"""Opening town databases without ever modifying the file.

Dry-run, replay and export work on an in-memory copy made with SQLite's
backup API: the source is opened read-only (``mode=ro`` URI) and never
written, whatever the engine does to the copy.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from reportgen.errors import NotATownDatabaseError
from reportgen.town.schema import missing_tables


def configure(conn: sqlite3.Connection) -> sqlite3.Connection:
    """Row access by name and enforced foreign keys, as upstream's tables declare them."""
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def open_readonly(path: str | Path) -> sqlite3.Connection:
    """Open ``path`` read-only, failing with a message that names the file and the problem."""
    p = Path(path)
    if not p.exists():
        raise NotATownDatabaseError(f"{p}: no such file")
    if not p.is_file():
        raise NotATownDatabaseError(f"{p}: not a file")
    try:
        conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True)
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.DatabaseError as exc:
        raise NotATownDatabaseError(f"{p}: not a SQLite database ({exc})") from exc
    return configure(conn)


def load_copy(path: str | Path, *, require_town: bool = True) -> sqlite3.Connection:
    """An in-memory copy of the database at ``path``; the file is only read."""
    src = open_readonly(path)
    try:
        if require_town:
            missing = missing_tables(src)
            if missing:
                raise NotATownDatabaseError(
                    f"{path}: not a town database (missing table(s): {', '.join(missing)})"
                )
        mem = sqlite3.connect(":memory:")
        src.backup(mem)
    finally:
        src.close()
    return configure(mem)
