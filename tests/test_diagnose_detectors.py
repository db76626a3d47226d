"""Every detector on both sides of every threshold, on small hand-built towns.

Each town is built with ``townbuilder`` (upstream's tables, readable ids);
ticks are hand-written records. A case one millisecond (or one count) on
the quiet side of a threshold gives no finding; on the other side, one.
"""

from __future__ import annotations

import json

import pytest
from support.diagnose_helpers import at, dispatch, make_input, run, tick
from support.townbuilder import (
    HOUR,
    MINUTE,
    SECOND,
    add_agent,
    add_bead,
    add_mr,
    add_rig,
    ago,
    insert,
    new_town,
)

from reportgen.diagnose.registry import CRITICAL, NOTICE, WARNING

# --------------------------------------------------------------------------- no-progress

NP = "no-progress"


@pytest.mark.parametrize(("idle", "found"), [(30 * MINUTE, True), (30 * MINUTE - 1, False)])
def test_no_progress_counts_from_the_oldest_pending_bead(idle: int, found: bool) -> None:
    conn = new_town()
    rig = add_rig(conn, name="webapp")
    add_bead(conn, rig_id=rig, created_at=ago(idle), updated_at=ago(idle))
    findings = run(NP, make_input(conn))
    assert bool(findings) is found
    if found:
        (f,) = findings
        assert (f.severity, f.subject.kind, f.subject_name, f.count) == (
            CRITICAL,
            "rig",
            "webapp",
            1,
        )
        assert f.first_at == ago(idle) and f.open_at_end
        assert "oldest pending bead" in f.because


@pytest.mark.parametrize(("closed", "found"), [(45 * MINUTE, True), (29 * MINUTE, False)])
def test_no_progress_says_when_the_last_productive_work_was(closed: int, found: bool) -> None:
    conn = new_town()
    rig = add_rig(conn)
    add_bead(conn, rig_id=rig, created_at=ago(3 * HOUR))
    add_bead(conn, rig_id=rig, status="closed", closed_at=ago(closed), created_at=ago(2 * HOUR))
    findings = run(NP, make_input(conn))
    assert bool(findings) is found
    if found:
        assert findings[0].first_at == ago(closed)
        assert "last productive work at 2026-03-15 11:15:00 UTC" in findings[0].because


def test_no_progress_counts_a_review_submission_as_progress() -> None:
    conn = new_town()
    rig = add_rig(conn)
    bead = add_bead(conn, rig_id=rig, status="in_review", created_at=ago(3 * HOUR))
    insert(conn, "bead_events", {"bead_event_id": "e1", "bead_id": bead, "agent_id": None,
                                 "event_type": "review_submitted", "old_value": None,
                                 "new_value": None, "metadata": "{}",
                                 "created_at": ago(10 * MINUTE)})  # fmt: skip
    assert run(NP, make_input(conn)) == []


@pytest.mark.parametrize(("event_age", "found"), [(31 * MINUTE, True), (29 * MINUTE, False)])
def test_no_progress_spares_a_rig_whose_agent_is_busy(event_age: int, found: bool) -> None:
    conn = new_town()
    rig = add_rig(conn)
    bead = add_bead(conn, rig_id=rig, status="in_progress", created_at=ago(2 * HOUR))
    add_agent(conn, rig_id=rig, status="working", hook=bead, last_event_at=ago(event_age))
    assert bool(run(NP, make_input(conn))) is found


def test_no_progress_ignores_work_waiting_on_a_pull_request() -> None:
    conn = new_town()
    rig = add_rig(conn)
    issue = add_bead(conn, rig_id=rig, status="in_review", created_at=ago(3 * HOUR))
    add_mr(conn, rig_id=rig, status="in_progress", source=issue, pr_url="https://x/pull/1",
           created_at=ago(3 * HOUR))  # fmt: skip
    assert run(NP, make_input(conn)) == []


def test_no_progress_needs_a_tick_after_the_threshold_when_ticks_exist() -> None:
    conn = new_town()
    rig = add_rig(conn)
    add_bead(conn, rig_id=rig, created_at=ago(HOUR))
    assert run(NP, make_input(conn, [tick(ago(50 * MINUTE))])) == []
    (f,) = run(NP, make_input(conn, [tick(ago(50 * MINUTE)), tick(ago(20 * MINUTE))]))
    assert f.witness == (ago(20 * MINUTE),)
    assert f.meanwhile == "2 ticks, no action"


def test_no_progress_threshold_can_be_overridden() -> None:
    conn = new_town()
    add_bead(conn, rig_id=add_rig(conn), created_at=ago(45 * MINUTE))
    assert run(NP, make_input(conn, overrides={NP: {"min_idle": 60}})) == []
    assert run(NP, make_input(conn, overrides={NP: {"min_idle": 44}}))


# --------------------------------------------------------------------------- dispatch-loop

DL = "dispatch-loop"


@pytest.mark.parametrize(("times", "found"), [(3, True), (2, False)])
def test_dispatch_loop_needs_three_dispatches_of_one_bead(times: int, found: bool) -> None:
    conn = new_town()
    bead = add_bead(conn, rig_id=add_rig(conn), title="Fix login")
    ticks = [dispatch(bead, ok=False, when=ago((10 - i) * MINUTE)) for i in range(times)]
    findings = run(DL, make_input(conn, ticks))
    assert bool(findings) is found
    if found:
        (f,) = findings
        assert (f.subject.kind, f.subject_name, f.count, f.severity) == (
            "bead",
            "Fix login",
            3,
            CRITICAL,
        )
        assert f.first_at == ago(10 * MINUTE) and f.last_at == ago(8 * MINUTE)
        assert "the container refused 3 starts" in f.because
        assert f.meanwhile == "dispatch_agent → container refused start ×3 over 2 min"


def test_dispatch_loop_counts_lost_runs_and_closes_with_the_bead() -> None:
    conn = new_town()
    bead = add_bead(conn, rig_id=add_rig(conn), status="failed")
    reset = {"type": "transition_bead", "bead_id": bead, "to": "open", "reason": "agent lost"}
    ticks = []
    for i in range(3):
        ticks += [dispatch(bead, when=ago((30 - 5 * i) * MINUTE)),
                  tick(ago((28 - 5 * i) * MINUTE), [reset])]  # fmt: skip
    (f,) = run(DL, make_input(conn, ticks))
    assert "3 runs ended without finishing the work" in f.because
    assert not f.open_at_end and f.severity == WARNING


def test_dispatch_loop_is_not_judged_without_ticks() -> None:
    from support.diagnose_helpers import kinds

    conn = new_town()
    add_bead(conn, rig_id=add_rig(conn), dispatch_attempts=4)
    from reportgen.diagnose import judge

    d = judge(make_input(conn))
    assert "dispatch-loop" in d.not_judged and "dispatch-loop" not in d.judged
    assert kinds(make_input(conn)) == []


# --------------------------------------------------------------------------- attempts-exhausted

AE = "attempts-exhausted"


def _failed_event(conn: object, bead: str, when: str, message: str) -> None:
    metadata = {"failure_reason": {"code": "reconciler", "message": message}}
    insert(conn, "bead_events", {"bead_event_id": f"ev-{bead}", "bead_id": bead, "agent_id": "system",  # type: ignore[arg-type]
                                 "event_type": "status_changed", "old_value": "open",
                                 "new_value": "failed", "metadata": json.dumps(metadata),
                                 "created_at": when})  # fmt: skip


def test_attempts_exhausted_names_beads_failed_at_the_cap() -> None:
    conn = new_town()
    rig = add_rig(conn, name="webapp")
    bead = add_bead(conn, rig_id=rig, status="failed", title="Fix login",
                    dispatch_attempts=5, updated_at=ago(HOUR))  # fmt: skip
    _failed_event(conn, bead, ago(HOUR), "max dispatch attempts exceeded (5)")
    (f,) = run(AE, make_input(conn))
    assert (f.subject.kind, f.subject_name, f.count, f.severity) == ("rig", "webapp", 1, CRITICAL)
    assert f.first_at == ago(HOUR) and f.open_at_end
    assert "1 bead failed after using every attempt (“Fix login”)" in f.because


@pytest.mark.parametrize(("attempts", "found"), [(5, True), (4, False)])
def test_attempts_exhausted_at_the_cap_without_a_reason(attempts: int, found: bool) -> None:
    conn = new_town()
    add_bead(conn, rig_id=add_rig(conn), status="failed", dispatch_attempts=attempts,
             updated_at=ago(HOUR))  # fmt: skip
    assert bool(run(AE, make_input(conn))) is found


@pytest.mark.parametrize(("attempts", "found"), [(5, True), (4, False)])
def test_attempts_exhausted_open_bead_sitting_at_the_cap(attempts: int, found: bool) -> None:
    conn = new_town()
    add_bead(conn, rig_id=add_rig(conn), dispatch_attempts=attempts,
             last_dispatch_attempt_at=ago(MINUTE))  # fmt: skip
    findings = run(AE, make_input(conn))
    assert bool(findings) is found
    if found:
        assert "1 bead sits at the attempt cap" in findings[0].because


@pytest.mark.parametrize(("attempts", "found"), [(3, True), (2, False)])
def test_attempts_exhausted_uses_the_rig_cap(attempts: int, found: bool) -> None:
    conn = new_town()
    rig = add_rig(conn, config=json.dumps({"max_dispatch_attempts": 3}))
    add_bead(conn, rig_id=rig, status="failed", dispatch_attempts=attempts, updated_at=ago(HOUR))
    assert bool(run(AE, make_input(conn))) is found


def test_attempts_exhausted_ignores_failures_before_the_window() -> None:
    conn = new_town()
    add_bead(conn, rig_id=add_rig(conn), status="failed", dispatch_attempts=5,
             updated_at=ago(25 * HOUR))  # fmt: skip
    assert run(AE, make_input(conn)) == []


@pytest.mark.parametrize(("hooked", "found"), [(True, True), (False, False)])
def test_attempts_exhausted_idle_agent_at_the_cap_with_live_work(hooked: bool, found: bool) -> None:
    conn = new_town()
    rig = add_rig(conn)
    bead = add_bead(conn, rig_id=rig, status="in_progress")
    add_agent(conn, rig_id=rig, role="refinery", status="idle", hook=bead if hooked else None,
              dispatch_attempts=5)  # fmt: skip
    assert bool(run(AE, make_input(conn))) is found


def test_attempts_exhausted_counts_a_convoy_out_of_landing_attempts() -> None:
    conn = new_town()
    add_bead(conn, type="convoy", status="failed", updated_at=ago(HOUR),
             metadata=json.dumps({"failureReason": "landing_mr_exhausted"}))  # fmt: skip
    (f,) = run(AE, make_input(conn))
    assert f.subject.kind == "town"


# --------------------------------------------------------------------------- stale-in-progress

SI = "stale-in-progress"


@pytest.mark.parametrize(("age", "found"), [(10 * MINUTE, True), (10 * MINUTE - 1, False)])
def test_stale_in_progress_past_the_timeout_and_grace(age: int, found: bool) -> None:
    conn = new_town()
    add_bead(conn, rig_id=add_rig(conn), status="in_progress", title="Fix", updated_at=ago(age))
    findings = run(SI, make_input(conn))
    assert bool(findings) is found
    if found:
        assert findings[0].first_at == ago(age) and findings[0].severity == CRITICAL


@pytest.mark.parametrize(
    ("status", "heartbeat", "found"),
    [("working", HOUR, False), ("stalled", HOUR, False), ("idle", 30 * SECOND, False),
     ("idle", 91 * SECOND, True)],
)  # fmt: skip
def test_stale_in_progress_spares_a_live_agent(status: str, heartbeat: int, found: bool) -> None:
    conn = new_town()
    rig = add_rig(conn)
    bead = add_bead(conn, rig_id=rig, status="in_progress", updated_at=ago(HOUR))
    add_agent(conn, rig_id=rig, status=status, hook=bead, last_activity_at=ago(heartbeat))
    assert bool(run(SI, make_input(conn))) is found


def test_stale_in_progress_spares_a_bead_the_ticks_acted_on() -> None:
    conn = new_town()
    bead = add_bead(conn, rig_id=add_rig(conn), status="in_progress", updated_at=ago(HOUR))
    act = {"type": "transition_bead", "bead_id": bead, "to": "open"}
    assert run(SI, make_input(conn, [tick(ago(54 * MINUTE), [act])])) == []
    assert run(SI, make_input(conn, [tick(ago(56 * MINUTE), [act])]))


# --------------------------------------------------------------------------- town-silent

TS = "town-silent"


@pytest.mark.parametrize(("gap", "found"), [(15 * MINUTE, True), (15 * MINUTE - 1, False)])
def test_town_silent_gap_between_ticks(gap: int, found: bool) -> None:
    conn = new_town()
    first = ago(HOUR)
    ticks = [tick(first), tick(at(gap, first)), tick(at(gap + 5 * SECOND, first))]
    findings = run(TS, make_input(conn, ticks, as_of=at(gap + 10 * SECOND, first)))
    assert bool(findings) is found
    if found:
        (f,) = findings
        assert (f.first_at, f.last_at, f.open_at_end, f.severity) == (
            first,
            at(gap, first),
            False,
            WARNING,
        )
        assert f.count == 3


def test_town_silent_needs_pending_work_before_the_gap() -> None:
    conn = new_town()
    ticks = [tick(ago(HOUR), active_work=False), tick(ago(MINUTE))]
    assert run(TS, make_input(conn, ticks)) == []


@pytest.mark.parametrize(("behind", "found"), [(15 * MINUTE, True), (14 * MINUTE, False)])
def test_town_silent_last_tick_far_behind_the_end(behind: int, found: bool) -> None:
    conn = new_town()
    findings = run(TS, make_input(conn, [tick(ago(behind + 5 * SECOND)), tick(ago(behind))]))
    assert bool(findings) is found
    if found:
        assert findings[0].open_at_end and findings[0].severity == CRITICAL


def test_town_silent_counts_pending_work_in_the_state() -> None:
    conn = new_town()
    add_bead(conn, rig_id=add_rig(conn))
    assert run(TS, make_input(conn, [tick(ago(HOUR), active_work=False)]))
    assert run(TS, make_input(new_town(), [tick(ago(HOUR), active_work=False)])) == []


# --------------------------------------------------------------------------- review-loop

RL = "review-loop"


def _feedback(conn: object, mr: str, *ages: int) -> None:
    for age in ages:
        add_bead(conn, parent_bead_id=mr, labels='["gt:pr-feedback"]', created_at=ago(age))  # type: ignore[arg-type]


@pytest.mark.parametrize(("rounds", "found"), [(3, True), (2, False)])
def test_review_loop_rounds(rounds: int, found: bool) -> None:
    conn = new_town()
    mr = add_mr(conn, rig_id=add_rig(conn), status="in_progress", title="Review: gt/x")
    _feedback(conn, mr, *[(10 + i) * MINUTE for i in range(rounds)])
    findings = run(RL, make_input(conn, []))
    assert bool(findings) is found
    if found:
        (f,) = findings
        assert (f.subject_name, f.count, f.severity) == ("Review: gt/x", 3, CRITICAL)
        assert f.first_at == ago(12 * MINUTE)


@pytest.mark.parametrize(("age", "found"), [(30 * MINUTE, True), (30 * MINUTE - 1, False)])
def test_review_loop_polled_after_the_first_round(age: int, found: bool) -> None:
    conn = new_town()
    mr = add_mr(conn, rig_id=add_rig(conn), status="in_progress", pr_url="https://x/pull/1")
    _feedback(conn, mr, age)
    assert bool(run(RL, make_input(conn, []))) is found


def test_review_loop_ignores_a_pr_waiting_for_a_human() -> None:
    conn = new_town()
    add_mr(conn, rig_id=add_rig(conn), status="in_progress", pr_url="https://x/pull/1",
           created_at=ago(5 * HOUR))  # fmt: skip
    assert run(RL, make_input(conn, [])) == []


def test_review_loop_closed_is_a_warning_and_old_ones_are_gone() -> None:
    conn = new_town()
    rig = add_rig(conn)
    recent = add_mr(conn, rig_id=rig, status="closed", updated_at=ago(HOUR))
    _feedback(conn, recent, 3 * HOUR, 2 * HOUR, 90 * MINUTE)
    old = add_mr(conn, rig_id=rig, status="closed", updated_at=ago(25 * HOUR))
    _feedback(conn, old, 28 * HOUR, 27 * HOUR, 26 * HOUR)
    (f,) = run(RL, make_input(conn, []))
    assert f.subject.id == recent and f.severity == WARNING and not f.open_at_end


# --------------------------------------------------------------------------- breaker-open

BO = "breaker-open"
OPEN = {"type": "notify_mayor", "message": "Dispatch circuit breaker is OPEN: 20 dispatch failures"}


@pytest.mark.parametrize(("span", "found"), [(5 * MINUTE, True), (5 * MINUTE - 5 * SECOND, False)])
def test_breaker_open_from_ticks(span: int, found: bool) -> None:
    conn = new_town()
    start = ago(HOUR)
    ticks = [tick(at(ms, start), [OPEN]) for ms in range(0, span + 1, 5 * SECOND)]
    ticks.append(tick(at(span + 5 * SECOND, start)))
    findings = run(BO, make_input(conn, ticks))
    assert bool(findings) is found
    if found:
        (f,) = findings
        assert (f.first_at, f.severity, f.open_at_end) == (start, WARNING, False)


def test_breaker_open_at_the_end_is_critical() -> None:
    conn = new_town()
    ticks = [tick(ago(10 * MINUTE), [OPEN]), tick(ago(MINUTE), [OPEN])]
    (f,) = run(BO, make_input(conn, ticks))
    assert f.open_at_end and f.severity == CRITICAL and f.count == 2


@pytest.mark.parametrize(("beads", "found"), [(20, True), (19, False)])
def test_breaker_open_from_the_state(beads: int, found: bool) -> None:
    conn = new_town()
    rig = add_rig(conn)
    for i in range(beads):
        attempt = ago(6 * MINUTE + i * 10 * SECOND)
        add_bead(conn, rig_id=rig, dispatch_attempts=1, last_dispatch_attempt_at=attempt)
    findings = run(BO, make_input(conn))
    assert bool(findings) is found
    if found:
        assert findings[0].open_at_end and findings[0].first_at == ago(6 * MINUTE)


def test_breaker_open_from_the_state_needs_it_open_the_threshold_earlier() -> None:
    conn = new_town()
    rig = add_rig(conn)
    for i in range(20):
        attempt = ago(4 * MINUTE + i * 10 * SECOND)
        add_bead(conn, rig_id=rig, dispatch_attempts=1, last_dispatch_attempt_at=attempt)
    assert run(BO, make_input(conn)) == []


# --------------------------------------------------------------------------- hooked-not-dispatched

HN = "hooked-not-dispatched"


@pytest.mark.parametrize(("age", "found"), [(2 * MINUTE, True), (2 * MINUTE - 1, False)])
def test_hooked_not_dispatched(age: int, found: bool) -> None:
    conn = new_town()
    rig = add_rig(conn)
    bead = add_bead(conn, rig_id=rig, updated_at=ago(age))
    add_agent(conn, "Toast", rig_id=rig, status="idle", hook=bead, last_activity_at=ago(age))
    findings = run(HN, make_input(conn))
    assert bool(findings) is found
    if found:
        (f,) = findings
        assert (f.subject.kind, f.subject_name, f.severity) == ("agent", "Toast", WARNING)


def test_hooked_not_dispatched_spares_a_dispatched_bead() -> None:
    conn = new_town()
    rig = add_rig(conn)
    bead = add_bead(conn, rig_id=rig, updated_at=ago(HOUR), last_dispatch_attempt_at=ago(MINUTE))
    add_agent(conn, rig_id=rig, status="idle", hook=bead, last_activity_at=ago(HOUR))
    assert run(HN, make_input(conn)) == []
    other = add_bead(conn, rig_id=rig, updated_at=ago(HOUR))
    add_agent(conn, rig_id=rig, status="idle", hook=other, last_activity_at=ago(HOUR))
    assert run(HN, make_input(conn, [dispatch(other, ok=False, when=ago(MINUTE))])) == []
    assert run(HN, make_input(conn, []))


# --------------------------------------------------------------------------- bead-spawn-loop

BS = "bead-spawn-loop"


@pytest.mark.parametrize(("spread", "found"), [(30 * MINUTE, True), (30 * MINUTE + 1, False)])
def test_bead_spawn_loop_within_the_time_threshold(spread: int, found: bool) -> None:
    conn = new_town()
    mr = add_mr(conn, rig_id=add_rig(conn), status="in_progress")
    _feedback(conn, mr, HOUR, HOUR - spread // 2, HOUR - spread)
    findings = run(BS, make_input(conn, []))
    assert bool(findings) is found
    if found:
        (f,) = findings
        assert f.subject.id == mr and f.count == 3 and f.severity == NOTICE


def test_bead_spawn_loop_groups_triage_requests_by_their_bead() -> None:
    conn = new_town()
    rig = add_rig(conn)
    bead = add_bead(conn, rig_id=rig, title="Fix")
    for i in range(3):
        add_bead(conn, rig_id=rig, labels='["gt:triage-request"]', created_at=ago((5 + i) * MINUTE),
                 metadata=json.dumps({"triage_type": "crash_loop", "hooked_bead_id": bead}))  # fmt: skip
    add_bead(conn, rig_id=rig, metadata="not json", created_at=ago(MINUTE))
    (f,) = run(BS, make_input(conn, []))
    assert (f.subject.id, f.open_at_end, f.severity) == (bead, True, WARNING)


def test_bead_spawn_loop_needs_three() -> None:
    conn = new_town()
    mr = add_mr(conn, rig_id=add_rig(conn), status="in_progress")
    _feedback(conn, mr, 10 * MINUTE, 5 * MINUTE)
    assert run(BS, make_input(conn, [])) == []


# --------------------------------------------------------------------------- violation-storm

VS = "violation-storm"


def _violating(
    minutes_ms: int, violation: dict[str, object], start: str = ""
) -> list[dict[str, object]]:
    start = start or ago(HOUR)
    ticks = [
        tick(at(ms, start), violations=[violation]) for ms in range(0, minutes_ms + 1, 5 * SECOND)
    ]
    return [*ticks, tick(at(minutes_ms + 5 * SECOND, start))]


INV7 = {
    "invariant": 7,
    "message": "Working agent a has no hook",
    "agent_ids": ["a"],
    "bead_ids": [],
    "rig_ids": [],
}


@pytest.mark.parametrize(
    ("span", "found"), [(10 * MINUTE, True), (10 * MINUTE - 5 * SECOND, False)]
)
def test_violation_storm_lasts_the_threshold(span: int, found: bool) -> None:
    conn = new_town()
    add_agent(conn, "a", status="working")
    findings = run(VS, make_input(conn, _violating(span, INV7)))
    assert bool(findings) is found
    if found:
        (f,) = findings
        assert (f.subject.kind, f.subject.id, f.severity, f.expected) == (
            "agent",
            "a",
            NOTICE,
            False,
        )
        assert f.count == span // (5 * SECOND) + 1


def _inv3(conn: object, *pr_urls: str | None) -> dict[str, object]:
    rig = add_rig(conn, name="webapp")  # type: ignore[arg-type]
    mrs = [add_mr(conn, rig_id=rig, status="in_progress", pr_url=url) for url in pr_urls]  # type: ignore[arg-type]
    return {"invariant": 3, "message": f"Rig {rig} has {len(mrs)} in_progress MR beads",
            "agent_ids": [], "bead_ids": mrs, "rig_ids": [rig]}  # fmt: skip


@pytest.mark.parametrize(
    ("urls", "expected"),
    [(("https://x/pull/1", "https://x/pull/2"), True), ((None, "https://x/pull/2"), True),
     ((None, None), False)],
)  # fmt: skip
def test_violation_storm_expected_invariant_3(urls: tuple[str | None, ...], expected: bool) -> None:
    conn = new_town()
    violation = _inv3(conn, *urls)
    ticks = _violating(20 * MINUTE, violation, start=ago(20 * MINUTE))[:-1]
    (f,) = run(VS, make_input(conn, ticks))
    assert f.expected is expected and f.open_at_end and f.subject_name == "webapp"
    assert f.severity == (NOTICE if expected else WARNING)
