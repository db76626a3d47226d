"""Rule-by-rule tests of the reconcile pass and the invariants (spec §5, §8, §17).

Each timing rule is tested on both sides of its threshold, with the exact
comparison upstream uses (strict ``>`` unless stated). Towns are built with
:mod:`tests.townbuilder`; every test runs one pass on a fresh in-memory town.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from typing import Any, ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.townbuilder import (
    HOUR,
    MINUTE,
    NOW,
    SECOND,
    add_agent,
    add_bead,
    add_convoy,
    add_dep,
    add_mr,
    add_nudge,
    add_rig,
    ago,
    dump,
    foreign_keys_off,
    make_ctx,
    new_town,
)

from reportgen.town.context import Action, TownCtx
from reportgen.town.invariants import (
    INVARIANTS,
    check_invariants,
    check_invariants_detailed,
    invariant_by_number,
)
from reportgen.town.reconciler import (
    reconcile,
    reconcile_agents,
    reconcile_beads,
    reconcile_convoys,
    reconcile_gc,
    reconcile_gupp,
    reconcile_review_queue,
    reconcile_wasteland_claims,
)
from reportgen.town.reconciler_common import dispatch_cooldown_ms

Pass = Callable[[TownCtx], list[Action]]


@pytest.fixture
def conn() -> sqlite3.Connection:
    return new_town()


def run(conn: sqlite3.Connection, fn: Pass = reconcile, **ctx_kw: Any) -> list[Action]:
    """Run one pass at :data:`NOW` and check it wrote nothing."""
    ctx = make_ctx(conn, **ctx_kw)
    before = conn.total_changes
    actions = fn(ctx)
    assert conn.total_changes == before
    return actions


def kinds(actions: list[Action]) -> list[str]:
    return [a["type"] for a in actions]


def reasons(actions: list[Action]) -> list[str]:
    return [a.get("reason", "") for a in actions]


# ════════════════════════════════════════════════════════════════════════
# reconcileAgents
# ════════════════════════════════════════════════════════════════════════


class TestA1WorkingAgents:
    def test_null_heartbeat(self, conn: sqlite3.Connection) -> None:
        add_agent(conn, "a", status="working", last_activity_at=None)
        assert run(conn, reconcile_agents) == [
            {
                "type": "transition_agent",
                "agent_id": "a",
                "from": "working",
                "to": "idle",
                "reason": "no heartbeat received since dispatch",
            }
        ]

    def test_empty_heartbeat_counts_as_none(self, conn: sqlite3.Connection) -> None:
        add_agent(conn, "a", status="working", last_activity_at="")
        assert reasons(run(conn, reconcile_agents)) == ["no heartbeat received since dispatch"]

    @pytest.mark.parametrize(("age", "fires"), [(90 * SECOND, False), (90 * SECOND + 1, True)])
    def test_heartbeat_stale_threshold(
        self, conn: sqlite3.Connection, age: int, fires: bool
    ) -> None:
        bead = add_bead(conn, status="in_progress")
        add_agent(conn, "a", status="working", hook=bead, last_activity_at=ago(age))
        expected = ["heartbeat lost (3 missed cycles)"] if fires else []
        assert reasons(run(conn, reconcile_agents)) == expected

    def test_fresh_but_unhooked(self, conn: sqlite3.Connection) -> None:
        add_agent(conn, "a", status="working", last_activity_at=ago(SECOND))
        assert reasons(run(conn, reconcile_agents)) == [
            "working agent has no hook (gt_done already completed)"
        ]

    def test_mayor_is_skipped(self, conn: sqlite3.Connection) -> None:
        add_agent(conn, role="mayor", status="working", last_activity_at=None)
        assert run(conn, reconcile_agents) == []

    def test_draining_skips(self, conn: sqlite3.Connection) -> None:
        add_agent(conn, status="working", last_activity_at=None)
        assert run(conn, reconcile_agents, draining=True) == []


class TestA2LongStalled:
    LIMIT = 2 * HOUR + 30 * MINUTE

    @pytest.mark.parametrize(("age", "fires"), [(LIMIT, False), (LIMIT + 1, True)])
    def test_threshold_with_hook(self, conn: sqlite3.Connection, age: int, fires: bool) -> None:
        bead = add_bead(conn, status="in_progress")
        add_agent(conn, "a", status="stalled", hook=bead, stalled_at=ago(age))
        reason = "stalled_timeout (exceeded 2h 30min)"
        expected = (
            [
                {
                    "type": "transition_agent",
                    "agent_id": "a",
                    "from": "stalled",
                    "to": "idle",
                    "reason": reason,
                },
                {"type": "unhook_agent", "agent_id": "a", "reason": reason},
            ]
            if fires
            else []
        )
        assert run(conn, reconcile_agents) == expected

    def test_unhooked_only_transitions(self, conn: sqlite3.Connection) -> None:
        add_agent(conn, status="stalled", stalled_at=ago(3 * HOUR))
        assert kinds(run(conn, reconcile_agents)) == ["transition_agent"]

    def test_null_stalled_at_is_skipped(self, conn: sqlite3.Connection) -> None:
        add_agent(conn, status="stalled", stalled_at=None, last_activity_at=ago(5 * HOUR))
        assert run(conn, reconcile_agents) == []

    def test_unparseable_stalled_at_fires(self, conn: sqlite3.Connection) -> None:
        # NaN <= limit is false in JavaScript, so the agent is treated as long stalled.
        add_agent(conn, status="stalled", stalled_at="not a date")
        assert kinds(run(conn, reconcile_agents)) == ["transition_agent"]

    def test_draining_skips(self, conn: sqlite3.Connection) -> None:
        add_agent(conn, status="stalled", stalled_at=ago(3 * HOUR))
        assert run(conn, reconcile_agents, draining=True) == []


class TestA3ResetDispatchAttempts:
    @pytest.mark.parametrize(("age", "fires"), [(30 * MINUTE, False), (30 * MINUTE + 1, True)])
    def test_window(self, conn: sqlite3.Connection, age: int, fires: bool) -> None:
        add_agent(conn, "a", dispatch_attempts=5, last_activity_at=ago(age))
        expected = [{"type": "reset_agent_dispatch_attempts", "agent_id": "a"}] if fires else []
        assert run(conn, reconcile_agents) == expected

    def test_below_cap(self, conn: sqlite3.Connection) -> None:
        add_agent(conn, dispatch_attempts=4, last_activity_at=ago(HOUR))
        assert run(conn, reconcile_agents) == []

    def test_null_activity_never_matches(self, conn: sqlite3.Connection) -> None:
        add_agent(conn, dispatch_attempts=9, last_activity_at=None)
        assert run(conn, reconcile_agents) == []

    def test_not_gated_by_draining(self, conn: sqlite3.Connection) -> None:
        add_agent(conn, dispatch_attempts=5, last_activity_at=ago(HOUR))
        assert kinds(run(conn, reconcile_agents, draining=True)) == [
            "reset_agent_dispatch_attempts"
        ]


class TestA4IdleHooked:
    def test_missing_bead(self, conn: sqlite3.Connection) -> None:
        with foreign_keys_off(conn):
            add_agent(conn, "a", hook="gone")
        assert run(conn, reconcile_agents) == [
            {"type": "unhook_agent", "agent_id": "a", "reason": "hooked bead does not exist"},
            {"type": "clear_agent_checkpoint", "agent_id": "a"},
        ]

    @pytest.mark.parametrize("status", ["closed", "failed"])
    def test_terminal_bead(self, conn: sqlite3.Connection, status: str) -> None:
        bead = add_bead(conn, status=status)
        add_agent(conn, "a", hook=bead)
        assert run(conn, reconcile_agents) == [
            {"type": "unhook_agent", "agent_id": "a", "reason": "hooked bead is terminal"},
            {"type": "clear_agent_checkpoint", "agent_id": "a"},
        ]

    @pytest.mark.parametrize("status", ["open", "in_progress"])
    @pytest.mark.parametrize(("age", "fires"), [(90 * SECOND, False), (90 * SECOND + 1, True)])
    def test_live_bead_heartbeat(
        self, conn: sqlite3.Connection, status: str, age: int, fires: bool
    ) -> None:
        bead = add_bead(conn, "b", status=status)
        add_agent(conn, "a", hook=bead, last_activity_at=ago(age))
        expected = (
            [
                {
                    "type": "unhook_agent",
                    "agent_id": "a",
                    "reason": "idle agent hooked to live bead (dispatch failed)",
                },
                {
                    "type": "transition_bead",
                    "bead_id": "b",
                    "from": status,
                    "to": "open",
                    "reason": "agent went idle without completing work — reset for re-dispatch",
                    "actor": "system",
                },
            ]
            if fires
            else []
        )
        assert run(conn, reconcile_agents) == expected

    def test_in_review_bead_left_alone(self, conn: sqlite3.Connection) -> None:
        bead = add_bead(conn, status="in_review")
        add_agent(conn, hook=bead, last_activity_at=None)
        assert run(conn, reconcile_agents) == []


# ════════════════════════════════════════════════════════════════════════
# reconcileBeads
# ════════════════════════════════════════════════════════════════════════


def _recent_failures(conn: sqlite3.Connection, n: int) -> None:
    """``n`` non-closed beads with a dispatch attempt in the breaker window."""
    for _ in range(n):
        add_bead(
            conn,
            status="in_progress",
            type="molecule",
            dispatch_attempts=1,
            last_dispatch_attempt_at=ago(MINUTE),
        )


class TestRule1Dispatch:
    def test_dispatches_unassigned_issue(self, conn: sqlite3.Connection) -> None:
        rig = add_rig(conn, "r")
        add_bead(conn, "b", rig_id=rig)
        assert run(conn, reconcile_beads) == [
            {"type": "dispatch_agent", "agent_id": "", "bead_id": "b", "rig_id": "r"}
        ]

    def test_needs_a_rig(self, conn: sqlite3.Connection) -> None:
        add_bead(conn, rig_id=None)
        assert run(conn, reconcile_beads) == []

    @pytest.mark.parametrize("label", ["gt:triage-request", "gt:held"])
    def test_excluded_labels(self, conn: sqlite3.Connection, label: str) -> None:
        add_bead(conn, rig_id=add_rig(conn), labels=[label])
        assert run(conn, reconcile_beads) == []

    def test_draining_skips_before_max_attempts(self, conn: sqlite3.Connection) -> None:
        add_bead(conn, rig_id=add_rig(conn), dispatch_attempts=7)
        assert run(conn, reconcile_beads, draining=True) == []

    def test_max_attempts_fails(self, conn: sqlite3.Connection) -> None:
        add_bead(conn, "b", rig_id=add_rig(conn), dispatch_attempts=5)
        assert run(conn, reconcile_beads) == [
            {
                "type": "transition_bead",
                "bead_id": "b",
                "from": "open",
                "to": "failed",
                "reason": "max dispatch attempts exceeded (5)",
                "actor": "system",
            }
        ]

    def test_rig_override_of_max_attempts(self, conn: sqlite3.Connection) -> None:
        rig = add_rig(conn, config={"max_dispatch_attempts": 3})
        add_bead(conn, rig_id=rig, dispatch_attempts=3)
        assert reasons(run(conn, reconcile_beads)) == ["max dispatch attempts exceeded (3)"]

    @pytest.mark.parametrize(
        ("attempts", "cooldown"),
        [
            (0, 30 * SECOND),
            (1, 30 * SECOND),
            (2, 60 * SECOND),
            (3, 2 * MINUTE),
            (4, 5 * MINUTE),
            (5, 10 * MINUTE),
            (8, 10 * MINUTE),
        ],
    )
    @pytest.mark.parametrize("extra", [0, 1])
    def test_cooldown_table(
        self, conn: sqlite3.Connection, attempts: int, cooldown: int, extra: int
    ) -> None:
        assert dispatch_cooldown_ms(attempts) == cooldown
        rig = add_rig(conn, config={"max_dispatch_attempts": 50})
        add_bead(
            conn,
            rig_id=rig,
            dispatch_attempts=attempts,
            last_dispatch_attempt_at=ago(cooldown + extra),
            status="open",
        )
        # The bead itself counts toward the breaker only when attempts > 0; far below 20.
        assert kinds(run(conn, reconcile_beads)) == (["dispatch_agent"] if extra else [])

    def test_open_blocker(self, conn: sqlite3.Connection) -> None:
        rig = add_rig(conn)
        bead = add_bead(conn, rig_id=rig)
        blocker = add_bead(conn, status="in_progress")
        add_dep(conn, bead, blocker, "blocks")
        assert run(conn, reconcile_beads) == []
        conn.execute("UPDATE beads SET status = 'failed' WHERE bead_id = ?", (blocker,))
        assert kinds(run(conn, reconcile_beads)) == ["dispatch_agent"]

    @pytest.mark.parametrize(("staged", "dispatched"), [(1, False), (0, True)])
    def test_staged_convoy(self, conn: sqlite3.Connection, staged: int, dispatched: bool) -> None:
        bead = add_bead(conn, rig_id=add_rig(conn))
        add_convoy(conn, tracks=[bead], staged=staged)
        assert ("dispatch_agent" in kinds(run(conn, reconcile_beads))) is dispatched


class TestCircuitBreaker:
    MESSAGE = (
        "Dispatch circuit breaker is OPEN: {n} dispatch failures in the last 30 minutes. "
        "All dispatch actions are paused until failures clear."
    )

    def test_19_is_closed(self, conn: sqlite3.Connection) -> None:
        add_bead(conn, rig_id=add_rig(conn))
        _recent_failures(conn, 19)
        assert kinds(run(conn, reconcile_beads)) == ["dispatch_agent"]

    def test_20_is_open(self, conn: sqlite3.Connection) -> None:
        add_bead(conn, rig_id=add_rig(conn))
        _recent_failures(conn, 20)
        assert run(conn, reconcile_beads) == [
            {"type": "notify_mayor", "message": self.MESSAGE.format(n=20)}
        ]

    def test_window_and_closed_beads(self, conn: sqlite3.Connection) -> None:
        _recent_failures(conn, 19)
        add_bead(conn, status="closed", dispatch_attempts=1, last_dispatch_attempt_at=ago(1))
        add_bead(conn, status="open", dispatch_attempts=0, last_dispatch_attempt_at=ago(1))
        add_bead(
            conn, status="failed", dispatch_attempts=1, last_dispatch_attempt_at=ago(30 * MINUTE)
        )
        assert run(conn, reconcile_beads) == []
        add_bead(
            conn,
            status="failed",
            dispatch_attempts=1,
            last_dispatch_attempt_at=ago(30 * MINUTE - 1),
        )
        assert kinds(run(conn, reconcile_beads)) == ["notify_mayor"]

    def test_only_reconcile_beads_notifies(self, conn: sqlite3.Connection) -> None:
        _recent_failures(conn, 25)
        assert kinds(run(conn)).count("notify_mayor") == 1

    def test_blocks_review_dispatch(self, conn: sqlite3.Connection) -> None:
        add_mr(conn, rig_id=add_rig(conn))
        _recent_failures(conn, 20)
        assert run(conn, reconcile_review_queue) == []


class TestRule1bStaleAssignee:
    def test_clears_unhooked_assignee(self, conn: sqlite3.Connection) -> None:
        agent = add_agent(conn)
        add_bead(conn, "b", rig_id=add_rig(conn), assignee_agent_bead_id=agent)
        assert run(conn, reconcile_beads) == [{"type": "clear_bead_assignee", "bead_id": "b"}]

    def test_missing_agent_also_cleared(self, conn: sqlite3.Connection) -> None:
        add_bead(conn, rig_id=add_rig(conn), assignee_agent_bead_id="ghost")
        assert kinds(run(conn, reconcile_beads)) == ["clear_bead_assignee"]

    def test_hooked_assignee_kept(self, conn: sqlite3.Connection) -> None:
        bead = add_bead(
            conn, rig_id=add_rig(conn), dispatch_attempts=1, last_dispatch_attempt_at=NOW
        )
        agent = add_agent(conn, hook=bead)
        conn.execute("UPDATE beads SET assignee_agent_bead_id = ? WHERE bead_id = ?", (agent, bead))
        assert run(conn, reconcile_beads) == []

    def test_system_and_triage_skipped(self, conn: sqlite3.Connection) -> None:
        rig = add_rig(conn)
        add_bead(conn, rig_id=rig, assignee_agent_bead_id="system")
        add_bead(conn, rig_id=rig, assignee_agent_bead_id="x", labels=["gt:triage-request"])
        assert run(conn, reconcile_beads) == []


class TestRule2IdleHooked:
    def _town(self, conn: sqlite3.Connection, **bead: Any) -> None:
        rig = add_rig(conn, "r")
        add_bead(conn, "b", rig_id=bead.pop("rig_id", rig), **bead)
        add_agent(conn, "a", rig_id=rig, hook="b")
        conn.execute("UPDATE beads SET assignee_agent_bead_id = 'a' WHERE bead_id = 'b'")

    def test_dispatches_with_agent(self, conn: sqlite3.Connection) -> None:
        self._town(conn)
        assert run(conn, reconcile_beads) == [
            {"type": "dispatch_agent", "agent_id": "a", "bead_id": "b", "rig_id": "r"}
        ]

    def test_rig_falls_back_to_agent_rig(self, conn: sqlite3.Connection) -> None:
        self._town(conn, rig_id=None)
        assert run(conn, reconcile_beads)[0]["rig_id"] == "r"

    def test_max_attempts(self, conn: sqlite3.Connection) -> None:
        self._town(conn, dispatch_attempts=5, last_dispatch_attempt_at=ago(HOUR))
        assert run(conn, reconcile_beads) == [
            {
                "type": "transition_bead",
                "bead_id": "b",
                "from": None,
                "to": "failed",
                "reason": "max dispatch attempts exceeded (5)",
                "actor": "system",
            },
            {"type": "unhook_agent", "agent_id": "a", "reason": "max dispatch attempts"},
        ]

    def test_max_attempts_checked_before_draining(self, conn: sqlite3.Connection) -> None:
        self._town(conn, dispatch_attempts=5, last_dispatch_attempt_at=ago(HOUR))
        assert kinds(run(conn, reconcile_beads, draining=True)) == [
            "transition_bead",
            "unhook_agent",
        ]

    @pytest.mark.parametrize(("age", "fires"), [(60 * SECOND, False), (60 * SECOND + 1, True)])
    def test_cooldown(self, conn: sqlite3.Connection, age: int, fires: bool) -> None:
        self._town(conn, dispatch_attempts=2, last_dispatch_attempt_at=ago(age))
        assert kinds(run(conn, reconcile_beads)) == (["dispatch_agent"] if fires else [])

    def test_blocked(self, conn: sqlite3.Connection) -> None:
        self._town(conn)
        add_dep(conn, "b", add_bead(conn), "blocks")
        assert run(conn, reconcile_beads) == []

    def test_draining(self, conn: sqlite3.Connection) -> None:
        self._town(conn)
        assert run(conn, reconcile_beads, draining=True) == []

    def test_breaker(self, conn: sqlite3.Connection) -> None:
        self._town(conn)
        _recent_failures(conn, 20)
        assert kinds(run(conn, reconcile_beads)) == ["notify_mayor"]

    def test_refinery_and_non_open_excluded(self, conn: sqlite3.Connection) -> None:
        bead = add_bead(conn, status="open")
        add_agent(conn, role="refinery", hook=bead)
        add_agent(conn, hook=add_bead(conn, status="in_progress"))
        assert run(conn, reconcile_beads) == []


class TestRule3StaleInProgress:
    @pytest.mark.parametrize(("age", "fires"), [(5 * MINUTE, False), (5 * MINUTE + 1, True)])
    def test_threshold(self, conn: sqlite3.Connection, age: int, fires: bool) -> None:
        add_bead(conn, "b", status="in_progress", updated_at=ago(age))
        expected = (
            [
                {
                    "type": "transition_bead",
                    "bead_id": "b",
                    "from": "in_progress",
                    "to": "open",
                    "reason": "agent lost",
                    "actor": "system",
                },
                {"type": "clear_bead_assignee", "bead_id": "b"},
            ]
            if fires
            else []
        )
        assert run(conn, reconcile_beads) == expected

    def test_max_attempts(self, conn: sqlite3.Connection) -> None:
        add_bead(conn, status="in_progress", updated_at=ago(HOUR), dispatch_attempts=6)
        assert reasons(run(conn, reconcile_beads))[0] == (
            "agent lost, max dispatch attempts exhausted (6)"
        )

    @pytest.mark.parametrize("status", ["working", "stalled"])
    def test_live_agent(self, conn: sqlite3.Connection, status: str) -> None:
        bead = add_bead(conn, status="in_progress", updated_at=ago(HOUR))
        add_agent(conn, status=status, hook=bead, last_activity_at=ago(HOUR))
        assert run(conn, reconcile_beads) == []

    @pytest.mark.parametrize(("age", "fires"), [(90 * SECOND - 1, False), (90 * SECOND, True)])
    def test_idle_agent_heartbeat_sql_cutoff(
        self, conn: sqlite3.Connection, age: int, fires: bool
    ) -> None:
        bead = add_bead(conn, status="in_progress", updated_at=ago(HOUR))
        add_agent(conn, status="idle", hook=bead, last_activity_at=ago(age))
        assert kinds(run(conn, reconcile_beads)) == (
            ["transition_bead", "clear_bead_assignee"] if fires else []
        )

    def test_exactly_90s_rule3_fires_a4_does_not(self, conn: sqlite3.Connection) -> None:
        """§17: at exactly 90 s the SQL cutoff says stale, A4's in-code check says fresh."""
        bead = add_bead(conn, "b", status="in_progress", updated_at=ago(HOUR))
        add_agent(conn, "a", status="idle", hook=bead, last_activity_at=ago(90 * SECOND))
        actions = run(conn, reconcile)
        assert not [a for a in actions if a.get("agent_id") == "a"]
        assert kinds(actions) == ["transition_bead", "clear_bead_assignee"]

    def test_not_gated_by_draining(self, conn: sqlite3.Connection) -> None:
        add_bead(conn, status="in_progress", updated_at=ago(HOUR))
        assert len(run(conn, reconcile_beads, draining=True)) == 2


class TestRule4InReview:
    def _town(self, conn: sqlite3.Connection, statuses: list[str], age: int = HOUR) -> None:
        add_bead(conn, "s", status="in_review", updated_at=ago(age))
        for status in statuses:
            add_mr(conn, status=status, source="s")

    @pytest.mark.parametrize(("age", "fires"), [(5 * MINUTE, False), (5 * MINUTE + 1, True)])
    def test_threshold_all_failed(self, conn: sqlite3.Connection, age: int, fires: bool) -> None:
        self._town(conn, ["failed", "failed"], age)
        expected = (
            [
                {
                    "type": "transition_bead",
                    "bead_id": "s",
                    "from": "in_review",
                    "to": "open",
                    "reason": "all reviews failed",
                    "actor": "system",
                },
                {"type": "clear_bead_assignee", "bead_id": "s"},
            ]
            if fires
            else []
        )
        assert run(conn, reconcile_beads) == expected

    def test_any_merged_closes(self, conn: sqlite3.Connection) -> None:
        self._town(conn, ["failed", "closed"])
        assert run(conn, reconcile_beads) == [
            {
                "type": "transition_bead",
                "bead_id": "s",
                "from": "in_review",
                "to": "closed",
                "reason": "MR merged (reconciler safety net)",
                "actor": "system",
            }
        ]

    @pytest.mark.parametrize("statuses", [[], ["closed", "in_progress"], ["open"]])
    def test_no_mr_or_live_mr(self, conn: sqlite3.Connection, statuses: list[str]) -> None:
        self._town(conn, statuses)
        assert run(conn, reconcile_beads) == []


# ════════════════════════════════════════════════════════════════════════
# reconcileReviewQueue
# ════════════════════════════════════════════════════════════════════════

PR = "https://github.com/acme/repo/pull/1"


class TestR1Polling:
    @pytest.mark.parametrize(("age", "polls"), [(60 * SECOND - 1, False), (60 * SECOND, True)])
    def test_interval_is_greater_or_equal(
        self, conn: sqlite3.Connection, age: int, polls: bool
    ) -> None:
        add_mr(conn, "m", status="in_progress", pr_url=PR, metadata={"last_poll_at": ago(age)})
        expected = [{"type": "poll_pr", "bead_id": "m", "pr_url": PR}] if polls else []
        assert run(conn, reconcile_review_queue) == expected

    @pytest.mark.parametrize(
        ("meta", "polls"),
        [({}, True), ({"last_poll_at": 5}, True), ({"last_poll_at": "garbage"}, False)],
    )
    def test_missing_or_unparseable(
        self, conn: sqlite3.Connection, meta: dict[str, Any], polls: bool
    ) -> None:
        add_mr(conn, status="in_progress", pr_url=PR, metadata=meta)
        assert kinds(run(conn, reconcile_review_queue)) == (["poll_pr"] if polls else [])

    def test_auto_merge_pending(self, conn: sqlite3.Connection) -> None:
        add_mr(
            conn,
            "m",
            status="in_progress",
            pr_url=PR,
            metadata={"last_poll_at": NOW, "auto_merge_pending": 1},
        )
        assert run(conn, reconcile_review_queue) == [
            {"type": "merge_pr", "bead_id": "m", "pr_url": PR}
        ]

    def test_only_in_progress_prs(self, conn: sqlite3.Connection) -> None:
        add_mr(conn, rig_id=None, status="open", pr_url=PR)
        add_mr(conn, status="in_progress", pr_url=None)
        assert "poll_pr" not in kinds(run(conn, reconcile_review_queue))


class TestR2R3DirectMergeReviews:
    @pytest.mark.parametrize(("age", "fires"), [(2 * MINUTE, False), (2 * MINUTE + 1, True)])
    def test_r3_abandoned(self, conn: sqlite3.Connection, age: int, fires: bool) -> None:
        add_mr(conn, "m", status="in_progress", updated_at=ago(age))
        expected = (
            [
                {
                    "type": "transition_bead",
                    "bead_id": "m",
                    "from": "in_progress",
                    "to": "open",
                    "reason": "abandoned, no agent hooked",
                    "actor": "system",
                }
            ]
            if fires
            else []
        )
        assert run(conn, reconcile_review_queue) == expected

    @pytest.mark.parametrize(("age", "r2"), [(30 * MINUTE, False), (30 * MINUTE + 1, True)])
    def test_r2_and_r3_both_emit(self, conn: sqlite3.Connection, age: int, r2: bool) -> None:
        add_mr(conn, status="in_progress", updated_at=ago(age))
        expected = ["abandoned, no agent hooked"]
        if r2:
            expected.insert(0, "stuck review, no working agent")
        assert reasons(run(conn, reconcile_review_queue)) == expected

    def test_r2_unhooks_idle_agent(self, conn: sqlite3.Connection) -> None:
        mr = add_mr(conn, status="in_progress", updated_at=ago(HOUR))
        add_agent(conn, "a", role="refinery", status="idle", hook=mr)
        actions = run(conn, reconcile_review_queue)
        assert reasons(actions)[:2] == ["stuck review, no working agent", "stuck review cleanup"]
        assert "abandoned, no agent hooked" not in reasons(actions)

    @pytest.mark.parametrize("status", ["working", "stalled"])
    def test_working_agent_keeps_review(self, conn: sqlite3.Connection, status: str) -> None:
        mr = add_mr(conn, status="in_progress", updated_at=ago(HOUR))
        add_agent(conn, role="refinery", status=status, hook=mr)
        assert run(conn, reconcile_review_queue) == []

    def test_rework_blocker(self, conn: sqlite3.Connection) -> None:
        mr = add_mr(conn, status="in_progress", updated_at=ago(HOUR))
        add_dep(conn, mr, add_bead(conn, labels=["gt:rework"]), "blocks")
        assert run(conn, reconcile_review_queue) == []


class TestR4OrphanedPrReview:
    def _mr(self, conn: sqlite3.Connection, age: int, **meta: Any) -> None:
        rig = add_rig(conn, "r")
        add_mr(
            conn,
            "m",
            rig_id=rig,
            status="in_progress",
            pr_url=PR,
            updated_at=ago(age),
            metadata={"last_poll_at": NOW, **meta},
        )

    @pytest.mark.parametrize(("age", "fires"), [(30 * MINUTE, False), (30 * MINUTE + 1, True)])
    def test_threshold(self, conn: sqlite3.Connection, age: int, fires: bool) -> None:
        self._mr(conn, age)
        expected = (
            [
                {
                    "type": "transition_bead",
                    "bead_id": "m",
                    "from": "in_progress",
                    "to": "failed",
                    "reason": "PR review orphaned",
                    "actor": "system",
                }
            ]
            if fires
            else []
        )
        assert run(conn, reconcile_review_queue) == expected

    @pytest.mark.parametrize("flag", [1, True])
    def test_awaiting_approval(self, conn: sqlite3.Connection, flag: object) -> None:
        self._mr(conn, HOUR, awaiting_approval=flag)
        assert run(conn, reconcile_review_queue) == []

    def test_working_refinery(self, conn: sqlite3.Connection) -> None:
        self._mr(conn, HOUR)
        add_agent(conn, role="refinery", status="working", hook="m")
        assert run(conn, reconcile_review_queue) == []

    def test_code_review_off(self, conn: sqlite3.Connection) -> None:
        self._mr(conn, HOUR)
        assert run(conn, reconcile_review_queue, config={"refinery": {"code_review": False}}) == []


class TestCodeReviewDisabled:
    OFF: ClassVar[dict[str, Any]] = {"refinery": {"code_review": False}}

    def test_fast_track_and_orphan_cleanup(self, conn: sqlite3.Connection) -> None:
        rig = add_rig(conn, "r")
        add_mr(conn, "with-pr", rig_id=rig, pr_url=PR, created_by="p")
        add_bead(conn, "src", status="in_review")
        add_mr(conn, "no-pr", rig_id=rig, created_by="p", source="src")
        actions = run(conn, reconcile_review_queue, config=self.OFF)
        assert actions == [
            {
                "type": "transition_bead",
                "bead_id": "with-pr",
                "from": "open",
                "to": "in_progress",
                "reason": "refinery code review disabled — skip to poll_pr",
                "actor": "system",
            },
            {
                "type": "transition_bead",
                "bead_id": "no-pr",
                "from": "open",
                "to": "failed",
                "reason": "MR bead has no pr_url and code review is disabled — "
                "polecat failed to create PR",
                "actor": "system",
            },
            {
                "type": "transition_bead",
                "bead_id": "src",
                "from": "in_review",
                "to": "open",
                "reason": "MR failed (no PR created) — reopening for retry",
                "actor": "system",
            },
        ]

    def test_landing_mr_goes_to_refinery(self, conn: sqlite3.Connection) -> None:
        rig = add_rig(conn, "r")
        add_mr(conn, "landing", rig_id=rig, created_by="system")
        assert reasons(run(conn, reconcile_review_queue, config=self.OFF)) == [
            "popped for review (creating refinery)",
            "",
        ]

    def test_null_created_by_is_not_an_orphan(self, conn: sqlite3.Connection) -> None:
        add_mr(conn, rig_id=add_rig(conn), created_by=None)
        assert run(conn, reconcile_review_queue, config=self.OFF) == []

    def test_review_and_merge_convoy_mr(self, conn: sqlite3.Connection) -> None:
        rig = add_rig(conn, "r")
        convoy = add_convoy(conn, merge_mode="review-and-merge")
        add_mr(conn, "m", rig_id=rig, pr_url=PR, created_by="p", parent_bead_id=convoy)
        assert kinds(run(conn, reconcile_review_queue, config=self.OFF)) == [
            "transition_bead",
            "dispatch_agent",
        ]

    def test_rig_override_turns_it_off(self, conn: sqlite3.Connection) -> None:
        rig = add_rig(conn, config={"code_review": False})
        add_mr(conn, rig_id=rig, pr_url=PR, created_by="p")
        assert reasons(run(conn, reconcile_review_queue, config={})) == [
            "refinery code review disabled — skip to poll_pr"
        ]

    def test_legacy_town_reviews(self, conn: sqlite3.Connection) -> None:
        add_mr(conn, rig_id=add_rig(conn), pr_url=PR, created_by="p")
        assert reasons(run(conn, reconcile_review_queue, config={}))[0] == (
            "popped for review (creating refinery)"
        )


class TestBabysatPrs:
    BABYSAT = "babysat PR — skip refinery, fast-track to poll_pr"

    @pytest.mark.parametrize("flag", [True, 1])
    def test_fast_track_and_not_popped(self, conn: sqlite3.Connection, flag: object) -> None:
        add_mr(conn, "m", rig_id=add_rig(conn), pr_url=PR, metadata={"babysit": flag})
        assert reasons(run(conn, reconcile_review_queue)) == [self.BABYSAT]

    def test_twice_in_code_review_off_rig(self, conn: sqlite3.Connection) -> None:
        add_mr(conn, rig_id=add_rig(conn), pr_url=PR, created_by="p", metadata={"babysit": True})
        assert reasons(
            run(conn, reconcile_review_queue, config={"refinery": {"code_review": False}})
        ) == ["refinery code review disabled — skip to poll_pr", self.BABYSAT]

    def test_needs_pr_url(self, conn: sqlite3.Connection) -> None:
        add_mr(conn, rig_id=add_rig(conn), metadata={"babysit": True})
        assert run(conn, reconcile_review_queue) == []


class TestR5PopOldest:
    def test_creates_refinery(self, conn: sqlite3.Connection) -> None:
        rig = add_rig(conn, "r")
        add_mr(conn, "new", rig_id=rig, created_at=ago(MINUTE))
        add_mr(conn, "old", rig_id=rig, created_at=ago(HOUR))
        assert run(conn, reconcile_review_queue) == [
            {
                "type": "transition_bead",
                "bead_id": "old",
                "from": "open",
                "to": "in_progress",
                "reason": "popped for review (creating refinery)",
                "actor": "system",
            },
            {"type": "dispatch_agent", "agent_id": "", "bead_id": "old", "rig_id": "r"},
        ]

    def test_idle_refinery(self, conn: sqlite3.Connection) -> None:
        rig = add_rig(conn, "r")
        add_mr(conn, "m", rig_id=rig)
        add_agent(conn, "ref", rig_id=rig, role="refinery")
        assert run(conn, reconcile_review_queue) == [
            {
                "type": "transition_bead",
                "bead_id": "m",
                "from": "open",
                "to": "in_progress",
                "reason": "popped for review",
                "actor": "system",
            },
            {"type": "hook_agent", "agent_id": "ref", "bead_id": "m"},
            {"type": "dispatch_agent", "agent_id": "ref", "bead_id": "m", "rig_id": "r"},
        ]

    def test_busy_refinery(self, conn: sqlite3.Connection) -> None:
        rig = add_rig(conn)
        add_mr(conn, rig_id=rig)
        add_agent(conn, rig_id=rig, role="refinery", status="working")
        assert run(conn, reconcile_review_queue) == []

    def test_one_direct_merge_at_a_time(self, conn: sqlite3.Connection) -> None:
        rig = add_rig(conn)
        add_mr(conn, rig_id=rig)
        add_mr(conn, rig_id=rig, status="in_progress", pr_url=PR, metadata={"last_poll_at": NOW})
        assert kinds(run(conn, reconcile_review_queue)) == ["transition_bead", "dispatch_agent"]
        add_mr(conn, rig_id=rig, status="in_progress")
        assert run(conn, reconcile_review_queue) == []

    def test_draining(self, conn: sqlite3.Connection) -> None:
        add_mr(conn, rig_id=add_rig(conn))
        assert run(conn, reconcile_review_queue, draining=True) == []


class TestR6RedispatchRefinery:
    def _town(
        self, conn: sqlite3.Connection, rig_cfg: dict[str, Any] | None = None, **mr: Any
    ) -> None:
        rig = add_rig(conn, "r", config=rig_cfg or {})
        add_mr(conn, "m", rig_id=rig, status="in_progress", updated_at=NOW, **mr)
        add_agent(conn, "ref", rig_id=rig, role="refinery", hook="m")

    def test_dispatch(self, conn: sqlite3.Connection) -> None:
        self._town(conn)
        assert run(conn, reconcile_review_queue) == [
            {"type": "dispatch_agent", "agent_id": "ref", "bead_id": "m", "rig_id": "r"}
        ]

    def test_awaiting_approval_and_draining(self, conn: sqlite3.Connection) -> None:
        self._town(conn, metadata={"awaiting_approval": True})
        assert run(conn, reconcile_review_queue) == []
        conn.execute("UPDATE beads SET metadata = '{}' WHERE bead_id = 'm'")
        assert run(conn, reconcile_review_queue, draining=True) == []

    def test_max_attempts_with_rig_override(self, conn: sqlite3.Connection) -> None:
        self._town(
            conn, {"max_dispatch_attempts": 2}, dispatch_attempts=2, last_dispatch_attempt_at=NOW
        )
        assert run(conn, reconcile_review_queue) == [
            {
                "type": "transition_bead",
                "bead_id": "m",
                "from": None,
                "to": "failed",
                "reason": "refinery max dispatch attempts exceeded (2)",
                "actor": "system",
            },
            {"type": "unhook_agent", "agent_id": "ref", "reason": "max dispatch attempts"},
        ]

    @pytest.mark.parametrize(("age", "fires"), [(2 * MINUTE, False), (2 * MINUTE + 1, True)])
    def test_cooldown(self, conn: sqlite3.Connection, age: int, fires: bool) -> None:
        self._town(conn, dispatch_attempts=3, last_dispatch_attempt_at=ago(age))
        assert kinds(run(conn, reconcile_review_queue)) == (["dispatch_agent"] if fires else [])


class TestR7TerminalMr:
    @pytest.mark.parametrize("agent_status", ["working", "stalled"])
    @pytest.mark.parametrize("mr_status", ["closed", "failed"])
    def test_stop(self, conn: sqlite3.Connection, agent_status: str, mr_status: str) -> None:
        add_mr(conn, "m", status=mr_status)
        add_agent(conn, "ref", role="refinery", status=agent_status, hook="m")
        assert run(conn, reconcile_review_queue) == [
            {"type": "stop_agent", "agent_id": "ref", "reason": f"MR bead m is {mr_status}"},
            {"type": "unhook_agent", "agent_id": "ref", "reason": f"MR bead {mr_status} — cleanup"},
            {
                "type": "transition_agent",
                "agent_id": "ref",
                "from": agent_status,
                "to": "idle",
                "reason": f"MR bead {mr_status} — cleanup",
            },
        ]

    def test_live_mr_untouched(self, conn: sqlite3.Connection) -> None:
        add_mr(conn, "m", status="in_progress", pr_url=PR, metadata={"last_poll_at": NOW})
        add_agent(conn, role="refinery", status="working", hook="m")
        assert run(conn, reconcile_review_queue) == []


# ════════════════════════════════════════════════════════════════════════
# reconcileConvoys
# ════════════════════════════════════════════════════════════════════════


class TestConvoys:
    def _convoy(self, conn: sqlite3.Connection, statuses: list[str], **kw: Any) -> str:
        rig = kw.pop("rig", None) or add_rig(conn, "r", default_branch="develop")
        beads = [add_bead(conn, status=s, rig_id=rig) for s in statuses]
        return add_convoy(conn, "c", tracks=beads, **kw)

    def test_progress_update_without_finishing(self, conn: sqlite3.Connection) -> None:
        self._convoy(conn, ["closed", "open"])
        assert run(conn, reconcile_convoys) == [
            {"type": "update_convoy_progress", "convoy_id": "c", "closed_beads": 1}
        ]

    @pytest.mark.parametrize("mode", ["review-and-merge", None])
    def test_close_when_not_review_then_land(
        self, conn: sqlite3.Connection, mode: str | None
    ) -> None:
        self._convoy(
            conn, ["closed", "failed"], closed_beads=2, merge_mode=mode, feature_branch="feat"
        )
        assert run(conn, reconcile_convoys) == [{"type": "close_convoy", "convoy_id": "c"}]

    def test_no_feature_branch_closes(self, conn: sqlite3.Connection) -> None:
        self._convoy(conn, ["closed"], closed_beads=1)
        assert kinds(run(conn, reconcile_convoys)) == ["close_convoy"]

    def test_in_flight_mr_waits(self, conn: sqlite3.Connection) -> None:
        self._convoy(conn, ["closed"], closed_beads=1)
        bead = conn.execute("SELECT bead_id FROM bead_dependencies").fetchone()[0]
        add_mr(conn, source=bead, status="in_progress")
        assert run(conn, reconcile_convoys) == []

    def test_empty_convoy(self, conn: sqlite3.Connection) -> None:
        add_convoy(conn, "c")
        assert run(conn, reconcile_convoys) == []

    def test_ready_to_land_then_landing_mr(self, conn: sqlite3.Connection) -> None:
        self._convoy(conn, ["closed"], closed_beads=1, feature_branch="feat")
        assert run(conn, reconcile_convoys) == [
            {"type": "set_convoy_ready_to_land", "convoy_id": "c"}
        ]
        conn.execute("UPDATE beads SET metadata = '{\"ready_to_land\": 1}' WHERE bead_id = 'c'")
        assert run(conn, reconcile_convoys) == [
            {
                "type": "create_landing_mr",
                "convoy_id": "c",
                "rig_id": "r",
                "feature_branch": "feat",
                "target_branch": "develop",
            }
        ]

    def _ready(self, conn: sqlite3.Connection, **meta: Any) -> None:
        self._convoy(
            conn,
            ["closed"],
            closed_beads=1,
            feature_branch="feat",
            metadata={"ready_to_land": 1, **meta},
        )

    @pytest.mark.parametrize(
        ("status", "expected"), [("closed", ["close_convoy"]), ("open", []), ("in_progress", [])]
    )
    def test_existing_landing_mr(
        self, conn: sqlite3.Connection, status: str, expected: list[str]
    ) -> None:
        self._ready(conn)
        add_mr(conn, status=status, source="c", created_by="system")
        assert kinds(run(conn, reconcile_convoys)) == expected

    def test_respawn_suppressed(self, conn: sqlite3.Connection) -> None:
        self._ready(conn, landing_mr_attempts=2)
        add_mr(conn, status="failed", source="c", metadata={"awaiting_approval": 1})
        assert run(conn, reconcile_convoys) == [
            {
                "type": "emit_event",
                "event_name": "reconciler.respawn_suppressed",
                "data": {"convoyId": "c", "suppressedAttempt": 3},
            }
        ]

    def test_fail_after_five_attempts(self, conn: sqlite3.Connection) -> None:
        self._ready(conn, landing_mr_attempts=5, last_landing_mr_attempt_at=ago(HOUR))
        add_mr(conn, status="failed", source="c")
        assert run(conn, reconcile_convoys) == [
            {
                "type": "fail_convoy",
                "convoy_id": "c",
                "reason": "Landing MR creation failed after 5 attempts",
            }
        ]

    @pytest.mark.parametrize(
        ("attempts", "age", "creates"),
        [
            (1, 60 * SECOND - 1, False),
            (1, 60 * SECOND, True),  # an exactly elapsed cooldown proceeds
            (4, 8 * MINUTE - 1, False),
            (4, 8 * MINUTE, True),
        ],
    )
    def test_landing_cooldown(
        self, conn: sqlite3.Connection, attempts: int, age: int, creates: bool
    ) -> None:
        self._ready(conn, landing_mr_attempts=attempts, last_landing_mr_attempt_at=ago(age))
        assert kinds(run(conn, reconcile_convoys)) == (["create_landing_mr"] if creates else [])

    def test_non_numeric_attempts_count_as_zero(self, conn: sqlite3.Connection) -> None:
        self._ready(conn, landing_mr_attempts="9", last_landing_mr_attempt_at=NOW)
        assert kinds(run(conn, reconcile_convoys)) == ["create_landing_mr"]


# ════════════════════════════════════════════════════════════════════════
# reconcileGUPP
# ════════════════════════════════════════════════════════════════════════

WARN = "You have been idle for 15 minutes with no tool activity. Please check your progress."
ESCALATE = (
    "You have been working for over 1 hour without completing your task. "
    "Please wrap up or report if you are stuck."
)


class TestGupp:
    def _agent(self, conn: sqlite3.Connection, age: int, **cols: Any) -> None:
        hook = add_bead(conn, status="in_progress")
        cols.setdefault("status", "working")
        add_agent(conn, "a", hook=hook, last_activity_at=NOW, last_event_at=ago(age), **cols)

    @pytest.mark.parametrize(("age", "fires"), [(15 * MINUTE, False), (15 * MINUTE + 1, True)])
    def test_warn(self, conn: sqlite3.Connection, age: int, fires: bool) -> None:
        self._agent(conn, age)
        expected = (
            [{"type": "send_nudge", "agent_id": "a", "message": WARN, "tier": "warn"}]
            if fires
            else []
        )
        assert run(conn, reconcile_gupp) == expected

    def test_warn_skipped_while_tools_run(self, conn: sqlite3.Connection) -> None:
        self._agent(conn, 20 * MINUTE, active_tools='["bash"]')
        assert run(conn, reconcile_gupp) == []

    @pytest.mark.parametrize(
        ("nudge_age", "recent"),
        [(59 * MINUTE + 59 * SECOND, True), (59 * MINUTE + 59_500, False), (HOUR, False)],
    )
    def test_warn_dedup_at_whole_seconds(
        self, conn: sqlite3.Connection, nudge_age: int, recent: bool
    ) -> None:
        self._agent(conn, 20 * MINUTE)
        add_nudge(conn, "a", tier="warn", created_at=ago(nudge_age))
        assert kinds(run(conn, reconcile_gupp)) == ([] if recent else ["send_nudge"])

    def test_dedup_accepts_sqlite_native_timestamps(self, conn: sqlite3.Connection) -> None:
        self._agent(conn, 20 * MINUTE)
        add_nudge(conn, "a", tier="warn", created_at="2026-03-15 11:30:00")
        add_nudge(conn, "a", tier="escalate")  # another tier does not count
        assert run(conn, reconcile_gupp) == []

    @pytest.mark.parametrize(("age", "fires"), [(HOUR, False), (HOUR + 1, True)])
    def test_escalate(self, conn: sqlite3.Connection, age: int, fires: bool) -> None:
        self._agent(conn, age)
        expected = (
            [
                {"type": "send_nudge", "agent_id": "a", "message": ESCALATE, "tier": "escalate"},
                {
                    "type": "create_triage_request",
                    "agent_id": "a",
                    "triage_type": "stuck_agent",
                    "reason": "GUPP escalation",
                },
            ]
            if fires
            else [{"type": "send_nudge", "agent_id": "a", "message": WARN, "tier": "warn"}]
        )
        assert run(conn, reconcile_gupp) == expected

    def test_escalate_dedup(self, conn: sqlite3.Connection) -> None:
        self._agent(conn, 90 * MINUTE)
        add_nudge(conn, "a", tier="escalate", created_at=ago(10 * MINUTE))
        assert run(conn, reconcile_gupp) == []

    @pytest.mark.parametrize(("age", "fires"), [(2 * HOUR, False), (2 * HOUR + 1, True)])
    def test_force_stop(self, conn: sqlite3.Connection, age: int, fires: bool) -> None:
        self._agent(conn, age)
        actions = run(conn, reconcile_gupp)
        if fires:
            assert actions == [
                {
                    "type": "transition_agent",
                    "agent_id": "a",
                    "from": "working",
                    "to": "stalled",
                    "reason": "GUPP force stop — no SDK activity for 2h",
                },
                {"type": "stop_agent", "agent_id": "a", "reason": "exceeded 2h GUPP limit"},
                {
                    "type": "create_triage_request",
                    "agent_id": "a",
                    "triage_type": "stuck_agent",
                    "reason": "GUPP force stop",
                },
            ]
        else:
            assert "send_nudge" in kinds(actions)

    @pytest.mark.parametrize(
        ("stalled_age", "skipped"),
        [(2 * HOUR + 30 * MINUTE, False), (2 * HOUR + 30 * MINUTE + 1, True)],
    )
    def test_long_stalled_left_to_a2(
        self, conn: sqlite3.Connection, stalled_age: int, skipped: bool
    ) -> None:
        self._agent(conn, 3 * HOUR, status="stalled", stalled_at=ago(stalled_age))
        assert kinds(run(conn, reconcile_gupp)) == (
            [] if skipped else ["transition_agent", "stop_agent", "create_triage_request"]
        )

    def test_falls_back_to_heartbeat_and_skips_bad_times(self, conn: sqlite3.Connection) -> None:
        add_agent(conn, "x", status="working", last_activity_at=ago(20 * MINUTE))
        add_agent(conn, "y", status="working", last_activity_at=None, last_event_at=None)
        add_agent(conn, "z", status="working", last_event_at="later")
        add_agent(conn, "f", status="working", last_event_at=ago(-HOUR))
        add_agent(conn, role="mayor", status="working", last_event_at=ago(5 * HOUR))
        assert [a["agent_id"] for a in run(conn, reconcile_gupp)] == ["x"]

    def test_draining_returns_nothing(self, conn: sqlite3.Connection) -> None:
        self._agent(conn, 3 * HOUR)
        assert run(conn, reconcile_gupp, draining=True) == []


# ════════════════════════════════════════════════════════════════════════
# reconcileGC
# ════════════════════════════════════════════════════════════════════════


class TestGc:
    @pytest.mark.parametrize(("age", "fires"), [(24 * HOUR, False), (24 * HOUR + 1, True)])
    @pytest.mark.parametrize("role", ["polecat", "refinery"])
    @pytest.mark.parametrize("status", ["idle", "dead"])
    def test_threshold(
        self, conn: sqlite3.Connection, age: int, fires: bool, role: str, status: str
    ) -> None:
        add_agent(conn, "a", role=role, status=status, last_activity_at=ago(age))
        expected = (
            [{"type": "delete_agent", "agent_id": "a", "reason": "GC: idle > 24h"}] if fires else []
        )
        assert run(conn, reconcile_gc) == expected

    def test_null_activity_is_collected(self, conn: sqlite3.Connection) -> None:
        add_agent(conn, last_activity_at=None)
        assert kinds(run(conn, reconcile_gc)) == ["delete_agent"]

    def test_spared(self, conn: sqlite3.Connection) -> None:
        old = ago(48 * HOUR)
        add_agent(conn, role="mayor", last_activity_at=old)
        add_agent(conn, status="working", last_activity_at=old)
        add_agent(conn, hook=add_bead(conn, status="closed"), last_activity_at=old)
        assert run(conn, reconcile_gc) == []


# ════════════════════════════════════════════════════════════════════════
# reconcileWastelandClaims
# ════════════════════════════════════════════════════════════════════════


def _tag(item: str = "item-1", **extra: Any) -> dict[str, Any]:
    return {
        "wasteland": {"kind": "wanted-item-claim", "wasteland_id": "wl", "item_id": item, **extra}
    }


class TestWasteland:
    def _claim(self, conn: sqlite3.Connection, mrs: list[tuple[str, str | None]]) -> None:
        add_bead(
            conn,
            "issue",
            title="Add dark mode",
            status="closed",
            metadata=_tag(),
            created_at=ago(HOUR),
        )
        for i, (status, url) in enumerate(mrs):
            add_mr(
                conn,
                f"mr{i}",
                title=f"Review {i}",
                status=status,
                pr_url=url,
                metadata=_tag(),
                created_at=ago(HOUR - i - 1),
            )

    def test_single_pr(self, conn: sqlite3.Connection) -> None:
        self._claim(conn, [("closed", PR), ("failed", None)])
        assert run(conn, reconcile_wasteland_claims) == [
            {
                "type": "report_wasteland_done",
                "canonical_bead_id": "issue",
                "wasteland_id": "wl",
                "item_id": "item-1",
                "evidence": f"Implemented by {PR} (Review 0).",
            }
        ]

    def test_no_pr(self, conn: sqlite3.Connection) -> None:
        self._claim(conn, [("closed", None)])
        assert run(conn, reconcile_wasteland_claims)[0]["evidence"] == (
            'Marked done by gastown auto-reporter for "Add dark mode". '
            "No PR URLs were available on the merged review beads."
        )

    def test_several_prs_deduplicated(self, conn: sqlite3.Connection) -> None:
        other = "https://github.com/acme/repo/pull/2"
        self._claim(conn, [("closed", PR), ("closed", other), ("closed", PR)])
        assert run(conn, reconcile_wasteland_claims)[0]["evidence"] == (
            f"Implemented by:\n- {PR} (Review 0)\n- {other} (Review 1)"
        )

    @pytest.mark.parametrize("mrs", [[], [("closed", PR), ("in_progress", None)], [("failed", PR)]])
    def test_not_merged(self, conn: sqlite3.Connection, mrs: list[tuple[str, str | None]]) -> None:
        self._claim(conn, mrs)
        assert run(conn, reconcile_wasteland_claims) == []

    @pytest.mark.parametrize(("convoy_status", "reports"), [("open", False), ("closed", True)])
    def test_convoy_is_canonical_and_gates(
        self, conn: sqlite3.Connection, convoy_status: str, reports: bool
    ) -> None:
        self._claim(conn, [("closed", PR)])
        add_bead(conn, "cv", type="convoy", status=convoy_status, metadata=_tag(), created_at=NOW)
        actions = run(conn, reconcile_wasteland_claims)
        assert [a["canonical_bead_id"] for a in actions] == (["cv"] if reports else [])

    @pytest.mark.parametrize("stamp", ["", "2026-03-15T11:00:00.000Z"])
    def test_reported_claim_dropped(self, conn: sqlite3.Connection, stamp: str) -> None:
        self._claim(conn, [("closed", PR)])
        conn.execute(
            "UPDATE beads SET metadata = ? WHERE bead_id = 'mr0'",
            (json.dumps(_tag(reported_done_at=stamp)),),
        )
        assert run(conn, reconcile_wasteland_claims) == []

    def test_oldest_bead_canonical_even_an_mr(self, conn: sqlite3.Connection) -> None:
        add_mr(conn, "mr", status="closed", pr_url=PR, metadata=_tag(), created_at=ago(HOUR))
        add_bead(conn, "late", status="closed", metadata=_tag(), created_at=NOW)
        assert run(conn, reconcile_wasteland_claims)[0]["canonical_bead_id"] == "mr"

    def test_invalid_tag_ignored(self, conn: sqlite3.Connection) -> None:
        meta = {"wasteland": {"kind": "other", "wasteland_id": "wl", "item_id": "i"}}
        add_mr(conn, status="closed", pr_url=PR, metadata=meta)
        assert run(conn, reconcile_wasteland_claims) == []


# ════════════════════════════════════════════════════════════════════════
# Whole-pass interplay: draining gating (§4.1) and same-snapshot quirks (§14, §17)
# ════════════════════════════════════════════════════════════════════════


def _ungated_town(conn: sqlite3.Connection) -> None:
    """One case per rule that draining must *not* gate."""
    rig = add_rig(conn, "r")
    add_agent(conn, "a4", hook=add_bead(conn, status="closed"))  # A4
    add_agent(conn, "a3", dispatch_attempts=5, last_activity_at=ago(HOUR))  # A3
    add_bead(conn, "b1b", rig_id=rig, assignee_agent_bead_id="ghost")  # Rule 1b
    add_bead(conn, "b3", status="in_progress", updated_at=ago(HOUR))  # Rule 3
    add_bead(conn, "b4", status="in_review", updated_at=ago(HOUR))  # Rule 4
    add_mr(conn, status="failed", source="b4")
    add_mr(conn, "poll", status="in_progress", pr_url=PR)  # R1
    add_mr(conn, "dead", status="closed")
    add_agent(conn, "r7", role="refinery", status="working", hook="dead")  # R7
    add_convoy(conn, "cv", tracks=[add_bead(conn, status="closed")], closed_beads=1)
    add_agent(conn, "gc", last_activity_at=ago(48 * HOUR))  # GC


def test_draining_gates_only_dispatch_heartbeat_and_gupp(conn: sqlite3.Connection) -> None:
    _ungated_town(conn)
    assert run(conn, draining=True) == run(conn, draining=False)
    got = kinds(run(conn, draining=True))
    for kind in (
        "reset_agent_dispatch_attempts",
        "clear_agent_checkpoint",
        "clear_bead_assignee",
        "poll_pr",
        "stop_agent",
        "close_convoy",
        "delete_agent",
    ):
        assert kind in got


def test_a4_and_rule2_same_snapshot(conn: sqlite3.Connection) -> None:
    """§17: a stale idle agent hooked to an open, unblocked bead gets A4 and Rule 2."""
    rig = add_rig(conn, "r")
    add_bead(conn, "b", rig_id=rig, assignee_agent_bead_id=None)
    add_agent(conn, "a", rig_id=rig, hook="b", last_activity_at=ago(HOUR))
    conn.execute("UPDATE beads SET assignee_agent_bead_id = 'a' WHERE bead_id = 'b'")
    actions = run(conn)
    assert [(a["type"], a.get("from"), a.get("to")) for a in actions] == [
        ("unhook_agent", None, None),
        ("transition_bead", "open", "open"),
        ("dispatch_agent", None, None),
    ]


def test_gupp_skips_agent_a2_idles(conn: sqlite3.Connection) -> None:
    """§14.1: GUPP must not re-stall an agent that A2 idles in the same pass."""
    add_agent(
        conn,
        "a",
        status="stalled",
        stalled_at=ago(3 * HOUR),
        last_event_at=ago(3 * HOUR),
    )
    assert [a["to"] for a in run(conn) if a["type"] == "transition_agent"] == ["idle"]


# ════════════════════════════════════════════════════════════════════════
# Invariants (spec §8)
# ════════════════════════════════════════════════════════════════════════


class TestInvariants:
    def test_clean_town(self, conn: sqlite3.Connection) -> None:
        rig = add_rig(conn)
        bead = add_bead(conn, rig_id=rig, status="in_review")
        add_mr(conn, rig_id=rig, status="in_progress", source=bead)
        add_agent(conn, role="mayor", status="working")
        add_agent(conn, status="working", hook=bead)
        add_convoy(conn, status="failed")
        assert check_invariants(make_ctx(conn)) == []

    def test_7_working_without_hook(self, conn: sqlite3.Connection) -> None:
        add_agent(conn, "a", status="working")
        add_agent(conn, "m", role="mayor", status="working")
        assert check_invariants(make_ctx(conn)) == [
            {"invariant": 7, "message": "Working agent a has no hook"}
        ]

    def test_5_convoy_state(self, conn: sqlite3.Connection) -> None:
        add_convoy(conn, "c", status="landed")
        assert check_invariants(make_ctx(conn)) == [
            {"invariant": 5, "message": "Convoy bead c is in unexpected state 'landed'"}
        ]

    def test_3_several_in_progress_mrs(self, conn: sqlite3.Connection) -> None:
        rig = add_rig(conn, "r")
        add_mr(conn, "m1", rig_id=rig, status="in_progress", pr_url=PR)
        add_mr(conn, "m2", rig_id=rig, status="in_progress")
        add_mr(conn, rig_id=None, status="in_progress")
        add_mr(conn, rig_id=None, status="in_progress")
        violations = check_invariants_detailed(make_ctx(conn))
        assert [v.as_upstream() for v in violations] == [
            {"invariant": 3, "message": "Rig r has 2 in_progress MR beads (should be at most 1)"}
        ]
        assert violations[0].bead_ids == ("m1", "m2")
        assert violations[0].rig_ids == ("r",)

    def test_6_several_agents_hooked(self, conn: sqlite3.Connection) -> None:
        bead = add_bead(conn, "b", status="in_progress")
        add_agent(conn, "a1", hook=bead, status="working")
        add_agent(conn, "a2", hook=bead, status="working")
        violations = check_invariants_detailed(make_ctx(conn))
        assert [v.as_upstream() for v in violations] == [
            {"invariant": 6, "message": "Bead b has 2 agents hooked (should be at most 1)"}
        ]
        assert violations[0].agent_ids == ("a1", "a2")

    @pytest.mark.parametrize(
        ("mr_status", "fires"),
        [(None, True), ("closed", True), ("open", False), ("in_progress", False)],
    )
    def test_4_in_review_without_live_mr(
        self, conn: sqlite3.Connection, mr_status: str | None, fires: bool
    ) -> None:
        add_bead(conn, "s", status="in_review")
        if mr_status:
            add_mr(conn, status=mr_status, source="s")
        expected = [
            {
                "invariant": 4,
                "message": "Issue bead s is in_review but has no open/in_progress MR bead",
            }
        ]
        assert check_invariants(make_ctx(conn)) == (expected if fires else [])

    def test_order_is_7_5_3_6_4(self, conn: sqlite3.Connection) -> None:
        rig = add_rig(conn)
        add_bead(conn, status="in_review")
        hooked = add_bead(conn, status="in_progress")
        add_agent(conn, hook=hooked)
        add_agent(conn, hook=hooked)
        add_mr(conn, rig_id=rig, status="in_progress")
        add_mr(conn, rig_id=rig, status="in_progress")
        add_convoy(conn, status="weird")
        add_agent(conn, status="working")
        assert [v["invariant"] for v in check_invariants(make_ctx(conn))] == [7, 5, 3, 6, 4]

    def test_registry(self) -> None:
        assert [inv.number for inv in INVARIANTS] == [7, 5, 3, 6, 4]
        for inv in INVARIANTS:
            assert invariant_by_number(inv.number) is inv
            assert len(inv.description) > 80 and inv.title


# ════════════════════════════════════════════════════════════════════════
# Property: reconcile and the invariant check never write
# ════════════════════════════════════════════════════════════════════════

STATUSES = ["open", "in_progress", "in_review", "closed", "failed"]
AGENT_STATUSES = ["idle", "working", "stalled", "dead", "waiting"]
AGES = st.one_of(
    st.none(), st.sampled_from(["", "junk"]), st.integers(-HOUR, 3 * 24 * HOUR).map(ago)
)


@st.composite
def towns(draw: st.DrawFn) -> sqlite3.Connection:
    conn = new_town()
    rigs = [
        add_rig(
            conn,
            config=draw(
                st.sampled_from([{}, {"code_review": False}, {"max_dispatch_attempts": 2}])
            ),
        )
        for _ in range(draw(st.integers(1, 2)))
    ]
    beads: list[str] = []
    for _ in range(draw(st.integers(0, 8))):
        kind = draw(st.sampled_from(["issue", "merge_request", "convoy"]))
        meta = draw(
            st.sampled_from(
                [{}, {"babysit": True}, {"ready_to_land": 1}, {"auto_merge_pending": 1}, _tag()]
            )
        )
        cols: dict[str, Any] = {
            "status": draw(st.sampled_from(STATUSES)),
            "rig_id": draw(st.sampled_from([None, *rigs])),
            "updated_at": draw(AGES) or NOW,
            "dispatch_attempts": draw(st.integers(0, 6)),
            "last_dispatch_attempt_at": draw(AGES),
            "metadata": meta,
            "created_by": draw(st.sampled_from([None, "system", "p"])),
        }
        if kind == "merge_request":
            beads.append(add_mr(conn, pr_url=draw(st.sampled_from([None, PR])), **cols))
        elif kind == "convoy":
            beads.append(
                add_convoy(conn, feature_branch=draw(st.sampled_from([None, "f"])), **cols)
            )
        else:
            beads.append(add_bead(conn, **cols))
    if len(beads) >= 2:
        for _ in range(draw(st.integers(0, 4))):
            a, b = draw(st.permutations(beads))[:2]
            dep = draw(st.sampled_from(["blocks", "tracks"]))
            conn.execute("INSERT OR IGNORE INTO bead_dependencies VALUES (?, ?, ?)", (a, b, dep))
    for _ in range(draw(st.integers(0, 4))):
        agent = add_agent(
            conn,
            rig_id=draw(st.sampled_from([None, *rigs])),
            role=draw(st.sampled_from(["polecat", "refinery", "mayor"])),
            status=draw(st.sampled_from(AGENT_STATUSES)),
            hook=draw(st.sampled_from([None, *beads])),
            last_activity_at=draw(AGES),
            last_event_at=draw(AGES),
            stalled_at=draw(AGES),
            dispatch_attempts=draw(st.integers(0, 6)),
        )
        if draw(st.booleans()):
            add_nudge(
                conn,
                agent,
                tier=draw(st.sampled_from(["warn", "escalate"])),
                created_at=draw(AGES) or NOW,
            )
    return conn


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    town=towns(),
    draining=st.booleans(),
    config=st.sampled_from([{}, {"refinery": {"code_review": False}}]),
)
def test_reconcile_never_writes(
    town: sqlite3.Connection, draining: bool, config: dict[str, Any]
) -> None:
    before, changes = dump(town), town.total_changes
    ctx = make_ctx(town, config=config, draining=draining)
    actions = reconcile(ctx)
    check_invariants(ctx)
    assert town.total_changes == changes
    assert dump(town) == before
    assert all(isinstance(a["type"], str) for a in actions)
