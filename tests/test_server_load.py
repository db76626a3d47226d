"""The debug API under load, over real HTTP on 127.0.0.1: bursts, a full queue, timeouts,
clients that go away, and the result cache. The towns are small simulated ones (2 h of
``healthy-day``: a status takes about 0.15 s, a whole-window replay about 0.3 s).

Each test bounds itself (client timeouts, polls with deadlines); none asserts a speed.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from reportgen.replay import open_source
from reportgen.server import create_app, listen
from reportgen.server_pool import Limits, WorkerPool
from reportgen.sim import simulate_town
from reportgen.town import clock

ANSWERS = {200, 404, 429, 503}


@pytest.fixture(scope="module")
def towns(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two 2 h simulated towns in one directory."""
    folder = tmp_path_factory.mktemp("load")
    for seed in (1, 2):
        assert simulate_town("healthy-day", seed=seed, hours=2, out_dir=folder).path is not None
    return folder


def town_ids(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.sqlite"))


def data_range(folder: Path) -> tuple[str, str]:
    found = open_source(sorted(folder.glob("*.sqlite"))[0]).data_range()
    assert found is not None
    return found


def minutes_after(start: str, minutes: int) -> str:
    return clock.iso(clock.to_ms(start) + minutes * clock.MINUTE_MS)


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """A real uvicorn server for ``app`` on a free loopback port; its base URL."""
    sock = listen("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="error", timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        until(lambda: server.started, "the server to start")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


def until(condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.005)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def raw_post(base: str, path: str, body: bytes) -> socket.socket:
    """Send a POST on a plain socket and leave its answer unread (the caller reads or closes)."""
    host, port = base.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=30)
    conn.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body
    )
    return conn


def read_status(conn: socket.socket) -> int:
    data = b""
    while chunk := conn.recv(65536):
        data += chunk
    conn.close()
    return int(data.split(b" ", 2)[1])


def full_window(folder: Path) -> bytes:
    start, end = data_range(folder)
    return f'{{"from": "{start}", "to": "{end}"}}'.encode()


def mixed_request(i: int, ids: list[str], start: str) -> tuple[str, str, Any]:
    """Request ``i`` of a burst: status, replay-events, dry-run or an unknown town."""
    town = ids[i // 4 % len(ids)]
    kind = i % 4
    if kind == 0:
        return "GET", f"/api/towns/{town}/status", None
    if kind == 1:
        window = {"from": start, "to": minutes_after(start, 10 + i % 100)}
        return "POST", f"/api/towns/{town}/debug/replay-events", window
    if kind == 2:
        return (
            "POST",
            f"/api/towns/{town}/debug/reconcile-dry-run",
            {"now": minutes_after(start, i)},
        )
    return "GET", f"/api/towns/no-such-town-{i}/status", None


@contextmanager
def serving(directory: Path, log: Path, *options: str) -> Iterator[str]:
    """``reportgen serve DIRECTORY --port 0 OPTIONS`` in a child process; its base URL."""
    command = [sys.executable, "-c", "from reportgen.cli import main; main()", "serve",
               str(directory), "--port", "0", *options]  # fmt: skip
    with log.open("wb") as sink:
        child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        found: list[str] = []

        def started() -> bool:
            assert child.poll() is None, log.read_text(encoding="utf-8")
            found.extend(re.findall(r"on (http://127\.0\.0\.1:\d+) ", log.read_text("utf-8")))
            return bool(found)

        until(started, "reportgen serve to start", seconds=60)
        yield found[0]
    finally:
        child.terminate()
        child.wait(30)


def probe_towns(base: str, stop: threading.Event, seen: list[int | str]) -> None:
    """``GET /api/towns`` every 50 ms until ``stop`` (a thread: its own loop, so the burst's
    client does not delay it); each answer's status, or why none came."""
    with httpx.Client(base_url=base, timeout=2.0) as client:
        while not stop.is_set():
            try:
                seen.append(client.get("/api/towns").status_code)
            except httpx.TimeoutException:
                seen.append("no answer within 2 s")
            time.sleep(0.05)


async def burst(base: str, folder: Path, count: int) -> list[httpx.Response]:
    """``count`` concurrent mixed requests."""
    ids, (start, _) = town_ids(folder), data_range(folder)
    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=count + 10)
    async with httpx.AsyncClient(base_url=base, timeout=60.0, limits=limits) as client:
        requests = [mixed_request(i, ids, start) for i in range(count)]
        return list(
            await asyncio.gather(
                *(client.request(method, path, json=body) for method, path, body in requests)
            )
        )


def test_a_burst_of_200_is_answered_and_the_town_list_never_waits(
    towns: Path, tmp_path: Path
) -> None:
    """Was: every request of the burst timed out and the list of towns went unanswered for
    minutes while the abandoned work went on. The town list is probed during the burst and
    for a second after it."""
    options = ("--workers", "2", "--queue", "4", "--timeout", "20")
    with serving(towns, tmp_path / "serve.log", *options) as base:
        stop, probes = threading.Event(), []
        prober = threading.Thread(target=probe_towns, args=(base, stop, probes))
        prober.start()
        try:
            answers = asyncio.run(burst(base, towns, 200))
            time.sleep(1.0)
        finally:
            stop.set()
            prober.join(10)
    codes = Counter(r.status_code for r in answers)
    assert set(codes) <= ANSWERS, codes
    assert codes[200] >= 2 and codes[404] == 50
    for response in answers:
        assert response.headers["content-type"] == "application/json"
        if response.status_code != 200:
            assert set(response.json()) == {"error"}
        if response.status_code == 503:
            assert int(response.headers["retry-after"]) >= 1
    assert len(probes) >= 5 and set(probes) == {200}, Counter(probes)


def test_a_full_queue_answers_503_with_retry_after(towns: Path) -> None:
    app = create_app(towns, limits=Limits(workers=1, queue=0, timeout=30))
    pool: WorkerPool = app.state.pool
    pool.start()
    town = town_ids(towns)[0]
    with running(app) as base:
        busy = raw_post(base, f"/api/towns/{town}/debug/replay-events", full_window(towns))
        until(lambda: pool.running == 1, "the replay to start")
        refused = httpx.post(f"{base}/api/towns/{town}/debug/reconcile-dry-run", timeout=30)
        assert refused.status_code == 503
        assert refused.json()["error"].startswith("busy")
        assert int(refused.headers["retry-after"]) >= 1
        assert read_status(busy) == 200


def test_a_timed_out_request_answers_504_and_its_computation_stops(towns: Path) -> None:
    app = create_app(towns, limits=Limits(workers=1, queue=0, timeout=0.1))
    pool: WorkerPool = app.state.pool
    pool.start()
    [worker] = pool.pids()
    town = town_ids(towns)[0]
    with running(app) as base:
        response = httpx.post(
            f"{base}/api/towns/{town}/debug/replay-events",
            content=full_window(towns),
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert response.status_code == 504
        assert response.json() == {"error": "timed out after 0.1 s; the computation was stopped"}
        until(lambda: not alive(worker), "the timed-out worker to be stopped")
        assert pool.completed == 0 and pool.pids() == []
        assert httpx.get(f"{base}/api/towns", timeout=5).status_code == 200


def test_a_client_that_goes_away_stops_its_computation(towns: Path) -> None:
    app = create_app(towns, limits=Limits(workers=1, queue=4, timeout=30))
    pool: WorkerPool = app.state.pool
    pool.start()
    [worker] = pool.pids()
    town = town_ids(towns)[0]
    with running(app) as base:
        gone = raw_post(base, f"/api/towns/{town}/debug/replay-events", full_window(towns))
        until(lambda: pool.running == 1, "the replay to start")
        gone.close()
        until(lambda: not alive(worker), "the abandoned worker to be stopped")
        assert pool.completed == 0
        status = httpx.get(f"{base}/api/towns/{town}/status", timeout=30)
        assert status.status_code == 200 and pool.completed == 1


async def concurrent_gets(base: str, path: str, count: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base, timeout=60.0) as client:
        return list(await asyncio.gather(*(client.get(path) for _ in range(count))))


def test_equal_requests_on_an_unchanged_town_compute_once(towns: Path, tmp_path: Path) -> None:
    for path in towns.glob("*.sqlite"):
        shutil.copy2(path, tmp_path / path.name)
    app = create_app(tmp_path, limits=Limits(workers=2))
    pool: WorkerPool = app.state.pool
    town = town_ids(tmp_path)[0]
    path = f"/api/towns/{town}/status"
    with running(app) as base:
        answers = asyncio.run(concurrent_gets(base, path, 20))
        assert {r.status_code for r in answers} == {200}
        assert len({r.content for r in answers}) == 1
        assert pool.completed == 1
        again = httpx.get(f"{base}{path}", timeout=30)
        assert again.content == answers[0].content and pool.completed == 1
        assert app.state.cache.hits >= 1
        file = tmp_path / f"{town}.sqlite"
        stat = file.stat()
        os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        assert httpx.get(f"{base}{path}", timeout=30).status_code == 200
        assert pool.completed == 2
