"""The event log and ``applyEvent`` (§3), the drain policy (§4), the review queue (§7.6–7.8)."""

from __future__ import annotations

import json
import sqlite3
from itertools import count
from typing import Any

import pytest
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
    add_rig,
    ago,
    foreign_keys_off,
    make_ctx,
    new_town,
)

from reportgen.town import events, review_queue
from reportgen.town.context import TownCtx
from reportgen.town.schema import ensure_reportgen_tables

UUID_A = "11111111-2222-4333-8444-555555555555"
_ev = count(1)


# --------------------------------------------------------------------------- helpers


def town() -> tuple[sqlite3.Connection, TownCtx]:
    conn = new_town()
    ensure_reportgen_tables(conn)
    return conn, make_ctx(conn)


def add_event(
    conn: sqlite3.Connection,
    event_type: str,
    *,
    agent_id: str | None = None,
    bead_id: str | None = None,
    payload: Any = None,
    created_at: str | None = None,
    event_id: str | None = None,
    processed_at: str | None = None,
) -> str:
    """A raw ``town_events`` row (any type, any payload text) created before now, in order."""
    n = next(_ev)
    event_id = event_id or f"ev-{n:05d}"
    text = payload if isinstance(payload, str) else json.dumps(payload or {})
    conn.execute(
        """INSERT INTO town_events (event_id, event_type, agent_id, bead_id, payload,
                                    created_at, processed_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
        (
            event_id,
            event_type,
            agent_id,
            bead_id,
            text,
            created_at or ago(60 * SECOND - n),
            processed_at,
        ),
    )
    return event_id


def drain_one(ctx: TownCtx, event_type: str, **kw: Any) -> events.EventOutcome:
    add_event(ctx.conn, event_type, **kw)
    result = events.drain_events(ctx)
    assert result.drained == 1
    return result.outcomes[0]


def bead(conn: sqlite3.Connection, bead_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM beads WHERE bead_id = ?", (bead_id,)).fetchone()
    assert row is not None
    return row


def agent(conn: sqlite3.Connection, agent_id: str) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM agent_metadata WHERE bead_id = ?", (agent_id,)).fetchone()
    assert row is not None
    return row


def meta(conn: sqlite3.Connection, bead_id: str) -> dict[str, Any]:
    value: dict[str, Any] = json.loads(bead(conn, bead_id)["metadata"])
    return value


def new_beads(conn: sqlite3.Connection, type_: str | None = None) -> list[sqlite3.Row]:
    sql = "SELECT * FROM beads WHERE bead_id LIKE '00000000-0000-4000-8000-%'"
    params: tuple[Any, ...] = ()
    if type_ is not None:
        sql += " AND type = ?"
        params = (type_,)
    return list(conn.execute(sql + " ORDER BY bead_id", params))


def bead_events(conn: sqlite3.Connection, bead_id: str, event_type: str) -> list[sqlite3.Row]:
    return list(
        conn.execute(
            "SELECT * FROM bead_events WHERE bead_id = ? AND event_type = ? ORDER BY bead_event_id",
            (bead_id, event_type),
        )
    )


def deps(conn: sqlite3.Connection, bead_id: str) -> set[tuple[str, str]]:
    return {
        (r[0], r[1])
        for r in conn.execute(
            "SELECT depends_on_bead_id, dependency_type FROM bead_dependencies WHERE bead_id = ?",
            (bead_id,),
        )
    }


def snapshot(conn: sqlite3.Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every upstream table except ``town_events`` (whose ``processed_at`` a drain sets)."""
    tables = [
        "beads", "bead_events", "bead_dependencies", "agent_metadata", "review_metadata",
        "escalation_metadata", "convoy_metadata", "rigs", "agent_nudges",
    ]  # fmt: skip
    return {t: sorted(map(tuple, conn.execute(f"SELECT * FROM {t}")), key=repr) for t in tables}


def processed(conn: sqlite3.Connection, event_id: str) -> str | None:
    row = conn.execute(
        "SELECT processed_at FROM town_events WHERE event_id = ?", (event_id,)
    ).fetchone()
    value: str | None = row[0]
    return value


# --------------------------------------------------------------------------- event log API


def test_event_types_are_the_twelve_of_latest() -> None:
    assert len(events.EVENT_TYPES) == 12
    assert set(events.EVENT_TYPES) == {
        "agent_done", "agent_completed", "container_status", "container_eviction",
        "pr_status_changed", "bead_created", "bead_cancelled", "convoy_started",
        "nudge_timeout", "pr_feedback_detected", "pr_auto_merge", "pr_conflict_detected",
    }  # fmt: skip


def test_insert_event_writes_a_pending_row() -> None:
    conn, ctx = town()
    eid = events.insert_event(ctx, "bead_created", bead_id="b1", payload={"rig_id": "r", "x": 1})
    assert eid == "00000000-0000-4000-8000-000000000001"
    row = conn.execute("SELECT * FROM town_events").fetchone()
    assert dict(row) == {
        "event_id": eid,
        "event_type": "bead_created",
        "agent_id": None,
        "bead_id": "b1",
        "payload": '{"rig_id":"r","x":1}',
        "created_at": NOW,
        "processed_at": None,
    }
    events.insert_event(ctx, "container_eviction")
    assert (
        conn.execute(
            "SELECT payload FROM town_events WHERE event_type = 'container_eviction'"
        ).fetchone()[0]
        == "{}"
    )
    assert events.pending_event_count(ctx) == 2


def test_insert_event_refuses_unknown_types() -> None:
    _, ctx = town()
    with pytest.raises(ValueError, match="unknown event_type 'foo'"):
        events.insert_event(ctx, "foo")


def test_upsert_container_status_same_status_only_bumps_created_at() -> None:
    conn, ctx = town()
    first = add_event(
        conn,
        "container_status",
        agent_id="a1",
        payload={"status": "exited"},
        created_at=ago(MINUTE),
    )
    got = events.upsert_container_status(ctx, "a1", "exited", "oom")
    assert got == first
    rows = conn.execute("SELECT event_id, payload, created_at FROM town_events").fetchall()
    assert [tuple(r) for r in rows] == [(first, '{"status": "exited"}', NOW)]


def test_upsert_container_status_different_status_inserts_a_new_row() -> None:
    conn, ctx = town()
    add_event(conn, "container_status", agent_id="a1", payload={"status": "starting"})
    got = events.upsert_container_status(ctx, "a1", "exited", "oom")
    assert got == "00000000-0000-4000-8000-000000000001"
    assert events.pending_event_count(ctx) == 2
    payload = conn.execute("SELECT payload FROM town_events WHERE event_id = ?", (got,)).fetchone()[
        0
    ]
    assert payload == '{"status":"exited","exit_reason":"oom"}'
    # Empty exit reason is left out.
    again = events.upsert_container_status(ctx, "a1", "not_found", "")
    payload = conn.execute(
        "SELECT payload FROM town_events WHERE event_id = ?", (again,)
    ).fetchone()[0]
    assert payload == '{"status":"not_found"}'


def test_upsert_container_status_compares_with_the_newest_pending_event_only() -> None:
    conn, ctx = town()
    add_event(
        conn,
        "container_status",
        agent_id="a1",
        payload={"status": "exited"},
        created_at=ago(3 * MINUTE),
    )
    add_event(
        conn,
        "container_status",
        agent_id="a1",
        payload={"status": "failed"},
        created_at=ago(2 * MINUTE),
    )
    # Processed events and other agents' events do not count.
    add_event(
        conn,
        "container_status",
        agent_id="a1",
        payload={"status": "exited"},
        created_at=ago(MINUTE),
        processed_at=ago(MINUTE),
    )
    add_event(
        conn,
        "container_status",
        agent_id="a2",
        payload={"status": "exited"},
        created_at=ago(MINUTE),
    )
    events.upsert_container_status(ctx, "a1", "exited")
    assert events.pending_event_count(ctx) == 4


def test_mark_processed_and_pending_count() -> None:
    conn, ctx = town()
    e1 = add_event(conn, "bead_created")
    add_event(conn, "bead_created")
    assert events.pending_event_count(ctx) == 2
    events.mark_processed(ctx, e1)
    assert processed(conn, e1) == NOW
    assert events.pending_event_count(ctx) == 1


def test_prune_deletes_only_old_processed_events() -> None:
    conn, ctx = town()
    week = 7 * 24 * HOUR
    old_done = add_event(conn, "bead_created", created_at=ago(week + 1), processed_at=ago(week))
    at_cutoff = add_event(conn, "bead_created", created_at=ago(week), processed_at=ago(week))
    old_pending = add_event(conn, "bead_created", created_at=ago(2 * week))
    recent_done = add_event(conn, "bead_created", created_at=ago(HOUR), processed_at=ago(HOUR))
    assert events.prune_old_events(ctx, week) == 1
    left = {r[0] for r in conn.execute("SELECT event_id FROM town_events")}
    assert old_done not in left
    assert left == {at_cutoff, old_pending, recent_done}


# --------------------------------------------------------------------------- drain policy


def test_drain_orders_by_created_at_then_event_id_and_marks_processed() -> None:
    conn, ctx = town()
    add_event(conn, "bead_created", event_id="ev-b", created_at=ago(SECOND))
    add_event(conn, "bead_created", event_id="ev-a", created_at=ago(SECOND))
    add_event(conn, "bead_created", event_id="ev-z", created_at=ago(2 * SECOND))
    add_event(conn, "bead_created", event_id="ev-done", processed_at=ago(SECOND))
    result = events.drain_events(ctx)
    assert result.drained == 3
    assert [o.event_id for o in result.outcomes] == ["ev-z", "ev-a", "ev-b"]
    assert all(o.outcome == "applied" and o.error is None for o in result.outcomes)
    assert events.pending_event_count(ctx) == 0
    assert processed(conn, "ev-done") == ago(SECOND)


def test_missing_entity_with_uuid_id_is_marked_processed() -> None:
    _, ctx = town()
    out = drain_one(ctx, "agent_done", agent_id=UUID_A, payload={"branch": "b"})
    assert out.outcome == "skipped_missing_entity"
    assert out.error == f"Agent {UUID_A} not found"
    assert out.agent_id == UUID_A
    assert events.pending_event_count(ctx) == 0


def test_missing_entity_with_another_id_format_stays_pending() -> None:
    conn, ctx = town()
    eid = add_event(conn, "agent_done", agent_id="agent-gone", payload={"branch": "b"})
    result = events.drain_events(ctx)
    assert result.outcomes[0].outcome == "failed_left_pending"
    assert result.outcomes[0].error == "Agent agent-gone not found"
    assert processed(conn, eid) is None
    # ...and is retried (and fails again) on the next drain.
    again = events.drain_events(ctx)
    assert again.drained == 1 and again.outcomes[0].outcome == "failed_left_pending"


def test_missing_mr_for_pr_status_changed_is_skipped() -> None:
    _, ctx = town()
    out = drain_one(ctx, "pr_status_changed", bead_id=UUID_A, payload={"pr_state": "merged"})
    assert out.outcome == "skipped_missing_entity"
    assert out.error == f"Bead {UUID_A} not found"


@pytest.mark.parametrize(
    ("event_type", "payload", "reason"),
    [
        ("foo", "{}", "unknown event_type 'foo'"),
        ("bead_created", "{not json", "payload is not valid JSON: "),
        ("bead_created", "[1, 2]", "payload is not a JSON object (got array)"),
        ("bead_created", "null", "payload is not a JSON object (got null)"),
        ("bead_created", '{"n": NaN}', "payload is not valid JSON: "),
    ],
)
def test_unparsable_rows_are_quarantined_and_the_rest_applied(
    event_type: str, payload: str, reason: str
) -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    b = add_bead(conn, rig_id=rig, status="in_progress")
    bad = add_event(conn, event_type, payload=payload, created_at=ago(3 * SECOND))
    good = add_event(
        conn,
        "bead_cancelled",
        bead_id=b,
        payload={"cancel_status": "closed"},
        created_at=ago(SECOND),
    )
    result = events.drain_events(ctx)
    assert result.drained == 2
    first, second = result.outcomes
    assert (first.event_id, first.event_type, first.outcome) == (bad, event_type, "quarantined")
    assert first.error is not None and first.error.startswith(reason)
    assert (second.event_id, second.outcome) == (good, "applied")
    assert bead(conn, b)["status"] == "closed"
    q = conn.execute("SELECT * FROM rg_quarantine").fetchall()
    assert [(r["event_id"], r["event_type"], r["quarantined_at"]) for r in q] == [
        (bad, event_type, NOW)
    ]
    assert q[0]["reason"] == first.error
    assert processed(conn, bad) == NOW
    assert events.pending_event_count(ctx) == 0
    assert result.count("quarantined") == 1


def test_a_failed_event_does_not_stop_the_drain() -> None:
    conn, ctx = town()
    add_event(conn, "agent_done", agent_id="nope", payload={}, created_at=ago(2 * SECOND))
    add_event(conn, "convoy_started", payload={"convoy_id": "c"}, created_at=ago(SECOND))
    result = events.drain_events(ctx)
    assert [o.outcome for o in result.outcomes] == ["failed_left_pending", "applied"]


# --------------------------------------------------------------------------- no-op event types


@pytest.mark.parametrize(
    ("event_type", "kw"),
    [
        ("bead_created", {"payload": {"bead_type": "issue", "rig_id": "r"}}),
        ("container_eviction", {}),
        ("nudge_timeout", {}),
        ("agent_done", {"payload": {"branch": "x"}}),  # no agent_id
        ("agent_completed", {"payload": {"status": "completed"}}),  # no agent_id
        ("pr_status_changed", {"payload": {"pr_state": "merged"}}),  # no bead_id
        ("bead_cancelled", {"payload": {}}),  # no bead_id
        ("convoy_started", {"payload": {}}),  # no convoy_id
        ("container_status", {"payload": {"status": "exited"}}),  # no agent_id
        ("pr_feedback_detected", {"payload": {}}),  # no mr_bead_id
        ("pr_auto_merge", {"payload": {"mr_bead_id": 5}}),  # not a string
        ("pr_conflict_detected", {"payload": {"mr_bead_id": ""}}),
    ],
)
def test_no_op_events_change_nothing(event_type: str, kw: dict[str, Any]) -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    b = add_bead(conn, rig_id=rig, status="in_progress")
    add_agent(conn, rig_id=rig, status="working", hook=b)
    before = snapshot(conn)
    out = drain_one(ctx, event_type, **kw)
    assert out.outcome == "applied"
    assert snapshot(conn) == before


# --------------------------------------------------------------------------- container_status


def _working(conn: sqlite3.Connection, **kw: Any) -> tuple[str, str]:
    rig = add_rig(conn)
    b = add_bead(conn, rig_id=rig, status="in_progress")
    kw.setdefault("last_activity_at", ago(10 * SECOND))
    a = add_agent(conn, rig_id=rig, status=kw.pop("status", "working"), hook=b, **kw)
    return a, b


@pytest.mark.parametrize("status", ["exited", "not_found"])
def test_container_gone_idles_a_working_polecat_bead_stays(status: str) -> None:
    conn, ctx = town()
    a, b = _working(conn, last_activity_at=ago(10 * MINUTE))
    drain_one(ctx, "container_status", agent_id=a, payload={"status": status})
    assert agent(conn, a)["status"] == "idle"
    assert agent(conn, a)["current_hook_bead_id"] == b
    assert bead(conn, b)["status"] == "in_progress"


def test_not_found_grace_179_999_ms_is_a_no_op() -> None:
    conn, ctx = town()
    a, _ = _working(conn, last_activity_at=ago(180 * SECOND - 1))
    drain_one(ctx, "container_status", agent_id=a, payload={"status": "not_found"})
    assert agent(conn, a)["status"] == "working"


def test_not_found_exactly_180_s_after_the_heartbeat_acts() -> None:
    conn, ctx = town()
    a, _ = _working(conn, last_activity_at=ago(180 * SECOND))
    drain_one(ctx, "container_status", agent_id=a, payload={"status": "not_found"})
    assert agent(conn, a)["status"] == "idle"


def test_not_found_without_heartbeat_acts_and_exited_ignores_the_grace() -> None:
    conn, ctx = town()
    a, _ = _working(conn, last_activity_at=None)
    drain_one(ctx, "container_status", agent_id=a, payload={"status": "not_found"})
    assert agent(conn, a)["status"] == "idle"
    b2, _ = _working(conn, last_activity_at=ago(SECOND))
    drain_one(ctx, "container_status", agent_id=b2, payload={"status": "exited"})
    assert agent(conn, b2)["status"] == "idle"


@pytest.mark.parametrize("status", ["running", "starting", "stopping", "failed", "unknown", 7])
def test_other_container_statuses_are_ignored(status: Any) -> None:
    conn, ctx = town()
    a, _ = _working(conn, last_activity_at=ago(HOUR))
    before = snapshot(conn)
    drain_one(ctx, "container_status", agent_id=a, payload={"status": status})
    assert snapshot(conn) == before


@pytest.mark.parametrize("agent_status", ["idle", "dead", "waiting"])
def test_container_status_ignores_agents_not_working_or_stalled(agent_status: str) -> None:
    conn, ctx = town()
    a, _ = _working(conn, status=agent_status, last_activity_at=ago(HOUR))
    before = snapshot(conn)
    drain_one(ctx, "container_status", agent_id=a, payload={"status": "exited"})
    assert snapshot(conn) == before


def test_container_status_for_unknown_agent_is_a_no_op_even_with_uuid() -> None:
    _, ctx = town()
    out = drain_one(ctx, "container_status", agent_id=UUID_A, payload={"status": "exited"})
    assert out.outcome == "applied"


def test_stalled_agent_goes_idle_and_loses_stalled_at() -> None:
    conn, ctx = town()
    a, _ = _working(conn, status="stalled", stalled_at=ago(HOUR))
    drain_one(ctx, "container_status", agent_id=a, payload={"status": "exited"})
    row = agent(conn, a)
    assert (row["status"], row["stalled_at"]) == ("idle", None)


def test_refinery_with_terminal_mr_is_unhooked_and_checkpoint_cleared() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    mr = add_mr(conn, rig_id=rig, status="closed")
    r = add_agent(
        conn, role="refinery", rig_id=rig, status="working", hook=mr, checkpoint='{"a":1}'
    )
    drain_one(ctx, "container_status", agent_id=r, payload={"status": "exited"})
    row = agent(conn, r)
    assert (row["status"], row["current_hook_bead_id"], row["checkpoint"]) == ("idle", None, None)
    assert len(bead_events(conn, mr, "unhooked")) == 1


def test_refinery_with_live_mr_goes_idle_and_keeps_hook() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    mr = add_mr(conn, rig_id=rig, status="in_progress")
    r = add_agent(
        conn, role="refinery", rig_id=rig, status="working", hook=mr, checkpoint='{"a":1}'
    )
    drain_one(ctx, "container_status", agent_id=r, payload={"status": "exited"})
    row = agent(conn, r)
    assert (row["status"], row["current_hook_bead_id"], row["checkpoint"]) == (
        "idle",
        mr,
        '{"a":1}',
    )


def test_refinery_without_hook_goes_idle() -> None:
    conn, ctx = town()
    r = add_agent(conn, role="refinery", status="stalled", stalled_at=ago(HOUR))
    drain_one(ctx, "container_status", agent_id=r, payload={"status": "exited"})
    assert agent(conn, r)["status"] == "idle"


# ------------------------------------------------------------- bead_cancelled, convoy_started


def test_bead_cancelled_sets_status_and_unhooks_every_agent() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    b = add_bead(conn, rig_id=rig, status="in_progress")
    a1 = add_agent(conn, rig_id=rig, status="working", hook=b, checkpoint="{}")
    a2 = add_agent(conn, rig_id=rig, status="idle", hook=b)
    drain_one(ctx, "bead_cancelled", bead_id=b, payload={"cancel_status": "closed"})
    row = bead(conn, b)
    assert (row["status"], row["closed_at"], row["assignee_agent_bead_id"]) == ("closed", NOW, None)
    for a in (a1, a2):
        assert (agent(conn, a)["current_hook_bead_id"], agent(conn, a)["status"]) == (None, "idle")
    (ev,) = bead_events(conn, b, "status_changed")
    assert (ev["agent_id"], ev["old_value"], ev["new_value"]) == ("system", "in_progress", "closed")


def test_bead_cancelled_defaults_to_failed_and_unhooks_even_when_already_terminal() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    b = add_bead(conn, rig_id=rig, status="open")
    drain_one(ctx, "bead_cancelled", bead_id=b, payload={"cancel_status": "bogus"})
    assert (bead(conn, b)["status"], bead(conn, b)["closed_at"]) == ("failed", None)
    done = add_bead(conn, rig_id=rig, status="closed")
    a = add_agent(conn, rig_id=rig, status="idle", hook=done)
    drain_one(ctx, "bead_cancelled", bead_id=done, payload={"cancel_status": "failed"})
    assert bead(conn, done)["status"] == "closed"
    assert agent(conn, a)["current_hook_bead_id"] is None


def test_bead_cancelled_for_a_deleted_bead_is_skipped() -> None:
    _, ctx = town()
    out = drain_one(ctx, "bead_cancelled", bead_id=UUID_A, payload={"cancel_status": "closed"})
    assert (out.outcome, out.error) == ("applied", None)


def test_convoy_started_unstages_the_convoy() -> None:
    conn, ctx = town()
    c = add_convoy(conn, staged=1)
    drain_one(ctx, "convoy_started", payload={"convoy_id": c})
    assert conn.execute("SELECT staged FROM convoy_metadata").fetchone()[0] == 0


# --------------------------------------------------------------------------- pr_auto_merge


def test_pr_auto_merge_marks_a_live_mr() -> None:
    conn, ctx = town()
    mr = add_mr(conn, status="in_progress", metadata='{"pr_url":"u"}', updated_at=ago(HOUR))
    drain_one(ctx, "pr_auto_merge", bead_id=mr, payload={"mr_bead_id": mr, "pr_url": "u"})
    row = bead(conn, mr)
    assert row["metadata"] == '{"pr_url":"u","auto_merge_pending":1}'
    assert row["updated_at"] == NOW


@pytest.mark.parametrize("status", ["closed", "failed"])
def test_pr_auto_merge_ignores_terminal_or_missing_mr(status: str) -> None:
    conn, ctx = town()
    mr = add_mr(conn, status=status)
    before = snapshot(conn)
    drain_one(ctx, "pr_auto_merge", payload={"mr_bead_id": mr})
    drain_one(ctx, "pr_auto_merge", payload={"mr_bead_id": UUID_A})
    assert snapshot(conn) == before


# --------------------------------------------------------------------------- pr_feedback_detected


def _feedback(
    ctx: TownCtx, mr: str, **payload: Any
) -> tuple[events.EventOutcome, list[sqlite3.Row]]:
    base = {"mr_bead_id": mr, "pr_url": "https://github.com/acme/r/pull/4", "pr_number": 4,
            "repo": "acme/r", "branch": "gt/x"}  # fmt: skip
    out = drain_one(ctx, "pr_feedback_detected", bead_id=mr, payload={**base, **payload})
    return out, new_beads(ctx.conn, "issue")


@pytest.mark.parametrize(
    ("flags", "title"),
    [
        ({"has_unresolved_comments": True}, "Address review comments on PR #4 (r)"),
        ({"has_failing_checks": True}, "Address failing CI on PR #4 (r)"),
        ({"has_unchecked_runs": True}, "Address unchecked CI runs on PR #4 (r)"),
        (
            {"has_unresolved_comments": True, "has_failing_checks": True},
            "Address review comments & failing CI on PR #4 (r)",
        ),
        (
            {"has_failing_checks": True, "has_unchecked_runs": True},
            "Address failing CI on PR #4 (r)",
        ),
        (
            {"has_unresolved_comments": True, "has_unchecked_runs": True},
            "Address review comments & unchecked CI runs on PR #4 (r)",
        ),
        ({"has_unresolved_comments": 1}, "Address  on PR #4 (r)"),
        ({"has_unresolved_comments": True, "repo": ""}, "Address review comments on PR #4"),
        ({"has_unresolved_comments": True, "repo": "acme/"}, "Address review comments on PR #4"),
        (
            {"has_unresolved_comments": True, "repo": "solo"},
            "Address review comments on PR #4 (solo)",
        ),
        (
            {"has_unresolved_comments": True, "pr_number": 12.0},
            "Address review comments on PR #12 (r)",
        ),
        (
            {"has_unresolved_comments": True, "pr_number": "12"},
            "Address review comments on PR #0 (r)",
        ),
        (
            {"has_unresolved_comments": True, "pr_number": True},
            "Address review comments on PR #0 (r)",
        ),
    ],
)
def test_pr_feedback_title_variants(flags: dict[str, Any], title: str) -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    mr = add_mr(conn, rig_id=rig, status="in_progress")
    out, created = _feedback(ctx, mr, **flags)
    assert out.outcome == "applied"
    (fb,) = created
    assert fb["title"] == title


def test_pr_feedback_bead_shape_and_body() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    mr = add_mr(conn, rig_id=rig, status="in_progress")
    _, (fb,) = _feedback(ctx, mr, has_unresolved_comments=True, has_failing_checks=True)
    assert fb["bead_id"] == "00000000-0000-4000-8000-000000000001"
    assert (fb["type"], fb["status"], fb["rig_id"], fb["parent_bead_id"]) == (
        "issue",
        "open",
        rig,
        mr,
    )
    assert (fb["labels"], fb["priority"], fb["created_by"], fb["assignee_agent_bead_id"]) == (
        '["gt:pr-feedback"]', "medium", None, None,
    )  # fmt: skip
    assert json.loads(fb["metadata"]) == {
        "pr_feedback_for": mr, "pr_url": "https://github.com/acme/r/pull/4", "branch": "gt/x",
    }  # fmt: skip
    body = fb["body"].split("\n")
    assert body[:4] == [
        "You are addressing feedback on PR #4 on acme/r, branch gt/x.",
        "",
        "This PR has both unresolved review comments and failing CI checks.",
        "Address the review comments first, then fix the CI failures, as comment fixes may also "
        "resolve some CI issues.",
    ]
    assert "Run `gh pr checks 4` to see the status of all CI checks." in body
    assert body[-1].endswith("and call gt_done.")
    assert deps(conn, mr) == {(fb["bead_id"], "blocks")}
    (created,) = bead_events(conn, fb["bead_id"], "created")
    assert created["bead_event_id"] == "00000000-0000-4000-8000-000000000002"


def test_pr_feedback_is_not_duplicated() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    mr = add_mr(conn, rig_id=rig, status="in_progress")
    old = add_bead(conn, rig_id=rig, labels='["gt:pr-feedback"]', status="in_progress")
    add_dep(conn, mr, old, "blocks")
    before = snapshot(conn)
    _feedback(ctx, mr, has_unresolved_comments=True)
    assert snapshot(conn) == before


def test_pr_feedback_after_a_closed_feedback_bead_creates_a_new_one() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    mr = add_mr(conn, rig_id=rig, status="in_progress")
    old = add_bead(conn, rig_id=rig, labels='["gt:pr-feedback"]', status="closed")
    add_dep(conn, mr, old, "blocks")
    _, created = _feedback(ctx, mr, has_failing_checks=True)
    assert len(created) == 1


def test_pr_feedback_merges_into_an_open_conflict_bead() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    mr = add_mr(conn, rig_id=rig, status="in_progress")
    cb = add_bead(
        conn, rig_id=rig, labels='["gt:pr-conflict"]', metadata='{"a":1}', updated_at=ago(HOUR)
    )
    add_dep(conn, mr, cb, "blocks")
    _, created = _feedback(ctx, mr, has_unresolved_comments=True)
    assert created == []
    assert (bead(conn, cb)["metadata"], bead(conn, cb)["updated_at"]) == (
        '{"a":1,"has_feedback":1}',
        NOW,
    )


@pytest.mark.parametrize("status", ["closed", "failed"])
def test_pr_feedback_for_terminal_mr_is_a_no_op(status: str) -> None:
    conn, ctx = town()
    mr = add_mr(conn, status=status)
    before = snapshot(conn)
    _feedback(ctx, mr, has_unresolved_comments=True)
    assert snapshot(conn) == before


# --------------------------------------------------------------------------- pr_conflict_detected


def _conflict(ctx: TownCtx, mr: str, **payload: Any) -> events.EventOutcome:
    base = {
        "mr_bead_id": mr,
        "source_bead_id": "src-1",
        "pr_url": "https://gh/p/9",
        "branch": "gt/y",
    }
    return drain_one(ctx, "pr_conflict_detected", bead_id=mr, payload={**base, **payload})


def test_pr_conflict_enabled_creates_a_conflict_bead() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    mr = add_mr(conn, rig_id=rig, status="in_progress", review={"target_branch": "develop"})
    _conflict(ctx, mr)
    (cb,) = new_beads(conn)
    assert cb["title"] == "Resolve merge conflicts on PR: gt/y"
    assert (cb["type"], cb["labels"], cb["parent_bead_id"], cb["rig_id"]) == (
        "issue", '["gt:pr-conflict"]', mr, rig,
    )  # fmt: skip
    assert cb["metadata"] == (
        '{"pr_url":"https://gh/p/9","branch":"gt/y","target_branch":"develop",'
        f'"mr_bead_id":"{mr}","source_bead_id":"src-1"}}'
    )
    body = cb["body"].split("\n")
    assert body[:3] == [
        "You are resolving merge conflicts on branch `gt/y`.",
        "The PR is: https://gh/p/9",
        "The target branch is: `develop`",
    ]
    assert "   git rebase origin/develop" in body
    assert "   git push --force-with-lease origin gt/y" in body
    assert body[-2:] == ["   - `pr_url`: `https://gh/p/9`", "   - `branch`: `gt/y`"]
    assert deps(conn, mr) == {(cb["bead_id"], "blocks")}


def test_pr_conflict_without_review_metadata_uses_an_empty_target_and_null_source() -> None:
    conn, ctx = town()
    mr = add_bead(conn, type="merge_request", status="open")
    _conflict(ctx, mr, source_bead_id=None)
    (cb,) = new_beads(conn)
    m = json.loads(cb["metadata"])
    assert (m["target_branch"], m["source_bead_id"]) == ("", None)


def test_pr_conflict_enabled_merges_into_an_open_feedback_bead() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    mr = add_mr(conn, rig_id=rig, status="in_progress", review={"target_branch": "develop"})
    fb = add_bead(conn, rig_id=rig, labels='["gt:pr-feedback"]', metadata="{}")
    add_dep(conn, mr, fb, "blocks")
    _conflict(ctx, mr)
    assert new_beads(conn) == []
    assert bead(conn, fb)["metadata"] == '{"has_conflicts":1,"conflict_target_branch":"develop"}'
    assert bead(conn, fb)["updated_at"] == NOW


def test_pr_conflict_with_an_open_conflict_bead_is_a_no_op() -> None:
    conn, ctx = town()
    mr = add_mr(conn, status="in_progress")
    cb = add_bead(conn, labels='["gt:pr-conflict"]', status="in_progress")
    add_dep(conn, mr, cb, "blocks")
    before = snapshot(conn)
    _conflict(ctx, mr)
    assert snapshot(conn) == before


@pytest.mark.parametrize(
    ("rig_config", "town_config"),
    [
        ({"auto_resolve_merge_conflicts": False}, {}),
        ({}, {"refinery": {"auto_resolve_merge_conflicts": False}}),
        (
            {"auto_resolve_merge_conflicts": False},
            {"refinery": {"auto_resolve_merge_conflicts": True}},
        ),
    ],
)
def test_pr_conflict_disabled_escalates(
    rig_config: dict[str, Any], town_config: dict[str, Any]
) -> None:
    conn = new_town()
    rig = add_rig(conn, config=rig_config)
    mr = add_mr(conn, rig_id=rig, status="in_progress", review={"target_branch": "develop"})
    ctx = make_ctx(conn, config=town_config)
    _conflict(ctx, mr)
    esc, tri = new_beads(conn)
    assert (esc["type"], esc["title"], esc["priority"], esc["rig_id"]) == (
        "escalation", "Merge conflict detected: gt/y", "high", rig,
    )  # fmt: skip
    assert (
        esc["body"]
        == "PR https://gh/p/9 (branch gt/y) has merge conflicts that require manual resolution."
    )
    assert esc["labels"] == '["gt:escalation","severity:high"]'
    assert json.loads(esc["metadata"]) == {
        "pr_url": "https://gh/p/9", "branch": "gt/y", "target_branch": "develop",
        "mr_bead_id": mr, "source_bead_id": "src-1", "conflict": True,
    }  # fmt: skip
    em = conn.execute("SELECT * FROM escalation_metadata").fetchone()
    assert tuple(em) == (esc["bead_id"], "high", "merge_conflict", 0, 0, None)
    assert tri["bead_id"] == "00000000-0000-4000-8000-000000000003"
    tri_cols = ("type", "title", "labels", "assignee_agent_bead_id", "rig_id")
    assert tuple(tri[c] for c in tri_cols) == (
        "issue", "Escalation (high): Merge conflict on gt/y", '["gt:triage-request"]', None, rig,
    )  # fmt: skip
    context = {
        "escalation_bead_id": esc["bead_id"], "severity": "high", "rig_id": rig,
        "category": "merge_conflict", "pr_url": "https://gh/p/9", "branch": "gt/y",
        "mr_bead_id": mr,
    }  # fmt: skip
    assert json.loads(tri["body"]) == context
    assert json.loads(tri["metadata"]) == {
        "triage_type": "escalation", "agent_bead_id": None, "hooked_bead_id": None,
        "context": context,
        "options": ["ESCALATE_TO_MAYOR", "RESTART", "CLOSE_BEAD", "REASSIGN_BEAD"],
    }  # fmt: skip
    assert deps(conn, mr) == set()


def test_pr_conflict_rig_override_true_beats_town_false() -> None:
    conn = new_town()
    rig = add_rig(conn, config={"auto_resolve_merge_conflicts": True})
    mr = add_mr(conn, rig_id=rig, status="in_progress")
    ctx = make_ctx(conn, config={"refinery": {"auto_resolve_merge_conflicts": False}})
    _conflict(ctx, mr)
    (cb,) = new_beads(conn)
    assert cb["labels"] == '["gt:pr-conflict"]'


# ------------------------------------------------ pr_status_changed / completeReviewWithResult


def _review(conn: sqlite3.Connection, *, convoy: bool = False) -> dict[str, str]:
    rig = add_rig(conn)
    pol = add_agent(conn, rig_id=rig)
    src = add_bead(conn, rig_id=rig, status="in_review", assignee_agent_bead_id=pol)
    meta_ = json.dumps({"source_bead_id": src, "source_agent_id": pol})
    mr = add_mr(conn, rig_id=rig, status="in_progress", source=src, metadata=meta_, branch="gt/z")
    old_failed = add_mr(conn, rig_id=rig, status="failed", source=src)
    old_open = add_mr(conn, rig_id=rig, status="open", source=src)
    ids = {"rig": rig, "pol": pol, "src": src, "mr": mr, "failed": old_failed, "open": old_open}
    if convoy:
        ids["convoy"] = add_convoy(
            conn, tracks=[src], feature_branch=None, merge_mode="review-and-merge"
        )
    return ids


def test_pr_merged_closes_mr_source_and_sibling_mrs() -> None:
    conn, ctx = town()
    ids = _review(conn, convoy=True)
    drain_one(
        ctx, "pr_status_changed", bead_id=ids["mr"], payload={"pr_state": "merged", "pr_url": "u"}
    )
    for key in ("mr", "src", "failed", "open"):
        assert bead(conn, ids[key])["status"] == "closed", key
        assert bead(conn, ids[key])["closed_at"] == NOW
    (mr_ev,) = bead_events(conn, ids["mr"], "status_changed")
    assert (mr_ev["agent_id"], mr_ev["new_value"]) == ("system", "closed")
    (done,) = bead_events(conn, ids["src"], "review_completed")
    assert (done["agent_id"], done["new_value"], done["metadata"]) == (
        ids["pol"], "merged", '{"message":"PR merged (detected by polling)"}',
    )  # fmt: skip
    (src_ev,) = bead_events(conn, ids["src"], "status_changed")
    assert (src_ev["agent_id"], src_ev["old_value"]) == (ids["pol"], "in_review")
    # The convoy recounts and (review-and-merge, all done) lands.
    cm = conn.execute("SELECT closed_beads, landed_at FROM convoy_metadata").fetchone()
    assert tuple(cm) == (1, NOW)
    assert bead(conn, ids["convoy"])["status"] == "closed"


def test_pr_closed_fails_mr_and_reopens_source() -> None:
    conn, ctx = town()
    ids = _review(conn)
    drain_one(ctx, "pr_status_changed", bead_id=ids["mr"], payload={"pr_state": "closed"})
    assert bead(conn, ids["mr"])["status"] == "failed"
    src = bead(conn, ids["src"])
    assert (src["status"], src["assignee_agent_bead_id"]) == ("open", None)
    assert bead(conn, ids["open"])["status"] == "open"
    (done,) = bead_events(conn, ids["src"], "review_completed")
    assert (done["new_value"], done["metadata"]) == (
        "failed",
        '{"message":"PR closed without merge"}',
    )


@pytest.mark.parametrize("state", ["open", "draft", None])
def test_other_pr_states_are_a_no_op(state: Any) -> None:
    conn, ctx = town()
    ids = _review(conn)
    before = snapshot(conn)
    drain_one(ctx, "pr_status_changed", bead_id=ids["mr"], payload={"pr_state": state})
    assert snapshot(conn) == before


def test_complete_review_conflict_escalates_and_reopens_source() -> None:
    conn, ctx = town()
    ids = _review(conn)
    review_queue.complete_review_with_result(ctx, ids["mr"], "conflict", "cannot rebase")
    assert bead(conn, ids["mr"])["status"] == "failed"
    (esc,) = new_beads(conn, "escalation")
    assert (esc["title"], esc["body"], esc["priority"], esc["rig_id"]) == (
        "Merge conflict: cannot rebase", "cannot rebase", "high", None,
    )  # fmt: skip
    assert json.loads(esc["metadata"]) == {
        "source_bead_id": ids["src"], "source_agent_id": ids["pol"], "branch": "gt/z",
        "conflict": True,
    }  # fmt: skip
    assert bead(conn, ids["src"])["status"] == "open"


def test_complete_review_of_terminal_source_leaves_it() -> None:
    conn, ctx = town()
    ids = _review(conn)
    conn.execute("UPDATE beads SET status = 'closed' WHERE bead_id = ?", (ids["src"],))
    review_queue.complete_review_with_result(ctx, ids["mr"], "failed", "nope")
    assert bead(conn, ids["src"])["status"] == "closed"
    assert bead(conn, ids["src"])["assignee_agent_bead_id"] == ids["pol"]


def test_merged_landing_mr_sets_convoy_landed_at() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    convoy = add_convoy(conn, feature_branch="convoy/x", tracks=[])
    mr = review_queue.submit_to_review_queue(
        ctx, agent_id="system", bead_id=convoy, rig_id=rig, branch="convoy/x", default_branch="main"
    )
    assert json.loads(bead(conn, mr)["metadata"]) == {
        "source_bead_id": convoy,
        "source_agent_id": "system",
    }
    review_queue.complete_review_with_result(ctx, mr, "merged", "landed")
    assert bead(conn, convoy)["status"] == "closed"
    assert conn.execute("SELECT landed_at FROM convoy_metadata").fetchone()[0] == NOW


# --------------------------------------------------------------------------- agent_done


def _polecat(conn: sqlite3.Connection, *, labels: str = "[]", created_by: str | None = None,
             rig_branch: str = "develop") -> tuple[str, str, str]:  # fmt: skip
    rig = add_rig(conn, default_branch=rig_branch)
    src = add_bead(conn, rig_id=rig, status="in_progress", labels=labels, created_by=created_by)
    pol = add_agent(conn, rig_id=rig, status="working", hook=src, checkpoint="{}")
    conn.execute("UPDATE beads SET assignee_agent_bead_id = ? WHERE bead_id = ?", (pol, src))
    return rig, src, pol


def test_agent_done_polecat_submits_an_mr() -> None:
    conn, ctx = town()
    rig, src, pol = _polecat(conn)
    drain_one(
        ctx,
        "agent_done",
        agent_id=pol,
        payload={"branch": "gt/b", "summary": "did it", "pr_url": "https://x/1"},
    )
    (mr,) = new_beads(conn, "merge_request")
    assert mr["bead_id"] == "00000000-0000-4000-8000-000000000001"
    assert (mr["title"], mr["body"], mr["rig_id"], mr["status"], mr["created_by"]) == (
        "Review: gt/b", "did it", rig, "open", pol,
    )  # fmt: skip
    assert mr["metadata"] == json.dumps(
        {"source_bead_id": src, "source_agent_id": pol, "pr_url": "https://x/1"},
        separators=(",", ":"),
    )
    rm = conn.execute("SELECT * FROM review_metadata").fetchone()
    assert (rm["branch"], rm["target_branch"], rm["pr_url"], rm["retry_count"]) == (
        "gt/b",
        "develop",
        "https://x/1",
        0,
    )
    assert deps(conn, mr["bead_id"]) == {(src, "tracks")}
    s = bead(conn, src)
    assert (s["status"], s["assignee_agent_bead_id"]) == ("in_review", pol)
    a = agent(conn, pol)
    assert (a["status"], a["current_hook_bead_id"], a["checkpoint"]) == ("idle", None, None)
    kinds = [
        r[0] for r in conn.execute("SELECT event_type FROM bead_events ORDER BY bead_event_id")
    ]
    assert kinds == ["review_submitted", "unhooked", "status_changed"]
    assert bead_events(conn, mr["bead_id"], "created") == []


def test_agent_done_polecat_in_review_then_land_convoy_targets_the_feature_branch() -> None:
    conn, ctx = town()
    _, src, pol = _polecat(conn)
    convoy = add_convoy(conn, tracks=[src], feature_branch="convoy/feat", merge_mode=None)
    drain_one(ctx, "agent_done", agent_id=pol, payload={"branch": "gt/b"})
    (mr,) = new_beads(conn, "merge_request")
    assert json.loads(mr["metadata"]) == {
        "source_bead_id": src, "source_agent_id": pol, "convoy_id": convoy,
        "convoy_feature_branch": "convoy/feat",
    }  # fmt: skip
    assert conn.execute("SELECT target_branch FROM review_metadata").fetchone()[0] == "convoy/feat"
    (ev,) = bead_events(conn, src, "review_submitted")
    assert ev["metadata"] == '{"branch":"gt/b","target_branch":"convoy/feat"}'


def test_agent_done_polecat_in_review_and_merge_convoy_targets_the_rig_branch() -> None:
    conn, ctx = town()
    _, src, pol = _polecat(conn)
    add_convoy(conn, tracks=[src], feature_branch="convoy/feat", merge_mode="review-and-merge")
    drain_one(ctx, "agent_done", agent_id=pol, payload={"branch": "gt/b"})
    assert conn.execute("SELECT target_branch FROM review_metadata").fetchone()[0] == "develop"


def test_agent_done_polecat_without_rig_targets_main_with_empty_rig_id() -> None:
    conn, ctx = town()
    src = add_bead(conn, status="in_progress")
    pol = add_agent(conn, status="working", hook=src)
    drain_one(ctx, "agent_done", agent_id=pol, payload={"branch": 5})
    (mr,) = new_beads(conn, "merge_request")
    assert (mr["rig_id"], mr["title"], mr["body"]) == ("", "Review: ", None)
    assert conn.execute("SELECT target_branch FROM review_metadata").fetchone()[0] == "main"


@pytest.mark.parametrize(
    ("labels", "created_by"),
    [
        ('["gt:rework"]', None),
        ('["gt:pr-fixup"]', None),
        ('["gt:pr-conflict"]', None),
        ('["gt:pr-feedback"]', None),
        ('["gt:triage"]', "patrol"),
    ],
)
def test_agent_done_on_beads_that_skip_review_closes_them(
    labels: str, created_by: str | None
) -> None:
    conn, ctx = town()
    _, src, pol = _polecat(conn, labels=labels, created_by=created_by)
    drain_one(ctx, "agent_done", agent_id=pol, payload={"branch": "gt/b"})
    assert new_beads(conn) == []
    assert (bead(conn, src)["status"], bead(conn, src)["closed_at"]) == ("closed", NOW)
    (ev,) = bead_events(conn, src, "status_changed")
    assert ev["agent_id"] == pol
    assert agent(conn, pol)["current_hook_bead_id"] is None


def test_agent_done_on_a_user_triage_bead_goes_through_review() -> None:
    conn, ctx = town()
    _, src, pol = _polecat(conn, labels='["gt:triage"]', created_by="user")
    drain_one(ctx, "agent_done", agent_id=pol, payload={"branch": "gt/b"})
    assert len(new_beads(conn, "merge_request")) == 1
    assert bead(conn, src)["status"] == "in_review"


def test_agent_done_unhooked_polecat_is_ignored() -> None:
    conn, ctx = town()
    pol = add_agent(conn, status="working")
    before = snapshot(conn)
    out = drain_one(ctx, "agent_done", agent_id=pol, payload={"branch": "gt/b"})
    assert out.outcome == "applied"
    assert snapshot(conn) == before


def test_agent_done_polecat_hooked_to_a_deleted_bead_keeps_partial_writes_and_stays_pending() -> (
    None
):
    conn, ctx = town()
    rig = add_rig(conn)
    conn.commit()  # PRAGMA foreign_keys is a no-op inside an open transaction
    with foreign_keys_off(conn):
        pol = add_agent(conn, rig_id=rig, status="working", hook=UUID_A)
        conn.commit()
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    eid = add_event(conn, "agent_done", agent_id=pol, payload={"branch": "gt/b"})
    result = events.drain_events(ctx)
    (out,) = result.outcomes
    assert out.outcome == "failed_left_pending"
    assert out.error is not None and "FOREIGN KEY" in out.error
    assert processed(conn, eid) is None
    # The MR bead and its review_metadata stay; nothing after the failing insert happened.
    (mr,) = new_beads(conn, "merge_request")
    assert (
        conn.execute(
            "SELECT count(*) FROM review_metadata WHERE bead_id = ?", (mr["bead_id"],)
        ).fetchone()[0]
        == 1
    )
    assert conn.execute("SELECT count(*) FROM bead_dependencies").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM bead_events").fetchone()[0] == 0
    assert agent(conn, pol)["current_hook_bead_id"] == UUID_A


def _refinery(conn: sqlite3.Connection, *, hooked: bool = True) -> dict[str, str]:
    ids = _review(conn)
    ref = add_agent(conn, rig_id=ids["rig"], role="refinery", status="working",
                    hook=ids["mr"] if hooked else None, dispatch_attempts=2)  # fmt: skip
    conn.execute("UPDATE beads SET assignee_agent_bead_id = ? WHERE bead_id = ?", (ref, ids["mr"]))
    ids["ref"] = ref
    return ids


def test_refinery_done_with_pr_url_records_the_pr() -> None:
    conn, ctx = town()
    ids = _refinery(conn)
    url = "https://github.com/acme/r/pull/9"
    drain_one(ctx, "agent_done", agent_id=ids["ref"], payload={"branch": "b", "pr_url": url})
    mr = bead(conn, ids["mr"])
    assert (mr["status"], mr["updated_at"]) == ("in_progress", NOW)
    assert json.loads(mr["metadata"])["pr_url"] == url
    assert (
        conn.execute(
            "SELECT pr_url FROM review_metadata WHERE bead_id = ?", (ids["mr"],)
        ).fetchone()[0]
        == url
    )
    (ev,) = bead_events(conn, ids["mr"], "pr_created")
    assert (ev["agent_id"], ev["new_value"], ev["metadata"]) == (
        ids["ref"], url, f'{{"pr_url":"{url}","created_by":"refinery"}}',
    )  # fmt: skip
    a = agent(conn, ids["ref"])
    assert (a["status"], a["current_hook_bead_id"], a["dispatch_attempts"]) == ("idle", None, 2)
    assert bead(conn, ids["src"])["status"] == "in_review"


def test_refinery_done_with_invalid_pr_url_fails_the_review() -> None:
    conn, ctx = town()
    ids = _refinery(conn)
    drain_one(
        ctx, "agent_done", agent_id=ids["ref"], payload={"branch": "b", "pr_url": "http://x/1"}
    )
    assert bead(conn, ids["mr"])["status"] == "failed"
    assert (
        conn.execute(
            "SELECT pr_url FROM review_metadata WHERE bead_id = ?", (ids["mr"],)
        ).fetchone()[0]
        is None
    )
    (done,) = bead_events(conn, ids["src"], "review_completed")
    assert done["metadata"] == '{"message":"Refinery provided invalid pr_url: http://x/1"}'
    (ev,) = bead_events(conn, ids["mr"], "pr_creation_failed")
    assert (ev["new_value"], ev["metadata"]) == (
        None,
        '{"pr_url":"http://x/1","reason":"invalid_url"}',
    )
    assert bead(conn, ids["src"])["status"] == "open"
    assert agent(conn, ids["ref"])["status"] == "idle"


@pytest.mark.parametrize(
    ("summary", "message"), [("merged it", "merged it"), (None, "Merged by refinery agent")]
)
def test_refinery_done_without_pr_url_merges(summary: str | None, message: str) -> None:
    conn, ctx = town()
    ids = _refinery(conn)
    payload: dict[str, Any] = {"branch": "b", "pr_url": ""}
    if summary is not None:
        payload["summary"] = summary
    drain_one(ctx, "agent_done", agent_id=ids["ref"], payload=payload)
    assert bead(conn, ids["mr"])["status"] == "closed"
    assert bead(conn, ids["src"])["status"] == "closed"
    (done,) = bead_events(conn, ids["src"], "review_completed")
    assert json.loads(done["metadata"]) == {"message": message}
    assert agent(conn, ids["ref"])["current_hook_bead_id"] is None


def test_unhooked_refinery_done_with_pr_url_recovers_its_mr() -> None:
    conn, ctx = town()
    ids = _refinery(conn, hooked=False)
    conn.execute("UPDATE beads SET status = 'open' WHERE bead_id = ?", (ids["mr"],))
    drain_one(
        ctx, "agent_done", agent_id=ids["ref"], payload={"branch": "b", "pr_url": "https://x/2"}
    )
    assert bead(conn, ids["mr"])["status"] == "in_progress"
    assert json.loads(bead(conn, ids["mr"])["metadata"])["pr_url"] == "https://x/2"
    assert bead_events(conn, ids["mr"], "pr_created") == []
    assert agent(conn, ids["ref"])["status"] == "working"  # not touched


def test_unhooked_refinery_done_with_invalid_pr_url_fails_its_mr() -> None:
    conn, ctx = town()
    ids = _refinery(conn, hooked=False)
    drain_one(ctx, "agent_done", agent_id=ids["ref"], payload={"branch": "b", "pr_url": "ftp://x"})
    assert bead(conn, ids["mr"])["status"] == "failed"
    assert new_beads(conn) == []


def test_unhooked_refinery_done_without_pr_url_fails_and_escalates() -> None:
    conn, ctx = town()
    ids = _refinery(conn, hooked=False)
    drain_one(ctx, "agent_done", agent_id=ids["ref"], payload={"branch": "b"})
    assert bead(conn, ids["mr"])["status"] == "failed"
    (done,) = bead_events(conn, ids["src"], "review_completed")
    assert json.loads(done["metadata"]) == {"message": review_queue.UNHOOKED_REFINERY_MESSAGE}
    assert review_queue.UNHOOKED_REFINERY_MESSAGE == (
        "Refinery called gt_done without a pr_url after losing its hook — cannot confirm merge"
    )
    (esc,) = new_beads(conn, "escalation")
    assert (esc["title"], esc["priority"], esc["rig_id"]) == (
        "Refinery gt_done without pr_url after hook loss", "high", None,
    )  # fmt: skip
    assert esc["body"].startswith(
        f"Refinery {ids['ref']} called gt_done with no pr_url while unhooked from MR {ids['mr']}. "
    )
    assert esc["body"].endswith("Summary from refinery: (none)")
    assert json.loads(esc["metadata"]) == {
        "source_bead_id": ids["mr"], "source_agent_id": ids["ref"],
        "kind": "refinery_unhooked_done",
    }  # fmt: skip


def test_unhooked_refinery_done_picks_the_most_recently_updated_live_mr() -> None:
    conn, ctx = town()
    ids = _refinery(conn, hooked=False)
    newer = add_mr(
        conn, rig_id=ids["rig"], status="open", assignee_agent_bead_id=ids["ref"], updated_at=NOW
    )
    conn.execute("UPDATE beads SET updated_at = ? WHERE bead_id = ?", (ago(HOUR), ids["mr"]))
    drain_one(ctx, "agent_done", agent_id=ids["ref"], payload={"pr_url": "https://x/3"})
    assert bead(conn, newer)["status"] == "in_progress"
    assert bead(conn, ids["mr"])["updated_at"] == ago(HOUR)


def test_unhooked_refinery_done_without_live_mr_is_ignored() -> None:
    conn, ctx = town()
    ref = add_agent(conn, role="refinery", status="working")
    add_mr(conn, status="closed", assignee_agent_bead_id=ref)
    before = snapshot(conn)
    drain_one(ctx, "agent_done", agent_id=ref, payload={"branch": "b"})
    assert snapshot(conn) == before


# --------------------------------------------------------------------------- agent_completed


def _hooked_polecat(conn: sqlite3.Connection, *, bead_status: str = "in_progress",
                    heartbeat_ms: int = 10 * SECOND) -> tuple[str, str]:  # fmt: skip
    rig = add_rig(conn)
    b = add_bead(conn, rig_id=rig, status=bead_status)
    a = add_agent(conn, rig_id=rig, status="working", hook=b, dispatch_attempts=3,
                  last_activity_at=ago(heartbeat_ms))  # fmt: skip
    conn.execute("UPDATE beads SET assignee_agent_bead_id = ? WHERE bead_id = ?", (a, b))
    return a, b


@pytest.mark.parametrize("status", ["failed", "bogus", None])
def test_agent_completed_failed_fails_the_bead(status: str | None) -> None:
    conn, ctx = town()
    a, b = _hooked_polecat(conn)
    payload = {} if status is None else {"status": status}
    drain_one(ctx, "agent_completed", agent_id=a, payload=payload)
    assert bead(conn, b)["status"] == "failed"
    (ev,) = bead_events(conn, b, "status_changed")
    assert json.loads(ev["metadata"]) == {
        "failure_reason": {"code": "agent_failed", "message": "Agent exited with failed status",
                           "source": "container"},
    }  # fmt: skip
    ag = agent(conn, a)
    assert (ag["status"], ag["current_hook_bead_id"], ag["dispatch_attempts"]) == ("idle", None, 0)


def test_agent_completed_eviction_with_stale_heartbeat_reopens_the_bead() -> None:
    conn, ctx = town()
    a, b = _hooked_polecat(conn, heartbeat_ms=90 * SECOND + 1)
    drain_one(
        ctx,
        "agent_completed",
        agent_id=a,
        payload={"status": "completed", "reason": "container eviction"},
    )
    row = bead(conn, b)
    assert (row["status"], row["assignee_agent_bead_id"]) == ("open", None)
    assert agent(conn, a)["current_hook_bead_id"] is None


def test_agent_completed_eviction_with_fresh_heartbeat_keeps_the_bead() -> None:
    conn, ctx = town()
    a, b = _hooked_polecat(conn, heartbeat_ms=90 * SECOND)
    drain_one(
        ctx,
        "agent_completed",
        agent_id=a,
        payload={"status": "completed", "reason": "container eviction"},
    )
    row = bead(conn, b)
    assert (row["status"], row["assignee_agent_bead_id"]) == ("in_progress", a)
    ag = agent(conn, a)
    assert (ag["status"], ag["current_hook_bead_id"], ag["dispatch_attempts"]) == ("idle", None, 0)


@pytest.mark.parametrize("bead_status", ["in_progress", "in_review", "open", "closed"])
def test_agent_completed_without_eviction_leaves_the_bead(bead_status: str) -> None:
    conn, ctx = town()
    a, b = _hooked_polecat(conn, bead_status=bead_status, heartbeat_ms=HOUR)
    drain_one(ctx, "agent_completed", agent_id=a, payload={"status": "completed", "reason": "idle"})
    assert bead(conn, b)["status"] == bead_status
    assert agent(conn, a)["current_hook_bead_id"] is None


def test_agent_completed_refinery_working_with_hook_is_left_alone() -> None:
    conn, ctx = town()
    ids = _refinery(conn)
    before = snapshot(conn)
    drain_one(ctx, "agent_completed", agent_id=ids["ref"], payload={"status": "failed"})
    assert snapshot(conn) == before


def test_agent_completed_idle_hooked_refinery_keeps_hook_and_counter() -> None:
    conn, ctx = town()
    ids = _refinery(conn)
    conn.execute(
        "UPDATE agent_metadata SET status = 'stalled', stalled_at = ? WHERE bead_id = ?",
        (ago(MINUTE), ids["ref"]),
    )
    drain_one(ctx, "agent_completed", agent_id=ids["ref"], payload={"status": "completed"})
    ag = agent(conn, ids["ref"])
    # Direct SQL (not updateAgentStatus): stalled_at is not cleared.
    cols = ("status", "current_hook_bead_id", "dispatch_attempts", "stalled_at")
    assert tuple(ag[c] for c in cols) == (
        "idle", ids["mr"], 2, ago(MINUTE),
    )  # fmt: skip
    assert bead(conn, ids["mr"])["status"] == "in_progress"


def test_agent_completed_unhooked_working_polecat_goes_idle_with_counter_reset() -> None:
    conn, ctx = town()
    a = add_agent(conn, status="working", dispatch_attempts=4)
    drain_one(ctx, "agent_completed", agent_id=a, payload={"status": "completed"})
    assert (agent(conn, a)["status"], agent(conn, a)["dispatch_attempts"]) == ("idle", 0)


def test_agent_completed_for_missing_agent_is_a_no_op() -> None:
    _, ctx = town()
    out = drain_one(ctx, "agent_completed", agent_id=UUID_A, payload={"status": "failed"})
    assert (out.outcome, out.error) == ("applied", None)


def test_agent_completed_failed_for_hook_to_deleted_bead_is_skipped_as_missing() -> None:
    conn, ctx = town()
    conn.commit()  # PRAGMA foreign_keys is a no-op inside an open transaction
    with foreign_keys_off(conn):
        a = add_agent(conn, status="working", hook=UUID_A)
        conn.commit()
    out = drain_one(ctx, "agent_completed", agent_id=a, payload={"status": "failed"})
    assert (out.outcome, out.error) == ("skipped_missing_entity", f"Bead {UUID_A} not found")
