"""``reportgen serve``: upstream's reconciler debug routes over the town files in a directory.

Routes (each also under upstream's own prefix, ``/debug/towns/...``):

* ``GET  /api/towns`` — the towns served;
* ``POST /api/towns/{townId}/debug/replay-events`` ``{"from", "to"}`` — seed
  deliverable 1 (:func:`reportgen.replay.replay_events`);
* ``POST /api/towns/{townId}/debug/reconcile-dry-run`` (optional ``{"now"}``) —
  :func:`reportgen.replay.dry_run`;
* ``GET  /api/towns/{townId}/status`` — upstream's ``getAlarmStatus`` with
  ``reconciler`` = the last recorded tick's metrics. Under ``/debug/towns``
  it has upstream's debug shape ``{alarmStatus, agentMeta, beadSummary}``.

Bodies equal the CLI's ``--json`` output. Errors are ``{"error": message}``:
400 for a bad body or window, 401 without the token, 404 for an unknown
town, 413 for a body over :data:`MAX_BODY_BYTES`. The server only reads its
files (every request works on an in-memory copy). Town ids come from the
files (``rg_town_state`` or a bundle's manifest, else the file stem); a file
whose id another file already claims is served under its stem; ids that do
not match :data:`TOWN_ID_PATTERN` are not served.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from reportgen import __version__
from reportgen.errors import BadInputError, ReportgenError
from reportgen.replay import (
    Source,
    TownState,
    dry_run,
    open_source,
    read_manifest,
    replay_events,
    state_at,
)
from reportgen.town import store
from reportgen.town.db import open_readonly
from reportgen.town.status import get_alarm_status

MAX_BODY_BYTES = 64 * 1024
TOWN_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
_TOWN_ID_RE = re.compile(TOWN_ID_PATTERN)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class Window(BaseModel):
    """A replay window (ISO times, inclusive)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from", min_length=1, max_length=64)
    to: str = Field(min_length=1, max_length=64)


class DryRunBody(BaseModel):
    """Optional dry-run options: the clock (default: the town's newest timestamp)."""

    model_config = ConfigDict(extra="forbid")
    now: str | None = Field(default=None, min_length=1, max_length=64)


class ErrorBody(BaseModel):
    error: str


class TownEntry(BaseModel):
    townId: str
    file: str
    kind: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "Bad body or window"},
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorBody, "description": "Unknown town"},
    413: {"model": ErrorBody, "description": "Body too large"},
}

TownId = Annotated[str, PathParam(alias="townId", pattern=TOWN_ID_PATTERN, max_length=64)]


@dataclass(frozen=True)
class ServedTown:
    town_id: str
    path: Path
    kind: str


def _file_town_id(path: Path) -> tuple[str, str] | None:
    """``(town id, kind)`` for a town database or bundle; ``None`` for other files."""
    try:
        conn = open_readonly(path)
    except BadInputError:
        return None
    try:
        manifest = read_manifest(conn)
        town_id = store.town_id(conn) or str((manifest or {}).get("town_id") or "")
        return town_id, "bundle" if manifest is not None else "town"
    except sqlite3.DatabaseError:
        return None
    finally:
        conn.close()


def discover(directory: str | Path) -> dict[str, ServedTown]:
    """The towns in ``directory`` by id (see the module docstring for the id rules)."""
    towns: dict[str, ServedTown] = {}
    for path in sorted(Path(directory).glob("*.sqlite")):
        found = _file_town_id(path)
        if found is None:
            continue
        town_id, kind = found
        for candidate in (town_id, path.stem):
            if candidate and _TOWN_ID_RE.match(candidate) and candidate not in towns:
                towns[candidate] = ServedTown(candidate, path, kind)
                break
    return towns


def town_status(db: str | Path) -> dict[str, Any]:
    """``getAlarmStatus`` for the town as it is (a bundle: at its ``to``)."""
    source = open_source(db)
    return _alarm_status(source, state_at(source, None))


def _alarm_status(source: Source, state: TownState) -> dict[str, Any]:
    last = _last_tick(source.conn)
    return get_alarm_status(
        state.ctx(source.default_now() or ""),
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
    have = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'rg_ticks'"
    ).fetchone()
    if have is None:
        return None
    row = conn.execute("SELECT record FROM rg_ticks ORDER BY seq DESC LIMIT 1").fetchone()
    return None if row is None else dict(json.loads(row[0]))


class _Refusal(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def limit_body(app: ASGIApp, limit: int = MAX_BODY_BYTES) -> ASGIApp:
    """ASGI middleware: answer 413 to a request whose body is larger than ``limit`` bytes."""

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await _error(413, f"body larger than {limit} bytes")(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = bool(message.get("more_body"))
            if size > limit:
                await _error(413, f"body larger than {limit} bytes")(scope, receive, send)
                return
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await app(scope, replay, send)

    return guarded


def create_app(directory: str | Path, token: str | None = None) -> FastAPI:
    """The debug API over the town files in ``directory`` (read at start-up)."""
    towns = discover(directory)
    app = FastAPI(
        title="reportgen debug API",
        version=__version__,
        description="Upstream's reconciler debug routes, answered by exact replay.",
    )

    def town_path(town_id: str) -> Path:
        served = towns.get(town_id)
        if served is None:
            raise _Refusal(404, f"unknown town {town_id!r}")
        return served.path

    @app.exception_handler(_Refusal)
    async def refusal(request: Request, exc: _Refusal) -> JSONResponse:
        return _error(exc.status, exc.message)

    @app.exception_handler(ReportgenError)
    async def bad_input(request: Request, exc: ReportgenError) -> JSONResponse:
        return _error(400 if isinstance(exc, BadInputError) else 500, str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, f"{where}: {first.get('msg', 'invalid request')}")

    app.add_middleware(_BodyLimit)  # added first: runs inside the token check

    @app.middleware("http")
    async def require_token(
        request: Request, call_next: Callable[[Request], Awaitable[Any]]
    ) -> Any:
        if token is not None:
            given = request.headers.get("authorization", "")
            if not secrets.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return _error(401, "missing or wrong bearer token")
        return await call_next(request)

    def list_towns() -> list[TownEntry]:
        return [TownEntry(townId=t.town_id, file=t.path.name, kind=t.kind)
                for t in towns.values()]  # fmt: skip

    def replay(town_id: TownId, window: Annotated[Window, Body()]) -> dict[str, Any]:
        return replay_events(town_path(town_id), window.from_, window.to, ("from", "to"))

    def reconcile(
        town_id: TownId, body: Annotated[DryRunBody | None, Body()] = None
    ) -> dict[str, Any]:
        return dry_run(town_path(town_id), now=None if body is None else body.now)

    def status(town_id: TownId) -> dict[str, Any]:
        return town_status(town_path(town_id))

    def upstream_status(town_id: TownId) -> dict[str, Any]:
        return debug_status(town_path(town_id))

    for prefix, tag in (("/api/towns", "api"), ("/debug/towns", "upstream paths")):
        app.get(prefix, tags=[tag], responses=_ERRORS, operation_id=f"towns_{tag[:3]}")(list_towns)
        app.post(f"{prefix}/{{townId}}/debug/replay-events" if tag == "api"
                 else f"{prefix}/{{townId}}/replay-events", tags=[tag], responses=_ERRORS,
                 operation_id=f"replay_events_{tag[:3]}")(replay)  # fmt: skip
        app.post(f"{prefix}/{{townId}}/debug/reconcile-dry-run" if tag == "api"
                 else f"{prefix}/{{townId}}/reconcile-dry-run", tags=[tag], responses=_ERRORS,
                 operation_id=f"dry_run_{tag[:3]}")(reconcile)  # fmt: skip
        app.get(f"{prefix}/{{townId}}/status", tags=[tag], responses=_ERRORS,
                operation_id=f"status_{tag[:3]}")(status if tag == "api" else upstream_status)  # fmt: skip

    return app


class _BodyLimit:
    """:func:`limit_body` as a Starlette middleware class."""

    def __init__(self, app: ASGIApp) -> None:
        self.guarded = limit_body(app)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.guarded(scope, receive, send)
