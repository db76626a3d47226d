"""What ``reportgen serve``'s worker processes compute: one :class:`Job` → JSON bytes.

A worker process (:mod:`reportgen.server_pool`) imports this module and no web
framework, so a replacement worker starts quickly. :func:`answer` never
raises: a :class:`~reportgen.errors.ReportgenError` becomes a refusal with its
message (worded with the API's field names, never the CLI's ``--now``), any
other exception a failure naming only its type and message, so a traceback
never reaches a client.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reportgen.diagnose import diagnose
from reportgen.errors import BadInputError, ReportgenError
from reportgen.replay import (
    Source,
    TownState,
    dry_run,
    open_source,
    parse_time,
    replay_events,
    state_at,
)
from reportgen.town import store
from reportgen.town.record import stored_tick
from reportgen.town.schema import table_exists
from reportgen.town.status import get_alarm_status

REPLAY_EVENTS = "replay-events"
DRY_RUN = "dry-run"
STATUS = "status"
DEBUG_STATUS = "debug-status"
DIAGNOSIS = "diagnosis"


@dataclass(frozen=True)
class Job:
    """One computation: a route, the town file and the request's parameters.

    Hashable and picklable: it is the result cache's key (with the file's
    stat) and what travels to a worker process.
    """

    route: str
    path: str
    params: tuple[tuple[str, str], ...] = ()


#: A worker's reply: ``("ok", body)``, ``("refused", message)`` for a
#: ReportgenError (a 400), ``("failed", message)`` for anything else (a 500).
Reply = tuple[str, Any]


def town_status(db: str | Path) -> dict[str, Any]:
    """``getAlarmStatus`` for the town as it is (a bundle: at its ``to``)."""
    source = open_source(db)
    return _alarm_status(source, state_at(source, None))


def _alarm_status(source: Source, state: TownState) -> dict[str, Any]:
    """The alarm status at the source's newest timestamp (a town without one has none)."""
    now = source.default_now()
    if now is None:
        raise BadInputError(f"{source.name}: the database holds no timestamps: no status yet")
    last = _last_tick(source.conn)
    return get_alarm_status(
        state.ctx(now),
        reconciler=None if last is None else last.get("metrics"),
        next_fire_at=None if last is None else last.get("next_tick_at"),
        drain_started_at=store.get(state.conn, store.DRAIN_STARTED_AT),
    )


def debug_status(db: str | Path) -> dict[str, Any]:
    """Upstream's ``GET /debug/towns/:id/status``: alarm status, agents, open beads."""
    source = open_source(db)
    state = state_at(source, None)
    agents = state.conn.execute(
        """SELECT bead_id, role, status, current_hook_bead_id, dispatch_attempts,
                  last_activity_at FROM agent_metadata ORDER BY bead_id"""
    ).fetchall()
    beads = state.conn.execute(
        """SELECT bead_id, type, status, title, assignee_agent_bead_id, rig_id, created_by,
                  labels, metadata, updated_at FROM beads
           WHERE type != 'agent' AND status NOT IN ('closed', 'failed')
           ORDER BY type, status, bead_id"""
    ).fetchall()
    return {
        "alarmStatus": _alarm_status(source, state),
        "agentMeta": [dict(r) for r in agents],
        "beadSummary": [dict(r) for r in beads],
    }


def _last_tick(conn: sqlite3.Connection) -> dict[str, Any] | None:
    """The newest tick record, decoded and checked (a bad row is an error naming it)."""
    if not table_exists(conn, "rg_ticks"):
        return None
    row = conn.execute("SELECT seq, record FROM rg_ticks ORDER BY seq DESC LIMIT 1").fetchone()
    return None if row is None else stored_tick(conn, row[0], row[1])


def _dry_run(path: Path, params: dict[str, str]) -> dict[str, Any]:
    """The dry-run with ``now`` checked under the API's own name (the library says ``--now``)."""
    now = params.get("now")
    if now is not None:
        parse_time(now, "now")
    return dry_run(path, now=now)


def _diagnosis(path: Path, params: dict[str, str]) -> dict[str, Any]:
    """``reportgen diagnose --json`` over the window (``from``/``to``, each optional)."""
    for name in ("from", "to"):
        if name in params:
            parse_time(params[name], name)
    return diagnose(path, params.get("from"), params.get("to")).to_json()


ROUTES: dict[str, Callable[[Path, dict[str, str]], dict[str, Any]]] = {
    REPLAY_EVENTS: lambda path, p: replay_events(path, p["from"], p["to"], ("from", "to")),
    DRY_RUN: _dry_run,
    STATUS: lambda path, p: town_status(path),
    DEBUG_STATUS: lambda path, p: debug_status(path),
    DIAGNOSIS: _diagnosis,
}

_CLI_FLAG = re.compile(r"--(now|from|to)\b")


def api_words(message: str) -> str:
    """A library message as the API says it: ``--now`` is the body's ``"now"`` field."""
    return _CLI_FLAG.sub(r'the "\1" field', message)


def compute(job: Job) -> bytes:
    """The job's JSON body, encoded as FastAPI's ``JSONResponse`` would encode it."""
    value = ROUTES[job.route](Path(job.path), dict(job.params))
    text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode("utf-8")


def answer(job: Job) -> Reply:
    """:func:`compute`, with every exception turned into a reply (see the module docstring)."""
    try:
        return ("ok", compute(job))
    except ReportgenError as exc:
        return ("refused", api_words(str(exc)))
    except Exception as exc:  # a bug must answer 500, never kill the worker loop
        return ("failed", fault_text(exc))


def fault_text(exc: BaseException) -> str:
    """``Type: first line of the message`` (at most 200 characters): never a traceback."""
    first = (str(exc).splitlines() or [""])[0][:200]
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
