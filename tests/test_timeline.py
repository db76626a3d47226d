"""The town's timeline files: rows, folding, a dump's own history, chunks, permalinks, the page.

The browser side (search, permalinks, no JS) is in test_browser_timeline.py;
here the data is checked against the run it comes from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import support.report_fixtures as rf
from support.long_run import long_run
from support.timeline_data import HISTORY, IDLE, TICK, actions, chunks_of, index_of, parse

from reportgen.diagnose.episodes import to_ms
from reportgen.report import timeline_files
from reportgen.report.build import build_site
from reportgen.report.timeline import SAME, Packer, Tables, unpack
from reportgen.report.timeline_files import build_timeline
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
    pack = Packer(1_000)
    packed = [pack(odd), pack(plain)]
    assert packed[0][4] == odd[4] and packed[1][4] == [[5, 0, 6, []]]
    assert packed[1][6] == SAME and packed[1][1] == 5_000
    assert unpack(1_000, packed) == [odd, plain]
