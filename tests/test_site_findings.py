"""Verdicts and findings on the site: the JSON contract, finding pages, history, ``--fail-on``.

The towns are the report fixtures' scripted towns, each given a diagnosis
made of real :class:`~reportgen.diagnose.model.Finding` objects (what
:class:`~reportgen.diagnose.loader.DiagnosingLoader` attaches), so every
verdict, status and exit code below is chosen by the test.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import support.report_fixtures as rf
from click.testing import CliRunner
from support.timeline_data import actions, chunks_of

from reportgen.cli import main
from reportgen.diagnose.diagnose import Diagnosis
from reportgen.diagnose.episodes import find_episodes
from reportgen.diagnose.loader import diagnosis_record
from reportgen.diagnose.model import Finding, Subject, finding_id, town_verdict, worst_first
from reportgen.report import history
from reportgen.report.build import BuildSummary, build_site
from reportgen.town import clock
from reportgen.town_run import TownRun

CONTRACT = {
    "id", "kind", "severity", "expected", "subject", "subject_name", "first_at", "last_at",
    "open_at_end", "status", "count", "because", "replay_command", "href",
}  # fmt: skip
TOWN_KEYS = {"town_id", "name", "source", "verdict", "findings"}


def polled_mr(run: TownRun) -> tuple[str, list[str]]:
    """The scripted town's MR bead and the ticks that polled its PR (a "review loop")."""
    polls = [
        (a["bead_id"], t["at"]) for t in run.ticks for a in t["actions"] if a["type"] == "poll_pr"
    ]
    return polls[0][0], [at for _, at in polls]


def finding(
    run: TownRun,
    kind: str,
    subject: Subject,
    first_at: str,
    *,
    severity: str = "critical",
    open_at_end: bool = True,
    expected: bool = False,
    witness: Sequence[str] = (),
    because: str = "",
    name: str = "",
) -> Finding:
    return Finding(
        id=finding_id(run.town_id, kind, subject, first_at),
        kind=kind,
        severity=severity,
        expected=expected,
        subject=subject,
        subject_name=name or _title(run, subject.id),
        first_at=first_at,
        last_at=run.window_to,
        open_at_end=open_at_end,
        count=len(witness) or 1,
        because=because or f"{kind} because of the test",
        replay_command=f"reportgen replay --db {run.source} --from {first_at} --to {run.window_to} --ticks",
        witness=tuple(witness),
        meanwhile="poll_pr ×3 over 1 min" if witness else None,
    )


def _title(run: TownRun, entity_id: str) -> str:
    info = run.entities.get(entity_id)
    return info.title if info is not None else entity_id


def diagnosed(run: TownRun, findings: Sequence[Finding], expected_all: bool = False) -> TownRun:
    """``run`` with a diagnosis of these findings (``expected_all``: every episode expected)."""
    out = copy.deepcopy(run)
    d = Diagnosis(
        town_id=run.town_id, source=run.source, window_from=run.window_from,
        window_to=run.window_to, as_of=run.window_to, fidelity=run.fidelity,
        verdict=town_verdict(findings), findings=tuple(worst_first(findings)),
        judged=("review-loop",), not_judged=(), ticks=len(run.ticks),
    )  # fmt: skip
    expected = [ep.id for ep in find_episodes(run.town_id, run.ticks)] if expected_all else []
    out.diagnosis = diagnosis_record(d, expected)
    return out


def review_loop(run: TownRun, **kw: Any) -> Finding:
    mr, polls = polled_mr(run)
    return finding(run, "review-loop", Subject("bead", mr), polls[0], witness=polls, **kw)


@pytest.fixture(scope="module")
def towns() -> dict[str, TownRun]:
    alpha = rf.scripted_town("town-alpha")
    beta = rf.scripted_town("town-beta", violations=False)
    gamma = rf.scripted_town("town-gamma", violations=False)
    hooked = Subject("agent", next(i for i, e in gamma.entities.items() if e.kind == "agent"))
    idle = finding(gamma, "hooked-not-dispatched", hooked, gamma.ticks[3]["at"], severity="warning")
    return {
        "stuck.sqlite": diagnosed(beta, [review_loop(beta)]),
        "degraded.sqlite": diagnosed(gamma, [idle]),
        "healthy.sqlite": diagnosed(alpha, [], expected_all=True),
        "plain.sqlite": rf.scripted_town("town-delta", violations=False),  # not judged
    }


def build(towns: dict[str, TownRun], out: Path, names: Sequence[str], **kw: Any) -> BuildSummary:
    return build_site([Path(n) for n in names], out, load_run=rf.loader(towns), **kw)


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def site(towns: dict[str, TownRun], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("findings") / "site"
    build(towns, out, [*sorted(towns), "missing.sqlite"])
    return out


def test_index_lists_every_town_with_its_verdict_worst_first(site: Path) -> None:
    index = read(site / "index.json")
    order = [(t["name"], t["verdict"]) for t in index["towns"]]
    assert order == [("town-beta", "stuck"), ("town-gamma", "degraded"),
                     ("town-alpha", "healthy"), ("missing", "unknown"),
                     ("town-delta", "unknown")]  # fmt: skip
    for town in index["towns"]:
        assert set(town) >= TOWN_KEYS
        for f in town["findings"]:
            assert set(f) == CONTRACT and set(f["subject"]) == {"kind", "id"}
            assert f["href"] == f"findings/{f['id']}.html" and (site / f["href"]).exists()
        if town["href"]:
            twin = read((site / town["href"]).with_suffix(".json"))
            assert twin["verdict"] == town["verdict"] and twin["findings"] == town["findings"]
    stuck = index["towns"][0]
    assert stuck["source"] == "town-beta.sqlite" and stuck["town_id"] == "town-beta"
    assert stuck["headline"].startswith("Stuck: review loop on bead “")
    assert index["towns"][3]["findings"] == [] and index["towns"][3]["state"] == "failed"
    assert rf.broken_links(site) == []


def test_expected_episodes_are_muted_and_never_red(site: Path) -> None:
    index = read(site / "index.json")
    healthy = next(t for t in index["towns"] if t["verdict"] == "healthy")
    rows = [e for e in index["episodes"] if e["town_id"] == "town-alpha"]
    assert healthy["state"] == "expected" and healthy["episodes"] == len(rows) > 0
    assert all(e["expected"] for e in rows)
    assert index["totals"]["new_unexpected"] == 0 < index["totals"]["new"] == len(rows)
    page = (site / healthy["href"]).read_text(encoding="utf-8")
    assert 'class="verdict v-healthy"' in page and "v-stuck" not in page
    assert page.count('class="episode-row nav-item expected"') == len(rows)
    text = re.sub(r"<a [^>]*>|</a>", "", (site / "index.html").read_text(encoding="utf-8"))
    assert f'<li class=""><span class="n">{len(rows)}</span> new violation episodes' in text


def test_town_page_opens_with_findings_linking_the_looping_ticks(
    site: Path, towns: dict[str, TownRun]
) -> None:
    index = read(site / "index.json")
    stuck = index["towns"][0]
    html = (site / stuck["href"]).read_text(encoding="utf-8")
    assert html.index('id="verdict"') < html.index('id="findings"') < html.index('id="charts"')
    assert 'class="verdict v-stuck"' in html
    twin = read((site / stuck["href"]).with_suffix(".json"))
    (view,) = twin["diagnosis"]["views"]
    _, polls = polled_mr(towns["stuck.sqlite"])
    ms = clock.to_ms(polls[0])
    assert view["tick_href"].endswith(f"#tick-{ms}")
    page, anchor = view["tick_href"].split("#")
    rows = [  # the timeline's row for that tick shows the poll
        actions(chunk, r)
        for chunk in chunks_of((site / page).parent / "timeline")
        for r in chunk["rows"]
        if r[1] == ms
    ]
    assert anchor == f"tick-{ms}" and any("poll_pr" in a for a in rows)
    assert "since 2026-03-01 00:02:05.000" in view["sentence"]


def test_finding_page_and_its_json_twin(site: Path, towns: dict[str, TownRun]) -> None:
    stuck = read(site / "index.json")["towns"][0]
    (f,) = stuck["findings"]
    page = read((site / f["href"]).with_suffix(".json"))
    assert page["kind"] == "finding" and page["finding"] == f
    assert page["meanwhile"] == "poll_pr ×3 over 1 min"
    mr, polls = polled_mr(towns["stuck.sqlite"])
    assert [w["at"] for w in page["witness"]] == polls
    assert all("#tick-" in w["href"] and "poll_pr" in w["actions"] for w in page["witness"])
    assert page["subject_href"].endswith(f"/e/bead-1.html#e-bead-{mr}")
    (lane,) = page["lanes"]
    assert lane["entity"]["id"] == mr and lane["marks"]
    polled = [a for a in page["activity"] if a["type"] == "poll_pr" and a["what"] == "action"]
    first, last = clock.to_ms(f["first_at"]), clock.to_ms(f["last_at"])
    in_span = [
        a
        for t in towns["stuck.sqlite"].ticks
        if first <= clock.to_ms(t["at"]) <= last
        for a in t["actions"]
        if a["type"] == "poll_pr"
    ]
    assert [(a["subject"]["id"], a["count"]) for a in polled] == [(mr, len(in_span))]
    html = (site / f["href"]).read_text(encoding="utf-8")
    for text in (f["because"], "What the reconciler did meanwhile", f["replay_command"],
                 page["since"], f'href="../{page["subject_href"]}"'):  # fmt: skip
        assert text in html
    assert html.count('href="../towns/town-beta/') >= 1 + len(page["witness"])


def night(run: TownRun, n: int) -> TownRun:
    """``run`` as night ``n`` sees it: a window ending ``n`` minutes later (a new history line)."""
    out = copy.deepcopy(run)
    out.window_to = clock.iso(clock.to_ms(run.window_to) + n * clock.MINUTE_MS)
    return out


def test_history_marks_findings_new_persisting_resolved_and_not_rebuilt(
    towns: dict[str, TownRun], tmp_path: Path
) -> None:
    names = ["stuck.sqlite", "degraded.sqlite"]
    loop_gone = diagnosed(towns["stuck.sqlite"], [])  # the next nights, the review loop is over
    nights = [
        dict(towns),
        dict(towns),
        {**towns, "stuck.sqlite": loop_gone},
        {"stuck.sqlite": loop_gone},  # the degraded town fails to build
        {**towns, "stuck.sqlite": loop_gone},
    ]
    summaries = []
    for n, runs in enumerate(nights, start=1):
        shifted = {name: night(run, n) for name, run in runs.items()}
        prev = tmp_path / str(n - 1) if n > 1 else None
        summaries.append(build(shifted, tmp_path / str(n), names, history_path=prev))

    lines = history.read_history(tmp_path / "5")
    statuses = [{r["kind"]: r["status"] for r in line.findings.values()} for line in lines]
    assert statuses == [
        {"review-loop": "new", "hooked-not-dispatched": "new"},
        {"review-loop": "persisting", "hooked-not-dispatched": "persisting"},
        {"hooked-not-dispatched": "persisting"},  # the review loop resolved
        {"hooked-not-dispatched": "not rebuilt"},  # its town failed: carried forward
        {"hooked-not-dispatched": "persisting"},  # built again: not new a second time
    ]
    assert lines[3].not_rebuilt == {"town-gamma": lines[2].run_id}
    (loop_id,) = [i for i, r in lines[0].findings.items() if r["kind"] == "review-loop"]
    resolved = read(tmp_path / "3" / "findings" / f"{loop_id}.json")
    assert (resolved["kind"], resolved["state"]) == ("finding-stub", "resolved")
    (hooked_id,) = lines[-1].findings
    carried = read(tmp_path / "4" / "findings" / f"{hooked_id}.json")
    assert carried["state"] == "not rebuilt" and carried["town_id"] == "town-gamma"
    index = read(tmp_path / "5" / "index.json")
    assert [f["status"] for t in index["towns"] for f in t["findings"]] == ["persisting"]
    assert [sorted(s.new_finding_records) for s in summaries] == [[loop_id], [], [], [], []]
    for n in range(1, 6):
        assert rf.broken_links(tmp_path / str(n)) == []


def test_findings_pages_escape_hostile_text_and_are_deterministic(
    towns: dict[str, TownRun], tmp_path: Path
) -> None:
    base = towns["stuck.sqlite"]
    hostile = diagnosed(base, [review_loop(base, because=rf.HOSTILE, name=rf.HOSTILE)])
    runs = {"h.sqlite": hostile}
    build(runs, tmp_path / "a", ["h.sqlite"])
    build(runs, tmp_path / "b", ["h.sqlite"])
    pages = sorted((tmp_path / "a").rglob("*.html"))
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert "<script>alert" not in text and "<b>bold</b>" not in text, page
        assert page.read_bytes() == (tmp_path / "b" / page.relative_to(tmp_path / "a")).read_bytes()
    finding_page = next((tmp_path / "a" / "findings").glob("*.html")).read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in finding_page


# ── The command line: --fail-on and the step summary ─────────────────────


@pytest.fixture
def cli(towns: dict[str, TownRun], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """``reportgen build`` over placeholder files served by the fixtures' runs."""
    runs = dict(towns)
    runs["violations.sqlite"] = diagnosed(rf.scripted_town("town-alpha"), [])
    monkeypatch.setattr(
        "reportgen.diagnose.loader.DiagnosingLoader.__call__",
        lambda self, s, f, t: rf.loader(runs)(s, f, t),
    )
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))

    def run(names: Sequence[str], *options: str) -> Any:
        for name in names:
            (tmp_path / name).write_bytes(b"")
        out = tmp_path / f"site-{len(list(tmp_path.glob('site-*')))}"
        args = ["build", *(str(tmp_path / n) for n in names), "--out", str(out), "--jobs", "1"]
        return CliRunner().invoke(main, [*args, *options])

    run.summary = summary  # type: ignore[attr-defined]
    return run


@pytest.mark.parametrize(
    ("names", "options", "code"),
    [
        (["stuck.sqlite"], [], 0),
        (["stuck.sqlite"], ["--fail-on", "stuck"], 3),
        (["stuck.sqlite"], ["--fail-on", "degraded"], 3),
        (["stuck.sqlite"], ["--fail-on", "violations"], 0),
        (["degraded.sqlite"], ["--fail-on", "stuck"], 0),
        (["degraded.sqlite"], ["--fail-on", "degraded"], 3),
        (["degraded.sqlite"], ["--fail-on", "stuck", "--fail-on", "degraded"], 3),
        (["healthy.sqlite"], ["--fail-on", "violations", "--fail-on", "degraded"], 0),
        (["healthy.sqlite"], ["--fail-on-violations"], 0),  # new, but expected
        (["violations.sqlite"], ["--fail-on-violations"], 3),
        (["violations.sqlite"], ["--fail-on", "violations"], 3),
        (["violations.sqlite"], ["--fail-on", "stuck"], 0),
        (["stuck.sqlite", "zz.sqlite"], ["--fail-on", "stuck"], 4),  # 4 before 3
    ],
)
def test_fail_on_exit_codes(cli: Any, names: list[str], options: list[str], code: int) -> None:
    result = cli(names, *options)
    assert result.exit_code == code, result.output


def test_step_summary_lists_stuck_towns_first_with_their_worst_finding(cli: Any) -> None:
    result = cli(["healthy.sqlite", "degraded.sqlite", "stuck.sqlite"])
    assert result.exit_code == 0, result.output
    assert "verdicts   1 stuck, 1 degraded, 1 healthy" in result.output
    text = cli.summary.read_text(encoding="utf-8")
    table = text.split("### Verdicts", 1)[1]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert [r.split("|")[2].strip() for r in rows] == ["**stuck**", "**degraded**", "**healthy**"]
    assert "review-loop: " in rows[0] and "hooked-not-dispatched: " in rows[1]
