"""Replaying simulated towns with the same engine: zero divergence on every named scenario."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from reportgen.replay import dry_run, open_source, replay_events, replay_window
from reportgen.sim import SCENARIOS, simulate_town

HOURS = 1.0


@pytest.fixture(scope="module")
def sims(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("sims")
    paths = {}
    for name in SCENARIOS:
        result = simulate_town(name, hours=HOURS, out_dir=out)
        assert result.path is not None
        paths[name] = result.path
    return paths


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_every_scenario_replays_with_zero_divergence(name: str, sims: dict[str, Path]) -> None:
    source = open_source(sims[name])
    journal = source.journal_range()
    assert journal is not None
    lo, hi = journal
    run = replay_window(sims[name], lo, hi)
    assert run.fidelity == "exact"
    assert run.ticks and run.compared_ticks == len(run.ticks)
    assert run.divergence is None, run.divergence
    # A window in the second half starts from a checkpoint and matches too.
    mid = run.ticks[len(run.ticks) // 2]["at"]
    late = replay_window(sims[name], mid, hi)
    assert late.divergence is None and late.compared_ticks == len(late.ticks) > 0
    assert late.ticks == [t for t in run.ticks if t["at"] >= mid]


def test_review_round_stuck_keeps_the_review_looping(tmp_path: Path) -> None:
    """The seed's known stuck state: poll_pr on one MR forever, a new feedback bead each round.

    The actions that keep the loop going are ``poll_pr`` (every minute, the
    same merge request, checks still failing) and ``dispatch_agent`` for each
    new ``gt:pr-feedback`` bead; no ``merge_pr`` is ever emitted.
    """
    result = simulate_town("review-round-stuck", hours=2.0, out_dir=tmp_path)
    assert result.path is not None
    lo, hi = open_source(result.path).journal_range() or ("", "")
    run = replay_window(result.path, lo, hi)
    assert run.divergence is None
    actions = Counter(a["type"] for t in run.ticks for a in t["actions"])
    assert actions["merge_pr"] == 0
    polled = Counter(
        a["bead_id"] for t in run.ticks for a in t["actions"] if a["type"] == "poll_pr"
    )
    assert len(polled) == 1 and next(iter(polled.values())) >= 60
    mr_id = next(iter(polled))
    assert run.entities[mr_id].type == "merge_request"
    assert run.entities[mr_id].status == "in_progress"
    feedback = [
        e for e in run.entities.values() if e.kind == "bead" and "gt:pr-feedback" in str(e.extra)
    ]
    dispatched = {
        a["bead_id"] for t in run.ticks for a in t["actions"] if a["type"] == "dispatch_agent"
    }
    assert len(feedback) >= 4 and {e.id for e in feedback} <= dispatched
    # Replay-events up to a poll tick returns exactly the loop's next step.
    poll_tick = [t for t in run.ticks if any(a["type"] == "poll_pr" for a in t["actions"])][-2]
    replayed = replay_events(result.path, lo, poll_tick["at"])
    assert replayed["actions"] == [
        {"type": "poll_pr", "bead_id": mr_id, "pr_url": replayed["actions"][0]["pr_url"]}
    ]
    assert dry_run(result.path, now=poll_tick["at"])["actions"] == replayed["actions"]
