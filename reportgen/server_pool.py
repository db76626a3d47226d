"""Bounded, killable workers for ``reportgen serve``'s heavy routes.

Replay, dry-run and status rebuild a town in memory: tenths of a second to
seconds of CPU each. Run on the server's event loop or its thread pool, a
burst of them starves everything (the GIL shares one core among all of them)
and a request whose client gave up keeps computing. So they run here:

* in ``workers`` worker processes (default: the usable cores), each serving
  one job at a time over a pipe, started from a forkserver that has already
  imported the engine (a replacement starts in milliseconds);
* behind a queue of at most ``queue`` waiting jobs: one more is refused at
  once with 503 and a ``Retry-After`` estimated from recent job times;
* within ``timeout`` seconds from arrival: a job still waiting then answers
  503, a running one 504, and its worker process is killed (and replaced on
  demand), so abandoned work stops instead of running on. A cancelled job
  (its client went away) kills its worker the same way.

The asyncio bookkeeping (slots, the queue count) belongs to one event loop;
a new loop (each request of a Starlette ``TestClient`` without ``with`` runs
on a fresh one) gets fresh bookkeeping while the processes are kept.
"""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import signal
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Protocol

from reportgen.server_jobs import Job, Reply, answer

log = logging.getLogger("reportgen.serve")

DEFAULT_TIMEOUT = 30.0
QUEUE_PER_WORKER = 4


class Refusal(Exception):
    """An answer other than 200: its status, one-line message and extra headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def usable_cores() -> int:
    """The cores this process may run on (the affinity mask, not the machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class Limits:
    """How much heavy work ``serve`` takes on: workers, waiting jobs, seconds per request."""

    workers: int = field(default_factory=usable_cores)
    queue: int = -1  # negative: QUEUE_PER_WORKER per worker
    timeout: float = DEFAULT_TIMEOUT

    @property
    def queue_limit(self) -> int:
        return self.queue if self.queue >= 0 else QUEUE_PER_WORKER * self.workers


class JobRunner(Protocol):
    """What the app needs from a pool (the benchmark also measures a thread-based one)."""

    async def run(self, job: Job) -> bytes: ...

    def close(self) -> None: ...


def _worker_main(conn: Connection) -> None:
    """A worker process: answer jobs from the pipe until it closes (never raises per job)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        conn.send(answer(job))


def _context() -> Any:
    """A forkserver (never ``fork`` from a threaded server) that preloads the engine."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["reportgen.server_jobs"])
    return ctx


@dataclass(eq=False)
class _Worker:
    process: BaseProcess
    conn: Connection

    def call(self, job: Job) -> Reply:
        """Send one job and wait for its reply (runs in a thread; EOFError if killed)."""
        self.conn.send(job)
        reply: Reply = self.conn.recv()
        return reply

    def kill(self) -> None:
        """Stop the process now, whatever it is doing; a blocked ``call`` then gets EOFError."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


def _kill_all(workers: set[_Worker]) -> None:
    for worker in list(workers):
        worker.kill()
    workers.clear()


@dataclass
class _Slots:
    """The per-event-loop bookkeeping: worker slots, and the jobs admitted (running or waiting).

    ``admitted`` is counted at once on arrival: a burst arriving in one loop
    iteration sees every job before it, whereas the semaphore's count only
    moves when the waiting tasks get to run.
    """

    loop: asyncio.AbstractEventLoop
    free: asyncio.Semaphore
    admitted: int = 0


class WorkerPool:
    """Worker processes behind a bounded queue, with a deadline per job (module docstring)."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.completed = 0  # jobs a worker answered
        self.running = 0  # jobs on a worker now
        self._ctx = _context()
        self._idle: list[_Worker] = []
        self._live: set[_Worker] = set()
        self._lock = threading.Lock()
        self._threads = ThreadPoolExecutor(2 * self.limits.workers + 2, "reportgen-serve")
        self._slots: _Slots | None = None
        self._mean_seconds = 0.5
        self._finalizer = weakref.finalize(self, _kill_all, self._live)

    def pids(self) -> list[int]:
        """The live worker processes' ids (for tests and diagnostics)."""
        with self._lock:
            return sorted(w.process.pid for w in self._live if w.process.pid is not None)

    def start(self) -> None:
        """Start every worker now rather than on first use (the server's start-up)."""
        started = [self._spawn() for _ in range(self.limits.workers - len(self._live))]
        with self._lock:
            self._idle.extend(started)

    def close(self) -> None:
        """Kill the workers; the pool is unusable afterwards."""
        with self._lock:
            self._idle.clear()
        _kill_all(self._live)
        self._threads.shutdown(wait=False, cancel_futures=True)

    async def run(self, job: Job) -> bytes:
        """The job's JSON body; :class:`Refusal` for 400/500/503/504 (module docstring)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.limits.timeout
        slots = self._loop_slots(loop)
        if slots.admitted >= self.limits.workers + self.limits.queue_limit:
            waiting = slots.admitted - self.limits.workers
            raise self._busy(slots, f"busy: {waiting} requests already wait for a worker")
        slots.admitted += 1
        try:
            await self._wait_for_slot(slots, deadline)
            try:
                return await self._on_worker(job, deadline)
            finally:
                slots.free.release()
        finally:
            slots.admitted -= 1

    def _loop_slots(self, loop: asyncio.AbstractEventLoop) -> _Slots:
        if self._slots is None or self._slots.loop is not loop:
            self._slots = _Slots(loop, asyncio.Semaphore(self.limits.workers))
        return self._slots

    async def _wait_for_slot(self, slots: _Slots, deadline: float) -> None:
        """Take a worker slot, or answer 503 if none is free by the deadline."""
        try:
            await asyncio.wait_for(slots.free.acquire(), max(0.0, deadline - slots.loop.time()))
        except TimeoutError:
            raise self._busy(
                slots, f"busy: no worker became free within {self.limits.timeout:g} s"
            ) from None

    def _busy(self, slots: _Slots, message: str) -> Refusal:
        """503 with ``Retry-After``: the jobs ahead of a retry, at the recent job time."""
        ahead = max(slots.admitted, self.limits.workers) / self.limits.workers
        retry = max(1, math.ceil(self._mean_seconds * ahead))
        return Refusal(503, message, {"Retry-After": str(retry)})

    async def _on_worker(self, job: Job, deadline: float) -> bytes:
        """Run the job on a worker until the deadline; kill the worker if it is abandoned."""
        loop = asyncio.get_running_loop()
        worker = await self._take(loop)
        started = loop.time()
        self.running += 1
        try:
            call = loop.run_in_executor(self._threads, worker.call, job)
            reply = await asyncio.wait_for(call, max(0.0, deadline - started))
        except TimeoutError:
            self._discard(worker)
            raise Refusal(
                504, f"timed out after {self.limits.timeout:g} s; the computation was stopped"
            ) from None
        except (EOFError, OSError):
            self._discard(worker)
            raise Refusal(500, "the worker process computing this request died") from None
        except asyncio.CancelledError:
            self._discard(worker)
            raise
        finally:
            self.running -= 1
        self._give_back(worker)
        self.completed += 1
        self._mean_seconds = 0.8 * self._mean_seconds + 0.2 * (loop.time() - started)
        return _body(job, reply)

    async def _take(self, loop: asyncio.AbstractEventLoop) -> _Worker:
        """An idle worker, or a new one (started in a thread: starting blocks)."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
        spawning = loop.run_in_executor(self._threads, self._spawn)
        try:
            return await asyncio.shield(spawning)
        except asyncio.CancelledError:
            spawning.add_done_callback(self._adopt)
            raise

    def _adopt(self, spawned: asyncio.Future[_Worker]) -> None:
        """Keep a worker whose requester was cancelled while it started."""
        if not spawned.cancelled() and spawned.exception() is None:
            self._give_back(spawned.result())

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe()
        process = self._ctx.Process(
            target=_worker_main, args=(child,), daemon=True, name="reportgen-serve-worker"
        )
        process.start()
        child.close()
        worker = _Worker(process, parent)
        with self._lock:
            self._live.add(worker)
        return worker

    def _give_back(self, worker: _Worker) -> None:
        with self._lock:
            if worker in self._live:
                self._idle.append(worker)

    def _discard(self, worker: _Worker) -> None:
        """Kill a worker that timed out, died or was abandoned (off the event loop: join waits)."""
        with self._lock:
            self._live.discard(worker)
        if worker.process.is_alive():
            worker.process.kill()  # stops the computation now; reaping it may wait
        try:
            self._threads.submit(worker.kill)
        except RuntimeError:  # the pool is closing
            worker.kill()


def _body(job: Job, reply: Reply) -> bytes:
    """A worker's reply as the body, or the refusal it stands for (a failure is logged)."""
    kind, value = reply
    if kind == "ok":
        body: bytes = value
        return body
    if kind == "refused":
        raise Refusal(400, str(value))
    log.error("%s of %s failed: %s", job.route, job.path, value)
    raise Refusal(500, f"internal error: {value}")
