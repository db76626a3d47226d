"""``reportgen serve``'s result cache: an equal request on an unchanged file computes once.

A key is the job (route, file, parameters) plus the file's modification time
and size, and its ``-wal`` file's, so a town written since is computed
afresh. Equal requests arriving while the first is computing share its
result (one job, however many clients wait); the job is cancelled only when
every one of them has gone. Only successful bodies are kept, the most
recently used ``entries`` of them up to ``max_bytes`` in all.
"""

from __future__ import annotations

import asyncio
import os
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any

from reportgen.server_jobs import Job

Key = tuple[Job, tuple[int, ...]]


def file_stamp(path: str) -> tuple[int, ...] | None:
    """``(mtime_ns, size)`` of the file and of its ``-wal`` (zeros if none); ``None`` if gone."""
    try:
        main = os.stat(path)
    except OSError:
        return None
    try:
        wal = os.stat(f"{path}-wal")
        tail = (wal.st_mtime_ns, wal.st_size)
    except OSError:
        tail = (0, 0)
    return (main.st_mtime_ns, main.st_size, *tail)


@dataclass(eq=False)
class _Flight:
    loop: asyncio.AbstractEventLoop
    task: asyncio.Task[bytes]
    waiters: int = 0


class ResultCache:
    """Bodies by key, and the computations in flight (module docstring)."""

    def __init__(
        self,
        compute: Callable[[Job], Coroutine[Any, Any, bytes]],
        entries: int = 64,
        max_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self._compute = compute
        self.entries = entries
        self.max_bytes = max_bytes
        self.hits = 0
        self._done: OrderedDict[Key, bytes] = OrderedDict()
        self._bytes = 0
        self._flights: dict[Key, _Flight] = {}

    def cached(self, job: Job) -> bytes | None:
        """The job's body if the cache holds it for the file as it is now."""
        stamp = file_stamp(job.path)
        if stamp is None or (body := self._done.get((job, stamp))) is None:
            return None
        self._done.move_to_end((job, stamp))
        self.hits += 1
        return body

    async def get(self, job: Job) -> bytes:
        """The job's body: from the cache, from an equal job in flight, or computed now."""
        body = self.cached(job)
        if body is not None:
            return body
        stamp = file_stamp(job.path)
        if stamp is None:
            return await self._compute(job)
        key = (job, stamp)
        flight = self._flight(key, job)
        flight.waiters += 1
        try:
            return await asyncio.shield(flight.task)
        finally:
            flight.waiters -= 1
            if flight.waiters == 0 and not flight.task.done():
                flight.task.cancel()  # the last client went away: stop the work

    def _flight(self, key: Key, job: Job) -> _Flight:
        """The computation of ``key`` on this loop, started if there is none."""
        loop = asyncio.get_running_loop()
        flight = self._flights.get(key)
        if flight is None or flight.loop is not loop or flight.task.done():
            flight = _Flight(loop, loop.create_task(self._compute(job)))
            self._flights[key] = flight
            flight.task.add_done_callback(partial(self._settle, key, flight))
        return flight

    def _settle(self, key: Key, flight: _Flight, task: asyncio.Task[Any]) -> None:
        """A computation ended: forget the flight, keep a successful body."""
        if self._flights.get(key) is flight:
            del self._flights[key]
        if task.cancelled() or task.exception() is not None:
            return
        body: bytes = task.result()
        if len(body) > self.max_bytes:
            return
        replaced = self._done.pop(key, None)
        self._bytes -= 0 if replaced is None else len(replaced)
        self._done[key] = body
        self._bytes += len(body)
        while len(self._done) > self.entries or self._bytes > self.max_bytes:
            _, old = self._done.popitem(last=False)
            self._bytes -= len(old)
