"""Opening input databases: read-only, and nothing created or changed beside them.

Every town database or bundle reportgen reads is opened by :func:`open_input`
(dry-run, replay and export through :func:`load_copy`, the server and the
build through :func:`open_town`). Two cases, chosen by the file's header:

* **Rollback journal** (what ``reportgen simulate`` and upstream dumps use):
  the file itself, opened with a ``mode=ro`` URI. Reading takes shared locks
  on the file and creates nothing beside it; a writer's open transaction is
  invisible, and a file another process holds locked is waited for
  (:data:`BUSY_TIMEOUT_S`) and then reported as locked. A *hot journal*
  (``-journal`` left by an interrupted write) would have to be rolled back,
  which is a write: it is reported, never done.
* **WAL**: any connection to the file itself, even ``mode=ro``, creates or
  rewrites the ``-shm`` index (and creates ``-wal``) beside it, and cannot
  open at all in a read-only directory when they are missing.
  ``immutable=1`` avoids that but ignores the ``-wal`` file (losing the
  transactions not yet checkpointed) and gives no protection against a live
  writer checkpointing while we read. So the main file and its ``-wal`` are
  copied byte for byte into a private temporary directory (again if their
  size or mtime changed during the copy: a live town wrote meanwhile),
  opened there (SQLite recovers the committed transactions from the copied
  WAL as after a crash, ignoring a half-written tail) and read into memory.

Either way the file is checked (``PRAGMA quick_check``) so that damage is one
named error at the start rather than a failure halfway through a replay, and
every SQLite error becomes a :class:`~reportgen.errors.BadInputError` that
says what is wrong with which file. Connections carry the file's name
(:class:`InputConnection`) so that a value that cannot be decoded later is
reported with its file, table, row and field (:func:`bad_value`,
:func:`stored_json`).
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from reportgen import jsonio
from reportgen.errors import (
    BadInputError,
    BadRowError,
    NotATownDatabaseError,
    UnreadableDatabaseError,
)
from reportgen.town.schema import (
    CHECKPOINTS_DDL,
    END_STATE_DDL,
    JOURNAL_DDL,
    REPORTGEN_DDL,
    TICKS_DDL,
    UPSTREAM_DDL,
    WORLD_LOG_DDL,
    missing_columns,
    missing_tables,
)

#: How long a read waits for another process's lock before reporting the file as locked.
BUSY_TIMEOUT_S = 2.0
#: How many times a WAL database is copied again when a writer changed it during the copy.
SNAPSHOT_ATTEMPTS = 5
_SQLITE_MAGIC = b"SQLite format 3\x00"
_WAL_VERSION = 2


class InputConnection(sqlite3.Connection):
    """A connection that knows which input file it reads (for error messages)."""

    input_name: str = ""


def input_name(conn: sqlite3.Connection) -> str:
    """The file a connection reads, as the user named it (``database`` when unknown)."""
    return getattr(conn, "input_name", "") or "database"


def configure(conn: sqlite3.Connection) -> sqlite3.Connection:
    """Row access by name and enforced foreign keys, as upstream's tables declare them."""
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _named(conn: sqlite3.Connection, name: str) -> sqlite3.Connection:
    if isinstance(conn, InputConnection):
        conn.input_name = name
    return configure(conn)


def memory_db(name: str) -> sqlite3.Connection:
    """An empty in-memory database whose values come from input ``name`` (a working copy)."""
    return _named(sqlite3.connect(":memory:", factory=InputConnection), name)


def memory_copy(src: sqlite3.Connection, name: str) -> sqlite3.Connection:
    """An in-memory copy of ``src`` (SQLite's backup API: one consistent read)."""
    mem = memory_db(name)
    try:
        src.backup(mem)
    except sqlite3.DatabaseError as exc:
        mem.close()
        raise unreadable(name, exc) from exc
    return mem


def unreadable(name: str | Path, exc: sqlite3.Error) -> BadInputError:
    """What a SQLite error opening or reading ``name`` means, in words the user can act on."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code == sqlite3.SQLITE_NOTADB:
        return NotATownDatabaseError(f"{name}: not a SQLite database ({exc})")
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        why = f"locked by another process ({exc}); try again when it has finished writing"
    elif code == sqlite3.SQLITE_READONLY_ROLLBACK:
        why = (
            f"has a hot journal (an interrupted write): {name}-journal must be rolled back "
            "first, which reportgen never does to an input (open the file once with sqlite3 "
            "where it may be written, or copy it without the journal)"
        )
    elif code is not None and code & 0xFF == sqlite3.SQLITE_CORRUPT:
        why = f"damaged SQLite database ({exc})"
    else:
        why = f"cannot be read ({exc})"
    return UnreadableDatabaseError(f"{name}: {why}")


def _header(p: Path) -> bytes:
    try:
        with p.open("rb") as fh:
            return fh.read(100)
    except OSError as exc:
        raise NotATownDatabaseError(f"{p}: cannot be read ({exc.strerror})") from exc


def _is_wal(header: bytes) -> bool:
    return header.startswith(_SQLITE_MAGIC) and _WAL_VERSION in (header[18], header[19])


def _stamp(paths: list[Path]) -> list[tuple[int, int] | None]:
    """Size and mtime of each file (``None`` when absent): how a writer's activity shows."""
    stamps: list[tuple[int, int] | None] = []
    for p in paths:
        try:
            st = p.stat()
        except FileNotFoundError:
            stamps.append(None)
            continue
        stamps.append((st.st_size, st.st_mtime_ns))
    return stamps


def _copy_files(paths: list[Path], folder: Path) -> None:
    for p in paths:
        target = folder / p.name
        if p.exists():
            shutil.copyfile(p, target)
        elif target.exists():
            target.unlink()


def _wal_snapshot(p: Path) -> sqlite3.Connection:
    """A WAL database read through a private copy of its files (see the module docstring)."""
    files = [p, p.with_name(p.name + "-wal")]
    with tempfile.TemporaryDirectory(prefix="reportgen-input-") as tmp:
        folder = Path(tmp)
        for _ in range(SNAPSHOT_ATTEMPTS):
            before = _stamp(files)
            _copy_files(files, folder)
            if _stamp(files) == before:
                break
        else:
            raise UnreadableDatabaseError(
                f"{p}: kept changing while it was read (a live writer); try again"
            )
        try:
            conn = sqlite3.connect(folder / p.name, timeout=BUSY_TIMEOUT_S)
            try:
                return memory_copy(conn, str(p))
            finally:
                conn.close()
        except sqlite3.DatabaseError as exc:
            raise unreadable(p, exc) from exc


def _open_ro(p: Path) -> sqlite3.Connection:
    """The file itself, read-only (a rollback-journal database)."""
    uri = f"{p.resolve().as_uri()}?mode=ro"
    try:
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_S, factory=InputConnection)
    except sqlite3.DatabaseError as exc:
        raise unreadable(p, exc) from exc
    return _named(conn, str(p))


def open_input(path: str | Path) -> sqlite3.Connection:
    """Open the database at ``path`` for reading, changing nothing on disk (see above).

    Fails with a :class:`~reportgen.errors.BadInputError` naming the file and
    the problem: missing, not SQLite, damaged, locked, or with a hot journal.
    """
    p = Path(path)
    if not p.exists():
        raise NotATownDatabaseError(f"{p}: no such file")
    if not p.is_file():
        raise NotATownDatabaseError(f"{p}: not a file")
    conn = _wal_snapshot(p) if _is_wal(_header(p)) else _open_ro(p)
    try:
        problem = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise unreadable(p, exc) from exc
    if problem != "ok":
        conn.close()
        lines = [line for line in str(problem).splitlines() if not line.startswith("***")]
        raise UnreadableDatabaseError(f"{p}: damaged SQLite database ({'; '.join(lines)})")
    return conn


#: Kept for callers that open a file without the town checks (the server's file listing).
open_readonly = open_input


@cache
def town_ddl() -> str:
    """Every table a town database or bundle may hold that reportgen reads from it."""
    ddl = (UPSTREAM_DDL, REPORTGEN_DDL, JOURNAL_DDL, TICKS_DDL, WORLD_LOG_DDL)
    return ";\n".join((*ddl, CHECKPOINTS_DDL, END_STATE_DDL))


def check_town(conn: sqlite3.Connection, name: str | Path) -> None:
    """Fail unless ``conn`` holds a town: the tables and the columns reportgen reads."""
    missing = missing_tables(conn)
    if missing:
        raise NotATownDatabaseError(
            f"{name}: not a town database (missing table(s): {', '.join(missing)})"
        )
    columns = missing_columns(conn, town_ddl())
    if columns:
        plural = "s" if len(columns) > 1 else ""
        raise NotATownDatabaseError(
            f"{name}: not a town database (missing column{plural} {', '.join(columns)})"
        )


def open_town(path: str | Path) -> sqlite3.Connection:
    """A town database or bundle opened for reading in place (no copy unless it is WAL)."""
    conn = open_input(path)
    try:
        check_town(conn, path)
    except NotATownDatabaseError:
        conn.close()
        raise
    return conn


def load_copy(path: str | Path, *, require_town: bool = True) -> sqlite3.Connection:
    """An in-memory copy of the database at ``path`` (which may be changed freely)."""
    src = open_input(path)
    try:
        if require_town:
            check_town(src, path)
        if isinstance(src, InputConnection) and _is_memory(src):
            return src
        mem = memory_copy(src, str(path))
    except BaseException:
        src.close()
        raise
    src.close()
    return mem


def _is_memory(conn: sqlite3.Connection) -> bool:
    return not conn.execute("PRAGMA database_list").fetchone()[2]


def is_input_error(exc: BaseException) -> bool:
    """Whether a SQLite error no code named is taken as bad input rather than a bug.

    Reading an input can fail anywhere (text that is not UTF-8, damage
    ``quick_check`` does not see); misuse of the API (``ProgrammingError``) is a bug.
    """
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.ProgrammingError)


def stray_message(name: str, exc: BaseException) -> str:
    """One printable line for such an error: ``town.sqlite: cannot be read (…)``."""
    text = " ".join(str(exc).split()).encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > 200:
        text = text[:200] + "…"
    return f"{name}: cannot be read ({text})"


# --------------------------------------------------------------------------- stored values


def bad_value(
    conn: sqlite3.Connection, table: str, row: str, field: str, problem: str
) -> Exception:
    """``town.sqlite: rg_ticks seq 42: record is not valid JSON (…)``: a value that cannot be read."""
    return BadRowError(f"{input_name(conn)}: {table} {row}: {field} {problem}")


def stored_json(
    conn: sqlite3.Connection,
    value: Any,
    table: str,
    row: str,
    field: str,
    kind: type | None = None,
) -> Any:
    """Decode a JSON value stored in ``table`` (read from ``conn``), of type ``kind`` if given.

    The one place stored JSON is decoded on input paths, so that NULL, bytes
    that are not UTF-8, invalid JSON or the wrong kind of value is a
    :class:`~reportgen.errors.BadRowError` naming the file, table, row and field.
    """
    if value is None:
        raise bad_value(conn, table, row, field, "is NULL")
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise bad_value(conn, table, row, field, f"is not UTF-8 text ({exc})") from exc
    if not isinstance(value, str):
        raise bad_value(conn, table, row, field, f"is not JSON text (got {type(value).__name__})")
    try:
        decoded = jsonio.loads(value)
    except ValueError as exc:
        raise bad_value(conn, table, row, field, f"is not valid JSON ({exc})") from exc
    if kind is not None and not isinstance(decoded, kind):
        wanted = "a JSON object" if kind is dict else f"a JSON {kind.__name__}"
        raise bad_value(conn, table, row, field, f"is not {wanted} (got {_kind(decoded)})")
    return decoded


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def check_json_rows(
    conn: sqlite3.Connection,
    table: str,
    keys: tuple[str, ...],
    field: str,
    where: str,
    params: tuple[Any, ...],
) -> None:
    """Fail on the first row (``where``) whose ``field`` is NULL or not valid JSON.

    For rows that are copied rather than decoded (``reportgen export``): SQLite's
    ``json_valid`` checks them without building Python objects.
    """
    order = ", ".join(keys)
    row = conn.execute(
        f"SELECT {order}, {field} FROM {table} WHERE ({where}) "
        f"AND ({field} IS NULL OR NOT json_valid({field})) ORDER BY {order} LIMIT 1",
        params,
    ).fetchone()
    if row is None:
        return
    label = " ".join(f"{k} {v}" for k, v in zip(keys, row, strict=False))
    stored_json(conn, row[-1], table, label, field)
    raise bad_value(conn, table, label, field, "is not valid JSON")
