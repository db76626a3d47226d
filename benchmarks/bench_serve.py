"""``reportgen serve`` under concurrent load: latency percentiles, answers, and the town list.

Simulates ``--towns`` ``healthy-day`` towns of ``--hours`` each, then for each
scenario starts a fresh server on 127.0.0.1 (a fresh result cache), fires the
requests at once over real HTTP, and reports p50/p99 latency (all answers,
and the 200s alone), the answers by status, the wall time, the CPU seconds
the server and its workers used, and the slowest ``GET /api/towns`` seen
while the burst ran (probed every 50 ms).

Scenarios:

* ``sequential``: distinct dry-runs one after another (the baseline);
* ``processes, all admitted``: the same requests at once, on the worker
  processes with a queue long enough to admit them all;
* ``threads, all admitted``: the same on threads in the server process (how
  a thread pool would do: one core's worth of Python, and no way to stop a
  job), for the choice between the two;
* ``status xN``: N equal status requests at once (the original probe: one
  computation, shared);
* ``mixed xN``: N distinct requests at once (status, replay-events, dry-run,
  unknown town) with the default queue: what is shed, and how fast.

Run: ``.venv/bin/python benchmarks/bench_serve.py [--hours 24] [--towns 2] [--repeat 3]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from run import machine

from reportgen.replay import open_source
from reportgen.server_jobs import Job, answer
from reportgen.server_pool import Refusal, usable_cores
from reportgen.sim import simulate_town
from reportgen.town import clock

Request = tuple[str, str, Any]


class ThreadRunner:
    """Jobs on threads in the server process (for comparison only: no queue bound, no stop)."""

    def __init__(self, workers: int) -> None:
        self._threads = ThreadPoolExecutor(workers)

    async def run(self, job: Job) -> bytes:
        kind, value = await asyncio.get_running_loop().run_in_executor(self._threads, answer, job)
        if kind == "ok":
            return bytes(value)
        raise Refusal(400 if kind == "refused" else 500, str(value))

    def close(self) -> None:
        self._threads.shutdown(wait=False, cancel_futures=True)


def serve_threads(directory: str, port: int, workers: int) -> None:
    """The API with :class:`ThreadRunner` (run in a child process of the benchmark)."""
    import uvicorn

    from reportgen.server import create_app

    app = create_app(directory, pool=ThreadRunner(workers))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (the machine may be shared: say how busy it was)."""
    try:
        return " ".join(Path("/proc/loadavg").read_text(encoding="utf-8").split()[:3])
    except OSError:
        return "unknown"


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds (user + system) used so far by ``root`` and every process below it (the
    workers are the forkserver's children): a cost that, unlike wall time, does not depend
    on what else the machine runs."""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    tree, grew = {root}, True
    while grew:
        below = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= below
        grew = bool(below)
    return sum(used.get(pid, 0.0) for pid in tree)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(directory: Path, mode: str, queue: int | None = None) -> Iterator[tuple[str, int]]:
    """A fresh server in a child process (``processes``: ``reportgen serve``; ``threads``)."""
    port = free_port()
    if mode == "threads":
        command = [sys.executable, __file__, "--serve-threads", str(directory), str(port)]
    else:
        command = [sys.executable, "-c", "from reportgen.cli import main; main()", "serve",
                   str(directory), "--port", str(port)]  # fmt: skip
        command += [] if queue is None else ["--queue", str(queue)]
    child = subprocess.Popen(command, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{base}/api/towns", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base, child.pid
    finally:
        child.terminate()
        child.wait(30)


def request(kind: int, i: int, ids: list[str], span: tuple[str, str]) -> Request:
    """Request ``i`` of a ``kind``: 0 status, 1 replay-events of the half hour before a time,
    2 dry-run at a time, 3 an unknown town; the times spread over the data, distinct per ``i``."""
    town = ids[i // 4 % len(ids)]
    lo, hi = clock.to_ms(span[0]), clock.to_ms(span[1])
    at_ms = lo + int(((i + 1) * 0.6180339887 % 1) * (hi - lo))
    at = clock.iso(at_ms)
    if kind == 0:
        return "GET", f"/api/towns/{town}/status", None
    if kind == 1:
        since = clock.iso(max(lo, at_ms - 30 * clock.MINUTE_MS))
        return "POST", f"/api/towns/{town}/debug/replay-events", {"from": since, "to": at}
    if kind == 2:
        return "POST", f"/api/towns/{town}/debug/reconcile-dry-run", {"now": at}
    return "GET", f"/api/towns/unknown-{i}/status", None


async def timed(client: httpx.AsyncClient, request: Request) -> tuple[int, float]:
    method, path, body = request
    started = time.perf_counter()
    response = await client.request(method, path, json=body)
    return response.status_code, time.perf_counter() - started


def probe(base: str, done: threading.Event, slowest: list[float]) -> None:
    """The slowest ``GET /api/towns`` until ``done`` (a thread of its own: the burst's client
    loop would otherwise delay the probe, not the server)."""
    with httpx.Client(base_url=base, timeout=600) as client:
        while not done.is_set():
            started = time.perf_counter()
            client.get("/api/towns")
            slowest.append(time.perf_counter() - started)
            time.sleep(0.05)


async def send(base: str, requests: list[Request], at_once: bool) -> list[tuple[int, float]]:
    limits = httpx.Limits(max_connections=len(requests) + 10)
    async with httpx.AsyncClient(base_url=base, timeout=600, limits=limits) as client:
        if at_once:
            return list(await asyncio.gather(*(timed(client, r) for r in requests)))
        return [await timed(client, r) for r in requests]


def fire(base: str, requests: list[Request], at_once: bool) -> dict[str, Any]:
    """Send ``requests`` (all at once, or one by one) and summarise the answers."""
    done, seen = threading.Event(), [0.0]
    prober = threading.Thread(target=probe, args=(base, done, seen))
    prober.start()
    started = time.perf_counter()
    try:
        results = asyncio.run(send(base, requests, at_once))
    finally:
        done.set()
        prober.join()
    return summary(results, time.perf_counter() - started, max(seen))


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


def summary(results: list[tuple[int, float]], wall: float, slowest_list: float) -> dict[str, Any]:
    every = [s for _, s in results]
    ok = [s for code, s in results if code == 200]
    return {
        "answers": dict(sorted(Counter(code for code, _ in results).items())),
        "p50_s": percentile(every, 0.5),
        "p99_s": percentile(every, 0.99),
        "p50_200_s": percentile(ok, 0.5),
        "p99_200_s": percentile(ok, 0.99),
        "wall_s": round(wall, 2),
        "slowest_town_list_s": round(slowest_list, 3),
    }


Scenario = tuple[str, str, int | None, list[Request], bool]


def scenarios(ids: list[str], span: tuple[str, str], repeat: int) -> list[Scenario]:
    """(name, server mode, queue, requests, at once) for every scenario; the comparison of
    processes and threads is run ``repeat`` times, alternately (a shared machine's load
    drifts within minutes)."""
    distinct = [request(2, i, ids, span) for i in range(50)]
    status = ("GET", f"/api/towns/{ids[0]}/status", None)
    mixed = [request(i % 4, i, ids, span) for i in range(200)]
    compared: list[Scenario] = []
    for run in range(1, repeat + 1):
        compared += [
            (f"sequential x50 dry-runs, run {run}", "processes", None, distinct, False),
            (
                f"processes, all admitted, x50 dry-runs, run {run}",
                "processes",
                1000,
                distinct,
                True,
            ),
            (f"threads, all admitted, x50 dry-runs, run {run}", "threads", None, distinct, True),
        ]
    return [
        *compared,
        ("status x50 (equal)", "processes", None, [status] * 50, True),
        ("status x200 (equal)", "processes", None, [status] * 200, True),
        ("mixed x50", "processes", None, mixed[:50], True),
        ("mixed x200", "processes", None, mixed, True),
    ]


def bench_serve(hours: float = 24.0, towns: int = 2, repeat: int = 3) -> dict[str, Any]:
    """Every scenario on ``towns`` simulated towns of ``hours``."""
    figures: dict[str, Any] = {"towns": towns, "hours": hours, **machine()}
    figures["load average before"] = load_average()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        for seed in range(towns):
            simulate_town("healthy-day", seed=seed, hours=hours, out_dir=directory)
        ids = sorted(p.stem for p in directory.glob("*.sqlite"))
        found = open_source(directory / f"{ids[0]}.sqlite").data_range()
        assert found is not None
        for name, mode, queue, requests, at_once in scenarios(ids, found, repeat):
            print(f"  {name} …", file=sys.stderr, flush=True)
            with server(directory, mode, queue) as (base, pid):
                cpu = tree_cpu_seconds(pid)
                figures[name] = fire(base, requests, at_once)
                figures[name]["cpu_s"] = round(tree_cpu_seconds(pid) - cpu, 2)
    figures["load average after"] = load_average()
    return figures


def markdown(figures: dict[str, Any]) -> str:
    """The run as two Markdown tables: where it ran, then one row per scenario."""
    lines = ["| | |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in figures.items() if not isinstance(v, dict)]
    columns = ["answers", "p50_s", "p99_s", "p50_200_s", "p99_200_s", "wall_s", "cpu_s",
               "slowest_town_list_s"]  # fmt: skip
    lines += ["", "| scenario | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in figures.items():
        if isinstance(row, dict):
            cells = [", ".join(f"{k}: {v}" for k, v in row[c].items()) if c == "answers"
                     else str(row[c]) for c in columns]  # fmt: skip
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hours", type=float, default=24.0)
    parser.add_argument("--towns", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3, help="runs of the processes/threads pair")
    parser.add_argument("--serve-threads", nargs=2, metavar=("DIR", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_threads:
        serve_threads(args.serve_threads[0], int(args.serve_threads[1]), usable_cores())
        return
    figures = bench_serve(args.hours, args.towns, args.repeat)
    print(json.dumps(figures, indent=2))
    print(markdown(figures))


if __name__ == "__main__":
    main()
