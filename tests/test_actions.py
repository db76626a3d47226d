"""Applying actions (spec §6) and running their side effects (§6.4, §6.5, §7.9).

One test (or a few) per action type, then the deferred parts against a
scripted :class:`RecordingWorld`, then how side effects are counted.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

import pytest
from support.townbuilder import (
    MINUTE,
    NOW,
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
from support.worlds import RecordingWorld

from reportgen.town import clock
from reportgen.town.actions import ACTION_TYPES, ApplyRecord, apply_action, apply_actions
from reportgen.town.context import Action, EngineError, TownCtx
from reportgen.town.effects import (
    NullWorld,
    PRFeedback,
    PRStatus,
    PRStatusError,
    SideEffect,
    SideEffectStats,
    run_side_effects,
)
from reportgen.town.ids import CounterIds
from reportgen.town.pr_effects import parse_git_url, parse_pr_url

TOWN = "town5678-aaaa-bbbb-cccc-000000000000"
PR = "https://github.com/acme/rig-a/pull/7"
REFINERY_CFG = {"refinery": {"auto_merge_delay_minutes": 5, "auto_resolve_pr_feedback": True}}


# --------------------------------------------------------------------------- helpers


def town(config: dict[str, Any] | None = None) -> tuple[sqlite3.Connection, TownCtx]:
    conn = new_town()
    ctx = make_ctx(conn, config=config)
    ctx.town_id = TOWN
    ctx.ids = CounterIds(1)
    return conn, ctx


def at(ctx: TownCtx, ms_later: int) -> TownCtx:
    """The same town ``ms_later`` milliseconds later (same ids, same config)."""
    ctx.now = clock.iso(clock.to_ms(NOW) + ms_later)
    return ctx


def bead(ctx: TownCtx, bead_id: str) -> dict[str, Any]:
    row = ctx.one("SELECT * FROM beads WHERE bead_id = ?", (bead_id,))
    assert row is not None, bead_id
    return dict(row)


def meta(ctx: TownCtx, bead_id: str) -> dict[str, Any]:
    value = json.loads(bead(ctx, bead_id)["metadata"])
    assert isinstance(value, dict)
    return value


def agent(ctx: TownCtx, agent_id: str) -> dict[str, Any]:
    row = ctx.one("SELECT * FROM agent_metadata WHERE bead_id = ?", (agent_id,))
    assert row is not None, agent_id
    return dict(row)


def review(ctx: TownCtx, mr_id: str) -> dict[str, Any]:
    row = ctx.one("SELECT * FROM review_metadata WHERE bead_id = ?", (mr_id,))
    assert row is not None
    return dict(row)


def town_events(ctx: TownCtx) -> list[dict[str, Any]]:
    rows = ctx.all("SELECT * FROM town_events ORDER BY event_id")
    return [{**dict(r), "payload": json.loads(r["payload"])} for r in rows]


def bead_events(ctx: TownCtx, bead_id: str) -> list[dict[str, Any]]:
    return [dict(r) for r in ctx.all("SELECT * FROM bead_events WHERE bead_id = ?", (bead_id,))]


def apply(ctx: TownCtx, *actions: Action) -> list[ApplyRecord]:
    return apply_actions(ctx, list(actions))


def one(ctx: TownCtx, action: Action) -> ApplyRecord:
    (record,) = apply(ctx, action)
    return record


def effects_of(records: list[ApplyRecord]) -> list[SideEffect]:
    return [r.side_effect for r in records if r.side_effect is not None]


def run(ctx: TownCtx, records: list[ApplyRecord], world: Any) -> SideEffectStats:
    return run_side_effects(ctx, effects_of(records), world)


def tb(bead_id: str, to: str, reason: str = "r", frm: str | None = None) -> Action:
    return {
        "type": "transition_bead",
        "bead_id": bead_id,
        "from": frm,
        "to": to,
        "reason": reason,
        "actor": "system",
    }


def ta(agent_id: str, to: str) -> Action:
    return {"type": "transition_agent", "agent_id": agent_id, "from": None, "to": to, "reason": "r"}


def dispatch(agent_id: str, bead_id: str, rig_id: str) -> Action:
    return {"type": "dispatch_agent", "agent_id": agent_id, "bead_id": bead_id, "rig_id": rig_id}


def poll(mr_id: str, url: str = PR) -> Action:
    return {"type": "poll_pr", "bead_id": mr_id, "pr_url": url}


def test_action_types_are_upstreams_26_in_order() -> None:
    assert len(ACTION_TYPES) == 26
    assert ACTION_TYPES[0] == "transition_bead"
    assert ACTION_TYPES[17:21] == ("dispatch_agent", "stop_agent", "poll_pr", "merge_pr")
    assert ACTION_TYPES[-1] == "report_wasteland_done"


# --------------------------------------------------------------------------- bead mutations


def test_transition_bead_updates_status_and_logs_event() -> None:
    conn, ctx = town()
    b = add_bead(conn, updated_at=ago(10 * MINUTE))
    rec = one(ctx, tb(b, "in_progress"))
    assert (rec.outcome, rec.side_effect_deferred) == ("applied", False)
    assert bead(ctx, b)["status"] == "in_progress"
    assert bead(ctx, b)["updated_at"] == NOW
    (ev,) = bead_events(ctx, b)
    assert (ev["event_type"], ev["old_value"], ev["new_value"], ev["agent_id"]) == (
        "status_changed",
        "open",
        "in_progress",
        "system",
    )


def test_transition_bead_to_failed_records_the_reconciler_failure_reason() -> None:
    conn, ctx = town()
    b = add_bead(conn)
    one(ctx, tb(b, "failed", reason="max dispatch attempts exceeded (5)"))
    assert bead(ctx, b)["status"] == "failed"
    (ev,) = bead_events(ctx, b)
    assert json.loads(ev["metadata"]) == {
        "failure_reason": {
            "code": "reconciler",
            "message": "max dispatch attempts exceeded (5)",
            "source": "scheduler",
        }
    }


def test_transition_bead_terminal_guard_is_a_silent_noop() -> None:
    conn, ctx = town()
    b = add_bead(conn, status="closed", closed_at=ago(MINUTE), updated_at=ago(MINUTE))
    rec = one(ctx, tb(b, "open", frm="closed"))
    assert rec.outcome == "applied"
    assert bead(ctx, b)["status"] == "closed"
    assert bead(ctx, b)["updated_at"] == ago(MINUTE)
    assert bead_events(ctx, b) == []


def test_transition_bead_missing_bead_is_caught_and_logged() -> None:
    _, ctx = town()
    rec = one(ctx, tb("nope", "open"))
    assert rec.outcome == "applied"
    assert rec.logs and "transition_bead failed: bead=nope" in rec.logs[0]["msg"]


def test_from_is_advisory_and_the_last_action_wins() -> None:
    conn, ctx = town()
    b = add_bead(conn)
    a = add_agent(conn, status="working", hook=b)
    apply(
        ctx,
        tb(b, "in_progress", frm="in_review"),
        tb(b, "open", frm="failed"),
        ta(a, "stalled"),
        ta(a, "idle"),
    )
    assert bead(ctx, b)["status"] == "open"
    assert agent(ctx, a)["status"] == "idle"
    assert agent(ctx, a)["stalled_at"] is None


def test_assign_bead() -> None:
    conn, ctx = town()
    b = add_bead(conn, updated_at=ago(MINUTE))
    one(ctx, {"type": "assign_bead", "bead_id": b, "agent_id": "agent-x"})
    assert (bead(ctx, b)["assignee_agent_bead_id"], bead(ctx, b)["updated_at"]) == ("agent-x", NOW)


def test_clear_bead_assignee_also_unhooks_every_hooked_agent() -> None:
    conn, ctx = town()
    b = add_bead(conn, assignee_agent_bead_id="x", updated_at=ago(MINUTE))
    a1 = add_agent(conn, status="working", hook=b, checkpoint='{"step":1}')
    a2 = add_agent(conn, status="idle", hook=b)
    one(ctx, {"type": "clear_bead_assignee", "bead_id": b})
    assert bead(ctx, b)["assignee_agent_bead_id"] is None
    assert bead(ctx, b)["updated_at"] == NOW
    for a in (a1, a2):
        row = agent(ctx, a)
        assert (row["current_hook_bead_id"], row["status"], row["checkpoint"]) == (
            None,
            "idle",
            None,
        )
    assert [e["event_type"] for e in bead_events(ctx, b)] == ["unhooked", "unhooked"]


def test_create_mr_bead_submits_to_the_review_queue() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    src = add_bead(conn, rig_id=rig, status="in_progress")
    rec = one(
        ctx,
        {
            "type": "create_mr_bead",
            "source_bead_id": src,
            "agent_id": "agent-p",
            "rig_id": rig,
            "branch": "gt/x",
            "target_branch": "ignored",
            "pr_url": PR,
            "summary": "done",
        },
    )
    assert rec.outcome == "applied"
    mr = ctx.one("SELECT * FROM beads WHERE type = 'merge_request'")
    assert mr is not None
    assert (mr["created_by"], mr["title"], mr["body"]) == ("agent-p", "Review: gt/x", "done")
    assert json.loads(mr["metadata"])["source_bead_id"] == src
    assert review(ctx, mr["bead_id"])["pr_url"] == PR
    dep = ctx.one(
        "SELECT dependency_type FROM bead_dependencies WHERE bead_id = ?", (mr["bead_id"],)
    )
    assert dep is not None and dep[0] == "tracks"


def test_create_landing_mr_counts_attempts_and_creates_a_system_mr() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    convoy = add_convoy(
        conn,
        feature_branch="convoy/f",
        metadata='{"landing_mr_attempts":2}',
        updated_at=ago(MINUTE),
    )
    rec = one(
        ctx,
        {
            "type": "create_landing_mr",
            "convoy_id": convoy,
            "rig_id": rig,
            "feature_branch": "convoy/f",
            "target_branch": "develop",
        },
    )
    assert rec.outcome == "applied"
    m = meta(ctx, convoy)
    assert (m["landing_mr_attempts"], m["last_landing_mr_attempt_at"]) == (3, NOW)
    assert bead(ctx, convoy)["updated_at"] == NOW
    mr = ctx.one("SELECT * FROM beads WHERE type = 'merge_request'")
    assert mr is not None and mr["created_by"] == "system"
    assert review(ctx, mr["bead_id"])["branch"] == "convoy/f"
    deps = ctx.all("SELECT depends_on_bead_id, dependency_type FROM bead_dependencies")
    assert [tuple(d) for d in deps] == [(convoy, "tracks")]


def test_create_landing_mr_first_attempt_and_non_numeric_counter() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    c1 = add_convoy(conn, feature_branch="f1")
    c2 = add_convoy(conn, feature_branch="f2", metadata='{"landing_mr_attempts":"x"}')
    for c in (c1, c2):
        one(
            ctx,
            {
                "type": "create_landing_mr",
                "convoy_id": c,
                "rig_id": rig,
                "feature_branch": "f",
                "target_branch": "main",
            },
        )
        assert meta(ctx, c)["landing_mr_attempts"] == 1


def test_close_sibling_mrs_closes_live_siblings_only() -> None:
    conn, ctx = town()
    src = add_bead(conn)
    keep = add_mr(conn, source=src, status="in_progress")
    live = add_mr(conn, source=src, status="open")
    dead = add_mr(conn, source=src, status="failed")
    one(ctx, {"type": "close_sibling_mrs", "source_bead_id": src, "exclude_mr_id": keep})
    assert [bead(ctx, m)["status"] for m in (keep, live, dead)] == [
        "in_progress",
        "closed",
        "failed",
    ]
    assert bead(ctx, live)["closed_at"] == NOW


def test_set_review_pr_url_https_only() -> None:
    conn, ctx = town()
    mr = add_mr(conn)
    rec = one(ctx, {"type": "set_review_pr_url", "bead_id": mr, "pr_url": "http://x/pull/1"})
    assert rec.outcome == "applied" and rec.logs
    assert review(ctx, mr)["pr_url"] is None
    one(ctx, {"type": "set_review_pr_url", "bead_id": mr, "pr_url": PR})
    assert review(ctx, mr)["pr_url"] == PR
    assert meta(ctx, mr)["pr_url"] == PR


# --------------------------------------------------------------------------- agent mutations


def test_transition_agent_maintains_stalled_at_and_ignores_missing_agents() -> None:
    conn, ctx = town()
    a = add_agent(conn, status="working")
    one(ctx, ta(a, "stalled"))
    assert (agent(ctx, a)["status"], agent(ctx, a)["stalled_at"]) == ("stalled", NOW)
    at(ctx, MINUTE)
    one(ctx, ta(a, "stalled"))
    assert agent(ctx, a)["stalled_at"] == NOW  # kept, not bumped
    assert one(ctx, ta("ghost", "idle")).outcome == "applied"


def test_reset_agent_dispatch_attempts_without_hook() -> None:
    conn, ctx = town()
    a = add_agent(conn, dispatch_attempts=7)
    one(ctx, {"type": "reset_agent_dispatch_attempts", "agent_id": a})
    assert agent(ctx, a)["dispatch_attempts"] == 0


def test_reset_agent_dispatch_attempts_failed_bead_stays_failed() -> None:
    conn, ctx = town()
    b = add_bead(conn, status="failed", dispatch_attempts=5, last_dispatch_attempt_at=ago(MINUTE))
    a = add_agent(conn, hook=b, dispatch_attempts=5)
    rec = one(ctx, {"type": "reset_agent_dispatch_attempts", "agent_id": a})
    assert rec.outcome == "applied"
    row = bead(ctx, b)
    assert (row["dispatch_attempts"], row["last_dispatch_attempt_at"], row["status"]) == (
        0,
        None,
        "failed",
    )
    assert bead_events(ctx, b) == []


def test_reset_agent_dispatch_attempts_mr_resets_retry_count() -> None:
    conn, ctx = town()
    mr = add_mr(conn, status="in_progress", dispatch_attempts=6, review={"retry_count": 3})
    a = add_agent(conn, role="refinery", hook=mr, dispatch_attempts=6)
    one(ctx, {"type": "reset_agent_dispatch_attempts", "agent_id": a})
    assert (agent(ctx, a)["dispatch_attempts"], bead(ctx, mr)["dispatch_attempts"]) == (0, 0)
    assert review(ctx, mr)["retry_count"] == 0
    assert bead(ctx, mr)["status"] == "in_progress"


def test_hook_agent_and_its_caught_failure() -> None:
    conn, ctx = town()
    b1, b2 = add_bead(conn), add_bead(conn)
    a = add_agent(conn, agent_status_message="hi", agent_status_updated_at=ago(MINUTE))
    one(ctx, {"type": "hook_agent", "agent_id": a, "bead_id": b1})
    row = agent(ctx, a)
    assert (row["current_hook_bead_id"], row["agent_status_updated_at"]) == (b1, None)
    assert bead(ctx, b1)["assignee_agent_bead_id"] == a
    rec = one(ctx, {"type": "hook_agent", "agent_id": a, "bead_id": b2})
    assert rec.outcome == "applied" and "hook_agent failed" in rec.logs[0]["msg"]
    assert agent(ctx, a)["current_hook_bead_id"] == b1


def test_unhook_agent_and_clear_checkpoint() -> None:
    conn, ctx = town()
    b = add_bead(conn, assignee_agent_bead_id="keep")
    a = add_agent(conn, status="working", hook=b, checkpoint='{"x":1}')
    one(ctx, {"type": "unhook_agent", "agent_id": a, "reason": "r"})
    assert (agent(ctx, a)["current_hook_bead_id"], agent(ctx, a)["status"]) == (None, "idle")
    assert bead(ctx, b)["assignee_agent_bead_id"] == "keep"
    a2 = add_agent(conn, checkpoint='{"y":2}')
    one(ctx, {"type": "clear_agent_checkpoint", "agent_id": a2})
    assert agent(ctx, a2)["checkpoint"] is None


def test_delete_agent_releases_its_beads() -> None:
    conn, ctx = town()
    a = add_agent(conn)
    live = add_bead(conn, status="in_progress", assignee_agent_bead_id=a, updated_at=ago(MINUTE))
    done = add_bead(conn, status="closed", assignee_agent_bead_id=a, updated_at=ago(MINUTE))
    rec = one(ctx, {"type": "delete_agent", "agent_id": a, "reason": "GC: idle > 24h"})
    assert rec.outcome == "applied"
    assert (bead(ctx, live)["status"], bead(ctx, live)["assignee_agent_bead_id"]) == ("open", None)
    assert (bead(ctx, done)["status"], bead(ctx, done)["assignee_agent_bead_id"]) == (
        "closed",
        None,
    )
    assert bead(ctx, done)["updated_at"] == NOW
    assert ctx.one("SELECT 1 FROM agent_metadata WHERE bead_id = ?", (a,)) is None
    assert ctx.one("SELECT 1 FROM beads WHERE bead_id = ?", (a,)) is None
    assert one(ctx, {"type": "delete_agent", "agent_id": a, "reason": "again"}).outcome == "applied"


# --------------------------------------------------------------------------- convoy mutations


def test_update_convoy_progress_and_ready_to_land() -> None:
    conn, ctx = town()
    c = add_convoy(conn, total_beads=3, updated_at=ago(MINUTE))
    apply(
        ctx,
        {"type": "update_convoy_progress", "convoy_id": c, "closed_beads": 2},
        {"type": "set_convoy_ready_to_land", "convoy_id": c},
    )
    row = ctx.one("SELECT closed_beads FROM convoy_metadata WHERE bead_id = ?", (c,))
    assert row is not None and row[0] == 2
    assert meta(ctx, c) == {"ready_to_land": 1}
    assert bead(ctx, c)["updated_at"] == NOW


def test_close_convoy_lands_it_and_a_missing_convoy_escapes() -> None:
    conn, ctx = town()
    c = add_convoy(conn)
    one(ctx, {"type": "close_convoy", "convoy_id": c})
    assert (bead(ctx, c)["status"], bead(ctx, c)["closed_at"]) == ("closed", NOW)
    row = ctx.one("SELECT landed_at FROM convoy_metadata WHERE bead_id = ?", (c,))
    assert row is not None and row[0] == NOW
    rec = one(ctx, {"type": "close_convoy", "convoy_id": "ghost"})
    assert rec.outcome == "Bead ghost not found"


def test_fail_convoy_records_metadata() -> None:
    conn, ctx = town()
    c = add_convoy(conn, metadata='{"ready_to_land":1}')
    reason = "Landing MR creation failed after 5 attempts"
    one(ctx, {"type": "fail_convoy", "convoy_id": c, "reason": reason})
    assert bead(ctx, c)["status"] == "failed"
    assert meta(ctx, c) == {
        "ready_to_land": 1,
        "failureReason": "landing_mr_exhausted",
        "failureMessage": reason,
    }


# --------------------------------------------------------------------------- dispatch_agent (sync)


def test_dispatch_agent_with_agent_sets_working_and_in_progress_without_counters() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    b = add_bead(conn, rig_id=rig, dispatch_attempts=1)
    a = add_agent(conn, rig_id=rig, hook=b, dispatch_attempts=2)
    rec = one(ctx, dispatch(a, b, rig))
    assert rec.side_effect is not None
    assert rec.side_effect.args == {"agent_id": a, "bead_id": b, "rig_id": rig}
    assert (agent(ctx, a)["status"], agent(ctx, a)["dispatch_attempts"]) == ("working", 2)
    assert (bead(ctx, b)["status"], bead(ctx, b)["dispatch_attempts"]) == ("in_progress", 1)
    assert bead_events(ctx, b)[0]["agent_id"] == a


def test_dispatch_agent_empty_id_creates_a_polecat_from_the_pool() -> None:
    conn, ctx = town()
    rig = add_rig(conn, "rig12345-xyz")
    add_agent(conn, "taken", rig_id="other", status="working")
    conn.execute("UPDATE beads SET title = 'Toast' WHERE bead_id = 'taken'")
    b = add_bead(conn, rig_id=rig)
    rec = one(ctx, dispatch("", b, rig))
    assert rec.side_effect is not None
    new = rec.side_effect.args["agent_id"]
    assert new == "00000000-0000-4000-8000-000000000001"
    assert bead(ctx, new)["title"] == "Maple"
    row = agent(ctx, new)
    assert row["identity"] == f"Maple-polecat-rig12345@{TOWN[:8]}"
    assert (row["role"], row["status"], row["current_hook_bead_id"]) == ("polecat", "working", b)
    assert row["last_activity_at"] == NOW and row["dispatch_attempts"] == 0
    assert (bead(ctx, b)["status"], bead(ctx, b)["assignee_agent_bead_id"]) == ("in_progress", new)


def test_dispatch_agent_empty_id_reuses_an_idle_unhooked_polecat_of_the_rig() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    idle = add_agent(conn, rig_id=rig, status="idle")
    b = add_bead(conn, rig_id=rig)
    rec = one(ctx, dispatch("", b, rig))
    assert rec.side_effect is not None and rec.side_effect.args["agent_id"] == idle


def test_dispatch_agent_empty_id_on_mr_creates_the_refinery() -> None:
    conn, ctx = town()
    rig = add_rig(conn, "abcdefgh-rig")
    mr = add_mr(conn, rig_id=rig, status="in_progress")
    rec = one(ctx, dispatch("", mr, rig))
    assert rec.side_effect is not None
    new = rec.side_effect.args["agent_id"]
    assert bead(ctx, new)["title"] == "refinery"
    assert agent(ctx, new)["identity"] == f"refinery-refinery-abcdefgh@{TOWN[:8]}"
    assert agent(ctx, new)["role"] == "refinery"


def test_dispatch_agent_babysat_mr_bails_out() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    mr = add_mr(conn, rig_id=rig, metadata='{"babysit":true}', pr_url=PR)
    rec = one(ctx, dispatch("", mr, rig))
    assert (rec.outcome, rec.side_effect) == ("applied", None)
    assert ctx.one("SELECT count(*) FROM agent_metadata")[0] == 0  # type: ignore[index]
    assert bead(ctx, mr)["status"] == "open"
    # babysit must be the JSON literal true: 1 does not count
    mr2 = add_mr(conn, rig_id=rig, metadata='{"babysit":1}', pr_url=PR)
    assert one(ctx, dispatch("", mr2, rig)).side_effect is not None


def test_dispatch_agent_polecat_names_run_past_the_pool() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    names = [
        "Toast",
        "Maple",
        "Birch",
        "Shadow",
        "Clover",
        "Ember",
        "Sage",
        "Dusk",
        "Flint",
        "Coral",
        "Slate",
        "Reed",
        "Thorn",
        "Pike",
        "Moss",
        "Wren",
        "Blaze",
        "Gale",
        "Drift",
        "Lark",
    ]
    for i, name in enumerate(names):
        add_agent(conn, f"p{i}", rig_id="elsewhere", status="working", identity=f"id{i}")
        conn.execute("UPDATE beads SET title = ? WHERE bead_id = ?", (name, f"p{i}"))
    b = add_bead(conn, rig_id=rig)
    rec = one(ctx, dispatch("", b, rig))
    assert rec.side_effect is not None
    assert bead(ctx, rec.side_effect.args["agent_id"])["title"] == "Polecat-21"


def test_dispatch_agent_missing_bead_throws_after_setting_the_agent_working() -> None:
    conn, ctx = town()
    a = add_agent(conn, status="idle")
    rec = one(ctx, dispatch(a, "gone", "rig"))
    assert rec.outcome == "Bead gone not found"
    assert rec.side_effect is None
    assert agent(ctx, a)["status"] == "working"
    with pytest.raises(EngineError, match="Bead gone not found"):
        apply_action(ctx, dispatch(a, "gone", "rig"))


def test_dispatch_agent_empty_id_missing_bead_is_caught() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    rec = one(ctx, dispatch("", "gone", rig))
    assert (rec.outcome, rec.side_effect) == ("applied", None)
    assert "failed to hook agent for bead=gone" in rec.logs[0]["msg"]
    # getOrCreateAgent ran before hookBead threw: the new polecat stays
    assert ctx.one("SELECT count(*) FROM agent_metadata")[0] == 1  # type: ignore[index]


def test_dispatch_after_unhook_in_the_same_tick_leaves_a_working_unhooked_agent() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    b = add_bead(conn, rig_id=rig)
    a = add_agent(conn, rig_id=rig, hook=b, last_activity_at=ago(5 * MINUTE))
    apply(
        ctx,
        {"type": "unhook_agent", "agent_id": a, "reason": "idle agent hooked to live bead"},
        tb(b, "open"),
        dispatch(a, b, rig),
    )
    row = agent(ctx, a)
    assert (row["status"], row["current_hook_bead_id"]) == ("working", None)
    assert bead(ctx, b)["status"] == "in_progress"


# --------------------------------------------------------------------------- other side-effect actions


def test_stop_agent_defers_only() -> None:
    conn, ctx = town()
    a = add_agent(conn, status="working")
    rec = one(ctx, {"type": "stop_agent", "agent_id": a, "reason": "exceeded 2h GUPP limit"})
    assert rec.side_effect is not None and rec.side_effect.args["agent_id"] == a
    assert agent(ctx, a)["status"] == "working"


def test_poll_pr_touches_the_mr() -> None:
    conn, ctx = town()
    mr = add_mr(
        conn,
        status="in_progress",
        pr_url=PR,
        updated_at=ago(40 * MINUTE),
        metadata='{"source_bead_id":"s"}',
    )
    rec = one(ctx, poll(mr))
    assert rec.side_effect_deferred
    assert bead(ctx, mr)["updated_at"] == NOW
    assert meta(ctx, mr) == {"source_bead_id": "s", "last_poll_at": NOW}


def test_merge_pr_repo_mismatch_guard_clears_pending_without_side_effect() -> None:
    conn, ctx = town()
    rig = add_rig(conn, git_url="https://github.com/acme/rig-a.git")
    mr = add_mr(
        conn,
        rig_id=rig,
        status="in_progress",
        metadata='{"auto_merge_pending":1,"k":2}',
        updated_at=ago(MINUTE),
    )
    rec = one(
        ctx, {"type": "merge_pr", "bead_id": mr, "pr_url": "https://github.com/evil/other/pull/1"}
    )
    assert (rec.outcome, rec.side_effect) == ("applied", None)
    assert meta(ctx, mr) == {"k": 2}
    assert bead(ctx, mr)["updated_at"] == NOW
    assert 'does not match rig repo "acme/rig-a"' in rec.logs[0]["msg"]


def test_merge_pr_defers_when_repos_match_or_cannot_be_compared() -> None:
    conn, ctx = town()
    rig = add_rig(conn, git_url="git@github.com:acme/rig-a.git")
    other = add_rig(conn, git_url="")
    mr1 = add_mr(conn, rig_id=rig, metadata='{"auto_merge_pending":1}')
    mr2 = add_mr(conn, rig_id=other, metadata='{"auto_merge_pending":1}')
    for mr in (mr1, mr2):
        rec = one(ctx, {"type": "merge_pr", "bead_id": mr, "pr_url": PR})
        assert rec.side_effect is not None
        assert meta(ctx, mr) == {"auto_merge_pending": 1}


def test_url_parsers() -> None:
    assert parse_pr_url(PR) == ("acme/rig-a", 7)
    assert parse_pr_url("https://gitlab.com/g/sub/p/-/merge_requests/12") == ("g/sub/p", 12)
    assert parse_pr_url("https://example.com/x") is None
    assert parse_git_url("https://token@github.com/acme/rig-a.git") == ("acme", "rig-a")
    assert parse_git_url("git@gitlab.com:g/sub/p.git") == ("g/sub", "p")
    assert parse_git_url("https://bitbucket.org/a/b") is None


def test_send_nudge_inserts_the_reconciler_nudge() -> None:
    conn, ctx = town()
    a = add_agent(conn, status="working")
    rec = one(ctx, {"type": "send_nudge", "agent_id": a, "message": "hi", "tier": "escalate"})
    assert rec.side_effect is not None
    row = ctx.one("SELECT * FROM agent_nudges")
    assert row is not None
    assert (
        row["nudge_id"],
        row["mode"],
        row["priority"],
        row["source"],
        row["created_at"],
        row["expires_at"],
        row["delivered_at"],
    ) == (
        "00000000-0000-4000-8000-000000000001",
        "immediate",
        "urgent",
        "reconciler:escalate",
        NOW,
        None,
        None,
    )


def test_create_triage_request_and_its_dedup() -> None:
    conn, ctx = town()
    b = add_bead(conn)
    a = add_agent(conn, status="stalled", hook=b)
    action = {
        "type": "create_triage_request",
        "agent_id": a,
        "triage_type": "stuck_agent",
        "reason": "GUPP force stop",
    }
    apply(ctx, action, action)
    rows = ctx.all("SELECT * FROM beads WHERE labels LIKE '%gt:triage-request%'")
    assert len(rows) == 1
    assert (rows[0]["title"], rows[0]["body"], rows[0]["assignee_agent_bead_id"]) == (
        "Triage: GUPP force stop",
        '{"reason":"GUPP force stop"}',
        a,
    )
    m = json.loads(rows[0]["metadata"])
    assert m["hooked_bead_id"] is None
    assert m["options"] == ["RESTART", "CLOSE", "ESCALATE"]


def test_notify_mayor_only_logs() -> None:
    _, ctx = town()
    rec = one(ctx, {"type": "notify_mayor", "message": "breaker open"})
    assert rec.logs == [
        {"level": "log", "msg": f"[actions] notify_mayor: town={TOWN} msg=breaker open"}
    ]
    assert not rec.side_effect_deferred


def test_emit_event_goes_to_analytics() -> None:
    _, ctx = town()
    seen: list[dict[str, Any]] = []
    action = {
        "type": "emit_event",
        "event_name": "reconciler.respawn_suppressed",
        "data": {"convoyId": "c1", "suppressedAttempt": 3},
    }
    (rec,) = apply_actions(ctx, [action], emit=seen.append)
    want = {
        "event": "reconciler.respawn_suppressed",
        "townId": TOWN,
        "convoyId": "c1",
        "suppressedAttempt": 3,
    }
    assert rec.analytics == [want] and seen == [want]
    assert not rec.side_effect_deferred


def test_report_wasteland_done_defers_only() -> None:
    conn, ctx = town()
    c = add_convoy(conn, metadata='{"wasteland":{"wasteland_id":"w","item_id":"i"}}')
    rec = one(
        ctx,
        {
            "type": "report_wasteland_done",
            "canonical_bead_id": c,
            "wasteland_id": "w",
            "item_id": "i",
            "evidence": "Implemented by x",
        },
    )
    assert rec.side_effect is not None
    assert "reported_done_at" not in meta(ctx, c)["wasteland"]


def test_unknown_action_type_is_logged_and_ignored() -> None:
    _, ctx = town()
    rec = one(ctx, {"type": "teleport"})
    assert (rec.outcome, rec.side_effect) == ("applied", None)
    assert "unknown action type" in rec.logs[0]["msg"]


def test_a_throwing_action_does_not_stop_the_next_ones() -> None:
    conn, ctx = town()
    b = add_bead(conn)
    recs = apply(ctx, {"type": "close_convoy", "convoy_id": "ghost"}, tb(b, "closed"))
    assert [r.outcome for r in recs] == ["Bead ghost not found", "applied"]
    assert bead(ctx, b)["status"] == "closed"


# --------------------------------------------------------------------------- dispatch (deferred, §7.9)


def _dispatched(
    role: str = "polecat",
) -> tuple[sqlite3.Connection, TownCtx, str, str, str, list[ApplyRecord]]:
    conn, ctx = town()
    rig = add_rig(conn)
    b = add_mr(conn, rig_id=rig) if role == "refinery" else add_bead(conn, rig_id=rig)
    a = add_agent(
        conn,
        rig_id=rig,
        role=role,
        hook=b,
        dispatch_attempts=2,
        last_activity_at=ago(MINUTE),
        last_event_at=ago(MINUTE),
        last_event_type="tool",
    )
    conn.execute("UPDATE beads SET dispatch_attempts = 3 WHERE bead_id = ?", (b,))
    at(ctx, 1000)
    records = apply(ctx, dispatch(a, b, rig))
    return conn, ctx, rig, a, b, records


def test_dispatch_success_counts_then_resets_the_agent_counter() -> None:
    _, ctx, rig, a, b, records = _dispatched()
    world = RecordingWorld()
    stats = run(ctx, records, world)
    assert (stats.attempted, stats.succeeded, stats.failed) == (1, 1, 0)
    assert stats.outcomes[0].ok and stats.outcomes[0].agent_id == a
    assert world.called("start_agent") == [(a, b, rig)]
    row = agent(ctx, a)
    assert (row["status"], row["dispatch_attempts"], row["last_activity_at"]) == (
        "working",
        0,
        ctx.now,
    )
    assert (row["last_event_at"], row["last_event_type"]) == (None, None)
    assert (bead(ctx, b)["dispatch_attempts"], bead(ctx, b)["last_dispatch_attempt_at"]) == (
        4,
        ctx.now,
    )
    assert stats.outcomes[0].analytics[0]["event"] == "agent.spawned"


def test_dispatch_failure_keeps_the_agent_working_with_its_counter() -> None:
    _, ctx, _, a, b, records = _dispatched()
    stats = run(ctx, records, RecordingWorld(start_answers=False))
    assert (stats.attempted, stats.succeeded, stats.failed) == (1, 1, 0)
    out = stats.outcomes[0]
    assert (out.ok, out.detail) == (False, "container refused start")
    assert out.to_json()["agent_id"] == a
    assert (agent(ctx, a)["status"], agent(ctx, a)["dispatch_attempts"]) == ("working", 3)
    assert bead(ctx, b)["dispatch_attempts"] == 4
    assert out.analytics[0]["event"] == "agent.dispatch_failed"


def test_dispatch_start_raising_is_a_failed_start_not_a_failed_effect() -> None:
    _, ctx, _, a, _, records = _dispatched()
    stats = run(ctx, records, RecordingWorld(start_answers=RuntimeError("boom")))
    assert (stats.succeeded, stats.failed) == (1, 0)
    assert stats.outcomes[0].ok is False and "boom" in stats.outcomes[0].detail
    assert agent(ctx, a)["dispatch_attempts"] == 3


def test_refinery_keeps_its_counter_after_a_successful_start() -> None:
    _, ctx, _, a, _, records = _dispatched("refinery")
    run(ctx, records, RecordingWorld())
    assert agent(ctx, a)["dispatch_attempts"] == 3


def test_dispatch_without_rig_config_returns_false_and_counts_nothing() -> None:
    conn, ctx = town()
    b = add_bead(conn, rig_id="no-such-rig")
    a = add_agent(conn, rig_id="no-such-rig", hook=b)
    records = apply(ctx, dispatch(a, b, "no-such-rig"))
    world = RecordingWorld()
    stats = run(ctx, records, world)
    assert stats.outcomes[0].ok is False and "no rig config" in stats.outcomes[0].detail
    assert world.called("start_agent") == []
    assert agent(ctx, a)["dispatch_attempts"] == 0 and bead(ctx, b)["dispatch_attempts"] == 0


def test_dispatch_agent_without_rig_uses_the_oldest_rig() -> None:
    conn, ctx = town()
    add_rig(conn, "newer", created_at=ago(MINUTE))
    add_rig(conn, "older", created_at=ago(60 * MINUTE))
    b = add_bead(conn)
    a = add_agent(conn, hook=b)
    world = RecordingWorld()
    run(ctx, apply(ctx, dispatch(a, b, "")), world)
    assert world.called("start_agent") == [(a, b, "older")]


def test_dispatch_deferred_moves_an_open_bead_to_in_progress() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    b = add_bead(conn, rig_id=rig)
    a = add_agent(conn, rig_id=rig, hook=b)
    records = apply(ctx, dispatch(a, b, rig))
    conn.execute("UPDATE beads SET status = 'open' WHERE bead_id = ?", (b,))
    run(ctx, records, RecordingWorld())
    assert bead(ctx, b)["status"] == "in_progress"
    assert [e["event_type"] for e in bead_events(ctx, b)] == ["status_changed", "status_changed"]


def test_dispatch_of_an_agent_deleted_later_in_the_tick_does_nothing() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    a = add_agent(conn, rig_id=rig, last_activity_at=ago(25 * 60 * MINUTE))  # idle, unhooked
    b = add_bead(conn, rig_id=rig)
    # spec §17: Rule 1 picks the idle polecat that GC deletes later in the same tick
    records = apply(
        ctx, dispatch("", b, rig), {"type": "delete_agent", "agent_id": a, "reason": "GC"}
    )
    assert records[0].side_effect is not None and records[0].side_effect.args["agent_id"] == a
    world = RecordingWorld()
    stats = run(ctx, records, world)
    assert stats.outcomes[0].ok is False and world.called("start_agent") == []
    assert (bead(ctx, b)["status"], bead(ctx, b)["assignee_agent_bead_id"]) == ("open", None)


# --------------------------------------------------------------------------- poll_pr (deferred, §6.5)


def _polled(config: dict[str, Any] | None = REFINERY_CFG, **mr_cols: Any) -> tuple[TownCtx, str]:
    conn, ctx = town(config)
    rig = add_rig(conn, git_url="https://github.com/acme/rig-a.git")
    src = add_bead(conn, rig_id=rig, status="in_review")
    mr = add_mr(
        conn, rig_id=rig, status="in_progress", pr_url=PR, source=src, branch="gt/toast", **mr_cols
    )
    conn.execute(
        "UPDATE beads SET metadata = json_set(metadata, '$.source_bead_id', ?) WHERE bead_id = ?",
        (src, mr),
    )
    return ctx, mr


def _poll_once(ctx: TownCtx, mr: str, world: RecordingWorld) -> SideEffectStats:
    return run(ctx, apply(ctx, poll(mr)), world)


@pytest.mark.parametrize("state", ["merged", "closed"])
def test_poll_pr_not_open_inserts_pr_status_changed(state: str) -> None:
    ctx, mr = _polled(metadata='{"poll_transient_count":4}')
    stats = _poll_once(ctx, mr, RecordingWorld(pr_status_answers=PRStatus.found(state)))
    (ev,) = town_events(ctx)
    assert (ev["event_type"], ev["bead_id"], ev["created_at"], ev["processed_at"]) == (
        "pr_status_changed",
        mr,
        NOW,
        None,
    )
    assert ev["payload"] == {"pr_url": PR, "pr_state": state}
    assert stats.outcomes[0].events == [ev["event_id"]]
    m = meta(ctx, mr)
    assert (m["poll_transient_count"], m["poll_non_transient_count"], m["poll_error_kind"]) == (
        0,
        0,
        None,
    )


def test_poll_pr_open_without_refinery_config_stops() -> None:
    ctx, mr = _polled(config=None)
    world = RecordingWorld(pr_status_answers=PRStatus.found("open", "dirty"))
    _poll_once(ctx, mr, world)
    assert town_events(ctx) == [] and world.called("check_pr_feedback") == []
    assert "has_conflicts" not in meta(ctx, mr)


def test_poll_pr_dirty_emits_conflict_once_per_episode() -> None:
    ctx, mr = _polled(review={"auto_merge_ready_since": ago(MINUTE)})
    world = RecordingWorld(pr_status_answers=PRStatus.found("open", "dirty"))
    _poll_once(ctx, mr, world)
    (ev,) = town_events(ctx)
    src = meta(ctx, mr)["source_bead_id"]
    assert ev["event_type"] == "pr_conflict_detected"
    assert ev["payload"] == {
        "mr_bead_id": mr,
        "source_bead_id": src,
        "pr_url": PR,
        "branch": "gt/toast",
    }
    assert (meta(ctx, mr)["has_conflicts"], meta(ctx, mr)["conflicts_detected_at"]) == (1, NOW)
    assert review(ctx, mr)["auto_merge_ready_since"] is None
    assert world.called("check_pr_feedback") == []
    at(ctx, MINUTE)
    _poll_once(ctx, mr, world)
    assert len(town_events(ctx)) == 1
    # resolved: clean clears the flag
    world.pr_status_answers = PRStatus.found("open", "clean")
    _poll_once(ctx, mr, world)
    assert "has_conflicts" not in meta(ctx, mr)
    assert "conflicts_detected_at" not in meta(ctx, mr)


def test_poll_pr_unknown_mergeability_stops_before_feedback() -> None:
    ctx, mr = _polled(metadata='{"has_conflicts":1}')
    world = RecordingWorld(pr_status_answers=PRStatus.found("open", "unknown"))
    _poll_once(ctx, mr, world)
    assert meta(ctx, mr)["has_conflicts"] == 1
    assert world.called("check_pr_feedback") == []


def test_poll_pr_auto_merge_waits_for_the_delay() -> None:
    ctx, mr = _polled()
    world = RecordingWorld(
        pr_status_answers=PRStatus.found("open", "clean"), feedback_answers=PRFeedback()
    )
    _poll_once(ctx, mr, world)
    assert review(ctx, mr)["auto_merge_ready_since"] == NOW
    at(ctx, 5 * MINUTE - 1)
    _poll_once(ctx, mr, world)
    assert town_events(ctx) == []
    at(ctx, 5 * MINUTE)
    _poll_once(ctx, mr, world)
    (ev,) = town_events(ctx)
    assert (ev["event_type"], ev["payload"]) == ("pr_auto_merge", {"mr_bead_id": mr, "pr_url": PR})
    # not green any more: the timer resets
    world.feedback_answers = PRFeedback(all_checks_pass=False)
    _poll_once(ctx, mr, world)
    assert review(ctx, mr)["auto_merge_ready_since"] is None


def test_poll_pr_auto_merge_off_when_delay_is_null_or_auto_merge_false() -> None:
    for cfg in (
        {"refinery": {}},
        {"refinery": {"auto_merge": False, "auto_merge_delay_minutes": 0}},
    ):
        ctx, mr = _polled(config=cfg)
        world = RecordingWorld(
            pr_status_answers=PRStatus.found("open", "clean"), feedback_answers=PRFeedback()
        )
        _poll_once(ctx, mr, world)
        assert world.called("check_pr_feedback") == []
        assert review(ctx, mr)["auto_merge_ready_since"] is None


def test_poll_pr_feedback_detected_and_not_duplicated() -> None:
    ctx, mr = _polled()
    fb = PRFeedback(has_unresolved_comments=True, all_checks_pass=True)
    world = RecordingWorld(pr_status_answers=PRStatus.found("open", "blocked"), feedback_answers=fb)
    _poll_once(ctx, mr, world)
    (ev,) = town_events(ctx)
    assert ev["event_type"] == "pr_feedback_detected"
    assert ev["payload"] == {
        "mr_bead_id": mr,
        "pr_url": PR,
        "pr_number": 7,
        "repo": "acme/rig-a",
        "branch": "gt/toast",
        "has_unresolved_comments": True,
        "has_failing_checks": False,
        "has_unchecked_runs": False,
    }
    assert review(ctx, mr)["last_feedback_check_at"] == NOW
    assert len(world.called("check_pr_status")) == 2  # re-verified open
    # a live feedback bead already blocks the MR: no second event
    fbead = add_bead(ctx.conn, labels='["gt:pr-feedback"]')
    add_dep(ctx.conn, mr, fbead, "blocks")
    _poll_once(ctx, mr, world)
    assert len(town_events(ctx)) == 1


def test_poll_pr_feedback_skipped_when_pr_closed_meanwhile() -> None:
    ctx, mr = _polled()
    world = RecordingWorld(
        pr_status_answers=[PRStatus.found("open", "clean"), PRStatus.found("merged")],
        feedback_answers=PRFeedback(has_failing_checks=True, all_checks_pass=False),
    )
    _poll_once(ctx, mr, world)
    assert town_events(ctx) == []
    assert review(ctx, mr)["last_feedback_check_at"] is None


def test_poll_pr_records_awaiting_approval_edges() -> None:
    ctx, mr = _polled(created_at=ago(10 * MINUTE))
    waiting = PRFeedback(
        awaiting_approval=True, review_decision="REVIEW_REQUIRED", merge_state_status="BLOCKED"
    )
    world = RecordingWorld(
        pr_status_answers=PRStatus.found("open", "blocked"), feedback_answers=waiting
    )
    stats = _poll_once(ctx, mr, world)
    m = meta(ctx, mr)
    assert (m["awaiting_approval"], m["review_decision"], m["merge_state_status"]) == (
        1,
        "REVIEW_REQUIRED",
        "BLOCKED",
    )
    assert m["awaiting_approval_observed_at"] == NOW
    (evt,) = stats.outcomes[0].analytics
    assert (evt["event"], evt["durationMs"]) == ("pr.awaiting_approval_detected", 10 * MINUTE)
    at(ctx, MINUTE)
    world.feedback_answers = PRFeedback(review_decision="APPROVED", merge_state_status="CLEAN")
    stats = _poll_once(ctx, mr, world)
    assert stats.outcomes[0].analytics[0]["event"] == "pr.awaiting_approval_resolved"
    assert stats.outcomes[0].analytics[0]["durationMs"] == MINUTE
    assert "awaiting_approval_observed_at" not in meta(ctx, mr)
    assert meta(ctx, mr)["awaiting_approval"] == 0


def test_poll_pr_transient_errors_fail_the_mr_at_ten() -> None:
    ctx, mr = _polled(metadata='{"poll_null_count":7}')
    err = PRStatus.failed(
        PRStatusError(kind="http_error", status=502, status_text="Bad Gateway", transient=True)
    )
    world = RecordingWorld(pr_status_answers=err)
    _poll_once(ctx, mr, world)  # migrates poll_null_count: 8
    assert meta(ctx, mr)["poll_transient_count"] == 8
    _poll_once(ctx, mr, world)
    assert bead(ctx, mr)["status"] == "in_progress"
    stats = _poll_once(ctx, mr, world)
    m = meta(ctx, mr)
    assert bead(ctx, mr)["status"] == "failed"
    assert (m["poll_transient_count"], m["failureReason"], m["failureKind"]) == (
        10,
        "pr_poll_failed",
        "http_error",
    )
    assert m["failureMessage"] == "github API returned HTTP 502 Bad Gateway. Retrying."
    assert stats.outcomes[0].analytics[0]["event"] == "pr.poll_failed"
    assert stats.outcomes[0].analytics[0]["statusCode"] == 502


def test_poll_pr_success_resets_the_error_counters() -> None:
    ctx, mr = _polled(metadata='{"poll_transient_count":9,"poll_non_transient_count":2}')
    _poll_once(ctx, mr, RecordingWorld(pr_status_answers=PRStatus.found("open", "unknown")))
    m = meta(ctx, mr)
    assert (m["poll_transient_count"], m["poll_non_transient_count"]) == (0, 0)


def test_poll_pr_invalid_response_fails_at_three() -> None:
    ctx, mr = _polled(metadata='{"poll_transient_count":5}')
    err = PRStatus.failed(
        PRStatusError(kind="invalid_response", reason="missing state", sample_keys=("message",))
    )
    world = RecordingWorld(pr_status_answers=err)
    _poll_once(ctx, mr, world)
    m = meta(ctx, mr)
    assert (m["poll_non_transient_count"], m["poll_transient_count"], m["poll_error_kind"]) == (
        1,
        0,
        "invalid_response",
    )
    _poll_once(ctx, mr, world)
    assert bead(ctx, mr)["status"] == "in_progress"
    _poll_once(ctx, mr, world)
    assert bead(ctx, mr)["status"] == "failed"
    assert meta(ctx, mr)["failureMessage"] == (
        "github API returned an unexpected response shape (missing state); top-level keys: "
        "message. Please file a bug — the API contract may have drifted."
    )


@pytest.mark.parametrize(
    ("error", "message_start"),
    [
        (
            PRStatusError(kind="no_token", resolution_chain=("town.github_token", "rig.token")),
            "No GitHub token resolved for this town. Tried (in order): `town.github_token`, "
            "`rig.token`.",
        ),
        (PRStatusError(kind="http_error", status=404), "PR not found (HTTP 404)."),
        (
            PRStatusError(kind="unrecognized_url", provider=None, url="ftp://x"),
            "PR URL format not recognized: ftp://x.",
        ),
        (
            PRStatusError(kind="host_mismatch", provider="gitlab", got="evil", expected="gl.acme"),
            "Refusing to send GitLab token to unexpected host `evil`",
        ),
    ],
)
def test_poll_pr_immediate_failures(error: PRStatusError, message_start: str) -> None:
    ctx, mr = _polled()
    stats = _poll_once(ctx, mr, RecordingWorld(pr_status_answers=PRStatus.failed(error)))
    assert bead(ctx, mr)["status"] == "failed"
    m = meta(ctx, mr)
    assert (m["failureReason"], m["failureKind"], m["poll_error_kind"]) == (
        "pr_poll_failed",
        error.kind,
        error.kind,
    )
    assert m["failureMessage"].startswith(message_start)
    (ev,) = bead_events(ctx, mr)
    assert (ev["new_value"], ev["agent_id"]) == ("failed", "system")
    assert (stats.succeeded, stats.failed, stats.outcomes[0].ok) == (1, 0, False)


def test_poll_pr_world_exception_is_caught() -> None:
    ctx, mr = _polled()
    stats = _poll_once(ctx, mr, RecordingWorld(pr_status_answers=TimeoutError("slow")))
    assert (stats.succeeded, stats.failed) == (1, 0)
    assert stats.outcomes[0].ok is False and "slow" in stats.outcomes[0].detail


# --------------------------------------------------------------------------- merge_pr (deferred)


def _merging() -> tuple[TownCtx, str, list[ApplyRecord]]:
    conn, ctx = town()
    rig = add_rig(conn, git_url="https://github.com/acme/rig-a.git")
    mr = add_mr(
        conn,
        rig_id=rig,
        status="in_progress",
        pr_url=PR,
        metadata='{"auto_merge_pending":1}',
        review={"auto_merge_ready_since": ago(10 * MINUTE)},
    )
    return ctx, mr, apply(ctx, {"type": "merge_pr", "bead_id": mr, "pr_url": PR})


def test_merge_pr_success_inserts_merged_status() -> None:
    ctx, mr, records = _merging()
    stats = run(ctx, records, RecordingWorld(feedback_answers=PRFeedback()))
    (ev,) = town_events(ctx)
    assert (ev["event_type"], ev["payload"]) == (
        "pr_status_changed",
        {"pr_url": PR, "pr_state": "merged"},
    )
    assert stats.outcomes[0].ok
    assert meta(ctx, mr) == {"auto_merge_pending": 1}


@pytest.mark.parametrize(
    "world",
    [
        RecordingWorld(feedback_answers=PRFeedback(changes_requested=True)),
        RecordingWorld(feedback_answers=PRFeedback(), merge_answers=False),
        RecordingWorld(feedback_answers=PRFeedback(), merge_answers=RuntimeError("405")),
    ],
    ids=["feedback-not-green", "merge-refused", "merge-raised"],
)
def test_merge_pr_failure_paths_clear_the_pending_flag(world: RecordingWorld) -> None:
    ctx, mr, records = _merging()
    stats = run(ctx, records, world)
    assert town_events(ctx) == []
    assert "auto_merge_pending" not in meta(ctx, mr)
    assert review(ctx, mr)["auto_merge_ready_since"] is None
    assert (stats.succeeded, stats.failed, stats.outcomes[0].ok) == (1, 0, False)


def test_merge_pr_unreadable_feedback_still_merges() -> None:
    ctx, _, records = _merging()
    world = RecordingWorld(feedback_answers=None)
    run(ctx, records, world)
    assert world.called("merge_pr") == [(PR,)]


# --------------------------------------------------------------------------- nudge / stop / wasteland


def test_send_nudge_deferred_queues_a_second_nudge_and_marks_delivery() -> None:
    conn, ctx = town()
    a = add_agent(conn, status="working")
    records = apply(ctx, {"type": "send_nudge", "agent_id": a, "message": "m", "tier": "warn"})
    world = RecordingWorld()
    run(ctx, records, world)
    assert world.called("queue_nudge") == [(a, "m", "warn")]
    rows = ctx.all("SELECT source, created_at, delivered_at FROM agent_nudges ORDER BY nudge_id")
    assert [tuple(r) for r in rows] == [
        ("reconciler:warn", NOW, None),
        ("reconciler", "2026-03-15 12:00:00", "2026-03-15 12:00:00"),
    ]
    stats = run(ctx, records, RecordingWorld(nudge_answers=False))
    assert stats.outcomes[0].ok is False
    assert ctx.one("SELECT count(*) FROM agent_nudges WHERE delivered_at IS NULL")[0] == 2  # type: ignore[index]


def test_stop_agent_deferred_calls_the_world_and_swallows_errors() -> None:
    conn, ctx = town()
    a = add_agent(conn, status="working")
    records = apply(ctx, {"type": "stop_agent", "agent_id": a, "reason": "r"})
    world = RecordingWorld(stop_answers=ConnectionError("down"))
    stats = run(ctx, records, world)
    assert world.called("stop_agent") == [(a,)]
    assert (stats.succeeded, stats.failed, stats.outcomes[0].ok) == (1, 0, False)


def test_report_wasteland_done_stamps_the_canonical_bead_on_success() -> None:
    conn, ctx = town()
    c = add_convoy(
        conn, metadata='{"wasteland":{"wasteland_id":"w","item_id":"i"}}', updated_at=ago(MINUTE)
    )
    action = {
        "type": "report_wasteland_done",
        "canonical_bead_id": c,
        "wasteland_id": "w",
        "item_id": "i",
        "evidence": "Implemented by x",
    }
    stats = run(ctx, apply(ctx, action), RecordingWorld(wasteland_answers=False))
    assert stats.outcomes[0].ok is False
    assert "reported_done_at" not in meta(ctx, c)["wasteland"]
    world = RecordingWorld()
    stats = run(ctx, apply(ctx, action), world)
    assert world.called("report_wasteland_done") == [("w", "i", "Implemented by x", c)]
    assert stats.outcomes[0].ok
    assert meta(ctx, c)["wasteland"] == {
        "wasteland_id": "w",
        "item_id": "i",
        "reported_done_at": NOW,
        "reported_evidence": "Implemented by x",
    }
    assert bead(ctx, c)["updated_at"] == NOW


def test_report_wasteland_done_without_wasteland_metadata_is_not_stamped() -> None:
    conn, ctx = town()
    b = add_bead(conn)
    action = {
        "type": "report_wasteland_done",
        "canonical_bead_id": b,
        "wasteland_id": "w",
        "item_id": "i",
        "evidence": "e",
    }
    stats = run(ctx, apply(ctx, action), RecordingWorld())
    assert stats.outcomes[0].ok is False
    assert meta(ctx, b) == {}


# --------------------------------------------------------------------------- counting


def test_side_effect_counting_mirrors_upstream() -> None:
    conn, ctx = town()
    rig = add_rig(conn)
    b = add_bead(conn, rig_id=rig)
    a = add_agent(conn, rig_id=rig, hook=b)
    babysat = add_mr(conn, rig_id=rig, metadata='{"babysit":true}', pr_url=PR)
    with foreign_keys_off(conn):
        broken = add_bead(conn, metadata="not json")
    records = apply(
        ctx,
        dispatch(a, b, rig),  # deferred
        dispatch("", babysat, rig),  # bailed out: not counted
        {"type": "notify_mayor", "message": "m"},  # no side effect
        {"type": "stop_agent", "agent_id": a, "reason": "r"},  # deferred
        {
            "type": "report_wasteland_done",
            "canonical_bead_id": broken,
            "wasteland_id": "w",
            "item_id": "i",
            "evidence": "e",
        },  # deferred; its stamp will raise
    )
    assert [r.side_effect_deferred for r in records] == [True, False, False, True, True]
    stats = run_side_effects(ctx, effects_of(records), RecordingWorld(start_answers=False))
    # the dispatch "succeeded" although the container refused; only the
    # stamp's malformed-JSON error escaped our own code and counts as failed
    assert (stats.attempted, stats.succeeded, stats.failed) == (3, 2, 1)
    assert [o.ok for o in stats.outcomes] == [False, True, False]
    assert stats.to_json()["outcomes"][0]["type"] == "dispatch_agent"


def test_null_world_is_inert() -> None:
    conn, ctx = town(REFINERY_CFG)
    rig = add_rig(conn)
    b = add_bead(conn, rig_id=rig)
    a = add_agent(conn, rig_id=rig, hook=b)
    mr = add_mr(conn, rig_id=rig, status="in_progress", pr_url=PR)
    records = apply(ctx, dispatch(a, b, rig), poll(mr))
    stats = run_side_effects(ctx, effects_of(records), NullWorld())
    assert (stats.attempted, stats.succeeded, stats.failed) == (2, 2, 0)
    assert [o.ok for o in stats.outcomes] == [False, True]
    assert agent(ctx, a)["dispatch_attempts"] == 1
    assert bead(ctx, mr)["status"] == "in_progress" and town_events(ctx) == []
