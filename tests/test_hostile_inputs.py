"""Hostile databases: every command gives one line naming the file and the problem, exit 2.

The corpus (:mod:`hostile_corpus`) breaks a small simulated town in every
way a real file can be broken; each command runs on each file through the
real CLI. Then the cases that are not a file's content: a WAL database
(read without creating or changing anything beside it, in a read-only
directory too, while a live writer holds it open), a database another
process has locked, a hot journal, a malformed ``SENTRY_DSN`` and a
``--history`` that is not a history file.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from support.hostile_corpus import COMMANDS, WINDOW, Case, build_corpus, simulated_town

from reportgen.cli import main
from reportgen.town import db, schema


def command_args(command: str, path: Path, out: Path) -> list[str]:
    """The CLI arguments of ``command`` on input ``path``, writing under ``out``."""
    start, end = WINDOW
    window = ["--from", start, "--to", end]
    return {
        "dry-run": ["dry-run", "--db", str(path)],
        "replay": ["replay", "--db", str(path), *window],
        "replay-ticks": ["replay", "--db", str(path), *window, "--ticks"],
        "export": ["export", "--db", str(path), *window, "--out", str(out / "bundle.sqlite")],
        "build": ["build", str(path), *window, "--out", str(out / "site"), "--jobs", "1"],
        "build-single-file": ["build", str(path), *window, "--single-file", str(out / "t.html")],
    }[command]


def run(command: str, path: Path, out: Path) -> Result:
    """Run one command through the real CLI; an exception escaping it fails the test."""
    return CliRunner().invoke(main, command_args(command, path, out), catch_exceptions=False)


def assert_one_line_error(result: Result, *words: str) -> None:
    """Exit 2, no traceback, and exactly one ``error:`` line on stderr containing ``words``."""
    assert "Traceback" not in result.output + result.stderr
    assert result.exit_code == 2, (result.exit_code, result.output, result.stderr)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


@pytest.fixture(scope="module")
def healthy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return simulated_town(tmp_path_factory.mktemp("healthy"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, healthy: Path) -> dict[str, Case]:
    return {c.name: c for c in build_corpus(tmp_path_factory.mktemp("corpus"), healthy)}


CASE_NAMES = [
    "not-sqlite",
    "truncated",
    "corrupt-pages",
    "missing-table",
    "missing-column-title",
    "missing-column-payload",
    "ticks-bad-json",
    "ticks-not-object",
    "ticks-null",
    "ticks-not-utf8",
    "journal-bad-json",
    "journal-null",
    "worldlog-bad-json",
    "worldlog-null",
    "checkpoint-bad-zlib",
    "checkpoint-bad-json",
    "checkpoint-bad-base64",
    "checkpoint-null",
    "dump-null-payload",
    "dump-null-type",
    "dump-null-created",
]


def test_the_corpus_covers_every_breaker(corpus: dict[str, Case]) -> None:
    assert sorted(corpus) == sorted(CASE_NAMES)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("name", CASE_NAMES)
def test_every_command_names_the_problem_in_one_line(
    corpus: dict[str, Case], name: str, command: str, tmp_path: Path
) -> None:
    case = corpus[name]
    before = hashlib.sha256(case.path.read_bytes()).hexdigest()
    result = run(command, case.path, tmp_path)
    if command in case.spared:  # the command never reads the broken part
        assert "Traceback" not in result.output + result.stderr
        assert result.exit_code == 0, (result.exit_code, result.stderr)
    else:
        assert_one_line_error(result, case.path.name, *case.expect)
        assert not (tmp_path / "site").exists() and not (tmp_path / "bundle.sqlite").exists()
    assert hashlib.sha256(case.path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in case.path.parent.iterdir() if p.name.startswith(name)) == [
        case.path.name
    ]


# --------------------------------------------------------------------------- WAL databases


def _to_wal(source: Path, target: Path) -> Path:
    """A copy of ``source`` in WAL mode, closed cleanly (no ``-wal``/``-shm`` left)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    conn = sqlite3.connect(target)
    assert conn.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    conn.close()
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]
    return target


def _listing(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file in ``folder``: size, mtime and content hash (what "unchanged" means)."""
    return {
        p.name: (p.stat().st_size, p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(folder.iterdir())
    }


@contextmanager
def read_only_directory(folder: Path) -> Iterator[None]:
    """``folder`` made read-only: mode 555, and immutable when running as root (root
    ignores the mode; ``chattr +i`` stops even root from creating files there)."""
    mode = folder.stat().st_mode
    os.chmod(folder, 0o555)
    immutable = os.geteuid() == 0 and shutil.which("chattr") is not None
    if immutable:
        immutable = subprocess.run(["chattr", "+i", str(folder)], check=False).returncode == 0
    try:
        if immutable:
            with pytest.raises(OSError):
                (folder / "probe").touch()
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        os.chmod(folder, mode)


@pytest.mark.parametrize("command", COMMANDS)
def test_a_wal_database_is_read_without_creating_anything_beside_it(
    healthy: Path, command: str, tmp_path: Path
) -> None:
    town = _to_wal(healthy, tmp_path / "in" / "town.sqlite")
    before = _listing(town.parent)
    result = run(command, town, tmp_path / "out")
    assert result.exit_code == 0, (result.exit_code, result.stderr)
    assert _listing(town.parent) == before


@pytest.mark.parametrize("command", COMMANDS)
def test_a_wal_database_in_a_read_only_directory_can_be_read(
    healthy: Path, command: str, tmp_path: Path
) -> None:
    town = _to_wal(healthy, tmp_path / "in" / "town.sqlite")
    before = _listing(town.parent)
    with read_only_directory(town.parent):
        result = run(command, town, tmp_path / "out")
    assert result.exit_code == 0, (result.exit_code, result.stderr)
    assert _listing(town.parent) == before


def test_a_live_wal_writer_is_seen_and_its_files_left_alone(healthy: Path, tmp_path: Path) -> None:
    """A town being written: its committed (not yet checkpointed) rows are read, and
    neither ``-wal`` nor ``-shm`` is touched (``serve`` used to rewrite ``-shm`` per request)."""
    town = _to_wal(healthy, tmp_path / "in" / "town.sqlite")
    writer = sqlite3.connect(town)
    try:
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute("UPDATE beads SET title = 'written by a live town'")
        writer.commit()
        assert {p.name for p in town.parent.iterdir()} == {
            "town.sqlite",
            "town.sqlite-wal",
            "town.sqlite-shm",
        }
        before = _listing(town.parent)
        copy = db.load_copy(town)
        titles = {r[0] for r in copy.execute("SELECT title FROM beads")}
        copy.close()
        result = run("dry-run", town, tmp_path / "out")
        assert result.exit_code == 0, result.stderr
        assert _listing(town.parent) == before
    finally:
        writer.close()
    assert titles == {"written by a live town"}


# --------------------------------------------------------------------------- locks and journals


@pytest.mark.parametrize("command", COMMANDS)
def test_a_locked_database_says_it_is_locked(
    healthy: Path, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "BUSY_TIMEOUT_S", 0.05)
    town = tmp_path / "in" / "town.sqlite"
    town.parent.mkdir()
    shutil.copyfile(healthy, town)
    holder = sqlite3.connect(town)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        result = run(command, town, tmp_path / "out")
    finally:
        holder.rollback()
        holder.close()
    assert_one_line_error(result, "town.sqlite", "locked by another process")


def _with_hot_journal(source: Path, target: Path) -> Path:
    """A copy of ``source`` caught mid-write: its pages changed and the ``-journal`` to undo it.

    A writer with a tiny page cache spills changed pages into the file before
    committing; copying the file and its journal then is what a crash leaves.
    """
    work = target.parent / "work.sqlite"
    shutil.copyfile(source, work)
    writer = sqlite3.connect(work)
    writer.execute("PRAGMA cache_size = 2")
    writer.execute("BEGIN")
    writer.execute("UPDATE rg_ticks SET record = record || ' '")
    shutil.copyfile(work, target)
    shutil.copyfile(
        work.with_name("work.sqlite-journal"), target.with_name(target.name + "-journal")
    )
    writer.rollback()
    writer.close()
    work.unlink()
    return target


@pytest.mark.parametrize("command", COMMANDS)
def test_a_hot_journal_is_reported_and_left_alone(
    healthy: Path, command: str, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    town = _with_hot_journal(healthy, folder / "town.sqlite")
    before = _listing(folder)
    result = run(command, town, tmp_path / "out")
    assert_one_line_error(result, "town.sqlite", "has a hot journal (an interrupted write)")
    assert _listing(folder) == before


# --------------------------------------------------------------------------- other inputs


@pytest.mark.parametrize("command", ["replay-ticks", "build"])
def test_a_malformed_sentry_dsn_is_one_line_and_never_printed(
    healthy: Path, command: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SENTRY_DSN", "not-a-dsn-secret")
    result = run(command, healthy, tmp_path)
    assert_one_line_error(result, "SENTRY_DSN is not a valid Sentry DSN")
    assert "not-a-dsn-secret" not in result.output + result.stderr


@pytest.mark.parametrize("kind", ["sqlite", "binary"])
def test_history_that_is_not_a_history_file(healthy: Path, kind: str, tmp_path: Path) -> None:
    history = tmp_path / f"history.{kind}"
    if kind == "sqlite":
        shutil.copyfile(healthy, history)
    else:
        history.write_bytes(bytes(range(256)) * 4)
    args = [*command_args("build", healthy, tmp_path), "--history", str(history)]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    words = "a SQLite database" if kind == "sqlite" else "not UTF-8 text"
    assert_one_line_error(result, history.name, words, "not a history file")


def test_a_stray_sqlite_error_is_still_one_line_naming_the_input(
    corpus: dict[str, Case], tmp_path: Path
) -> None:
    """The CLI's last line of defence: text SQLite cannot hand over as UTF-8."""
    case = corpus["ticks-not-utf8"]
    result = run("replay-ticks", case.path, tmp_path)
    assert_one_line_error(result, str(case.path), "cannot be read", "UTF-8")


def test_a_build_of_only_bad_sources_keeps_the_previous_site(
    healthy: Path, corpus: dict[str, Case], tmp_path: Path
) -> None:
    site = tmp_path / "site"
    first = CliRunner().invoke(
        main, command_args("build", healthy, tmp_path), catch_exceptions=False
    )
    assert first.exit_code == 0, first.stderr
    before = sorted(str(p.relative_to(site)) for p in site.rglob("*"))
    bad = [corpus["truncated"].path, corpus["journal-null"].path]
    start, end = WINDOW
    args = [
        "build",
        *map(str, bad),
        "--from",
        start,
        "--to",
        end,
        "--out",
        str(site),
        "--jobs",
        "1",
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    # a fleet in which every town failed built nothing (exit 5), each failure named
    assert result.exit_code == 5, result.stderr
    assert "Traceback" not in result.output
    assert "nothing built: all 2 towns failed" in result.stderr
    assert "truncated.sqlite" in result.stderr and "journal-null" in result.stderr
    assert sorted(str(p.relative_to(site)) for p in site.rglob("*")) == before


def test_missing_columns_names_each_table_and_column() -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE beads (bead_id text, type text)")
    conn.execute("CREATE TABLE rg_ticks (seq integer, at text)")
    missing = schema.missing_columns(conn, db.town_ddl())
    assert "beads.title" in missing and "rg_ticks.record" in missing
    assert not [
        m for m in missing if m.startswith(("town_events.", "rg_journal."))
    ]  # absent tables
