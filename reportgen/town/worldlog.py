"""Recording what the outside world answered, so a replay gets the same answers.

A tick's decisions depend on the town database *and* on what the container
and the SCM answered during it (container statuses in the pre-phase, whether
an agent started, a PR's state). :class:`LoggedWorld` wraps any world and
container source and appends every answer to ``rg_world_log``, keyed by the
journal row of the tick. :class:`ReplayWorld` plays those answers back in
order; a call that differs from the recorded one is a divergence, noted and
answered as the null world would.
"""

from __future__ import annotations

import dataclasses
import sqlite3
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from reportgen import jsonio
from reportgen.town.db import stored_json
from reportgen.town.effects import NullWorld, PRFeedback, PRStatus, PRStatusError, World
from reportgen.town.schema import WORLD_LOG_DDL, table_exists
from reportgen.town.tick import ContainerSource


class WorldCallFailed(Exception):
    """A recorded world call that raised; replayed as the same message."""


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def _decode(method: str, value: Any) -> Any:
    if method == "check_pr_status":
        error = value.get("error")
        if error is not None:
            error = PRStatusError(
                **{
                    **error,
                    "sample_keys": None
                    if error.get("sample_keys") is None
                    else tuple(error["sample_keys"]),
                    "resolution_chain": tuple(error.get("resolution_chain", ())),
                }
            )
        return PRStatus(**{**value, "error": error})
    if method == "check_pr_feedback":
        return None if value is None else PRFeedback(**value)
    if method == "container_status":
        return (value[0], value[1])
    return value


def _dumps(value: Any) -> str:
    return jsonio.canonical(value)


@lru_cache(maxsize=1 << 12)
def _args_key(args: tuple[Any, ...]) -> str:
    """A call's arguments as logged (cached: a replay asks about the same agents and PRs
    every tick)."""
    return _dumps(list(args))


class LoggedWorld:
    """A world and container source that record every answer of one tick."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        tick_seq: int,
        world: World,
        containers: ContainerSource | None,
    ) -> None:
        conn.execute(WORLD_LOG_DDL)
        self.conn = conn
        self.tick_seq = tick_seq
        self.world = world
        self.containers = containers
        self.n = 0

    def _record(self, method: str, args: tuple[Any, ...], call: Any) -> Any:
        try:
            value = call()
            answer: dict[str, Any] = {"value": _encode(value)}
        except Exception as exc:
            answer = {"raise": str(exc)}
            self._append(method, args, answer)
            raise
        self._append(method, args, answer)
        return value

    def _append(self, method: str, args: tuple[Any, ...], answer: dict[str, Any]) -> None:
        self.conn.execute(
            "INSERT INTO rg_world_log (tick_seq, n, method, args, answer) VALUES (?, ?, ?, ?, ?)",
            (self.tick_seq, self.n, method, _dumps(list(args)), _dumps(answer)),
        )
        self.n += 1

    def status(self, agent_id: str, now: str) -> tuple[str, str | None]:
        source = self.containers
        assert source is not None
        return self._record(  # type: ignore[no-any-return]
            "container_status", (agent_id,), lambda: source.status(agent_id, now)
        )

    def start_agent(self, agent_id: str, bead_id: str, rig_id: str) -> bool:
        return self._record(  # type: ignore[no-any-return]
            "start_agent",
            (agent_id, bead_id, rig_id),
            lambda: self.world.start_agent(agent_id, bead_id, rig_id),
        )

    def stop_agent(self, agent_id: str) -> None:
        self._record("stop_agent", (agent_id,), lambda: self.world.stop_agent(agent_id))

    def check_pr_status(self, url: str) -> PRStatus:
        return self._record(  # type: ignore[no-any-return]
            "check_pr_status", (url,), lambda: self.world.check_pr_status(url)
        )

    def check_pr_feedback(self, url: str) -> PRFeedback | None:
        return self._record(  # type: ignore[no-any-return]
            "check_pr_feedback", (url,), lambda: self.world.check_pr_feedback(url)
        )

    def merge_pr(self, url: str) -> bool:
        return self._record(  # type: ignore[no-any-return]
            "merge_pr", (url,), lambda: self.world.merge_pr(url)
        )

    def queue_nudge(self, agent_id: str, message: str, tier: str) -> bool:
        return self._record(  # type: ignore[no-any-return]
            "queue_nudge",
            (agent_id, message, tier),
            lambda: self.world.queue_nudge(agent_id, message, tier),
        )

    def report_wasteland_done(
        self, wasteland_id: str, item_id: str, evidence: str, canonical_bead_id: str
    ) -> bool:
        return self._record(  # type: ignore[no-any-return]
            "report_wasteland_done",
            (wasteland_id, item_id, evidence, canonical_bead_id),
            lambda: self.world.report_wasteland_done(
                wasteland_id, item_id, evidence, canonical_bead_id
            ),
        )


@dataclass
class Mismatch:
    """A replayed world call that is not the one recorded at that position."""

    position: int
    expected: str
    got: str


@dataclass
class ReplayWorld:
    """Plays back one tick's recorded answers, in order."""

    entries: list[tuple[str, str, dict[str, Any]]]
    position: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    fallback: NullWorld = field(default_factory=NullWorld)

    @classmethod
    def load(cls, conn: sqlite3.Connection, tick_seq: int) -> ReplayWorld:
        if not table_exists(conn, "rg_world_log"):
            return cls([])
        rows = conn.execute(
            "SELECT n, method, args, answer FROM rg_world_log WHERE tick_seq = ? ORDER BY n",
            (tick_seq,),
        ).fetchall()
        where = f"tick_seq {tick_seq} n {{}}"
        return cls(
            [
                (
                    r[1],
                    r[2],
                    stored_json(conn, r[3], "rg_world_log", where.format(r[0]), "answer", dict),
                )
                for r in rows
            ]
        )

    @property
    def exhausted(self) -> bool:
        return self.position >= len(self.entries)

    def _next(self, method: str, args: tuple[Any, ...], default: Any) -> Any:
        key = _args_key(args)
        if self.position < len(self.entries):
            rec_method, rec_args, answer = self.entries[self.position]
            if rec_method == method and rec_args == key:
                self.position += 1
                if "raise" in answer:
                    raise WorldCallFailed(answer["raise"])
                return _decode(method, answer["value"])
            expected = f"{rec_method}{rec_args}"
        else:
            expected = "(no more recorded calls)"
        self.mismatches.append(Mismatch(self.position, expected, f"{method}{key}"))
        return default

    def status(self, agent_id: str, now: str) -> tuple[str, str | None]:
        return self._next("container_status", (agent_id,), ("unknown", None))  # type: ignore[no-any-return]

    def start_agent(self, agent_id: str, bead_id: str, rig_id: str) -> bool:
        return self._next(  # type: ignore[no-any-return]
            "start_agent",
            (agent_id, bead_id, rig_id),
            self.fallback.start_agent(agent_id, bead_id, rig_id),
        )

    def stop_agent(self, agent_id: str) -> None:
        self._next("stop_agent", (agent_id,), None)

    def check_pr_status(self, url: str) -> PRStatus:
        return self._next(  # type: ignore[no-any-return]
            "check_pr_status", (url,), self.fallback.check_pr_status(url)
        )

    def check_pr_feedback(self, url: str) -> PRFeedback | None:
        return self._next("check_pr_feedback", (url,), None)  # type: ignore[no-any-return]

    def merge_pr(self, url: str) -> bool:
        return self._next("merge_pr", (url,), False)  # type: ignore[no-any-return]

    def queue_nudge(self, agent_id: str, message: str, tier: str) -> bool:
        return self._next("queue_nudge", (agent_id, message, tier), False)  # type: ignore[no-any-return]

    def report_wasteland_done(
        self, wasteland_id: str, item_id: str, evidence: str, canonical_bead_id: str
    ) -> bool:
        return self._next(  # type: ignore[no-any-return]
            "report_wasteland_done", (wasteland_id, item_id, evidence, canonical_bead_id), False
        )
