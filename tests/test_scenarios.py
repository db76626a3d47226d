"""Every named scenario produces the outcome its docstring documents, read back from its database.

Each scenario is simulated once (seed 0) into a temporary folder; the tests
read the stored per-tick records (``rg_ticks``), the journal and the final
tables. Nothing here hard-codes ids or counts a run happened to produce: the
expectations are the engine's own rules and constants.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.readback import TickRecord, first, tick_records, town_start, violation_counts

from reportgen.sim import SCENARIOS
from reportgen.town import clock
from reportgen.town.reconciler_common import (
    CIRCUIT_BREAKER_FAILURE_THRESHOLD,
    GUPP_ESCALATE_MS,
    GUPP_FORCE_STOP_MS,
    GUPP_WARN_MS,
    LANDING_MR_COOLDOWN_BASE_MS,
    LANDING_MR_COOLDOWN_MAX_MS,
    MAX_DISPATCH_ATTEMPTS,
    MAX_LANDING_MR_ATTEMPTS,
    ORPHANED_SOURCE_TIMEOUT_MS,
    STUCK_REVIEW_TIMEOUT_MS,
    dispatch_cooldown_ms,
)
from reportgen.town.status import ACTIVE_ALARM_INTERVAL_MS, IDLE_ALARM_INTERVAL_MS

TICK = ACTIVE_ALARM_INTERVAL_MS
IDLE = IDLE_ALARM_INTERVAL_MS


@pytest.fixture(scope="module")
def towns(scenario_towns: dict[str, Path]) -> dict[str, Path]:
    """Every scenario, simulated once per session (``conftest.scenario_towns``)."""
    return scenario_towns


@pytest.fixture
def db(request: pytest.FixtureRequest, towns: dict[str, Path]) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(towns[request.param])
    conn.row_factory = sqlite3.Row
    yield conn
    conn.close()


def _ticks(conn: sqlite3.Connection) -> list[TickRecord]:
    return tick_records(conn)


def _journal(conn: sqlite3.Connection, call: str) -> list[tuple[int, dict[str, object]]]:
    """``(ms since start, args)`` of every journaled ``call``."""
    start = clock.to_ms(town_start(conn))
    rows = conn.execute("SELECT at, args FROM rg_journal WHERE call = ? ORDER BY seq", (call,))
    return [(clock.to_ms(at) - start, json.loads(args)) for at, args in rows]


def _by_reason(tick: TickRecord, action_type: str, text: str) -> list[dict[str, object]]:
    return [a for a in tick.actions(action_type) if text in str(a.get("reason", ""))]


def _scalar(conn: sqlite3.Connection, sql: str, params: tuple[object, ...] = ()) -> int:
    return int(conn.execute(sql, params).fetchone()[0])


def test_every_scenario_is_documented() -> None:
    for name, sc in SCENARIOS.items():
        assert "Report:" in sc.doc, name
        assert sc.summary and len(sc.summary) < 120, name


@pytest.mark.parametrize("db", ["healthy-day"], indirect=True)
def test_healthy_day_flows_without_violations(db: sqlite3.Connection) -> None:
    ticks = _ticks(db)
    assert not violation_counts(ticks)
    assert _scalar(db, "SELECT count(*) FROM beads WHERE type = 'issue' AND status = 'closed'")
    assert _scalar(db, "SELECT count(*) FROM beads WHERE type = 'issue' AND status = 'failed'") == 0
    polecats_at_most = SCENARIOS["healthy-day"].users.max_in_flight
    assert _scalar(db, "SELECT count(*) FROM agent_metadata") <= polecats_at_most + 1
    assert any(t.actions("dispatch_agent") for t in ticks)


@pytest.mark.parametrize("db", ["review-round-stuck"], indirect=True)
def test_review_round_loops_forever(db: sqlite3.Connection) -> None:
    ticks = _ticks(db)
    feedback = [
        r[0]
        for r in db.execute(
            "SELECT bead_id FROM beads WHERE labels LIKE '%gt:pr-feedback%' ORDER BY created_at"
        )
    ]
    assert len(feedback) >= 3  # several rounds, none of which ends the review
    dispatched = {a["bead_id"] for t in ticks for a in t.actions("dispatch_agent")}
    assert set(feedback[:-1]) <= dispatched
    mrs = db.execute(
        "SELECT status FROM beads WHERE type = 'merge_request' AND labels LIKE '%gt:merge-request%'"
    ).fetchall()
    assert [r[0] for r in mrs] == ["in_progress"]
    assert not any(t.actions("merge_pr") for t in ticks)
    polls = [t.offset_ms for t in ticks if t.actions("poll_pr")]
    gaps = sorted(b - a for a, b in itertools.pairwise(polls))
    assert gaps[len(gaps) // 2] <= 70 * clock.SECOND_MS  # polled every minute or so
    assert not violation_counts(ticks)


@pytest.mark.parametrize("db", ["container-crash-loop"], indirect=True)
def test_crash_loop_burns_attempts_then_fails(db: sqlite3.Connection) -> None:
    ticks = _ticks(db)
    statuses = {
        r[0]
        for r in db.execute(
            "SELECT json_extract(payload, '$.status') FROM town_events "
            "WHERE event_type = 'container_status'"
        )
    }
    assert statuses & {"exited", "failed"}
    failed = [
        (t, a)
        for t in ticks
        for a in _by_reason(t, "transition_bead", "max dispatch attempts exceeded")
    ]
    assert failed
    for tick, action in failed:
        times = [
            t.offset_ms
            for t in ticks
            if t.seq < tick.seq
            for a in t.actions("dispatch_agent")
            if a["bead_id"] == action["bead_id"]
        ]
        assert len(times) == MAX_DISPATCH_ATTEMPTS
        for n, (a, b) in enumerate(itertools.pairwise(times), start=1):
            assert b - a >= dispatch_cooldown_ms(n)
    assert any(_by_reason(t, "unhook_agent", "dispatch failed") for t in ticks)
    assert _scalar(db, "SELECT count(*) FROM beads WHERE type = 'issue' AND status = 'closed'") == 0
    assert not violation_counts(ticks)


@pytest.mark.parametrize("db", ["working-agent-no-hook"], indirect=True)
def test_refinery_ends_working_without_hook(db: sqlite3.Connection) -> None:
    ticks = _ticks(db)
    hit = first(ticks, lambda t: 7 in t.invariants())
    assert hit is not None
    stuck = _by_reason(hit, "transition_bead", "stuck review, no working agent")
    assert stuck
    refinery = str(hit.actions("unhook_agent")[0]["agent_id"])
    assert refinery in hit.record["violations"][0]["message"]
    assert any(a["agent_id"] == refinery for a in hit.actions("dispatch_agent"))
    popped = first(ticks, lambda t: bool(_by_reason(t, "transition_bead", "popped for review")))
    assert popped is not None
    assert hit.offset_ms - popped.offset_ms > STUCK_REVIEW_TIMEOUT_MS
    after = ticks[ticks.index(hit) + 1]
    idled = _by_reason(after, "transition_agent", "working agent has no hook")
    assert [a["agent_id"] for a in idled] == [refinery]
    assert 7 not in after.invariants()


@pytest.mark.parametrize("db", ["double-hook"], indirect=True)
def test_buggy_client_double_hook(db: sqlite3.Connection) -> None:
    ticks = _ticks(db)
    forced = _journal(db, "force_hook")
    assert len(forced) == 1
    forced_ms, args = forced[0]
    bead = str(args["bead_id"])
    hits = [t for t in ticks if 6 in t.invariants()]
    assert hits and hits[0].offset_ms - forced_ms <= TICK
    assert bead in hits[0].record["violations"][0]["message"]
    seqs = [t.seq for t in ticks]
    span = seqs[seqs.index(hits[0].seq) : seqs.index(hits[-1].seq) + 1]
    assert span == [t.seq for t in hits]  # one unbroken episode
    pair = {str(args["agent_id"])} | {
        r[0]
        for r in db.execute("SELECT assignee_agent_bead_id FROM beads WHERE bead_id = ?", (bead,))
    }
    finished: dict[str, int] = {}
    for ms, a in _journal(db, "agent_done"):
        if a["agent_id"] in pair and ms > forced_ms:
            finished.setdefault(str(a["agent_id"]), ms)  # each agent's first gt_done on the bead
    done = sorted(finished.values())
    assert done and hits[-1].offset_ms <= done[0] + TICK
    mrs = _scalar(
        db,
        "SELECT count(*) FROM bead_dependencies WHERE depends_on_bead_id = ? "
        "AND dependency_type = 'tracks'",
        (bead,),
    )
    assert mrs == len(done)


@pytest.mark.parametrize("db", ["multi-pr-rig"], indirect=True)
def test_several_open_prs_violate_invariant_3(db: sqlite3.Connection) -> None:
    ticks = _ticks(db)
    hit = first(ticks, lambda t: 3 in t.invariants())
    assert hit is not None
    fast = [
        t for t in ticks if t.seq <= hit.seq and _by_reason(t, "transition_bead", "code review")
    ]
    assert (
        len(fast) >= 2
        or sum(len(_by_reason(t, "transition_bead", "code review")) for t in fast) >= 2
    )
    assert violation_counts(ticks)[3] >= 10
    assert any(t.actions("poll_pr") for t in ticks)
    assert _scalar(db, "SELECT count(*) FROM agent_metadata WHERE role = 'refinery'") == 0


@pytest.mark.parametrize("db", ["in-review-without-mr"], indirect=True)
def test_failed_pr_leaves_issue_in_review(db: sqlite3.Connection) -> None:
    ticks = _ticks(db)
    hit = first(ticks, lambda t: 4 in t.invariants())
    assert hit is not None
    outcomes = (hit.record["side_effects"] or {}).get("outcomes", [])
    assert any(o["type"] == "poll_pr" and "MR failed" in o["detail"] for o in outcomes)
    message = next(v["message"] for v in hit.record["violations"] if v["invariant"] == 4)
    source = message.split()[2]
    fixed = first(
        ticks,
        lambda t: any(
            a["bead_id"] == source for a in _by_reason(t, "transition_bead", "all reviews failed")
        ),
    )
    assert fixed is not None
    # Rule 4 waits 5 min; an in_review issue is not "active work", so the town may be
    # on its 5-minute idle cadence meanwhile.
    waited = fixed.offset_ms - hit.offset_ms
    assert ORPHANED_SOURCE_TIMEOUT_MS - TICK <= waited <= ORPHANED_SOURCE_TIMEOUT_MS + IDLE + TICK
    between = [t for t in ticks if hit.seq <= t.seq < fixed.seq]
    assert all(4 in t.invariants() for t in between)
    assert any(a["bead_id"] == source for a in fixed.actions("clear_bead_assignee"))


@pytest.mark.parametrize("db", ["circuit-breaker-open"], indirect=True)
def test_breaker_opens_and_pauses_dispatch(db: sqlite3.Connection) -> None:
    ticks = _ticks(db)
    opened = first(ticks, lambda t: bool(t.actions("notify_mayor")))
    assert opened is not None
    assert "circuit breaker is OPEN" in opened.actions("notify_mayor")[0]["message"]
    window = 30 * clock.MINUTE_MS
    recent = {
        a["bead_id"]
        for t in ticks
        if opened.offset_ms - window < t.offset_ms < opened.offset_ms
        for a in t.actions("dispatch_agent")
    }
    assert len(recent) >= CIRCUIT_BREAKER_FAILURE_THRESHOLD
    assert not any(t.actions("notify_mayor") and t.actions("dispatch_agent") for t in ticks)
    assert any(_by_reason(t, "transition_bead", "max dispatch attempts exceeded") for t in ticks)
    assert not violation_counts(ticks)


@pytest.mark.parametrize("db", ["convoy-landing-exhausted"], indirect=True)
def test_landing_exhausted_fails_convoy(db: sqlite3.Connection) -> None:
    ticks = _ticks(db)
    ready = db.execute(
        "SELECT json_extract(metadata, '$.ready_to_land') FROM beads WHERE type = 'convoy'"
    ).fetchone()[0]
    assert ready == 1
    landings = [t.offset_ms for t in ticks for _ in t.actions("create_landing_mr")]
    assert len(landings) == MAX_LANDING_MR_ATTEMPTS
    for n, (a, b) in enumerate(itertools.pairwise(landings), start=1):
        assert b - a >= min(2**n * LANDING_MR_COOLDOWN_BASE_MS, LANDING_MR_COOLDOWN_MAX_MS)
    failed = [t for t in ticks if t.actions("fail_convoy")]
    assert len(failed) == 1 and failed[0].offset_ms > landings[-1]
    assert "after 5 attempts" in failed[0].actions("fail_convoy")[0]["reason"]
    status = db.execute("SELECT status FROM beads WHERE type = 'convoy'").fetchone()[0]
    assert status == "failed"


@pytest.mark.parametrize("db", ["eviction-during-work"], indirect=True)
def test_eviction_drains_then_recovers(db: sqlite3.Connection) -> None:
    ticks = _ticks(db)
    ((evicted_ms, _),) = _journal(db, "record_container_eviction")
    draining = [t for t in ticks if t.record["draining"]]
    assert draining and draining[0].offset_ms >= evicted_ms
    seqs = [t.seq for t in ticks]
    assert [t.seq for t in draining] == seqs[seqs.index(draining[0].seq) :][: len(draining)]
    assert not any(t.actions("dispatch_agent") for t in draining)
    reports = [a for _, a in _journal(db, "agent_completed") if a["reason"] == "container eviction"]
    assert reports
    reset = {a["bead_id"] for t in draining for a in _by_reason(t, "transition_bead", "agent lost")}
    assert reset
    later = {
        a["bead_id"] for t in ticks if t.seq > draining[-1].seq for a in t.actions("dispatch_agent")
    }
    assert reset & later
    assert not violation_counts(ticks)


@pytest.mark.parametrize("db", ["gupp-escalation"], indirect=True)
def test_gupp_warns_escalates_and_stops(db: sqlite3.Connection) -> None:
    ticks = _ticks(db)

    def tier(name: str) -> TickRecord | None:
        return first(ticks, lambda t: any(a["tier"] == name for a in t.actions("send_nudge")))

    warn, escalate = tier("warn"), tier("escalate")
    assert warn is not None
    beats = [ms for ms, a in _journal(db, "heartbeat") if a["last_event_type"] is not None]
    last_event = max(ms for ms in beats if ms < warn.offset_ms)  # the run's last SDK activity
    stop = first(ticks, lambda t: bool(_by_reason(t, "transition_agent", "GUPP force stop")))
    for tick, threshold in ((warn, GUPP_WARN_MS), (escalate, GUPP_ESCALATE_MS),
                            (stop, GUPP_FORCE_STOP_MS)):  # fmt: skip
        assert tick is not None
        assert threshold < tick.offset_ms - last_event <= threshold + 2 * TICK
    assert escalate is not None and escalate.actions("create_triage_request")
    assert stop is not None and stop.actions("stop_agent") and stop.actions("create_triage_request")
    assert any(t.actions("dispatch_agent") for t in ticks if t.seq > stop.seq)
    assert not violation_counts(ticks)


@pytest.mark.parametrize("db", ["attempts-exhausted"], indirect=True)
def test_outage_burns_every_attempt_and_the_work_stays_failed(db: sqlite3.Connection) -> None:
    ticks = _ticks(db)
    outage = SCENARIOS["attempts-exhausted"].agents.start_outage
    assert outage is not None
    issues = _scalar(db, "SELECT count(*) FROM beads WHERE type = 'issue'")
    failed = [
        (t, a)
        for t in ticks
        for a in _by_reason(t, "transition_bead", "max dispatch attempts exceeded")
    ]
    assert issues and len(failed) == issues
    assert (
        _scalar(db, "SELECT count(*) FROM beads WHERE type = 'issue' AND status != 'failed'") == 0
    )
    for t in ticks:
        outcomes = (t.record["side_effects"] or {}).get("outcomes") or []
        assert all(not o["ok"] for o in outcomes if o["type"] == "dispatch_agent")
    assert not any(t.actions("dispatch_agent") for t in ticks if t.offset_ms >= outage.hi_ms)
    resets = [t for t in ticks if t.actions("reset_agent_dispatch_attempts")]
    assert resets and resets[0].offset_ms > outage.hi_ms - 15 * clock.MINUTE_MS
    assert _scalar(db, "SELECT count(*) FROM beads WHERE status = 'closed'") == 0
    assert not violation_counts(ticks)


@pytest.mark.parametrize("db", ["alarm-stopped"], indirect=True)
def test_alarm_stops_for_half_an_hour_with_work_pending(db: sqlite3.Connection) -> None:
    ticks = _ticks(db)
    gaps = [(a, b) for a, b in itertools.pairwise(ticks) if b.offset_ms - a.offset_ms > IDLE]
    assert len(gaps) == 1
    before, after = gaps[0]
    assert 40 * clock.MINUTE_MS <= before.offset_ms <= 50 * clock.MINUTE_MS + TICK
    assert 30 * clock.MINUTE_MS <= after.offset_ms - before.offset_ms <= 30 * clock.MINUTE_MS + TICK
    assert before.record["active_work"]
    assert after.record["metrics"]["eventsDrained"] > 0
    assert _scalar(db, "SELECT count(*) FROM beads WHERE type = 'issue' AND status = 'closed'")
    assert not violation_counts(ticks)
