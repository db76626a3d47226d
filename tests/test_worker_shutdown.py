"""Pool workers end with the build that started them, however it ends.

A worker waits on a pipe whose write end it also holds, so a building
process killed outright (``kill -9``, the OOM killer) used to leave its
workers blocked forever, each holding a town's worth of memory. These tests
kill real processes: a real ``reportgen build --jobs 2``, and a process that
relies on the portable watchdog alone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from reportgen.sim import simulate_town

#: Every wait in these tests is bounded by this many seconds.
DEADLINE = 20.0
CLI = "from reportgen.cli import main; main()"


@pytest.fixture(scope="module")
def many_towns(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sixteen copies of a 1 h town: enough work to keep two workers busy for seconds.

    The copies share a town id, so all but one fail as duplicates, but only
    after a worker has loaded and rendered each of them.
    """
    folder = tmp_path_factory.mktemp("many")
    result = simulate_town("healthy-day", seed=5, hours=1, out_dir=folder)
    assert result.path is not None
    for i in range(16):
        shutil.copyfile(result.path, folder / f"copy-{i:02d}.sqlite")
    return folder


def _children(pid: int) -> list[int]:
    """The child processes of ``pid``, from /proc (every thread's list)."""
    found: list[int] = []
    for listing in Path(f"/proc/{pid}/task").glob("*/children"):
        found += [int(p) for p in listing.read_text().split()]
    return sorted(set(found))


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie has ended: it only awaits reaping)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def _wait_until(check: Callable[[], bool], what: str) -> None:
    """Poll ``check()`` until it is true; fail naming ``what`` after :data:`DEADLINE`."""
    end = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def reaped() -> Iterator[list[int]]:
    """Pids to SIGKILL after the test whatever happens, so a failure leaves no orphan."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if _running(pid):
            os.kill(pid, signal.SIGKILL)


def test_killing_a_build_kills_its_pool_workers(
    many_towns: Path, tmp_path: Path, reaped: list[int]
) -> None:
    assert Path("/proc/self/task").is_dir(), "finding the workers needs Linux /proc"
    args = ["build", str(many_towns), "--out", str(tmp_path / "site"), "--jobs", "2"]
    build = subprocess.Popen(
        [sys.executable, "-c", CLI, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    reaped.append(build.pid)
    try:
        _wait_until(lambda: len(_children(build.pid)) == 2 or build.poll() is not None, "workers")
        workers = _children(build.pid)
        reaped.extend(workers)
        assert build.poll() is None and len(workers) == 2, "the build ended before it was killed"
    finally:
        build.kill()
        build.wait()
    _wait_until(lambda: not any(_running(w) for w in workers), f"workers {workers} to end")


WATCHED_CHILD = """
import os, sys, time
from reportgen.report import executors
executors.WATCH_INTERVAL = 0.05
builder = os.getpid()
child = os.fork()
if child == 0:
    executors.die_with_parent(builder, kernel=False)
    print("armed", flush=True)
    time.sleep(30)
    os._exit(0)
print(child, flush=True)
time.sleep(30)
"""


def test_the_watchdog_alone_ends_a_worker_whose_parent_died(reaped: list[int]) -> None:
    """Without the kernel's death signal (other systems), the watchdog thread ends it."""
    parent = subprocess.Popen(
        [sys.executable, "-c", WATCHED_CHILD], stdout=subprocess.PIPE, text=True
    )
    reaped.append(parent.pid)
    assert parent.stdout is not None
    lines = {parent.stdout.readline().strip(), parent.stdout.readline().strip()}
    lines.discard("armed")
    child = int(lines.pop())
    reaped.append(child)
    parent.kill()
    parent.wait()
    _wait_until(lambda: not _running(child), "the watched child to end")
    parent.stdout.close()


def test_a_worker_whose_builder_is_already_gone_exits_at_once(tmp_path: Path) -> None:
    """The building process died before the worker armed its death signal: it exits."""
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    code = (
        "from reportgen.report.executors import die_with_parent\n"
        f"die_with_parent({gone.pid})\n"
        "print('still here')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=DEADLINE
    )
    assert (result.returncode, result.stdout, result.stderr) == (1, "", "")
