"""Auto-recovery on the ``working-agent-no-hook`` scenario, end to end through the simulator."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from reportgen.cli import main
from reportgen.diagnose.episodes import find_episodes
from reportgen.sim.scenario_files import simulate_town
from reportgen.town.recovery import RECOVERY_REASON_7

HOURS = 1.5


def _records(path: Path) -> list[dict[str, object]]:
    import json

    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT record FROM rg_ticks ORDER BY seq").fetchall()
    conn.close()
    return [json.loads(r[0]) for r in rows]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, object]]]:
    out = {}
    for name, recover in (("off", frozenset()), ("on", frozenset({7}))):
        d = tmp_path_factory.mktemp(name)
        result = simulate_town(
            "working-agent-no-hook", hours=HOURS, out_dir=d, auto_recover=recover
        )
        assert result.path is not None
        out[name] = _records(result.path)
    return out


def test_with_recovery_every_invariant_7_episode_lasts_one_tick(runs: dict) -> None:
    episodes = [e for e in find_episodes("t", runs["on"]) if e.invariant == 7]
    assert episodes, "the scenario must produce invariant 7"
    assert all(e.ticks == 1 for e in episodes)
    recovered = [r for t in runs["on"] for r in t["recoveries"]]
    assert len(recovered) == sum(len(e.entities.agent_ids) for e in episodes)
    assert {r["reason"] for r in recovered} == {RECOVERY_REASON_7}


def test_without_recovery_upstream_idles_the_agent_itself(runs: dict) -> None:
    ticks = runs["off"]
    assert all(not t["recoveries"] for t in ticks)
    episodes = [e for e in find_episodes("t", ticks) if e.invariant == 7]
    assert episodes
    for episode in episodes:
        agent = episode.entities.agent_ids[0]
        after = next(t for t in ticks if t["at"] == episode.cleared_at)
        idled = [
            a for a in after["actions"]
            if a["type"] == "transition_agent" and a["agent_id"] == agent
        ]  # fmt: skip
        assert [a["reason"] for a in idled] == [
            "working agent has no hook (gt_done already completed)"
        ]


def test_simulate_cli_rejects_unsupported_invariants(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["simulate", "--scenario", "healthy-day", "--hours", "0.1", "--out", str(tmp_path),
               "--auto-recover", "4"],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "invariant(s) 4 cannot be auto-recovered" in result.stderr


def test_build_with_auto_recovery_replays_with_it_and_shows_the_divergence(
    tmp_path: Path,
) -> None:
    import json

    towns = tmp_path / "towns"
    towns.mkdir()
    result = simulate_town("working-agent-no-hook", hours=HOURS, out_dir=towns)
    site = tmp_path / "site"
    run = CliRunner().invoke(
        main, ["build", str(towns), "--out", str(site), "--jobs", "1", "--auto-recover", "7"]
    )
    assert run.exit_code == 0, run.output
    page = json.loads((site / "towns" / result.town_id / "index.json").read_text("utf-8"))
    divergence = page["divergence"]
    assert divergence is not None, "recovery changes what the recorded ticks did"
    assert "recoveries" in json.dumps(divergence)
