"""Upstream's integration scenarios (spec §14, end) and its observable quirks, over many ticks.

Each test drives a town through the journaled :class:`Town` API on a
simulated clock, as upstream's own integration tests drive a TownDO.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest
from support.worlds import RecordingWorld

from reportgen.town import clock
from reportgen.town.api import Town
from reportgen.town.db import configure
from reportgen.town.effects import PRStatus
from reportgen.town.tick import ModelStopwatch, TickResult

START = clock.to_ms("2026-03-15T12:00:00.000Z")
PR = "https://github.com/acme/repo1/pull/7"


class Harness:
    """A town, a clock in seconds from START, and a scripted outside world."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        self.town = Town.create(configure(sqlite3.connect(":memory:")), "town-int", config)
        self.world = RecordingWorld()
        self.rig = self.town.add_rig(self.at(0), "repo1", git_url="https://github.com/acme/repo1")

    def at(self, seconds: float) -> str:
        return clock.iso(START + int(seconds * 1000))

    def tick(self, seconds: float) -> TickResult:
        return self.town.tick(self.at(seconds), self.world, stopwatch=ModelStopwatch())

    def one(self, sql: str, *params: Any) -> Any:
        row = self.town.conn.execute(sql, params).fetchone()
        return None if row is None else (row[0] if len(row) == 1 else tuple(row))

    def bead(self, bead_id: str) -> sqlite3.Row:
        row: sqlite3.Row = self.town.conn.execute(
            "SELECT * FROM beads WHERE bead_id = ?", (bead_id,)
        ).fetchone()
        return row

    def agent(self, agent_id: str) -> sqlite3.Row:
        row: sqlite3.Row = self.town.conn.execute(
            "SELECT * FROM agent_metadata WHERE bead_id = ?", (agent_id,)
        ).fetchone()
        return row

    def dispatched_agent(self, result: TickResult) -> str:
        (effect,) = [r.side_effect for r in result.applied if r.type == "dispatch_agent"]
        assert effect is not None
        return str(effect.args["agent_id"])


@pytest.fixture
def h() -> Harness:
    return Harness()


def _types(result: TickResult) -> list[str]:
    return [a["type"] for a in result.actions]


def test_lazy_assignment_of_an_open_issue_takes_one_tick(h: Harness) -> None:
    bead = h.town.sling_bead(h.at(1), h.rig, "Fix it")
    result = h.tick(2)
    assert _types(result) == ["dispatch_agent"]
    agent = h.dispatched_agent(result)
    assert h.bead(bead)["assignee_agent_bead_id"] == agent
    assert h.bead(bead)["status"] == "in_progress"
    assert (h.agent(agent)["status"], h.agent(agent)["dispatch_attempts"]) == ("working", 0)


def test_a_blocked_bead_waits_for_its_blocker_to_close(h: Harness) -> None:
    _, (first, second) = h.town.sling_convoy(
        h.at(1), h.rig, "Two steps", [{"title": "one"}, {"title": "two", "depends_on": [0]}],
        merge_mode="review-and-merge",
    )  # fmt: skip
    result = h.tick(2)
    assert [a["bead_id"] for a in result.actions if a["type"] == "dispatch_agent"] == [first]
    assert h.bead(second)["assignee_agent_bead_id"] is None
    h.town.update_bead_status(h.at(10), first, "closed")
    result = h.tick(15)
    assert [a["bead_id"] for a in result.actions if a["type"] == "dispatch_agent"] == [second]


def test_a_stale_in_progress_bead_is_not_reset_before_five_minutes(h: Harness) -> None:
    bead = h.town.sling_bead(h.at(1), h.rig, "Fix it")
    agent = h.dispatched_agent(h.tick(2))
    h.town.agent_completed(h.at(3), agent, status="completed")  # the agent goes away
    h.tick(5)
    assert h.bead(bead)["status"] == "in_progress"
    h.tick(2 + 300)  # exactly 5 min after the bead was last updated: not stale yet
    assert h.bead(bead)["status"] == "in_progress"
    result = h.tick(2 + 300.005)
    assert ("transition_bead", "agent lost") in [
        (a["type"], a.get("reason")) for a in result.actions
    ]
    assert h.bead(bead)["status"] == "open"


def test_heartbeat_restores_idle_to_working_and_leaves_other_statuses(h: Harness) -> None:
    h.town.sling_bead(h.at(1), h.rig, "Fix it")
    agent = h.dispatched_agent(h.tick(2))
    h.town.set_agent_status(h.at(3), agent, "idle")
    h.town.heartbeat(h.at(4), agent)
    assert h.agent(agent)["status"] == "working"
    h.town.heartbeat(h.at(5), agent)
    assert h.agent(agent)["status"] == "working"
    h.town.set_agent_status(h.at(6), agent, "exited")
    h.town.heartbeat(h.at(7), agent)
    assert h.agent(agent)["status"] == "exited"
    assert h.agent(agent)["last_activity_at"] == h.at(7)


def test_agent_done_puts_the_source_in_review_and_the_next_tick_pops_the_mr(h: Harness) -> None:
    bead = h.town.sling_bead(h.at(1), h.rig, "Fix it")
    agent = h.dispatched_agent(h.tick(2))
    h.town.agent_done(h.at(30), agent, branch="gt/toast/fix", summary="done")
    h.tick(31)
    assert h.bead(bead)["status"] == "in_review"
    mr = h.one(
        "SELECT bead_id FROM beads WHERE type = 'merge_request' "
        "AND json_extract(metadata, '$.source_bead_id') = ?",
        bead,
    )
    assert mr is not None
    assert h.agent(agent)["current_hook_bead_id"] is None
    # the same tick already popped it for review and created the rig's refinery
    assert h.bead(mr)["status"] == "in_progress"
    refinery = h.one("SELECT bead_id FROM agent_metadata WHERE role = 'refinery'")
    assert h.agent(refinery)["current_hook_bead_id"] == mr


def test_eviction_with_a_fresh_heartbeat_keeps_the_bead_in_progress(h: Harness) -> None:
    bead = h.town.sling_bead(h.at(1), h.rig, "Fix it")
    agent = h.dispatched_agent(h.tick(2))
    h.town.heartbeat(h.at(20), agent)
    h.town.agent_completed(h.at(21), agent, status="completed", reason="container eviction")
    h.tick(22)
    assert (h.bead(bead)["status"], h.bead(bead)["assignee_agent_bead_id"]) == (
        "in_progress",
        agent,
    )
    assert (h.agent(agent)["status"], h.agent(agent)["current_hook_bead_id"]) == ("idle", None)


def test_a_refinery_past_max_attempts_fails_the_mr_and_is_unhooked(h: Harness) -> None:
    bead = h.town.sling_bead(h.at(1), h.rig, "Fix it")
    agent = h.dispatched_agent(h.tick(2))
    h.town.agent_done(h.at(30), agent, branch="gt/toast/fix")
    h.tick(31)
    mr = h.one("SELECT bead_id FROM beads WHERE type = 'merge_request'")
    refinery = h.one("SELECT bead_id FROM agent_metadata WHERE role = 'refinery'")
    h.town.conn.execute("UPDATE beads SET dispatch_attempts = 5 WHERE bead_id = ?", (mr,))
    h.town.set_agent_status(h.at(40), refinery, "idle")
    result = h.tick(41)
    reasons = [a.get("reason") for a in result.actions]
    assert "refinery max dispatch attempts exceeded (5)" in reasons
    assert h.bead(mr)["status"] == "failed"
    assert h.agent(refinery)["current_hook_bead_id"] is None
    # A plain status change does not complete the review: the source waits in review
    # until Rule 4's 5-minute safety net sees that every MR tracking it is terminal.
    assert h.bead(bead)["status"] == "in_review"
    result = h.tick(41 + 301)
    assert ("transition_bead", "all reviews failed") in [
        (a["type"], a.get("reason")) for a in result.actions
    ]
    assert h.bead(bead)["status"] == "open"


def test_a_review_and_merge_convoy_lands_when_all_its_beads_close(h: Harness) -> None:
    convoy, tasks = h.town.sling_convoy(
        h.at(1), h.rig, "Pair", [{"title": "a"}, {"title": "b"}], merge_mode="review-and-merge"
    )
    for t in tasks:
        h.town.update_bead_status(h.at(2), t, "closed")
    h.tick(3)
    assert h.bead(convoy)["status"] == "closed"
    assert h.one("SELECT closed_beads, landed_at FROM convoy_metadata") == (2, h.at(2))


def test_a_review_then_land_convoy_stays_open_ready_to_land(h: Harness) -> None:
    convoy, tasks = h.town.sling_convoy(h.at(1), h.rig, "Pair", [{"title": "a"}])
    h.town.update_bead_status(h.at(2), tasks[0], "closed")
    result = h.tick(3)
    assert h.bead(convoy)["status"] == "open"
    assert h.one("SELECT json_extract(metadata, '$.ready_to_land') FROM beads WHERE bead_id = ?",
                 convoy) == 1  # fmt: skip
    assert "create_landing_mr" in _types(result)


def test_an_idle_agent_hooked_to_a_closed_bead_is_unhooked(h: Harness) -> None:
    bead = h.town.sling_bead(h.at(1), h.rig, "Fix it")
    agent = h.dispatched_agent(h.tick(2))
    h.town.set_agent_status(h.at(3), agent, "idle")
    h.town.update_bead_status(h.at(4), bead, "closed")
    h.tick(5)
    assert h.agent(agent)["current_hook_bead_id"] is None


def test_recently_active_agents_are_not_garbage_collected(h: Harness) -> None:
    h.town.sling_bead(h.at(1), h.rig, "Fix it")
    agent = h.dispatched_agent(h.tick(2))
    h.town.agent_completed(h.at(3), agent, status="completed")
    day = 24 * 3600
    assert h.agent(agent)["last_activity_at"] == h.at(2)  # the dispatch's activity
    h.tick(2 + day)  # exactly 24 h since its last activity: kept
    assert h.agent(agent) is not None
    result = h.tick(2 + day + 0.001)
    assert ("delete_agent", "GC: idle > 24h") in [
        (a["type"], a.get("reason")) for a in result.actions
    ]
    assert h.agent(agent) is None


# ----------------------------------------------------------------- quirks (§14)


def test_quirk_6_phantom_failed_dispatch_is_reaped_after_90s(h: Harness) -> None:
    h.world.start_answers = False  # the container refuses the start
    bead = h.town.sling_bead(h.at(1), h.rig, "Fix it")
    agent = h.dispatched_agent(h.tick(2))
    assert (h.agent(agent)["status"], h.agent(agent)["dispatch_attempts"]) == ("working", 1)
    h.tick(92)  # 90 s since dispatch: heartbeat not yet stale
    assert h.agent(agent)["status"] == "working"
    result = h.tick(92.005)
    assert ("transition_agent", "heartbeat lost (3 missed cycles)") in [
        (a["type"], a.get("reason")) for a in result.actions
    ]
    h.tick(93)
    assert h.agent(agent)["current_hook_bead_id"] is None  # A4 unhooked it
    assert h.bead(bead)["status"] in ("open", "in_progress")


def test_quirk_12_events_from_side_effects_apply_on_the_next_tick() -> None:
    h = Harness({"merge_strategy": "pr", "refinery": {"code_review": False}})
    bead = h.town.sling_bead(h.at(1), h.rig, "Fix it")
    agent = h.dispatched_agent(h.tick(2))
    h.town.agent_done(h.at(30), agent, branch="gt/toast/fix", pr_url=PR)
    h.tick(31)  # MR created; code review off: fast-tracked to in_progress
    h.world.pr_status_answers = PRStatus.found("merged")
    result = h.tick(36)  # poll_pr sees the merge and inserts pr_status_changed
    assert "poll_pr" in _types(result)
    assert result.metrics["pendingEventCount"] == 1
    assert h.bead(bead)["status"] == "in_review"
    result = h.tick(41)
    assert result.metrics["eventsDrained"] == 1
    assert h.bead(bead)["status"] == "closed"


def test_quirk_16_gupp_force_stop_repeats_every_tick(h: Harness) -> None:
    h.town.sling_bead(h.at(1), h.rig, "Fix it")
    agent = h.dispatched_agent(h.tick(2))
    two_hours = 2 * 3600
    for t in range(0, two_hours + 60, 60):  # heartbeats keep it alive, no SDK progress
        h.town.heartbeat(h.at(3 + t), agent)
    h.town.conn.execute(
        "UPDATE agent_metadata SET last_event_at = ?, last_activity_at = ? WHERE bead_id = ?",
        (h.at(3), h.at(3), agent),
    )
    stops = []
    for k in range(3):
        result = h.tick(3 + two_hours + 1 + 5 * k)
        stops.append(_types(result).count("stop_agent"))
    assert stops == [1, 1, 1]
    triage = h.one("SELECT count(*) FROM beads WHERE labels LIKE '%gt:triage-request%'")
    assert triage == 1  # the triage request is de-duplicated, the stop is not
