"""Engine benchmark: reconcile + apply of one tick on a medium and a large town.

Medium: 10 agents, 200 beads, 2 rigs. Large: 50 agents, 2,000 beads, 5 rigs.
Each run works on a fresh in-memory copy of the same town (the copy is not
timed); the figure is the median over many runs. Targets: medium ≤ 1 ms,
large ≤ 20 ms on a 2-core machine.

    python benchmarks/bench_engine.py
"""

from __future__ import annotations

import json
import random
import sqlite3
import statistics
import time
from typing import Any

from reportgen.town import clock
from reportgen.town.actions import apply_actions
from reportgen.town.config import TownConfig
from reportgen.town.context import TownCtx
from reportgen.town.db import configure
from reportgen.town.ids import DerivedIds
from reportgen.town.reconciler import reconcile
from reportgen.town.schema import create_upstream_tables, ensure_reportgen_tables

NOW = "2026-03-15T12:00:00.000Z"
#: Share of beads per status in a town at steady state (most work is done).
STATUS_MIX = (("closed", 0.86), ("failed", 0.03), ("in_review", 0.04), ("open", 0.03),
              ("in_progress", 0.04))  # fmt: skip


def _insert(conn: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    cols = ", ".join(row)
    conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(row))})",
                 tuple(row.values()))  # fmt: skip


def _statuses(beads: int, rng: random.Random) -> list[str]:
    out = [s for s, share in STATUS_MIX for _ in range(round(beads * share))]
    out += ["closed"] * (beads - len(out))
    rng.shuffle(out)
    return out


class _Builder:
    """Writes a steady-state town: the shape a busy, healthy town has between events."""

    def __init__(self, rigs: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.conn = configure(sqlite3.connect(":memory:"))
        create_upstream_tables(self.conn)
        ensure_reportgen_tables(self.conn)
        self.ids = DerivedIds("bench")
        self.now_ms = clock.to_ms(NOW)
        self.rigs = [self.ids.new_id() for _ in range(rigs)]
        for i, rig in enumerate(self.rigs):
            _insert(self.conn, "rigs", {"id": rig, "name": f"repo{i}",
                                        "git_url": f"https://github.com/acme/repo{i}",
                                        "created_at": NOW})  # fmt: skip

    def ago(self, low_ms: int, high_ms: int) -> str:
        return clock.iso(self.now_ms - self.rng.randint(low_ms, high_ms))

    def bead(self, status: str, rig: str, **cols: Any) -> str:
        bead = self.ids.new_id()
        at = self.ago(10_000, 240_000) if status != "closed" else self.ago(3_600_000, 86_400_000)
        row = {"bead_id": bead, "type": "issue", "status": status, "title": f"task {bead[:6]}",
               "rig_id": rig, "created_at": at, "updated_at": at}  # fmt: skip
        _insert(self.conn, "beads", {**row, **cols})
        return bead

    def agent(self, role: str, rig: str, status: str, hook: str | None) -> str:
        agent = self.ids.new_id()
        _insert(self.conn, "beads", {"bead_id": agent, "type": "agent", "status": "open",
                                     "title": f"{role}-{agent[:6]}", "rig_id": rig,
                                     "created_at": NOW, "updated_at": NOW})  # fmt: skip
        _insert(self.conn, "agent_metadata", {
            "bead_id": agent, "role": role, "identity": f"{agent}-{role}", "status": status,
            "current_hook_bead_id": hook, "last_activity_at": self.ago(1_000, 30_000),
            "last_event_at": self.ago(1_000, 60_000), "active_tools": json.dumps(["bash"]),
        })  # fmt: skip
        if hook:
            self.conn.execute("UPDATE beads SET assignee_agent_bead_id = ? WHERE bead_id = ?",
                              (agent, hook))  # fmt: skip
        return agent


def build_town(agents: int, beads: int, rigs: int, seed: int = 7) -> sqlite3.Connection:
    """A steady-state town: working agents on their beads, reviews in flight, history closed.

    In-progress beads are hooked by working agents with fresh heartbeats; each
    in-review bead has an open MR; open beads were dispatched moments ago (in
    their cooldown). The reconciler still evaluates every rule over every row.
    """
    b = _Builder(rigs, seed)
    in_progress: list[str] = []
    for status in _statuses(beads, b.rng):
        rig = b.rng.choice(b.rigs)
        extra: dict[str, Any] = {}
        if status == "open":
            extra = {"last_dispatch_attempt_at": b.ago(1_000, 20_000)}
        bead = b.bead(status, rig, **extra)
        if status == "in_progress":
            in_progress.append(bead)
        if status == "in_review":
            mr = b.bead("open", rig, type="merge_request", title="Review", created_by="agent")
            _insert(b.conn, "review_metadata", {"bead_id": mr, "branch": f"gt/{bead[:6]}"})
            _insert(b.conn, "bead_dependencies",
                    {"bead_id": mr, "depends_on_bead_id": bead, "dependency_type": "tracks"})  # fmt: skip
    for i, rig in enumerate(b.rigs):
        b.agent("refinery", rig, "working" if i % 2 else "idle", None)
    for i in range(agents - rigs):
        hook = in_progress.pop() if in_progress else None
        b.agent("polecat", b.rigs[i % rigs], "working" if hook else "idle", hook)
    b.conn.commit()
    return b.conn


def time_tick(town: sqlite3.Connection, runs: int) -> dict[str, float]:
    """Median / p90 ms of reconcile + apply on fresh copies of ``town``."""
    samples = []
    actions = 0
    for _ in range(runs):
        copy = configure(sqlite3.connect(":memory:"))
        town.backup(copy)
        ctx = TownCtx(conn=copy, now=NOW, config=TownConfig(), ids=DerivedIds("run"))
        t0 = time.perf_counter()
        emitted = reconcile(ctx)
        apply_actions(ctx, emitted)
        samples.append((time.perf_counter() - t0) * 1000)
        actions = len(emitted)
        copy.close()
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 3),
        "p90_ms": round(samples[int(len(samples) * 0.9)], 3),
        "runs": runs,
        "actions_per_tick": actions,
    }


def bench_engine() -> dict[str, Any]:
    medium = time_tick(build_town(10, 200, 2), runs=500)
    large = time_tick(build_town(50, 2000, 5), runs=100)
    return {
        "medium (10 agents, 200 beads, 2 rigs)": {**medium, "target_ms": 1.0},
        "large (50 agents, 2000 beads, 5 rigs)": {**large, "target_ms": 20.0},
    }


if __name__ == "__main__":
    print(json.dumps(bench_engine(), indent=2))
