"""The town's timeline files: rows, folding, a dump's own history, chunks, permalinks, the page.

The browser side (search, permalinks, no JS) is in test_browser_timeline.py;
here the data is checked against the run it comes from.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import support.report_fixtures as rf
from support.long_run import long_run
from support.timeline_data import HISTORY, IDLE, TICK, actions, chunks_of, index_of, parse

from reportgen.diagnose.episodes import to_ms
from reportgen.report import timeline_files
from reportgen.report.build import build_site
from reportgen.report.timeline import MAX_ITEMS, SAME, Packer, Tables, unpack
from reportgen.report.timeline_files import CHUNK_BYTES, build_timeline
from reportgen.report.town_data import busy, compute_town
from reportgen.town_run import TownRun

BEAD = "bead-0001"


def dump_run() -> TownRun:
    """A bare upstream dump: no ticks, its own history, and the dry run at the window's end."""
    run = TownRun(
        town_id="dump-town",
        source="/data/dump-town.sqlite",
        window_from="2026-03-01T00:00:00.000Z",
        window_to="2026-03-01T02:00:00.000Z",
        fidelity="approximate",
        caveat="no journal",
        ticks=[],
    )
    run.history = [
        {
            "at": "2026-03-01T00:10:00.000Z",
            "kind": "bead_event",
            "label": "status open → in_progress",
            "entities": [["bead", BEAD]],
            "detail": {"event_type": "status_changed", "new_value": "in_progress"},
        },
        {
            "at": "2026-03-01T00:20:00.000Z",
            "kind": "town_event",
            "label": "pr_feedback_detected (processed 00:20:05)",
            "entities": [["bead", BEAD]],
            "detail": {"processed_at": "2026-03-01T00:20:05.000Z"},
        },
        {
            "at": "2026-03-01T02:00:00.000Z",
            "kind": "dry_run",
            "label": "poll_pr",
            "entities": [["bead", BEAD]],
            "detail": {"type": "poll_pr", "bead_id": BEAD},
        },
    ]
    return run


def test_a_dumps_history_is_its_timeline_each_row_badged_with_its_source() -> None:
    timeline = build_timeline(compute_town(dump_run()))
    index, *chunks = [parse(text) for _, text in timeline.files]
    rows = [r for c in chunks for r in c["rows"]]
    assert [r[0] for r in rows] == [HISTORY] * 3
    s = chunks[0]["s"]
    assert [s[r[2]] for r in rows] == ["bead_event", "town_event", "dry_run"]
    assert s[rows[0][3]] == "status open → in_progress"
    assert '"new_value":"in_progress"' in s[rows[0][5]]
    assert index["entities"][rows[0][4][0]][:2] == ["bead", BEAD]
    assert sorted(index["facets"]["source"]) == [
        ["bead_event", 1],
        ["dry_run", 1],
        ["town_event", 1],
    ]
    summary = timeline.summary
    assert (summary.rows, summary.history_rows, summary.ticks) == (3, 3, 0)
    assert [(c.name, c.count) for c in summary.history] == [
        ("bead_event", 1),
        ("dry_run", 1),
        ("town_event", 1),
    ]


def test_history_rows_sit_among_the_ticks_in_time_order() -> None:
    run = rf.scripted_town("town-alpha", minutes=6)
    run.history = [
        {
            "at": run.ticks[10]["at"],
            "kind": "bead_event",
            "label": "hooked",
            "entities": [],
            "detail": {},
        }
    ]
    timeline = build_timeline(compute_town(run))
    rows = [r for _, text in timeline.files[1:] for r in parse(text)["rows"]]
    times = [r[1] for r in rows]
    assert times == sorted(times)
    at = to_ms(run.ticks[10]["at"])
    assert any(r[0] == HISTORY and r[1] == at for r in rows)


def test_every_tick_is_in_exactly_one_row_and_active_ticks_have_their_own(
    tmp_path: Path,
) -> None:
    run = rf.scripted_town("town-alpha", minutes=12)
    build_site([Path("t.sqlite")], tmp_path / "site", load_run=rf.loader({"t.sqlite": run}))
    folder = tmp_path / "site" / "towns" / "town-alpha" / "timeline"
    rows = [r for c in chunks_of(folder) for r in c["rows"]]
    covered = [ms for r in rows for ms in _ticks_in(r, run)]
    assert covered == [to_ms(t["at"]) for t in run.ticks]
    busy_ms = {to_ms(t["at"]) for t in run.ticks if busy(t)}
    assert busy_ms <= {r[1] for r in rows if r[0] == TICK}
    assert index_of(folder)["rows"] == len(rows)
    assert not list(folder.parent.glob("ticks-*"))
    assert not (folder.parent / "timeline.json").exists()  # the data files are the twin


def _ticks_in(row: list[int], run: TownRun) -> list[int]:
    if row[0] == TICK:
        return [row[1]]
    return [to_ms(t["at"]) for t in run.ticks if row[1] <= to_ms(t["at"]) <= row[2]]


def test_chunks_stay_under_their_budget_and_keep_every_row() -> None:
    run = rf.scripted_town("town-alpha", minutes=12)
    data = compute_town(run)
    whole = build_timeline(data)
    cut = build_timeline(data, chunk_bytes=1_500)
    assert len(whole.files) == 2 and len(cut.files) > 3
    for _, text in cut.files[1:]:
        assert len(text.encode()) <= 1_500
    rows = [r for _, t in whole.files[1:] for r in parse(t)["rows"]]
    parts = [parse(t) for _, t in cut.files[1:]]
    decoded = [_decode(p, r) for p in parts for r in p["rows"]]
    assert decoded == [_decode(parse(whole.files[1][1]), r) for r in rows]
    index = parse(cut.files[0][1])
    spans = [(c["from"], c["to"]) for c in index["chunks"]]
    assert spans == sorted(spans) and all(a <= b for a, b in spans)


def _decode(part: dict[str, Any], row: list[Any]) -> str:
    """A row with its chunk's strings put back (so rows compare across chunkings)."""
    s = part["s"]
    if row[0] == IDLE or row[0] == HISTORY:
        return repr(row)
    acts = [[s[a[0]]] + [s[v] if v >= 0 else v for v in a[2][1::2]] for a in row[3]]
    return repr((row[1], acts, [s[e[0]] for e in row[2]]))


def test_tick_hrefs_point_at_the_town_page_timeline() -> None:
    run = rf.scripted_town("town-alpha", minutes=12)
    data = compute_town(run)
    at = run.ticks[-1]["at"]
    assert data.tick_href(at) == f"towns/town-alpha/index.html#tick-{to_ms(at)}"
    between = "2026-03-01T00:00:07.500Z"  # between two ticks: the next one, which saw it
    assert data.tick_href(between).endswith(f"#tick-{to_ms(run.ticks[1]['at'])}")


def test_the_town_page_twin_has_the_summary_not_the_rows(tmp_path: Path) -> None:
    run = rf.scripted_town("town-alpha", minutes=12)
    build_site([Path("t.sqlite")], tmp_path / "site", load_run=rf.loader({"t.sqlite": run}))
    town = tmp_path / "site" / "towns" / "town-alpha"
    twin = json.loads((town / "index.json").read_text(encoding="utf-8"))
    assert "ticks" not in twin and twin["timeline"]["ticks"] == len(run.ticks)
    files = [f["href"] for f in twin["timeline"]["files"]]
    assert files[0] == "towns/town-alpha/timeline/index.js"
    assert all((tmp_path / "site" / f).exists() for f in files)
    polls = sum(a["type"] == "poll_pr" for t in run.ticks for a in t["actions"])
    listed = {c["name"]: c["count"] for c in twin["timeline"]["actions"]}
    assert listed.get("poll_pr", 0) == polls
    folder = town / "timeline"
    assert (
        sum(actions(c, r).count("poll_pr") for c in chunks_of(folder) for r in c["rows"]) == polls
    )


def test_chunks_are_packed_and_unpack_to_the_encoded_rows() -> None:
    """Times after the chunk's t0; a violation held over busy ticks is written once."""
    data = compute_town(long_run(600))  # violations held for 250 ticks at a time
    for chunk in timeline_files._chunks(data, Tables(lambda h: h), timeline_files.CHUNK_BYTES):
        assert unpack(chunk["t0"], chunk["packed"]) == chunk["rows"]
        ticks = [r for r in chunk["packed"] if r[0] == TICK]
        assert sum(1 for r in ticks if r[5] == SAME) > len(ticks) / 2
        assert sum(1 for r in ticks if r[6] == SAME) > len(ticks) / 2  # the same metrics
        # effects whose counts are their outcomes' are the outcomes alone
        assert all(not r[4] or isinstance(r[4][0], list) for r in ticks)
        assert all(0 <= r[1] < 10**7 for r in chunk["packed"])  # 5 s apart
        assert json.dumps(chunk["packed"]) != json.dumps(chunk["rows"])


def test_packing_keeps_effect_counts_the_outcomes_do_not_give() -> None:
    """A tick that counted an effect without an outcome keeps its counts as they are."""
    odd = [TICK, 1_000, [], [], [2, 1, 0, [[5, 1, 6, []]]], [], [0, 0, 1.5, 0]]
    plain = [TICK, 6_000, [], [], [1, 0, 1, [[5, 0, 6, []]]], [], [0, 0, 1.5, 0]]
    pack = Packer()  # t0: the first row's time
    packed = [pack(odd), pack(plain)]
    assert packed[0][4] == odd[4] and packed[1][4] == [[5, 0, 6, []]]
    assert packed[1][6] == SAME and packed[1][1] == 5_000
    assert unpack(1_000, packed) == [odd, plain]


def huge_tick_run(n: int = 5_000) -> TownRun:
    """A town whose first tick dispatched ``n`` beads at once, each action with a long note.

    The last action is the only ``close_bead``, so that type is only among what the row
    leaves out; the events and side effects are as many, the violations 300 (episodes of
    thousands take the town's diagnosis a long time, and 300 is over the cap too).
    """
    run = rf.scripted_town("town-alpha", minutes=2)
    tick = run.ticks[0]
    beads = [f"bead-{i:05d}" for i in range(n)]
    note = "".join(f"{i:05d}" for i in range(600))  # over MAX_TEXT: cut to its length
    tick["actions"] = [
        {"type": "dispatch_agent", "bead_id": b, "note": f"{b} {note}"} for b in beads[:-1]
    ] + [{"type": "close_bead", "bead_id": beads[-1]}]
    tick["events"] = [
        {"event_type": "bead_created", "bead_id": b, "outcome": "applied", "error": None}
        for b in beads
    ]
    tick["side_effects"] = {
        "attempted": n,
        "succeeded": n,
        "failed": 0,
        "outcomes": [{"type": "dispatch_agent", "ok": True, "detail": b} for b in beads],
    }
    tick["violations"] = [
        {"invariant": 9, "message": f"Bead {b} is stuck", "bead_ids": [b]} for b in beads[:300]
    ]
    return run


def test_a_tick_too_big_for_a_chunk_keeps_part_of_each_kind_and_counts_the_rest() -> None:
    run = huge_tick_run()
    data = compute_town(run)
    timeline = build_timeline(data)
    assert all(len(text.encode()) <= CHUNK_BYTES for _, text in timeline.files)
    index, *chunks = [parse(text) for _, text in timeline.files]
    chunk = chunks[0]
    row = chunk["rows"][0]
    s = chunk["s"]
    assert row[0] == TICK and row[1] == to_ms(run.ticks[0]["at"]) and len(row) == 8
    events, acts, effects, violations = row[2], row[3], row[4][3], row[5]
    kept = len(acts)  # fewer than MAX_ITEMS: that many long notes would not fit a chunk
    assert 0 < kept < MAX_ITEMS and len(events) == len(effects) == len(violations) == kept
    left_events, left_actions, left_effects, left_violations = row[7]
    assert {s[k]: n for k, n in left_actions} == {
        "dispatch_agent": 4_999 - kept,
        "close_bead": 1,
    }
    assert [(s[k], n) for k, n in left_events] == [("bead_created", 5_000 - kept)]
    assert [(s[k], n) for k, n in left_effects] == [("dispatch_agent", 5_000 - kept)]
    assert left_violations == [[9, 300 - kept]]
    assert row[4][:3] == [5_000, 5_000, 0]  # the counts are the tick's, not the row's
    # the action filter and the facets still know the type only the left-out part holds
    assert ["close_bead", 1] in index["facets"]["action"]
    assert [9, 1] in index["facets"]["invariant"]
    assert index["replay_db"] == run.source
    # only the entities the row keeps are in the shared table
    assert len(index["entities"]) < 1_000
    # the other rows are as they were, and the output is the same every time
    assert [t for _, t in build_timeline(compute_town(huge_tick_run())).files] == [
        t for _, t in timeline.files
    ]


def test_a_huge_row_after_a_full_chunk_leaves_none_of_its_strings_behind() -> None:
    run = huge_tick_run(600)
    run.ticks.insert(0, {**run.ticks[0], "at": "2026-02-28T23:59:55.000Z"})
    data = compute_town(run)
    for budget in (50_000, 120_000, CHUNK_BYTES):
        files = build_timeline(data, chunk_bytes=budget).files
        assert all(len(text.encode()) <= budget for _, text in files[1:]), budget
        for _, text in files[1:]:
            part = parse(text)
            used = {int(n) for n in re.findall(r"\d+", json.dumps(part["rows"]))}
            assert set(range(len(part["s"]))) <= used  # every string is some row's
