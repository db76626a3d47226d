"""Episodes, explanations, history marks and chart bucketing: the report's computations."""

from __future__ import annotations

from typing import Any

import pytest
import support.report_fixtures as rf

from reportgen.diagnose.episodes import entity_key, episode_id, find_episodes
from reportgen.report import history
from reportgen.report.explain import LinkPart, explain, replay_command
from reportgen.report.views_shared import Entities


def tick(at: str, *violations: dict[str, Any]) -> dict[str, Any]:
    return {"at": at, "violations": list(violations)}


def v(n: int, agents: tuple[str, ...] = (), beads: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "invariant": n,
        "message": f"inv {n}",
        "agent_ids": list(agents),
        "bead_ids": list(beads),
        "rig_ids": [],
    }


def at(s: int) -> str:
    return f"2026-03-01T00:00:{s:02d}.000Z"


def test_consecutive_ticks_form_one_episode_and_a_gap_starts_another() -> None:
    ticks = [
        tick(at(0)),
        tick(at(5), v(6, ("a", "b"), ("x",))),
        tick(at(10), v(6, ("b", "a"), ("x",))),
        tick(at(15)),
        tick(at(20), v(6, ("a", "b"), ("x",))),
    ]
    eps = find_episodes("t", ticks)
    assert [(e.first_at, e.last_at, e.ticks) for e in eps] == [
        (at(5), at(10), 2),
        (at(20), at(20), 1),
    ]
    assert eps[0].cleared_at == at(15) and not eps[0].open_at_end
    assert eps[1].open_at_end and eps[1].cleared_at is None
    assert eps[0].duration_ms == 5000
    assert eps[0].id != eps[1].id


def test_different_entities_or_invariants_are_separate_episodes() -> None:
    ticks = [tick(at(0), v(7, ("a",)), v(7, ("b",)), v(4, beads=("a",)))]
    eps = find_episodes("t", ticks)
    assert len(eps) == 3
    assert all(e.open_at_start and e.open_at_end for e in eps)


def test_episode_id_is_stable_and_depends_on_every_part() -> None:
    key = entity_key(v(6, ("b", "a"), ("x",)))
    base = episode_id("t", 6, key, at(5))
    assert base == episode_id("t", 6, entity_key(v(6, ("a", "b"), ("x",))), at(5))
    assert len(base) == 12
    others = {
        episode_id("u", 6, key, at(5)),
        episode_id("t", 7, key, at(5)),
        episode_id("t", 6, entity_key(v(6, ("a",), ("x",))), at(5)),
        episode_id("t", 6, key, at(10)),
    }
    assert base not in others and len(others) == 4


@pytest.fixture(scope="module")
def alpha() -> Any:
    return rf.scripted_town("town-alpha")


def test_scripted_town_has_the_expected_episodes(alpha: Any) -> None:
    eps = find_episodes(alpha.town_id, alpha.ticks)
    assert [e.invariant for e in eps] == [6, 4]
    six, four = eps
    assert six.ticks == 11 and six.cleared_at is not None
    assert four.open_at_end


def test_explanation_names_entities_and_says_because_but(alpha: Any) -> None:
    ep = find_episodes(alpha.town_id, alpha.ticks)[0]
    ex = explain(ep, alpha.ticks, Entities(alpha))
    text = ex.plain
    assert text.startswith("Because agents ")
    assert ", but a bead may be held by at most one agent." in text
    assert "Fix the flaky login test" in text  # the bead's title, not its uuid
    assert "outside the reconciler" in text  # a direct write caused it
    links = [p.link.id for p in ex.parts if isinstance(p, LinkPart)]
    assert set(ep.entities.all_ids()) <= set(links)


def test_replay_command_starts_a_minute_early_and_ends_when_cleared(alpha: Any) -> None:
    ep = find_episodes(alpha.town_id, alpha.ticks)[0]
    cmd = replay_command("dir with space/t.sqlite", ep)
    assert cmd == (
        "reportgen replay --db 'dir with space/t.sqlite' --from 2026-02-28T23:59:40.000Z "
        f"--to {ep.cleared_at} --ticks"
    )


def test_history_marks_new_persisting_resolved_and_keeps_ids_across_windows() -> None:
    first = [tick(at(0)), tick(at(5), v(7, ("a",))), tick(at(10), v(7, ("a",)), v(4, beads=("b",)))]
    eps1 = find_episodes("t", first)
    h1 = history.History([])
    assert [h1.status(e.id) for e in eps1] == ["new", "new"]
    rec1 = history.record_for("r1", (at(0), at(10)), ["t"], eps1, h1.seen)
    # the next window starts where the last one ended: invariant 7 continues, 4 is gone
    second = [tick(at(15), v(7, ("a",))), tick(at(20))]
    eps2 = find_episodes("t", second)
    h2 = history.History([rec1])
    h2.adopt(eps2)
    assert eps2[0].id == eps1[0].id and eps2[0].first_at == at(5)
    assert h2.status(eps2[0].id) == "persisting"
    assert [eid for eid, _ in h2.resolved({"t"})] == [eps1[1].id]
    assert h2.resolved(set()) == []  # a town not built this run resolves nothing


def test_history_file_round_trips_and_replaces_a_rebuilt_window(tmp_path: Any) -> None:
    rec = history.RunRecord("r1", at(0), at(10), ["t"], {}, {"7": 1})
    path = tmp_path / history.FILE_NAME
    path.write_text(history.dump([rec]), encoding="utf-8")
    runs = history.read_history(tmp_path)
    assert runs == [rec]
    again = history.RunRecord("r1", at(0), at(10), ["t"], {}, {"7": 2})
    assert history.next_runs(runs, again) == [again]
    assert len(history.next_runs(runs, history.RunRecord("r2", at(0), at(20), [], {}, {}))) == 2
    assert history.trends(runs) == (["2026-03-01 00:00"], {7: [1]})
    path.write_text("not json\n", encoding="utf-8")
    with pytest.raises(Exception, match="not a history record"):
        history.read_history(path)


def test_an_episode_follows_its_subject_while_the_other_entities_change() -> None:
    """Invariant 3 names a rig: the MRs in progress may change, the episode goes on."""

    def tick(at: str, mrs: list[str]) -> dict[str, object]:
        v = {"invariant": 3, "message": f"Rig r1 has {len(mrs)} in_progress MR beads",
             "agent_ids": [], "bead_ids": mrs, "rig_ids": ["r1"]}  # fmt: skip
        return {"at": at, "violations": [v] if mrs else []}

    ticks = [
        tick("2026-03-15T12:00:00.000Z", ["m1", "m2"]),
        tick("2026-03-15T12:00:05.000Z", ["m2", "m3"]),
        tick("2026-03-15T12:00:10.000Z", ["m3", "m4", "m5"]),
        tick("2026-03-15T12:00:15.000Z", []),
    ]
    (episode,) = find_episodes("t", ticks)
    assert episode.ticks == 3
    assert episode.subject.rig_ids == ("r1",) and not episode.subject.bead_ids
    assert episode.entities.bead_ids == ("m1", "m2", "m3", "m4", "m5")
    assert episode.cleared_at == "2026-03-15T12:00:15.000Z"
    # The id depends on the subject and the first tick only.
    again = find_episodes("t", [tick("2026-03-15T12:00:00.000Z", ["m9"])])[0]
    assert again.id == episode.id
