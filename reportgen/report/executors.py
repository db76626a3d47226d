"""Where town tasks run: in this process, in a local process pool, or on a Dask cluster.

Every executor takes the same picklable pieces (a module-level task
function, one :class:`~reportgen.report.fleet.FleetContext`, a list of
:class:`~reportgen.report.fleet.TownTask`) and yields
:class:`~reportgen.report.fleet.TownOutcome` objects as towns finish, in
whatever order they finish. The build orders them by task index, so the
site does not depend on which executor ran it, nor on timing.

The context goes to each worker once (a pool initializer; a Dask
``scatter(broadcast=True)``), not once per town: it holds the previous
run's episodes, which grow with the fleet.

An exception that escapes a task (a worker killed by the OOM killer, a
result that cannot be unpickled) becomes that town's error, like an
exception inside it: one town never fails the fleet.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

from reportgen import progress
from reportgen.errors import BadInputError
from reportgen.report.fleet import FleetContext, TownOutcome, TownTask, describe_error

#: ``task(town, ctx) -> outcome``; must be a module-level function (pickled by reference).
TaskFn = Callable[[TownTask, FleetContext], TownOutcome]

EXECUTORS = ("local", "dask")
#: Outcomes as towns finish; closing the generator early cancels the towns not started.
Outcomes = Generator[TownOutcome, None, None]


class Executor(Protocol):
    """Runs town tasks and yields their outcomes as they complete."""

    def run(self, task: TaskFn, ctx: FleetContext, towns: Sequence[TownTask]) -> Outcomes: ...


def _crashed(town: TownTask, exc: BaseException) -> TownOutcome:
    return TownOutcome(town.index, str(town.source), error=describe_error(town.source, exc))


@dataclass(frozen=True)
class SerialExecutor:
    """Every town in this process, one after the other (``--jobs 1``; any loader works)."""

    def run(self, task: TaskFn, ctx: FleetContext, towns: Sequence[TownTask]) -> Outcomes:
        for i, town in enumerate(towns):
            # a town's own progress (its replay) is its share of the whole: the bar the
            # build draws per town then only moves forward
            with progress.step(i, len(towns), town.source.name):
                outcome = task(town, ctx)
            yield outcome


#: The context of the current pool worker (set once by :func:`_init_worker`).
_WORKER_CONTEXT: FleetContext | None = None
#: How often a worker's watchdog checks that its parent is still there (seconds).
WATCH_INTERVAL = 0.5
#: ``prctl`` option: the signal a process gets when its parent dies (``<linux/prctl.h>``).
_PR_SET_PDEATHSIG = 1


def _init_worker(ctx: FleetContext, builder: int) -> None:
    """Pool initializer: keep the context, and tie this worker's life to ``builder``'s."""
    global _WORKER_CONTEXT
    _WORKER_CONTEXT = ctx
    die_with_parent(builder)


def die_with_parent(builder: int, *, kernel: bool = True) -> None:
    """End this process when its parent ends (the building process ``builder``, or the
    process between them, such as a fork server, which ends with it).

    A pool worker blocks on a pipe the parent writes to, and it holds that
    pipe's write end too, so it never sees end-of-file: when the building
    process is killed outright (``kill -9``, the OOM killer) its workers would
    wait forever. On Linux the kernel kills this process with its parent
    (``PR_SET_PDEATHSIG``); everywhere, a daemon thread checks every
    :data:`WATCH_INTERVAL` seconds that the parent is still the same and exits
    if not. ``kernel=False`` relies on the thread alone.

    The parent may die before the signal is armed: the parent is read first,
    and the process exits if, once armed, the parent has changed or the
    building process is gone.
    """
    parent = os.getppid()
    if kernel:
        _arm_death_signal()
    if os.getppid() != parent or not _alive(builder):
        os._exit(1)
    threading.Thread(
        target=_watch_parent, args=(parent,), name="reportgen-parent-watch", daemon=True
    ).start()


def _arm_death_signal() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a no-op elsewhere)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - no libc prctl: the watchdog remains
        pass


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` exists (one we may not signal exists too)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process
        return True
    return True


def _watch_parent(parent: int) -> None:
    """Exit the process once it has been handed to another parent (its own has died)."""
    while os.getppid() == parent:
        time.sleep(WATCH_INTERVAL)
    os._exit(1)


def _in_worker(task: TaskFn, town: TownTask) -> TownOutcome:
    if _WORKER_CONTEXT is None:  # pragma: no cover - the initializer always runs first
        raise RuntimeError("worker context not initialised")
    return task(town, _WORKER_CONTEXT)


#: ``yield from`` a pool: outcomes, then the towns in flight when a worker died (if one did).
PoolRun = Generator[TownOutcome, None, list[TownTask]]


@dataclass(frozen=True)
class ProcessExecutor:
    """A local process pool of ``jobs`` workers (the default: one per core).

    At most ``jobs + 1`` towns are in flight at a time, so when a worker dies
    (the OOM killer; a crash in native code) and takes the pool with it, only
    those towns are suspects: each is retried alone, the one that kills its
    worker again fails, and the rest of the fleet goes on in a new pool.
    """

    jobs: int

    def run(self, task: TaskFn, ctx: FleetContext, towns: Sequence[TownTask]) -> Outcomes:
        if self.jobs <= 1 or len(towns) <= 1:
            yield from SerialExecutor().run(task, ctx, towns)
            return
        pending = deque(towns)
        while pending:
            suspects = yield from _pool(task, ctx, pending, min(self.jobs, len(pending)))
            for town in suspects:
                if (yield from _pool(task, ctx, deque([town]), 1)):
                    yield _crashed(town, RuntimeError(WORKER_DIED))


WORKER_DIED = "the worker process building this town died (killed, or out of memory)"


def _pool(task: TaskFn, ctx: FleetContext, pending: deque[TownTask], workers: int) -> PoolRun:
    """Run ``pending`` towns (consuming it) until done, or until a worker dies."""
    pool = ProcessPoolExecutor(workers, initializer=_init_worker, initargs=(ctx, os.getpid()))
    inflight: dict[Future[TownOutcome], TownTask] = {}
    try:
        while pending or inflight:
            while pending and len(inflight) <= workers:
                town = pending.popleft()
                inflight[pool.submit(_in_worker, task, town)] = town
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: inflight[f].index):
                town = inflight.pop(future)
                try:
                    outcome = future.result()
                except BrokenProcessPool:
                    return [town, *sorted(inflight.values(), key=lambda t: t.index)]
                except Exception as exc:  # e.g. a result that cannot be unpickled
                    outcome = _crashed(town, exc)
                yield outcome
        return []
    finally:  # an interrupted build (^C, an error) cancels what has not started
        pool.shutdown(wait=True, cancel_futures=True)


@dataclass(frozen=True)
class DaskExecutor:
    """Tasks on a Dask cluster (``dask[distributed]``): ``address`` of its scheduler.

    Workers write town files under the context's cache directory, so it must
    be a path every worker and this process see (the same machine, or a
    shared filesystem).
    """

    address: str

    def run(self, task: TaskFn, ctx: FleetContext, towns: Sequence[TownTask]) -> Outcomes:
        distributed = _distributed()
        with distributed.Client(self.address) as client:
            [shared] = client.scatter([ctx], broadcast=True)
            futures = client.map(task, list(towns), ctx=shared, pure=False)
            by_key = dict(zip((f.key for f in futures), towns, strict=True))
            for future in distributed.as_completed(futures):
                town = by_key[future.key]
                try:
                    outcome: TownOutcome = future.result()
                except Exception as exc:  # KilledWorker, a lost result: this town failed
                    outcome = _crashed(town, exc)
                future.release()  # let the cluster forget it: results are streamed
                yield outcome


def _distributed() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise BadInputError(
            "--executor dask needs the dask extra: pip install 'reportgen[dask]'"
        ) from exc
    return distributed


def make_executor(name: str, jobs: int | None, scheduler: str | None) -> Executor:
    """The executor the CLI options ask for (``local``: a process pool; ``dask``: a cluster)."""
    if name == "dask":
        if not scheduler:
            raise BadInputError("--executor dask needs --scheduler ADDRESS (tcp://host:8786)")
        return DaskExecutor(scheduler)
    if name != "local":
        raise BadInputError(f"--executor {name}: expected one of {', '.join(EXECUTORS)}")
    if scheduler:
        raise BadInputError("--scheduler only applies to --executor dask")
    return ProcessExecutor(jobs or default_jobs())


def default_jobs() -> int:
    """The cores this process may use."""
    return len(os.sched_getaffinity(0))
