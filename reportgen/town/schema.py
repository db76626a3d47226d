"""The town database: upstream's tables as they are, and reportgen's own beside them.

Upstream tables (spec §2, §3.1) keep upstream's names, columns and defaults so
that a database written by upstream, or by a test that follows the spec, opens
as is. reportgen's additions all start with ``rg_`` and are created on demand
by :func:`ensure_reportgen_tables`; their version is recorded in ``rg_meta``.
"""

from __future__ import annotations

import sqlite3
from functools import cache

UPSTREAM_TABLES = (
    "beads",
    "bead_events",
    "bead_dependencies",
    "agent_metadata",
    "review_metadata",
    "escalation_metadata",
    "convoy_metadata",
    "rigs",
    "town_events",
    "agent_nudges",
)

#: Tables the reconciler cannot work without: their absence means "not a town".
REQUIRED_TABLES = ("beads", "agent_metadata", "town_events")

UPSTREAM_DDL = """
CREATE TABLE IF NOT EXISTS "beads" (
  "bead_id" text primary key,
  "type" text not null,
  "status" text not null default 'open',
  "title" text not null,
  "body" text,
  "rig_id" text,
  "parent_bead_id" text references beads(bead_id),
  "assignee_agent_bead_id" text,
  "priority" text default 'medium',
  "labels" text default '[]',
  "metadata" text default '{}',
  "dispatch_attempts" integer not null default 0,
  "last_dispatch_attempt_at" text,
  "created_by" text,
  "created_at" text not null,
  "updated_at" text not null,
  "closed_at" text
);
CREATE TABLE IF NOT EXISTS "bead_events" (
  "bead_event_id" text primary key,
  "bead_id" text not null,
  "agent_id" text,
  "event_type" text not null,
  "old_value" text,
  "new_value" text,
  "metadata" text default '{}',
  "created_at" text not null
);
CREATE TABLE IF NOT EXISTS "bead_dependencies" (
  "bead_id" text not null references beads(bead_id),
  "depends_on_bead_id" text not null references beads(bead_id),
  "dependency_type" text not null default 'blocks'
);
CREATE TABLE IF NOT EXISTS "agent_metadata" (
  "bead_id" text primary key references beads(bead_id),
  "role" text not null,
  "identity" text not null unique,
  "container_process_id" text,
  "status" text not null default 'idle',
  "current_hook_bead_id" text references beads(bead_id),
  "dispatch_attempts" integer not null default 0,
  "checkpoint" text,
  "last_activity_at" text,
  "agent_status_message" text,
  "agent_status_updated_at" text,
  "last_event_type" text,
  "last_event_at" text,
  "active_tools" text default '[]',
  "stalled_at" text
);
CREATE TABLE IF NOT EXISTS "review_metadata" (
  "bead_id" text primary key references beads(bead_id),
  "branch" text not null,
  "target_branch" text not null default 'main',
  "merge_commit" text,
  "pr_url" text,
  "retry_count" integer default 0,
  "auto_merge_ready_since" text,
  "last_feedback_check_at" text
);
CREATE TABLE IF NOT EXISTS "escalation_metadata" (
  "bead_id" text primary key references beads(bead_id),
  "severity" text not null,
  "category" text,
  "acknowledged" integer not null default 0,
  "re_escalation_count" integer not null default 0,
  "acknowledged_at" text
);
CREATE TABLE IF NOT EXISTS "convoy_metadata" (
  "bead_id" text primary key references beads(bead_id),
  "total_beads" integer not null default 0,
  "closed_beads" integer not null default 0,
  "landed_at" text,
  "feature_branch" text,
  "merge_mode" text,
  "staged" integer not null default 0
);
CREATE TABLE IF NOT EXISTS "rigs" (
  "id" TEXT PRIMARY KEY,
  "name" TEXT NOT NULL,
  "git_url" TEXT NOT NULL DEFAULT '',
  "default_branch" TEXT NOT NULL DEFAULT 'main',
  "config" TEXT DEFAULT '{}',
  "created_at" TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS "town_events" (
  "event_id" text primary key,
  "event_type" text not null,
  "agent_id" text,
  "bead_id" text,
  "payload" text not null default '{}',
  "created_at" text not null,
  "processed_at" text
);
CREATE TABLE IF NOT EXISTS "agent_nudges" (
  "nudge_id" text primary key,
  "agent_bead_id" text not null,
  "message" text not null,
  "mode" text not null default 'wait-idle',
  "priority" text not null default 'normal',
  "source" text not null default 'system',
  "created_at" text not null default (datetime('now')),
  "delivered_at" text,
  "expires_at" text
);
CREATE INDEX IF NOT EXISTS idx_beads_type_status ON beads(type, status);
CREATE INDEX IF NOT EXISTS idx_beads_parent ON beads(parent_bead_id);
CREATE INDEX IF NOT EXISTS idx_beads_rig_status ON beads(rig_id, status);
CREATE INDEX IF NOT EXISTS idx_beads_assignee ON beads(assignee_agent_bead_id, type, status);
CREATE INDEX IF NOT EXISTS idx_bead_events_bead ON bead_events(bead_id);
CREATE INDEX IF NOT EXISTS idx_bead_events_created ON bead_events(created_at);
CREATE INDEX IF NOT EXISTS idx_bead_events_type ON bead_events(event_type);
CREATE UNIQUE INDEX IF NOT EXISTS idx_bead_deps_pk ON bead_dependencies(bead_id, depends_on_bead_id);
CREATE INDEX IF NOT EXISTS idx_bead_deps_depends_on ON bead_dependencies(depends_on_bead_id);
CREATE UNIQUE INDEX IF NOT EXISTS idx_rigs_name ON rigs(name);
CREATE INDEX IF NOT EXISTS idx_town_events_pending ON town_events(created_at)
  WHERE processed_at IS NULL;
CREATE INDEX IF NOT EXISTS idx_town_events_type ON town_events(event_type);
CREATE INDEX IF NOT EXISTS idx_agent_nudges_pending ON agent_nudges(agent_bead_id)
  WHERE delivered_at IS NULL;
"""

#: Version of the ``rg_*`` tables. Bump it and add a step to ``_MIGRATIONS``.
SCHEMA_VERSION = 1

REPORTGEN_DDL = """
CREATE TABLE IF NOT EXISTS rg_meta (
  key text primary key,
  value text not null
);
-- Upstream keeps these in Durable Object KV, reportgen here (spec §16, §4.1).
CREATE TABLE IF NOT EXISTS rg_town_state (
  key text primary key,
  value text not null
);
-- The last container status observed per agent (the container_status filter).
CREATE TABLE IF NOT EXISTS rg_container_last (
  agent_id text primary key,
  status text not null,
  observed_at text not null
);
-- Event rows that could not be parsed: kept out of the drain, with the reason.
CREATE TABLE IF NOT EXISTS rg_quarantine (
  event_id text primary key,
  event_type text,
  reason text not null,
  quarantined_at text not null
);
"""

# The history and checkpoint tables reportgen writes beside the state. Their
# definitions live here, with the rest of the schema, so that the modules that
# write them and the database checks that read them share one leaf.

#: Every journaled call, in order (``reportgen.town.api``).
JOURNAL_DDL = """
CREATE TABLE IF NOT EXISTS rg_journal (
  seq integer primary key,
  at text not null,
  call text not null,
  args text not null
)
"""

#: One record per tick (``reportgen.town.record``).
TICKS_DDL = """
CREATE TABLE IF NOT EXISTS rg_ticks (
  seq integer primary key,
  at text not null,
  record text not null
)
"""

#: The outside world's answers, per tick (``reportgen.town.worldlog``).
WORLD_LOG_DDL = """
CREATE TABLE IF NOT EXISTS rg_world_log (
  tick_seq integer not null,
  n integer not null,
  method text not null,
  args text not null,
  answer text not null,
  primary key (tick_seq, n)
)
"""

#: State snapshots taken while journaling (``reportgen.town.checkpoints``).
CHECKPOINTS_DDL = """
CREATE TABLE IF NOT EXISTS rg_checkpoints (
  seq integer primary key,
  at text not null,
  state blob not null
)
"""

#: A bundle's state at the end of its window (one row), so that a reader that shows the
#: recorded ticks can show the entities as they were then without replaying the window.
END_STATE_DDL = """
CREATE TABLE IF NOT EXISTS rg_end_state (
  seq integer primary key,
  at text not null,
  state blob not null
)
"""


def create_upstream_tables(conn: sqlite3.Connection) -> None:
    """Create upstream's tables and indexes (a new, empty town)."""
    conn.executescript(UPSTREAM_DDL)


_REPORTGEN_TABLES = tuple(
    line.split()[5] for line in REPORTGEN_DDL.splitlines() if line.startswith("CREATE TABLE")
)


def ensure_reportgen_tables(conn: sqlite3.Connection) -> None:
    """Create reportgen's own tables if missing and record the schema version.

    Cheap when they exist (one catalogue query), so callers may call it freely;
    each statement runs with ``execute`` so an open transaction is not committed.
    """
    if not missing_tables(conn, _REPORTGEN_TABLES):
        return
    for statement in REPORTGEN_DDL.split(";"):
        if statement.strip():
            conn.execute(statement)
    row = conn.execute("SELECT value FROM rg_meta WHERE key = 'schema_version'").fetchone()
    if row is None:
        conn.execute(
            "INSERT INTO rg_meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )


def table_names(conn: sqlite3.Connection) -> list[str]:
    """Every table of the database, in the order they were created (the one catalogue query
    every "which tables are there" question asks)."""
    return [
        str(r[0])
        for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid")
    ]


def table_exists(conn: sqlite3.Connection, name: str) -> bool:
    """Whether the database has a table ``name`` (an optional table is read only when it is there)."""
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)
    ).fetchone()
    return row is not None


def missing_tables(
    conn: sqlite3.Connection, wanted: tuple[str, ...] = REQUIRED_TABLES
) -> list[str]:
    """Names from ``wanted`` that the database does not have."""
    have = set(table_names(conn))
    return [t for t in wanted if t not in have]


@cache
def ddl_columns(ddl: str) -> dict[str, tuple[str, ...]]:
    """Each table of ``ddl`` and its columns (read back from SQLite, not parsed by hand)."""
    scratch = sqlite3.connect(":memory:")
    try:
        scratch.executescript(ddl)
        tables = sorted(table_names(scratch))
        return {
            t: tuple(r[1] for r in scratch.execute(f'PRAGMA table_info("{t}")')) for t in tables
        }
    finally:
        scratch.close()


def missing_columns(conn: sqlite3.Connection, ddl: str = UPSTREAM_DDL) -> list[str]:
    """``table.column`` for each column of ``ddl`` missing from a table ``conn`` has.

    Tables ``conn`` lacks altogether are :func:`missing_tables`' business; a
    table that exists must have every column the code reads from it.
    """
    missing: list[str] = []
    for table, wanted in ddl_columns(ddl).items():
        have = {r[1] for r in conn.execute(f'PRAGMA table_info("{table}")')}
        if have:
            missing += [f"{table}.{c}" for c in wanted if c not in have]
    return missing
