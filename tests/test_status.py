"""``getAlarmStatus`` (spec §9.3) and ``hasActiveWork`` (§7.10)."""

from __future__ import annotations

from support.townbuilder import MINUTE, NOW, add_agent, add_bead, add_rig, ago, make_ctx, new_town

from reportgen.town.bead_ops import log_bead_event
from reportgen.town.status import get_alarm_status, has_active_work, recent_events


def test_shape_and_counts() -> None:
    conn = new_town()
    rig = add_rig(conn)
    bead = add_bead(conn, rig_id=rig, status="in_progress", title="Fix login")
    add_agent(conn, rig_id=rig, status="working", hook=bead)
    add_agent(conn, rig_id=rig, status="idle", hook=add_bead(conn, rig_id=rig, status="open",
              assignee_agent_bead_id="x"), last_activity_at=ago(5 * MINUTE + 1))  # fmt: skip
    add_agent(conn, rig_id=rig, status="idle", hook=None, last_activity_at=None)
    add_agent(conn, role="mayor", status="waiting")
    add_agent(conn, status="exited")
    add_bead(conn, status="closed")
    add_bead(conn, status="failed")
    add_bead(conn, status="in_review")
    add_bead(conn, status="open", labels=["gt:triage-request"])
    add_bead(conn, type="message", status="open", title="GUPP_CHECK")
    add_bead(conn, type="message", status="open", title="GUPP_ESCALATION")
    ctx = make_ctx(conn)
    metrics = {"eventsDrained": 0}
    status = get_alarm_status(ctx, reconciler=metrics, next_fire_at="2026-03-15T12:00:05.000Z")
    assert status["alarm"] == {
        "nextFireAt": "2026-03-15T12:00:05.000Z", "intervalMs": 5000,
        "intervalLabel": "active (5s)",
    }  # fmt: skip
    assert status["agents"] == {"working": 1, "waiting": 1, "idle": 2, "stalled": 0, "dead": 0,
                                "total": 5}  # fmt: skip
    assert status["beads"] == {"open": 2, "inProgress": 1, "inReview": 1, "failed": 1,
                               "triageRequests": 1}  # fmt: skip
    assert status["patrol"] == {"guppWarnings": 1, "guppEscalations": 1, "stalledAgents": 0,
                                "orphanedHooks": 1}  # fmt: skip
    assert status["reconciler"] is metrics
    assert "draining" not in status


def test_idle_town_uses_the_five_minute_cadence_and_reports_draining() -> None:
    conn = new_town()
    add_bead(conn, status="closed")
    ctx = make_ctx(conn, draining=True)
    assert not has_active_work(ctx)
    status = get_alarm_status(ctx, reconciler=None, next_fire_at=None, drain_started_at=NOW)
    assert status["alarm"]["intervalLabel"] == "idle (5m)"
    assert status["alarm"]["intervalMs"] == 300_000
    assert status["draining"] is True and status["drainStartedAt"] == NOW
    assert status["reconciler"] is None


def test_active_work_cases() -> None:
    def active(**cols: object) -> bool:
        conn = new_town()
        rig = add_rig(conn)
        kind = cols.pop("kind")
        if kind == "agent":
            add_agent(conn, rig_id=rig, **cols)  # type: ignore[arg-type]
        else:
            add_bead(conn, **cols)
        return has_active_work(make_ctx(conn))

    assert active(kind="agent", status="working")
    assert active(kind="agent", status="stalled", last_activity_at=ago(30 * MINUTE - 1))
    assert not active(kind="agent", status="stalled", last_activity_at=ago(30 * MINUTE))
    assert not active(kind="agent", status="idle")
    assert active(kind="bead", type="merge_request", status="open")
    assert active(kind="bead", status="open", labels=["gt:triage-request"])
    assert active(kind="bead", status="open", rig_id=add_rig(new_town()))
    assert not active(kind="bead", status="in_review")


def test_recent_events_are_upstreams_one_liners_newest_first() -> None:
    conn = new_town()
    bead = add_bead(conn, title="Fix login")
    ctx = make_ctx(conn)
    log_bead_event(ctx, bead, "status_changed", agent_id="system", old_value="open",
                   new_value="in_progress")  # fmt: skip
    ctx.now = "2026-03-15T12:00:01.000Z"
    log_bead_event(ctx, bead, "status_changed", agent_id="0123456789abcdef", new_value="closed")
    ctx.now = "2026-03-15T12:00:02.000Z"
    log_bead_event(ctx, bead, "pr_created", agent_id="a")
    for _ in range(25):
        log_bead_event(ctx, bead, "hooked", agent_id="a")
    events = get_alarm_status(ctx, reconciler=None, next_fire_at=None)["recentEvents"]
    assert len(events) == 20
    assert events[-1]["type"] == "hooked"
    everything = recent_events(ctx, limit=100)
    messages = [e["message"] for e in everything[-3:]]
    assert messages == [
        'PR created for "Fix login"',
        '"Fix login" → closed (by agent 01234567…)',
        '"Fix login" → in_progress (by system)',
    ]
