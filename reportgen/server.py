"""``reportgen serve``: upstream's reconciler debug routes over the town files in a directory.

Routes (each also under upstream's own prefix, ``/debug/towns/...``):

* ``GET  /api/towns`` — the towns served;
* ``POST /api/towns/{townId}/debug/replay-events`` ``{"from", "to"}`` — seed
  deliverable 1 (:func:`reportgen.replay.replay_events`);
* ``POST /api/towns/{townId}/debug/reconcile-dry-run`` (optional ``{"now"}``) —
  :func:`reportgen.replay.dry_run`;
* ``GET  /api/towns/{townId}/status`` — upstream's ``getAlarmStatus`` with
  ``reconciler`` = the last recorded tick's metrics. Under ``/debug/towns``
  it has upstream's debug shape ``{alarmStatus, agentMeta, beadSummary}``;
* ``GET  /api/towns/{townId}/diagnosis`` (optional ``?from=&to=``) — the town's
  verdict and findings, :func:`reportgen.diagnose.diagnose` (reportgen's own,
  so only under ``/api``).

Bodies equal the CLI's ``--json`` output. Every error, whatever its status,
is ``{"error": message}``: 400 for a bad body, window or town file, 401
without the token, 404 for an unknown town or route, 405 for a wrong method,
413 for a body over :data:`MAX_BODY_BYTES`, 503 (with ``Retry-After``) when
the queue of heavy work is full, 504 when a computation overran its time (it
is stopped), 500 for a fault in reportgen (the message, never a traceback).

The list of towns is answered on the event loop and never waits; replay,
dry-run and status run in worker processes behind a bounded queue with a
deadline (:mod:`reportgen.server_pool`), and equal requests on an unchanged
file are answered once (:mod:`reportgen.server_cache`). A request whose client
disconnects stops its computation unless another client waits for it.

The server only reads its files (every job works on an in-memory copy). Town
ids come from the files (``rg_town_state`` or a bundle's manifest, else the
file stem); a file whose id another file already claims is served under its
stem; ids that do not match :data:`TOWN_ID_PATTERN` are not served. A file that
cannot be read at all (not SQLite, damaged) is not listed, and the routes under
its stem answer 400 naming the problem rather than 404.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import socket
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from reportgen import __version__
from reportgen.errors import BadInputError, ReportgenError
from reportgen.replay import read_manifest
from reportgen.server_cache import ResultCache
from reportgen.server_jobs import (
    DEBUG_STATUS,
    DIAGNOSIS,
    DRY_RUN,
    REPLAY_EVENTS,
    STATUS,
    Job,
    api_words,
    debug_status,
    fault_text,
    town_status,
)
from reportgen.server_pool import JobRunner, Limits, Refusal, WorkerPool
from reportgen.town import store
from reportgen.town.db import open_readonly, unreadable

__all__ = [
    "MAX_BODY_BYTES",
    "CannotServeError",
    "create_app",
    "debug_status",
    "discover",
    "limit_body",
    "listen",
    "serve",
    "town_status",
]

log = logging.getLogger("reportgen.serve")

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
    400: {"model": ErrorBody, "description": "Bad body, window or town file"},
    401: {"model": ErrorBody, "description": "Missing or wrong bearer token"},
    404: {"model": ErrorBody, "description": "Unknown town"},
    413: {"model": ErrorBody, "description": "Body too large"},
    500: {"model": ErrorBody, "description": "A fault in reportgen"},
    503: {"model": ErrorBody, "description": "Busy: retry after Retry-After seconds"},
    504: {"model": ErrorBody, "description": "The computation overran its time and was stopped"},
}

TownId = Annotated[str, PathParam(alias="townId", pattern=TOWN_ID_PATTERN, max_length=64)]


@dataclass(frozen=True)
class ServedTown:
    town_id: str
    path: Path
    kind: str


def _file_town_id(path: Path) -> tuple[str, str] | BadInputError:
    """``(town id, kind)`` for a town database or bundle, or why the file cannot be read."""
    try:
        conn = open_readonly(path)
    except BadInputError as exc:
        return exc
    try:
        manifest = read_manifest(conn)
        town_id = store.town_id(conn) or str((manifest or {}).get("town_id") or "")
        return town_id, "bundle" if manifest is not None else "town"
    except sqlite3.DatabaseError as exc:
        return unreadable(path, exc)
    finally:
        conn.close()


def scan(directory: str | Path) -> tuple[dict[str, ServedTown], dict[str, str]]:
    """The towns in ``directory`` by id (see the module docstring for the id rules), and
    the files that cannot be read: file stem -> why, in one line."""
    towns: dict[str, ServedTown] = {}
    broken: dict[str, str] = {}
    for path in sorted(Path(directory).glob("*.sqlite")):
        found = _file_town_id(path)
        if isinstance(found, BadInputError):
            broken[path.stem] = str(found)
            continue
        town_id, kind = found
        for candidate in (town_id, path.stem):
            if candidate and _TOWN_ID_RE.match(candidate) and candidate not in towns:
                towns[candidate] = ServedTown(candidate, path, kind)
                break
    return towns, broken


def discover(directory: str | Path) -> dict[str, ServedTown]:
    """The towns in ``directory`` by id (see the module docstring for the id rules)."""
    return scan(directory)[0]


class CannotServeError(ReportgenError):
    """``serve`` could not start (the address is in use, or not this machine's)."""

    exit_code = 6


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` for uvicorn; :class:`CannotServeError` if it cannot be.

    Binding here, before uvicorn starts, turns "address in use" into one line
    and exit 6 instead of uvicorn's log and its own exit code 3.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
    except (socket.gaierror, IndexError) as exc:
        raise CannotServeError(f"cannot listen on {host}:{port}: unknown address") from exc
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise CannotServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    return sock


def serve(directory: str | Path, host: str, port: int, token: str | None, limits: Limits) -> None:
    """Serve the API until interrupted; :class:`CannotServeError` if it cannot start."""
    import uvicorn

    sock = listen(host, port)
    pool = WorkerPool(limits)
    try:
        app = create_app(directory, token=token, pool=pool)
        pool.start()
        server = uvicorn.Server(
            uvicorn.Config(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5)
        )
        logging.getLogger("uvicorn.error").info(
            "reportgen serve: %d town(s) from %s on http://%s:%d (%d workers, queue %d, timeout %g s)",
            len(app.state.towns), directory, f"[{host}]" if ":" in host else host,
            sock.getsockname()[1], limits.workers,
            limits.queue_limit, limits.timeout,
        )  # fmt: skip
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:
            pass
        except SystemExit as exc:  # uvicorn's own start-up failure
            raise CannotServeError(f"the server on {host}:{port} failed to start") from exc
    finally:
        pool.close()
        sock.close()
    if not server.started:
        raise CannotServeError(f"the server on {host}:{port} failed to start")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


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


class _Guard:
    """The outermost middleware: the token, the body limit, and a JSON 500 for any fault.

    Pure ASGI (not ``@app.middleware``): it leaves the request's ``receive`` as
    the server gave it, so a route can see its client disconnect.
    """

    def __init__(self, app: ASGIApp, token: str | None) -> None:
        self.app = app
        self.limited = limit_body(app)
        self.token = None if token is None else f"Bearer {token}".encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.token is not None:
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not secrets.compare_digest(given, self.token):
                await _error(401, "missing or wrong bearer token")(scope, receive, send)
                return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.limited(scope, receive, tracked)
        except Exception as exc:  # a fault in reportgen: logged in one line, answered in JSON
            text = fault_text(exc)
            log.error("%s %s: %s", scope.get("method"), scope.get("path"), text)
            log.debug("traceback of the fault above", exc_info=True)
            if not started:
                await _error(500, f"internal error: {text}")(scope, receive, send)


def _install_error_handlers(app: FastAPI) -> None:
    """Every error as ``{"error": message}``, whatever raised it."""

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> JSONResponse:
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(ReportgenError)
    async def bad_input(request: Request, exc: ReportgenError) -> JSONResponse:
        return _error(400, api_words(str(exc)))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def _client_gone(receive: Receive) -> None:
    """Return when the client disconnects (the body has been read by then)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _answer(request: Request, cache: ResultCache, job: Job) -> Response:
    """The job's body; if the client goes first, the job is cancelled (stopped if no one else
    waits for it) and the answer, which no one reads, is 499."""
    body = cache.cached(job)
    if body is not None:
        return Response(body, media_type="application/json")
    work = asyncio.ensure_future(cache.get(job))
    gone = asyncio.ensure_future(_client_gone(request.receive))
    try:
        await asyncio.wait((work, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not work.done():
            work.cancel()
    if not work.done() or work.cancelled():
        return _error(499, "the client closed the request")
    return Response(work.result(), media_type="application/json")


def create_app(
    directory: str | Path,
    token: str | None = None,
    *,
    limits: Limits | None = None,
    pool: JobRunner | None = None,
) -> FastAPI:
    """The debug API over the town files in ``directory`` (read at start-up).

    Heavy routes run on ``pool`` (default: a :class:`WorkerPool` with ``limits``,
    its workers started on first use and stopped with the app).
    """
    towns, broken = scan(directory)
    runner: JobRunner = pool if pool is not None else WorkerPool(limits)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if pool is None:
            runner.close()

    app = FastAPI(
        title="reportgen debug API",
        version=__version__,
        description="Upstream's reconciler debug routes, answered by exact replay.",
        lifespan=lifespan,
    )
    app.state.towns = towns
    app.state.pool = runner
    app.state.cache = ResultCache(runner.run)
    _install_error_handlers(app)
    app.add_middleware(_Guard, token=token)
    _add_routes(app, towns, broken, app.state.cache)
    return app


def _given(*pairs: tuple[str, str | None]) -> tuple[tuple[str, str], ...]:
    """A job's parameters: the optional ones the request gave."""
    return tuple((k, v) for k, v in pairs if v is not None)


def _add_routes(
    app: FastAPI, towns: dict[str, ServedTown], broken: dict[str, str], cache: ResultCache
) -> None:
    """The routes, under ``/api/towns`` and upstream's ``/debug/towns``; ``broken`` are the
    unreadable files' reasons by file stem."""

    def town_file(town_id: str) -> str:
        served = towns.get(town_id)
        if served is None and town_id in broken:
            raise Refusal(400, broken[town_id])
        if served is None:
            raise Refusal(404, f"unknown town {town_id!r}")
        return str(served.path)

    async def list_towns() -> list[TownEntry]:
        return [TownEntry(townId=t.town_id, file=t.path.name, kind=t.kind)
                for t in towns.values()]  # fmt: skip

    async def replay(
        request: Request, town_id: TownId, window: Annotated[Window, Body()]
    ) -> Response:
        params = (("from", window.from_), ("to", window.to))
        return await _answer(request, cache, Job(REPLAY_EVENTS, town_file(town_id), params))

    async def reconcile(
        request: Request, town_id: TownId, body: Annotated[DryRunBody | None, Body()] = None
    ) -> Response:
        params = () if body is None or body.now is None else (("now", body.now),)
        return await _answer(request, cache, Job(DRY_RUN, town_file(town_id), params))

    async def status(request: Request, town_id: TownId) -> Response:
        return await _answer(request, cache, Job(STATUS, town_file(town_id)))

    async def upstream_status(request: Request, town_id: TownId) -> Response:
        return await _answer(request, cache, Job(DEBUG_STATUS, town_file(town_id)))

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
    _add_diagnosis(app, town_file, cache)


def _add_diagnosis(app: FastAPI, town_file: Callable[[str], str], cache: ResultCache) -> None:
    """reportgen's own route (not upstream's, so only under ``/api``): a town's verdict and
    findings over an optional window."""

    async def diagnosis(
        request: Request,
        town_id: TownId,
        start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
        end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
    ) -> Response:
        params = _given(("from", start), ("to", end))
        return await _answer(request, cache, Job(DIAGNOSIS, town_file(town_id), params))

    app.get("/api/towns/{townId}/diagnosis", tags=["api"], responses=_ERRORS,
            operation_id="diagnosis_api")(diagnosis)  # fmt: skip
