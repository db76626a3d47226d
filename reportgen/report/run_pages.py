"""What a build writes once, after every town: the index, the glossary, the permalink stubs,
the history file.

The index lists every town and episode of the run; an episode of an earlier
run that this one no longer shows keeps a stub page at its permalink
(resolved, or carried from a town this run did not build), so links in
tickets keep working; ``history.jsonl`` carries the episodes to the next run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import replace
from typing import Any

from reportgen.report import charts, history
from reportgen.report.findings import finding_stubs, run_findings
from reportgen.report.format import clean
from reportgen.report.glossary import GLOSSARY_HREF, glossary_page
from reportgen.report.pages import SitePage, page_files
from reportgen.report.render import AssetRefs
from reportgen.report.site import SiteWriter
from reportgen.report.views_index import (
    IndexPage,
    ResolvedPage,
    ResolvedRow,
    RunByTown,
    TownSummary,
    TrendRow,
    build_index,
)
from reportgen.report.views_shared import (
    RESOLVED,
    EpisodeRow,
    invariant_title,
    town_href,
    violation_href,
)

#: A history record of an episode (:func:`history.episode_record`, with its status).
Record = Mapping[str, Any]


def write_run_level(
    writer: SiteWriter,
    hist: history.History,
    summaries: list[TownSummary],
    rows: list[EpisodeRow],
    episodes: dict[str, dict[str, Any]],
    towns: set[str],
    refs: AssetRefs,
    limit: int,
) -> tuple[int, int]:
    """The index, the glossary, the resolved / not-rebuilt stubs and the history file (after
    every town).

    Returns how many episodes were resolved and how many were carried
    forward from towns this run did not build.
    """
    window = _fleet_window(summaries)
    carried, not_rebuilt = hist.carried(towns, limit)
    current = history.record_from(
        history.run_id(*window),
        window,
        sorted(towns),
        {**episodes, **carried},
        {r.id: r.status for r in rows},
        not_rebuilt,
    )
    carried_findings = hist.carried_findings(towns, limit)
    current.findings = run_findings(summaries, carried_findings)
    current.town_names = run_town_names(summaries, towns, not_rebuilt, hist.runs)
    runs = history.next_runs(hist.runs, current, limit)
    names = history.town_names(runs)
    resolved = history_rows(hist.resolved(towns), names, towns)
    carried_rows = history_rows(sorted(carried.items()), names)
    index = index_page(
        _named_failures(summaries, names),
        rows,
        resolved,
        carried_rows,
        runs,
        RunByTown(not_rebuilt),
    )
    _write(writer, index, "index.html", refs)
    _write(writer, glossary_page(), GLOSSARY_HREF, refs)
    for eid, page in stub_pages(runs, current, carried, not_rebuilt):
        _write(writer, page, violation_href(eid), refs)
    gone = history.gone(runs, current, findings=True)
    stubs = finding_stubs(
        gone, carried_findings, not_rebuilt, RESOLVED, history.NOT_REBUILT, names=names, built=towns
    )
    for fstub in stubs:
        _write(writer, fstub, fstub.href, refs)
    writer.write(history.FILE_NAME, history.dump(runs))
    return len(resolved), len(carried)


def run_town_names(
    summaries: Sequence[TownSummary],
    built: set[str],
    not_rebuilt: Mapping[str, str],
    runs: Sequence[history.RunRecord],
) -> dict[str, str]:
    """The names the run records for its towns: those it built by their name now, those it
    carries by the name an earlier run recorded (their id when none did)."""
    earlier = history.town_names(runs)
    names = {t: earlier.get(t, t) for t in not_rebuilt}
    names.update({s.town_id: s.label for s in summaries if s.town_id in built})
    return dict(sorted(names.items()))


def _named_failures(summaries: list[TownSummary], names: Mapping[str, str]) -> list[TownSummary]:
    """The index's towns, a failed one by the name an earlier run recorded for it (a failed
    build never read the name stored in the town)."""
    return [
        replace(s, name=names[s.town_id]) if s.state == "failed" and s.town_id in names else s
        for s in summaries
    ]


def _write(writer: SiteWriter, page: SitePage, path: str, refs: AssetRefs) -> None:
    for relpath, text in page_files(page, path, refs):
        writer.write(relpath, text)


def _fleet_window(summaries: Sequence[TownSummary]) -> tuple[str, str]:
    """The span of every town's window (``""`` when no town has one)."""
    froms = sorted(s.window_from for s in summaries if s.window_from)
    tos = sorted(s.window_to for s in summaries if s.window_to)
    return froms[0] if froms else "", tos[-1] if tos else ""


def history_rows(
    episodes: Sequence[tuple[str, Record]], names: Mapping[str, str], built: Set[str] = frozenset()
) -> list[ResolvedRow]:
    """Index rows for episodes known only from the history (resolved, or not rebuilt), their
    towns by the name the history recorded (``names``; the id when it has none), linked
    when this run ``built`` them."""
    return [
        ResolvedRow(
            id=eid,
            town_id=clean(e["town_id"]),
            invariant=int(e["invariant"]),
            title=invariant_title(int(e["invariant"])),
            first_at=e["first_at"],
            last_at=e["last_at"],
            href=violation_href(eid),
            town_name=clean(names.get(str(e["town_id"]), str(e["town_id"]))),
            town_href=town_href(str(e["town_id"])) if e["town_id"] in built else "",
        )
        for eid, e in episodes
    ]


def index_page(
    summaries: list[TownSummary],
    rows: list[EpisodeRow],
    resolved: list[ResolvedRow],
    carried: list[ResolvedRow],
    runs: list[history.RunRecord],
    not_rebuilt_towns: RunByTown,
) -> IndexPage:
    """The index view-model, with the trend chart when there is more than one run."""
    labels, counts = history.trends(runs)
    trends = [TrendRow(n, invariant_title(n), c) for n, c in counts.items()]
    return build_index(
        summaries,
        rows,
        resolved,
        labels,
        trends,
        not_rebuilt=carried,
        not_rebuilt_towns=not_rebuilt_towns,
        names=history.town_names(runs),
        charts=charts.trend_charts(labels),
        datasets=charts.trend_data(labels, counts),
    )


def stub_pages(
    runs: Sequence[history.RunRecord],
    current: history.RunRecord,
    carried: Mapping[str, Record],
    not_rebuilt: Mapping[str, str],
) -> list[tuple[str, ResolvedPage]]:
    """The stubs at the permalinks of episodes this run does not show, by episode id."""
    stubs: list[tuple[str, Record, str, str]] = [
        (eid, e, run, RESOLVED) for eid, e, run in history.gone(runs, current)
    ]
    stubs += [
        (eid, e, not_rebuilt[e["town_id"]], history.NOT_REBUILT) for eid, e in carried.items()
    ]
    names, built = history.town_names(runs), set(current.towns)
    return [
        (eid, stub_page(eid, e, last_run, state, names, built))
        for eid, e, last_run, state in sorted(stubs, key=lambda stub: stub[0])
    ]


def stub_page(
    eid: str,
    e: Record,
    last_run: str,
    state: str,
    names: Mapping[str, str] | None = None,
    built: Set[str] = frozenset(),
) -> ResolvedPage:
    """The page kept at the permalink of an episode this run does not show: its town by the
    name the history recorded (``names``), linked when this run ``built`` it."""
    town = str(e["town_id"])
    return ResolvedPage(
        kind="resolved",
        title=invariant_title(int(e["invariant"])),
        root="../",
        id=eid,
        invariant=int(e["invariant"]),
        town_id=clean(town),
        first_at=str(e["first_at"]),
        last_at=str(e["last_at"]),
        last_run=last_run,
        entity_ids=[
            clean(str(i)) for k in ("agent_ids", "bead_ids", "rig_ids") for i in e.get(k, [])
        ],
        state=state,
        town_name=clean((names or {}).get(town, town)),
        town_href=town_href(town) if town in built else "",
    )
