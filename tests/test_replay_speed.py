"""What makes replay and builds cheaper must not change what they show.

- the replay's working town keeps no history (world log, tick records,
  analytics) and ends in exactly the state a recording town reaches;
- the quick JSON comparison of a replayed tick never hides a difference that
  the field-by-field comparison finds;
- the garbage-collector helpers restore the collector as they found it.
"""

from __future__ import annotations

import copy
import gc
from pathlib import Path
from typing import Any

import pytest

from reportgen import gcpause
from reportgen.replay import ReplayedTick, compare_tick, open_source, state_after
from reportgen.sim import simulate_town
from reportgen.town import checkpoints
from reportgen.town.tick import TickResult

HISTORY_TABLES = ("rg_world_log", "rg_ticks", "rg_analytics")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = simulate_town("multi-pr-rig", seed=5, hours=1, out_dir=tmp_path_factory.mktemp("t"))
    assert result.path is not None
    return result.path


def _rows(conn: Any, table: str) -> int:
    have = conn.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (table,)).fetchone()
    return 0 if have is None else int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


def test_replayed_town_keeps_no_history_and_reaches_the_recorded_state(recorded: Path) -> None:
    source = open_source(recorded)
    assert all(_rows(source.conn, t) > 0 for t in HISTORY_TABLES)
    end = (source.journal_range() or ("", ""))[1]
    state = state_after(source, end)
    assert [_rows(state.conn, t) for t in HISTORY_TABLES] == [0, 0, 0]
    # the recording town's own tables are the state after its last row
    assert checkpoints.snapshot(state.conn) == checkpoints.snapshot(source.conn)


def _tick(record: dict[str, Any]) -> ReplayedTick:
    return ReplayedTick(1, TickResult(now=record["at"], draining=False), record, [])


RECORD: dict[str, Any] = {
    "at": "2026-03-16T08:00:05.000Z",
    "draining": False,
    "events": [],
    "actions": [{"type": "dispatch_agent", "agent_id": "a", "bead_id": "b"}],
    "apply": [],
    "side_effects": {"attempted": 1, "succeeded": 1, "failed": 0, "outcomes": []},
    "violations": [],
    "recoveries": [],
    "metrics": {"eventsDrained": 0, "actionsEmitted": 1, "wallClockMs": 2.8},
    "container": {"observed": 1, "recorded": 0},
}


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        (("container", "recorded"), False, "container.recorded"),  # 0 against false
        (("side_effects", "succeeded"), True, "side_effects.succeeded"),  # 1 against true
        (("actions", 0, "bead_id"), "c", "actions[0].bead_id"),
        (("metrics", "actionsEmitted"), 2**70, "metrics.actionsEmitted"),  # beyond orjson
        (("draining",), True, "draining"),  # a replay that drains where the town did not
    ],
)
def test_quick_comparison_never_hides_a_difference(
    path: tuple[Any, ...], value: Any, field: str
) -> None:
    replayed = copy.deepcopy(RECORD)
    target: Any = replayed
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    found = compare_tick(copy.deepcopy(RECORD), _tick(replayed))
    assert found is not None and found.field == field


def test_equal_values_written_differently_are_not_a_divergence() -> None:
    replayed = copy.deepcopy(RECORD)
    replayed["actions"][0] = dict(reversed(list(replayed["actions"][0].items())))
    replayed["metrics"]["eventsDrained"] = 0.0
    assert compare_tick(copy.deepcopy(RECORD), _tick(replayed)) is None
    assert compare_tick(copy.deepcopy(RECORD), _tick(copy.deepcopy(RECORD))) is None


def test_gc_helpers_restore_the_collector() -> None:
    assert gc.isenabled()
    with gcpause.paused():
        assert not gc.isenabled()
        with gcpause.paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner block leaves it as the outer set it
    assert gc.isenabled()
    kept = [{"n": i} for i in range(1000)]
    with gcpause.frozen():
        assert gc.get_freeze_count() >= len(kept)
    assert gc.get_freeze_count() == 0
    with pytest.raises(RuntimeError), gcpause.paused():
        raise RuntimeError("the block failed")
    assert gc.isenabled()


def test_wall_clock_is_labelled_modelled_or_measured() -> None:
    from reportgen.report.chart_data import TownDatasets, tick_buckets, window_of
    from reportgen.report.charts import town_charts
    from reportgen.town.tick import MODEL_FORMULA, wall_clock_kind

    metrics = {"eventsDrained": 1, "actionsEmitted": 1, "sideEffectsAttempted": 0}
    modelled = {"metrics": metrics | {"wallClockMs": 3.2}}  # 2 + 0.4 + 0.8
    measured = {"metrics": metrics | {"wallClockMs": 17.0}}
    assert wall_clock_kind([modelled, modelled]) == "modelled"
    assert wall_clock_kind([measured]) == "measured"
    assert wall_clock_kind([modelled, measured]) == "partly modelled"
    window = window_of("2026-03-01T00:00:00.000Z", "2026-03-01T01:00:00.000Z")
    m, a = tick_buckets([{"at": "2026-03-01T00:00:05.000Z", **modelled}], window)
    ds = TownDatasets(window, m, a, [], [], [], [])
    (wall,) = [c for c in town_charts(ds, "modelled") if c.id == "wall"]
    assert "not measured" in wall.caption and MODEL_FORMULA in wall.caption
    (wall,) = [c for c in town_charts(ds, "measured") if c.id == "wall"]
    assert "measured by the town" in wall.caption
