"""Opt-in auto-recovery of invariant 7, and the per-invariant violation counters."""

from __future__ import annotations

import pytest
from support.townbuilder import NOW, SECOND, add_agent, add_rig, make_ctx, new_town

from reportgen.errors import BadInputError
from reportgen.town import clock
from reportgen.town.effects import NullWorld
from reportgen.town.recovery import RECOVERY_REASON_7, validate
from reportgen.town.tick import ModelStopwatch, tick


def _town_with_unhooked_worker() -> tuple[object, str]:
    conn = new_town()
    rig = add_rig(conn)
    agent = add_agent(conn, rig_id=rig, status="working", hook=None, last_activity_at=NOW)
    return conn, agent


def _ticks(conn: object, *, auto_recover: frozenset[int], count: int) -> list[list[int]]:
    """Violated invariant numbers per tick, ticking every 5 s from NOW."""
    seen = []
    for i in range(count):
        at = clock.iso(clock.to_ms(NOW) + i * 5 * SECOND)
        ctx = make_ctx(conn, at)  # type: ignore[arg-type]
        result = tick(ctx, NullWorld(), stopwatch=ModelStopwatch(), auto_recover=auto_recover)
        seen.append([v.invariant for v in result.violation_details])
    return seen


def test_with_recovery_invariant_7_lasts_one_tick() -> None:
    conn, agent = _town_with_unhooked_worker()
    # Draining: A1 skips working agents, so only recovery can end the violation.
    result = tick(make_ctx(conn, draining=True), NullWorld(), auto_recover=frozenset({7}))
    assert [v.invariant for v in result.violation_details] == [7]
    assert result.recoveries == [
        {"type": "transition_agent", "agent_id": agent, "from": "working", "to": "idle",
         "reason": RECOVERY_REASON_7},
    ]  # fmt: skip
    status = conn.execute(
        "SELECT status FROM agent_metadata WHERE bead_id = ?", (agent,)
    ).fetchone()[0]
    assert status == "idle"
    assert _ticks(conn, auto_recover=frozenset({7}), count=3) == [[], [], []]


def test_outside_a_drain_a1_idles_the_agent_before_the_check() -> None:
    conn, _ = _town_with_unhooked_worker()
    # A1 ("working agent has no hook") acts in the same tick, before invariants run.
    assert _ticks(conn, auto_recover=frozenset(), count=3) == [[], [], []]


def test_during_a_drain_it_stands_without_recovery_and_lasts_one_tick_with_it() -> None:
    """Draining skips A1's checks: upstream lets invariant 7 stand for the whole drain."""
    with_recovery: list[list[int]] = []
    without: list[list[int]] = []
    for auto, out in ((frozenset(), without), (frozenset({7}), with_recovery)):
        c, _ = _town_with_unhooked_worker()
        for i in range(4):
            at = clock.iso(clock.to_ms(NOW) + i * 5 * SECOND)
            ctx = make_ctx(c, at, draining=True)
            result = tick(ctx, NullWorld(), auto_recover=auto)
            out.append([v.invariant for v in result.violation_details])
    assert without == [[7], [7], [7], [7]]
    assert with_recovery == [[7], [], [], []]


def test_recovery_is_off_by_default_and_only_for_supported_invariants() -> None:
    conn, _ = _town_with_unhooked_worker()
    result = tick(make_ctx(conn, draining=True), NullWorld())
    assert result.recoveries == []
    assert validate([7]) == frozenset({7})
    with pytest.raises(BadInputError, match=r"invariant\(s\) 3 cannot be auto-recovered"):
        validate([3, 7])
