"""The town's direct-call API, every call journaled so a window can be replayed exactly.

Upstream changes a town in two ways: events the reconciler drains, and direct
RPCs (sling a bead or convoy, heartbeat, agent done / completed, status
changes, hooks, container eviction and ready, config changes; spec §3.3
"producers", §7.12, §11.2). :class:`Town` offers those calls under upstream's
names. Each call, and each tick, is appended to ``rg_journal`` with its time
and arguments; replaying the journal in order reproduces the town. A database
written by upstream has no journal, and replay says so.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any, Protocol

from reportgen import jsonio
from reportgen.town import agent_ops, bead_ops, checkpoints, events, store
from reportgen.town.config import TownConfig
from reportgen.town.context import TownCtx
from reportgen.town.effects import World
from reportgen.town.ids import DerivedIds
from reportgen.town.record import (
    AnalyticsSink,
    TableSink,
    reconciler_tick_row,
    store_tick,
    tick_record,
    violation_rows,
)
from reportgen.town.schema import JOURNAL_DDL, create_upstream_tables, ensure_reportgen_tables
from reportgen.town.tick import ContainerFilter, ContainerSource, Stopwatch, TickResult
from reportgen.town.tick import tick as run_tick
from reportgen.town.worldlog import LoggedWorld

ID_COUNTER = "id_counter"
ID_NAMESPACE = "id_namespace"
EVENT_ID_COUNTER = "event_id_counter"


class TickObserver(Protocol):
    """Something that follows a live town tick by tick (alerting, dashboards)."""

    def after_tick(self, town_id: str, record: dict[str, Any]) -> None: ...


class Town:
    """One town database driven through upstream's calls on an explicit clock.

    Every public method takes ``at`` (ISO time of the call) first. Methods that
    upstream exposes as RPCs are journaled; :meth:`replay_call` re-runs one
    journal row, which is how :mod:`reportgen.replay` rebuilds state.
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        journal: bool = True,
        analytics: AnalyticsSink | None = None,
        checkpoint_interval_ms: int | None = checkpoints.DEFAULT_INTERVAL_MS,
        observers: list[TickObserver] | None = None,
        history: bool = True,
    ) -> None:
        self.conn = conn
        #: Record each tick's history: the world's answers (``rg_world_log``), the tick
        #: record (``rg_ticks``) and the analytics rows. A replay's working copy keeps
        #: none: history is not state (see ``checkpoints.STATE_TABLES``), nothing in a
        #: tick reads it, and writing it was a fifth of a replay's time.
        self.history = history
        #: Called after every tick with the tick's record (e.g. live Sentry episodes).
        self.observers = list(observers or [])
        #: Simulated time between state checkpoints (``None``: take none), see
        #: :mod:`reportgen.town.checkpoints`.
        self.checkpoint_interval_ms = checkpoint_interval_ms
        self.analytics = analytics if analytics is not None else TableSink(conn)
        self.journal_enabled = journal
        ensure_reportgen_tables(conn)
        conn.execute(JOURNAL_DDL)
        self.town_id = store.town_id(conn)
        namespace = store.get(conn, ID_NAMESPACE) or self.town_id
        self.ids = DerivedIds(str(namespace), int(store.get(conn, ID_COUNTER) or 0))
        self.event_ids = DerivedIds(
            f"{namespace}:events", int(store.get(conn, EVENT_ID_COUNTER) or 0)
        )
        self.config = store.town_config(conn)
        self.draining = store.draining(conn)
        self._saved_counters = (self.ids.next, self.event_ids.next)

    # ------------------------------------------------------------------ setup

    @classmethod
    def create(
        cls, conn: sqlite3.Connection, town_id: str, config: dict[str, Any] | None = None
    ) -> Town:
        """Create a new, empty town in ``conn`` (upstream tables plus reportgen's)."""
        create_upstream_tables(conn)
        ensure_reportgen_tables(conn)
        store.put(conn, store.TOWN_ID, town_id)
        store.put(conn, ID_NAMESPACE, town_id)
        store.put(conn, store.TOWN_CONFIG, config if config is not None else {})
        town = cls(conn)
        # The empty town as created: replay starts here when no later checkpoint fits.
        checkpoints.store(conn, 0, checkpoints.CREATION_AT)
        return town

    def ctx(self, at: str) -> TownCtx:
        """A context for work at time ``at`` sharing this town's id source and flags."""
        return TownCtx(
            conn=self.conn,
            now=at,
            town_id=self.town_id,
            config=self.config,
            ids=self.ids,
            draining=self.draining,
            event_ids=self.event_ids,
        )

    def _journal(self, at: str, call: str, args: dict[str, Any]) -> None:
        if self.journal_enabled:
            self.conn.execute(
                "INSERT INTO rg_journal (at, call, args) VALUES (?, ?, ?)",
                (at, call, jsonio.canonical(args)),
            )

    def save_counters(self) -> None:
        """Persist the id counters so a later session (or a replay) continues the sequence.

        Most ticks mint no id, so a counter is written only when it moved.
        """
        counters = (self.ids.next, self.event_ids.next)
        if counters == self._saved_counters:
            return
        store.put(self.conn, ID_COUNTER, counters[0])
        store.put(self.conn, EVENT_ID_COUNTER, counters[1])
        self._saved_counters = counters

    def _call(self, at: str, call: str, args: dict[str, Any]) -> TownCtx:
        self._journal(at, call, args)
        return self.ctx(at)

    # ------------------------------------------------------------------ config

    def set_config(self, at: str, config: dict[str, Any]) -> None:
        """Replace the town config (upstream ``updateTownConfig``)."""
        self._call(at, "set_config", {"config": config})
        self.config = TownConfig.parse(config)
        store.put(self.conn, store.TOWN_CONFIG, config)

    def add_rig(
        self,
        at: str,
        name: str,
        *,
        git_url: str = "",
        default_branch: str = "main",
        config: dict[str, Any] | None = None,
    ) -> str:
        """Attach a repository to the town (``rigs`` row); returns the rig id."""
        ctx = self._call(
            at,
            "add_rig",
            {"name": name, "git_url": git_url, "default_branch": default_branch, "config": config},
        )
        rig_id = ctx.new_id()
        self.conn.execute(
            "INSERT INTO rigs (id, name, git_url, default_branch, config, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (rig_id, name, git_url, default_branch, bead_ops.js_json(config or {}), at),
        )
        return rig_id

    # ------------------------------------------------------------------ work

    def sling_bead(
        self,
        at: str,
        rig_id: str,
        title: str,
        *,
        body: str | None = None,
        priority: str = "medium",
        labels: list[str] | None = None,
    ) -> str:
        """``slingBead``: a new open issue in a rig, announced by ``bead_created``."""
        ctx = self._call(
            at,
            "sling_bead",
            {"rig_id": rig_id, "title": title, "body": body, "priority": priority,
             "labels": labels},
        )  # fmt: skip
        bead_id = bead_ops.create_bead(
            ctx, type="issue", title=title, body=body, rig_id=rig_id, priority=priority,
            labels=labels or [],
        )  # fmt: skip
        events.insert_event(
            ctx,
            "bead_created",
            bead_id=bead_id,
            payload={"bead_type": "issue", "rig_id": rig_id, "has_blockers": False},
        )
        return bead_id

    def sling_convoy(
        self,
        at: str,
        rig_id: str,
        title: str,
        tasks: list[dict[str, Any]],
        *,
        merge_mode: str = "review-then-land",
        feature_branch: bool = True,
        staged: bool = False,
    ) -> tuple[str, list[str]]:
        """``slingConvoy``: a convoy bead tracking one issue per task, with ``blocks`` edges.

        Each task is ``{"title": str, "depends_on": [index, ...]}``. Returns the
        convoy id and the task bead ids in task order.
        """
        ctx = self._call(
            at,
            "sling_convoy",
            {"rig_id": rig_id, "title": title, "tasks": tasks, "merge_mode": merge_mode,
             "feature_branch": feature_branch, "staged": staged},
        )  # fmt: skip
        convoy_id = bead_ops.create_bead(ctx, type="convoy", title=title, labels=["gt:convoy"])
        ctx.run(
            "INSERT INTO convoy_metadata (bead_id, total_beads, closed_beads, feature_branch, "
            "merge_mode, staged) VALUES (?, ?, 0, ?, ?, ?)",
            (
                convoy_id,
                len(tasks),
                f"convoy/{convoy_id[:8]}" if feature_branch else None,
                merge_mode,
                1 if staged else 0,
            ),
        )
        task_ids: list[str] = []
        for task in tasks:
            bead_id = bead_ops.create_bead(
                ctx, type="issue", title=str(task["title"]), rig_id=rig_id
            )
            bead_ops.add_dependency(ctx, bead_id, convoy_id, "tracks")
            for dep in task.get("depends_on", []):
                bead_ops.add_dependency(ctx, bead_id, task_ids[int(dep)], "blocks")
            task_ids.append(bead_id)
        for task, bead_id in zip(tasks, task_ids, strict=True):
            events.insert_event(
                ctx,
                "bead_created",
                bead_id=bead_id,
                payload={"bead_type": "issue", "rig_id": rig_id, "convoy_id": convoy_id,
                         "has_blockers": bool(task.get("depends_on"))},
            )  # fmt: skip
        return convoy_id, task_ids

    def start_convoy(self, at: str, convoy_id: str) -> None:
        """``startConvoy``: un-stage directly and announce it with ``convoy_started``."""
        ctx = self._call(at, "start_convoy", {"convoy_id": convoy_id})
        ctx.run("UPDATE convoy_metadata SET staged = 0 WHERE bead_id = ?", (convoy_id,))
        events.insert_event(ctx, "convoy_started", payload={"convoy_id": convoy_id})

    def update_bead_status(self, at: str, bead_id: str, status: str, actor: str = "user") -> None:
        """The ``updateBeadStatus`` RPC: ``bead_cancelled`` first for closed/failed, then the change."""
        ctx = self._call(
            at, "update_bead_status", {"bead_id": bead_id, "status": status, "actor": actor}
        )
        if status in bead_ops.TERMINAL:
            events.insert_event(
                ctx, "bead_cancelled", bead_id=bead_id, payload={"cancel_status": status}
            )
        bead_ops.update_bead_status(ctx, bead_id, status, actor)

    # ------------------------------------------------------------------ agents

    def heartbeat(
        self,
        at: str,
        agent_id: str,
        *,
        last_event_type: str | None = None,
        active_tools: list[str] | None = None,
    ) -> None:
        """Agent heartbeat (``touchAgent``, §7.12)."""
        ctx = self._call(
            at,
            "heartbeat",
            {"agent_id": agent_id, "last_event_type": last_event_type,
             "active_tools": active_tools},
        )  # fmt: skip
        agent_ops.touch_agent(
            ctx,
            agent_id,
            last_event_type=last_event_type,
            last_event_at=at if last_event_type is not None else None,
            active_tools=active_tools,
        )

    def agent_done(
        self,
        at: str,
        agent_id: str,
        *,
        branch: str,
        pr_url: str | None = None,
        summary: str | None = None,
    ) -> str:
        """The ``gt_done`` tool: an ``agent_done`` event for the next tick."""
        ctx = self._call(
            at,
            "agent_done",
            {"agent_id": agent_id, "branch": branch, "pr_url": pr_url, "summary": summary},
        )
        payload: dict[str, Any] = {"branch": branch}
        if pr_url is not None:
            payload["pr_url"] = pr_url
        if summary is not None:
            payload["summary"] = summary
        return events.insert_event(ctx, "agent_done", agent_id=agent_id, payload=payload)

    def agent_completed(
        self, at: str, agent_id: str, *, status: str, reason: str | None = None
    ) -> str:
        """The container's completion report: an ``agent_completed`` event."""
        ctx = self._call(
            at, "agent_completed", {"agent_id": agent_id, "status": status, "reason": reason}
        )
        payload: dict[str, Any] = {"status": status}
        if reason is not None:
            payload["reason"] = reason
        return events.insert_event(ctx, "agent_completed", agent_id=agent_id, payload=payload)

    def hook(self, at: str, agent_id: str, bead_id: str) -> None:
        """``POST …/agents/:id/hook``: bind an agent to a bead."""
        ctx = self._call(at, "hook", {"agent_id": agent_id, "bead_id": bead_id})
        agent_ops.hook_bead(ctx, agent_id, bead_id)

    def force_hook(self, at: str, agent_id: str, bead_id: str) -> None:
        """A buggy client's direct write: hook ``agent_id`` to ``bead_id`` and mark it working.

        No upstream RPC can hook two agents to one bead (``hookBead`` unhooks the
        previous holder); a client that writes ``agent_metadata`` itself can
        (invariant 6). Simulations use this escape hatch to reproduce that state;
        it is journaled like every call, so replay reproduces it too.
        """
        ctx = self._call(at, "force_hook", {"agent_id": agent_id, "bead_id": bead_id})
        ctx.run(
            "UPDATE agent_metadata SET current_hook_bead_id = ?, status = 'working', "
            "last_activity_at = ? WHERE bead_id = ?",
            (bead_id, at, agent_id),
        )

    def set_agent_status(self, at: str, agent_id: str, status: str) -> None:
        """A direct agent status write (``updateAgentStatus``), e.g. the mayor waiting."""
        ctx = self._call(at, "set_agent_status", {"agent_id": agent_id, "status": status})
        agent_ops.update_agent_status(ctx, agent_id, status)

    # ------------------------------------------------------------------ container

    def record_container_eviction(self, at: str) -> str:
        """Container SIGTERM: a ``container_eviction`` event and the draining flag; returns the nonce."""
        ctx = self._call(at, "record_container_eviction", {})
        events.insert_event(ctx, "container_eviction", payload={})
        nonce = ctx.new_id()
        self.draining = True
        store.put(self.conn, store.DRAINING, True)
        store.put(self.conn, store.DRAIN_NONCE, nonce)
        store.put(self.conn, store.DRAIN_STARTED_AT, at)
        return nonce

    def acknowledge_container_ready(self, at: str, nonce: str) -> bool:
        """The replacement container is ready: clear draining when the nonce matches."""
        self._call(at, "acknowledge_container_ready", {"nonce": nonce})
        if store.get(self.conn, store.DRAIN_NONCE) != nonce:
            return False
        self.clear_draining()
        return True

    def clear_draining(self) -> None:
        self.draining = False
        store.put(self.conn, store.DRAINING, False)
        store.delete(self.conn, store.DRAIN_NONCE)
        store.delete(self.conn, store.DRAIN_STARTED_AT)

    # ------------------------------------------------------------------ ticks

    def tick(
        self,
        at: str,
        world: World,
        *,
        containers: ContainerSource | None = None,
        container_filter: ContainerFilter | None = None,
        stopwatch: Stopwatch | None = None,
        auto_recover: frozenset[int] = frozenset(),
    ) -> TickResult:
        """Run one alarm tick at ``at``; journal it and keep the draining flag in sync."""
        flt = container_filter or ContainerFilter()
        args: dict[str, Any] = {"container_filter": flt.mode}
        if auto_recover:
            args["auto_recover"] = sorted(auto_recover)
        ctx = self._call(at, "tick", args)
        seq = self.last_seq()
        if self.history:
            world = logged = LoggedWorld(self.conn, seq, world, containers)
            containers = logged if containers is not None else None
        result = run_tick(
            ctx,
            world,
            containers=containers,
            container_filter=flt,
            stopwatch=stopwatch,
            auto_recover=auto_recover,
        )
        if self.draining and not ctx.draining:
            self.clear_draining()
        self.save_counters()
        if self.history or self.observers:
            self._after_tick(seq, result)
        if self.journal_enabled:
            checkpoints.maybe_store(self.conn, seq, at, self.checkpoint_interval_ms)
        return result

    def _after_tick(self, seq: int, result: TickResult) -> None:
        record = tick_record(result)
        if self.history:
            store_tick(self.conn, seq, record)
        for observer in self.observers:
            observer.after_tick(self.town_id, record)
        if self.history:
            self.analytics.write(reconciler_tick_row(self.town_id, result))
            for row in violation_rows(self.town_id, result):
                self.analytics.write(row)

    def last_seq(self) -> int:
        """The journal position of the latest call (ticks are keyed by it)."""
        row = self.conn.execute("SELECT max(seq) FROM rg_journal").fetchone()
        return int(row[0] or 0)

    # ------------------------------------------------------------------ replay

    def replay_call(self, at: str, call: str, args: dict[str, Any]) -> None:
        """Re-run one journal row (used by replay; ``tick`` rows are handled by the caller)."""
        method: Callable[..., Any] | None = getattr(self, call, None)
        if method is None or call not in JOURNALED_CALLS:
            raise ValueError(f"journal call {call!r} is not a town API call")
        method(at, **args)


JOURNALED_CALLS = frozenset(
    {
        "set_config", "add_rig", "sling_bead", "sling_convoy", "start_convoy",
        "update_bead_status", "heartbeat", "agent_done", "agent_completed", "hook",
        "set_agent_status", "record_container_eviction", "acknowledge_container_ready",
        "force_hook",
    }
)  # fmt: skip
