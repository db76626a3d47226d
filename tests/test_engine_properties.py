"""Properties of the engine over random small towns (hypothesis).

- reconcile never writes (tests/test_reconciler_rules.py);
- applying the actions of a tick never raises, whatever the town looks like;
- the same inputs replayed give the same result, byte for byte.
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.townbuilder import NOW, dump, make_ctx
from support.worlds import RecordingWorld
from test_reconciler_rules import towns

from reportgen.town import clock
from reportgen.town.actions import APPLIED, apply_actions
from reportgen.town.db import configure
from reportgen.town.effects import NullWorld, PRFeedback, PRStatus
from reportgen.town.ids import CounterIds
from reportgen.town.reconciler import reconcile
from reportgen.town.record import tick_record
from reportgen.town.tick import ModelStopwatch, tick

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _copy(conn: sqlite3.Connection) -> sqlite3.Connection:
    conn.commit()
    other = configure(sqlite3.connect(":memory:"))
    conn.backup(other)
    return other


def _world() -> RecordingWorld:
    """A busy outside world: PRs merged or conflicting, feedback, starts that fail."""
    return RecordingWorld(
        start_answers=[True, False],
        pr_status_answers=[PRStatus.found("open", "dirty"), PRStatus.found("merged")],
        feedback_answers=PRFeedback(has_failing_checks=True),
        merge_answers=[False, True],
    )


@SETTINGS
@given(town=towns(), draining=st.booleans())
def test_applying_a_ticks_actions_never_raises(town: sqlite3.Connection, draining: bool) -> None:
    ctx = make_ctx(town, draining=draining)
    ctx.ids = CounterIds(1)
    records = apply_actions(ctx, reconcile(ctx))
    # apply_actions turns an escaping exception into an outcome holding its text:
    # every outcome must be APPLIED, or an action raised.
    raised = [(r.index, r.type, r.outcome) for r in records if r.outcome != APPLIED]
    assert raised == []


@SETTINGS
@given(town=towns(), draining=st.booleans(), ticks=st.integers(1, 4))
def test_ticks_never_raise_and_replay_identically(
    town: sqlite3.Connection, draining: bool, ticks: int
) -> None:
    def run(conn: sqlite3.Connection) -> list[dict[str, Any]]:
        out = []
        ids = CounterIds(1)
        for i in range(ticks):
            ctx = make_ctx(conn, clock.iso(clock.to_ms(NOW) + i * 5000), draining=draining)
            ctx.ids = ids
            world = _world() if i % 2 else NullWorld()
            out.append(tick_record(tick(ctx, world, stopwatch=ModelStopwatch())))
        return out

    first, second = _copy(town), _copy(town)
    records_a, records_b = run(first), run(second)
    assert json.dumps(records_a, sort_keys=True) == json.dumps(records_b, sort_keys=True)
    assert dump(first) == dump(second)
