"""Build small towns for tests: a fresh in-memory database in upstream's schema.

Usage::

    conn = new_town()
    rig = add_rig(conn)
    bead = add_bead(conn, rig_id=rig, status="open")
    agent = add_agent(conn, rig_id=rig, status="idle", hook=bead)
    ctx = make_ctx(conn, now=NOW)

Every ``add_*`` inserts rows with upstream's column names and defaults,
returns the new id, and accepts any column as a keyword to override. Ids
are readable and deterministic (``bead-1``, ``agent-2``…) unless given.
Timestamps default to :data:`NOW`; use :func:`ago` for "N ms before now".
Foreign keys are enforced (as upstream declares them); wrap inserts that
must dangle (a hook to a deleted bead…) in :func:`foreign_keys_off`.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from reportgen.town import clock
from reportgen.town.config import TownConfig
from reportgen.town.context import TownCtx
from reportgen.town.db import configure
from reportgen.town.schema import UPSTREAM_TABLES, create_upstream_tables

#: The default clock of a test town.
NOW = "2026-03-15T12:00:00.000Z"

SECOND = clock.SECOND_MS
MINUTE = clock.MINUTE_MS
HOUR = clock.HOUR_MS

_counter = itertools.count(1)


def ago(ms: int, now: str = NOW) -> str:
    """The ISO timestamp ``ms`` milliseconds before ``now``."""
    return clock.minus(now, ms)


def _new_id(prefix: str) -> str:
    return f"{prefix}-{next(_counter)}"


def new_town() -> sqlite3.Connection:
    """An empty in-memory town: upstream tables, ``sqlite3.Row`` rows, foreign keys on."""
    conn = configure(sqlite3.connect(":memory:"))
    create_upstream_tables(conn)
    return conn


def make_ctx(
    conn: sqlite3.Connection,
    now: str = NOW,
    *,
    config: TownConfig | dict[str, Any] | None = None,
    draining: bool = False,
) -> TownCtx:
    """A :class:`TownCtx` on ``conn``; ``config`` may be a raw upstream config dict."""
    if isinstance(config, dict):
        config = TownConfig.parse(config)
    return TownCtx(conn=conn, now=now, config=config or TownConfig(), draining=draining)


@contextmanager
def foreign_keys_off(conn: sqlite3.Connection) -> Iterator[None]:
    """Temporarily disable foreign-key enforcement (for dangling references).

    The pragma is a no-op inside a transaction, so pending work is committed
    before each switch.
    """
    conn.commit()
    conn.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        conn.commit()
        conn.execute("PRAGMA foreign_keys = ON")


def insert(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    """Insert one row; dict/list values are stored as JSON text."""
    values = [json.dumps(v) if isinstance(v, dict | list) else v for v in row.values()]
    cols = ", ".join(f'"{c}"' for c in row)
    marks = ", ".join("?" for _ in row)
    conn.execute(f'INSERT INTO "{table}" ({cols}) VALUES ({marks})', values)


def add_rig(conn: sqlite3.Connection, rig_id: str | None = None, **cols: Any) -> str:
    """A rig; ``config`` may be a dict of overrides (stored as JSON)."""
    rig_id = rig_id or _new_id("rig")
    row = {
        "id": rig_id,
        "name": rig_id,
        "git_url": f"https://github.com/acme/{rig_id}.git",
        "default_branch": "main",
        "config": "{}",
        "created_at": ago(30 * 24 * HOUR),
    }
    insert(conn, "rigs", {**row, **cols})
    return rig_id


def add_bead(conn: sqlite3.Connection, bead_id: str | None = None, **cols: Any) -> str:
    """A bead (default: an ``open`` ``issue`` created and updated at :data:`NOW`)."""
    bead_id = bead_id or _new_id("bead")
    row = {
        "bead_id": bead_id,
        "type": "issue",
        "status": "open",
        "title": f"Bead {bead_id}",
        "body": None,
        "rig_id": None,
        "parent_bead_id": None,
        "assignee_agent_bead_id": None,
        "priority": "medium",
        "labels": "[]",
        "metadata": "{}",
        "dispatch_attempts": 0,
        "last_dispatch_attempt_at": None,
        "created_by": None,
        "created_at": NOW,
        "updated_at": NOW,
        "closed_at": None,
    }
    insert(conn, "beads", {**row, **cols})
    return bead_id


def add_agent(
    conn: sqlite3.Connection,
    agent_id: str | None = None,
    *,
    rig_id: str | None = None,
    role: str = "polecat",
    status: str = "idle",
    hook: str | None = None,
    **cols: Any,
) -> str:
    """An agent: its ``agent`` bead (carrying ``rig_id``) and its ``agent_metadata`` row.

    ``hook`` sets ``current_hook_bead_id``; remaining keywords are
    ``agent_metadata`` columns (``last_activity_at``, ``stalled_at``…).
    """
    agent_id = agent_id or _new_id("agent")
    add_bead(conn, agent_id, type="agent", title=agent_id, rig_id=rig_id)
    row = {
        "bead_id": agent_id,
        "role": role,
        "identity": f"{agent_id}-{role}",
        "status": status,
        "current_hook_bead_id": hook,
        "dispatch_attempts": 0,
        "last_activity_at": NOW,
        "active_tools": "[]",
    }
    insert(conn, "agent_metadata", {**row, **cols})
    return agent_id


def add_mr(
    conn: sqlite3.Connection,
    mr_id: str | None = None,
    *,
    rig_id: str | None = None,
    pr_url: str | None = None,
    branch: str = "gt/feature",
    source: str | None = None,
    review: dict[str, Any] | None = None,
    **cols: Any,
) -> str:
    """A ``merge_request`` bead with its ``review_metadata`` row.

    ``source`` adds the ``tracks`` dependency MR → source bead; ``review``
    overrides ``review_metadata`` columns; other keywords are bead columns.
    """
    mr_id = mr_id or _new_id("mr")
    add_bead(conn, mr_id, type="merge_request", rig_id=rig_id, **cols)
    row = {"bead_id": mr_id, "branch": branch, "target_branch": "main", "pr_url": pr_url}
    insert(conn, "review_metadata", {**row, **(review or {})})
    if source is not None:
        add_dep(conn, mr_id, source, "tracks")
    return mr_id


def add_convoy(
    conn: sqlite3.Connection,
    convoy_id: str | None = None,
    *,
    tracks: Sequence[str] = (),
    total_beads: int | None = None,
    closed_beads: int = 0,
    feature_branch: str | None = None,
    merge_mode: str | None = "review-then-land",
    staged: int = 0,
    **cols: Any,
) -> str:
    """A ``convoy`` bead with ``convoy_metadata``; ``tracks`` beads get a ``tracks`` edge to it."""
    convoy_id = convoy_id or _new_id("convoy")
    add_bead(conn, convoy_id, type="convoy", **cols)
    row = {
        "bead_id": convoy_id,
        "total_beads": len(tracks) if total_beads is None else total_beads,
        "closed_beads": closed_beads,
        "landed_at": None,
        "feature_branch": feature_branch,
        "merge_mode": merge_mode,
        "staged": staged,
    }
    insert(conn, "convoy_metadata", row)
    for bead in tracks:
        add_dep(conn, bead, convoy_id, "tracks")
    return convoy_id


def add_dep(
    conn: sqlite3.Connection, bead_id: str, depends_on: str, dependency_type: str = "blocks"
) -> None:
    """``bead_id`` depends on ``depends_on`` (``blocks``, ``tracks`` or ``parent-child``)."""
    insert(
        conn,
        "bead_dependencies",
        {"bead_id": bead_id, "depends_on_bead_id": depends_on, "dependency_type": dependency_type},
    )


def add_nudge(
    conn: sqlite3.Connection,
    agent_id: str,
    *,
    tier: str = "warn",
    created_at: str = NOW,
    nudge_id: str | None = None,
    **cols: Any,
) -> str:
    """An ``agent_nudges`` row as the reconciler writes it (source ``reconciler:<tier>``)."""
    nudge_id = nudge_id or _new_id("nudge")
    row = {
        "nudge_id": nudge_id,
        "agent_bead_id": agent_id,
        "message": "nudge",
        "mode": "immediate",
        "priority": "urgent",
        "source": f"reconciler:{tier}",
        "created_at": created_at,
    }
    insert(conn, "agent_nudges", {**row, **cols})
    return nudge_id


def dump(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every upstream table, sorted: compare before/after to prove no writes."""
    return {
        table: sorted(
            (tuple(r) for r in conn.execute(f'SELECT * FROM "{table}"')),
            key=repr,
        )
        for table in UPSTREAM_TABLES
    }
