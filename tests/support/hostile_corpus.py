"""A corpus of broken town databases, built from one small simulated town.

Each case is a file (and sometimes files beside it) that a user could hand to
reportgen: a truncated copy, corrupt pages, missing tables or columns, bad
rows in reportgen's own tables, NULLs upstream's schema forbids, and a
database another process has locked. :func:`build_corpus` makes them all in
a folder; the CLI tests (``test_hostile_inputs.py``) and the API tests run
every command over them.
"""

from __future__ import annotations

import shutil
import sqlite3
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from reportgen.sim import simulate_town
from reportgen.town.schema import table_names

SCENARIO = "double-hook"
#: A quarter of an hour of a simulated town: every table has rows, the file is small.
HOURS = 0.25
#: The window every command is run on (inside the town's data).
WINDOW = ("2026-03-16T08:02:00.000Z", "2026-03-16T08:10:00.000Z")


#: Every command the corpus is run through (see ``test_hostile_inputs.py``).
COMMANDS = ("dry-run", "replay", "replay-ticks", "export", "build", "build-single-file")


@dataclass(frozen=True)
class Case:
    """A broken input: ``path``, words its one-line error must contain, and the
    commands that never read the broken part (they may succeed)."""

    name: str
    path: Path
    expect: tuple[str, ...]
    spared: frozenset[str] = frozenset()


def simulated_town(folder: Path) -> Path:
    """The healthy town the corpus is made from (rollback journal, as simulate writes it)."""
    folder.mkdir(parents=True, exist_ok=True)
    result = simulate_town(SCENARIO, hours=HOURS, out_dir=folder)
    assert result.path is not None
    return result.path


def _edit(path: Path, *sql: str, params: tuple[object, ...] = ()) -> None:
    """Run statements on a corpus file (foreign keys off: the point is to break things)."""
    conn = sqlite3.connect(path)
    for statement in sql:
        conn.execute(statement, params if "?" in statement else ())
    conn.commit()
    conn.close()


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _corrupt_pages(path: Path) -> None:
    """Overwrite the middle pages with garbage (the header and first pages stay intact)."""
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    pages = len(data) // page
    for n in range(pages // 4, 3 * pages // 4):
        start = n * page
        data[start : start + page] = bytes((n * 7 + i) % 251 for i in range(page))
    path.write_bytes(bytes(data))


def _loosen(path: Path, table: str) -> None:
    """Drop the NOT NULL constraints of ``table`` (as a loose dump's schema might lack them)."""
    _edit(
        path,
        "PRAGMA writable_schema = ON",
        f"UPDATE sqlite_master SET sql = replace(sql, 'not null', '') WHERE name = '{table}'",
    )


def _as_dump(path: Path) -> None:
    """Drop reportgen's tables: what a dump of upstream's database holds."""
    conn = sqlite3.connect(path)
    names = table_names(conn)
    conn.close()
    _edit(path, *(f"DROP TABLE {n}" for n in names if n.startswith("rg_")))


def _dump_with_null(column: str) -> Callable[[Path], None]:
    """An upstream dump whose ``town_events`` rows have a NULL ``column``."""

    def apply(path: Path) -> None:
        _as_dump(path)
        _bad_row("town_events", column, None, "1")(path)

    return apply


def _bad_row(table: str, column: str, value: object, where: str) -> Callable[[Path], None]:
    """Set ``column`` of the rows ``where`` selects to ``value`` (``None``: loosen first)."""

    def apply(path: Path) -> None:
        if value is None:
            _loosen(path, table)
        _edit(path, f"UPDATE {table} SET {column} = ? WHERE {where}", params=(value,))

    return apply


#: In the window: every command that reads the table meets the row.
_TICK_ROW = "seq IN (SELECT seq FROM rg_ticks WHERE at >= '2026-03-16T08:03:00' LIMIT 1)"
_JOURNAL_ROW = (
    "seq IN (SELECT seq FROM rg_journal WHERE call = 'tick' AND at > '2026-03-16T08:01' LIMIT 1)"
)
_WORLD_ROW = (
    "rowid IN (SELECT rowid FROM rg_world_log WHERE tick_seq IN "
    "(SELECT seq FROM rg_journal WHERE at > '2026-03-16T08:01') LIMIT 1)"
)
#: Commands that read no tick records (``rg_ticks``), and those that only copy a dump.
_NO_TICKS = frozenset({"dry-run", "replay"})
_NOT_EXPORT = frozenset(COMMANDS) - {"export"}
_BAD_B64_STATE = b'{"beads":{"columns":["bead_id"],"rows":[[1,{"$b64":"@@@"}]]}}'


def _not_utf8(table: str, column: str, where: str) -> Callable[[Path], None]:
    def apply(path: Path) -> None:
        _edit(path, f"UPDATE {table} SET {column} = CAST(x'7b22ff22' AS TEXT) WHERE {where}")

    return apply


#: name → (how to break the file, words its error must contain, commands spared).
BREAKERS: dict[str, tuple[Callable[[Path], None], tuple[str, ...], frozenset[str]]] = {
    "not-sqlite": (
        lambda p: p.write_bytes(b"just text\n" * 500),
        ("not a SQLite database",),
        frozenset(),
    ),
    "truncated": (_truncate, ("damaged", "malformed"), frozenset()),
    "corrupt-pages": (_corrupt_pages, ("damaged",), frozenset()),
    "missing-table": (
        lambda p: _edit(p, "DROP TABLE town_events"),
        ("not a town database", "town_events"),
        frozenset(),
    ),
    "missing-column-title": (
        lambda p: _edit(p, "ALTER TABLE beads DROP COLUMN title"),
        ("not a town database (missing column beads.title)",),
        frozenset(),
    ),
    "missing-column-payload": (
        lambda p: _edit(p, "ALTER TABLE town_events DROP COLUMN payload"),
        ("not a town database (missing column town_events.payload)",),
        frozenset(),
    ),
    "ticks-bad-json": (
        _bad_row("rg_ticks", "record", "{not json", _TICK_ROW),
        ("rg_ticks seq", "record is not valid JSON"),
        _NO_TICKS,
    ),
    "ticks-not-object": (
        _bad_row("rg_ticks", "record", "[1, 2]", _TICK_ROW),
        ("rg_ticks seq", "record is not a JSON object"),
        _NO_TICKS | {"export"},  # valid JSON: copied as it is
    ),
    "ticks-null": (
        _bad_row("rg_ticks", "record", None, _TICK_ROW),
        ("rg_ticks seq", "record is NULL"),
        _NO_TICKS,
    ),
    "ticks-not-utf8": (_not_utf8("rg_ticks", "record", _TICK_ROW), ("UTF-8",), _NO_TICKS),
    "journal-bad-json": (
        _bad_row("rg_journal", "args", "{not json", _JOURNAL_ROW),
        ("rg_journal seq", "args is not valid JSON"),
        frozenset(),
    ),
    "journal-null": (
        _bad_row("rg_journal", "args", None, _JOURNAL_ROW),
        ("rg_journal seq", "args is NULL"),
        frozenset(),
    ),
    "worldlog-bad-json": (
        _bad_row("rg_world_log", "answer", "[1,", _WORLD_ROW),
        ("rg_world_log tick_seq", "answer is not valid JSON"),
        frozenset(),
    ),
    "worldlog-null": (
        _bad_row("rg_world_log", "answer", None, _WORLD_ROW),
        ("rg_world_log tick_seq", "answer is NULL"),
        frozenset(),
    ),
    "checkpoint-bad-zlib": (
        _bad_row("rg_checkpoints", "state", b"not zlib at all", "1"),
        ("rg_checkpoints seq 0", "state is not zlib-compressed"),
        frozenset(),
    ),
    "checkpoint-bad-json": (
        _bad_row("rg_checkpoints", "state", zlib.compress(b"{oops"), "1"),
        ("rg_checkpoints seq 0", "state is not valid JSON"),
        frozenset(),
    ),
    "checkpoint-bad-base64": (
        _bad_row("rg_checkpoints", "state", zlib.compress(_BAD_B64_STATE), "1"),
        ("rg_checkpoints seq 0", "state is not a valid state"),
        frozenset(),
    ),
    "checkpoint-null": (
        _bad_row("rg_checkpoints", "state", None, "1"),
        ("rg_checkpoints seq 0", "NULL"),
        frozenset(),
    ),
    "dump-null-payload": (
        _dump_with_null("payload"),
        ("town_events rowid", "payload is NULL"),
        _NOT_EXPORT,  # the drain quarantines the row; a bundle's schema cannot hold it
    ),
    "dump-null-type": (
        _dump_with_null("event_type"),
        ("town_events rowid", "event_type is NULL"),
        _NOT_EXPORT,
    ),
    "dump-null-created": (
        _dump_with_null("created_at"),
        ("town_events rowid", "created_at is NULL"),
        _NOT_EXPORT,
    ),
}


def build_corpus(folder: Path, town: Path | None = None) -> list[Case]:
    """Every broken database of :data:`BREAKERS`, each in its own file under ``folder``.

    ``town`` is the healthy town to break (simulated into ``folder`` when not given).
    """
    town = town or simulated_town(folder / "healthy")
    cases = []
    for name, (breaker, expect, spared) in BREAKERS.items():
        path = folder / f"{name}.sqlite"
        shutil.copyfile(town, path)
        breaker(path)
        cases.append(Case(name, path, expect, spared))
    return cases
