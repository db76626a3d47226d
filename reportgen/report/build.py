"""``build_site``: sources → replayed runs → view-models → HTML + JSON → an atomically swapped site.

The pipeline, per town — a task (:mod:`reportgen.report.fleet`) that any
executor (:mod:`reportgen.report.executors`: this process, a process pool,
a Dask cluster) can run, so memory stays flat in the number of towns:

1. load the run (replay of the window) — an injectable ``load_run``;
2. find violation episodes, continue ids across the previous run's
   boundary and mark them new / persisting (history);
3. compute every page's view-model (town, tick pages, entities, episodes);
4. render the pages one by one, each written to the town's cache entry as
   soon as it is rendered (a town that fails in 1–4 leaves nothing behind
   and is listed on the index with the reason); a town whose inputs did not
   change since the last build reuses its entry instead.

The parent links each town's files into the new site as the town finishes,
and keeps only the towns' small results. Then the index, the
resolved-episode stubs and the history file, and only then the swap of the
temporary directory into place.

Before any of it, the output is checked: ``out`` is never, contains or sits
inside a source, and replaces only a directory reportgen wrote (or an empty
one); the same holds for the cache beside it. When every town fails there
is nothing to publish: the previous site and its history stay as they were
and the build raises :class:`~reportgen.errors.NothingBuiltError`.
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reportgen.diagnose.episodes import find_episodes
from reportgen.errors import BadInputError, NothingBuiltError
from reportgen.report import charts, history
from reportgen.report.executors import Executor, ProcessExecutor
from reportgen.report.findings import (
    TownFindings,
    expected_episodes,
    finding_pages,
    finding_stubs,
    mark_expected,
    new_critical,
    run_findings,
    summarize,
    summary_from,
    town_findings,
    with_findings,
)
from reportgen.report.fleet import (
    FILES,
    SUMMARY,
    FleetContext,
    LoadRun,
    TownOutcome,
    TownTask,
    default_cache,
    entry_files,
    options_key,
    previous_by_town,
    prune,
    run_town,
)
from reportgen.report.model import (
    RESOLVED,
    EntityLink,
    EpisodeRow,
    IndexPage,
    ResolvedPage,
    ResolvedRow,
    TownSummary,
    TrendRow,
    build_index,
    invariant_title,
    violation_href,
)
from reportgen.report.model_detail import entity_pages, violation_pages
from reportgen.report.model_town import TownData, compute_town, ticks_page, town_page, town_summary
from reportgen.report.render import AssetRefs, render, site_url
from reportgen.report.site import (
    CACHE_MARKER,
    Assets,
    SiteWriter,
    check_apart,
    check_replaceable,
    write_marker,
)
from reportgen.report.text import clean, compact
from reportgen.report.verdicts import (
    VerdictLine,
    ordered_lines,
    verdict_counts,
    verdict_line,
    verdict_markdown,
)
from reportgen.runmodel import TownRun
from reportgen.town.tick import wall_clock_kind

__all__ = ["BuildSummary", "LoadRun", "build_site", "discover_sources"]
#: ``progress(done, total, label)``, called after each town.
Progress = Callable[[int, int, str], None]

SOURCE_SUFFIXES = (".sqlite", ".sqlite3", ".db", ".bundle", ".rgbundle")


@dataclass
class BuildSummary:
    """What a build produced, for the CLI's one-screen summary and its exit code."""

    out: Path
    towns: int = 0
    towns_failed: int = 0
    #: Towns whose inputs had not changed since the last build: their pages were reused.
    skipped: int = 0
    ticks: int = 0
    actions: int = 0
    episodes: int = 0
    new: int = 0
    persisting: int = 0
    resolved: int = 0
    #: Episodes carried forward from towns this run did not build (failed or missing).
    not_rebuilt: int = 0
    files: int = 0
    bytes: int = 0
    window_from: str = ""
    window_to: str = ""
    #: Built towns by fidelity: ``recorded`` (shown from their record), ``exact``
    #: (replayed and compared), ``approximate`` (replayed without a journal).
    fidelities: dict[str, int] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    #: Each built town's window and why (``source``, ``from``, ``to``, ``reason``).
    town_windows: list[dict[str, str]] = field(default_factory=list)
    #: Stored timestamps set aside as implausible when choosing a town's window
    #: (``source``, ``table``, ``key``, ``column``, ``value``).
    ignored_times: list[dict[str, str]] = field(default_factory=list)
    new_episodes: list[dict[str, Any]] = field(default_factory=list)
    #: History records (:func:`history.episode_record`) of the new episodes, by id: what
    #: alerting needs (message, entities, extent) without the towns' Episode objects.
    new_episode_records: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: New episodes that the diagnosis does not mark expected (``--fail-on violations``).
    new_unexpected: int = 0
    #: Each built town's verdict and worst finding (``--fail-on stuck|degraded``).
    verdicts: list[VerdictLine] = field(default_factory=list)
    #: History records of the new critical findings that count, by id (Sentry alerts).
    new_finding_records: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _sources(self) -> str:
        """`` (4 towns from their record, 1 replayed)``: where the ticks came from."""
        replayed = self.fidelities.get("exact", 0) + self.fidelities.get("approximate", 0)
        recorded = self.fidelities.get("recorded", 0)
        if not recorded and not replayed:
            return ""
        towns = "town" if recorded == 1 else "towns"
        return f" ({recorded} {towns} from their record, {replayed} replayed)"

    def _carried(self) -> str:
        """``; 3 carried from towns not rebuilt this run`` (empty when none)."""
        if not self.not_rebuilt:
            return ""
        return f"; {self.not_rebuilt} carried from towns not rebuilt this run"

    def text(self) -> str:
        """The one-screen summary printed at the end of ``reportgen build``."""
        lines = [
            f"towns      {self.towns} ({self.skipped} skipped as unchanged, "
            f"{self.towns_failed} failed)",
            f"window     {self.window_from or '-'} → {self.window_to or '-'}",
            f"ticks      {self.ticks}" + self._sources(),
            f"actions    {self.actions}",
            f"violations {self.episodes} episodes: {self.new} new, {self.persisting} "
            f"persisting, {self.resolved} resolved" + self._carried(),
        ]
        lines += [
            f"  new: {e['town_id']} invariant {e['invariant']} ({e['title']}) "
            f"{e['first_at']} → {e['href']}"
            for e in self.new_episodes[:10]
        ]
        if len(self.new_episodes) > 10:
            lines.append(f"  … and {len(self.new_episodes) - 10} more")
        lines += [f"  failed: {src}: {why}" for src, why in self.failures]
        lines.append(f"verdicts   {verdict_counts(self.verdicts)}")
        lines += [
            f"  {v.verdict}: {v.name} — {v.worst}"
            for v in ordered_lines(self.verdicts)
            if v.verdict in ("stuck", "degraded")
        ]
        lines.append(
            f"site       {self.out / 'index.html'} ({self.files} files, {self.bytes / 1e6:.1f} MB)"
        )
        return "\n".join(lines)

    def window_line(self) -> str:
        """The window the build used and why, in one line: the town's, or the fleet's span."""
        if len(self.town_windows) == 1:
            only = self.town_windows[0]
            return f"window {only['from']} .. {only['to']} ({only['reason']})"
        reasons = {w["reason"] for w in self.town_windows}
        why = reasons.pop() if len(reasons) == 1 else "each town's own, chosen from its data"
        return (
            f"window {self.window_from or '-'} .. {self.window_to or '-'} over "
            f"{len(self.town_windows)} towns ({why})"
        )

    def markdown(self) -> str:
        """A GitHub step summary (Markdown)."""
        out = [
            "## Reconciler report",
            "",
            "| towns | failed | ticks | actions | new | persisting | resolved | not rebuilt |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {self.towns} | {self.towns_failed} | {self.ticks} | {self.actions} | "
            f"{self.new} | {self.persisting} | {self.resolved} | {self.not_rebuilt} |",
            "",
            *verdict_markdown(self.verdicts, _md),
        ]
        if self.new_episodes:
            out += ["### New violation episodes", ""]
            out += [
                f"- `{_md(e['town_id'])}` invariant {e['invariant']} ({_md(e['title'])}) "
                f"from {e['first_at']} — `{e['href']}`"
                for e in self.new_episodes
            ]
        out += [f"- failed: `{_md(src)}`: {_md(why)}" for src, why in self.failures]
        return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return clean(text).replace("|", "\\|").replace("`", "'").replace("\n", " ")


def discover_sources(paths: Sequence[Path]) -> list[Path]:
    """Town databases or bundles: files as given, directories expanded (sorted, one level)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(
                p for p in path.iterdir() if p.is_file() and p.suffix in SOURCE_SUFFIXES
            )
        elif path.exists():
            found.append(path)
        else:
            raise BadInputError(f"{path}: no such file or directory")
    if not found:
        raise BadInputError("no town databases found in " + ", ".join(map(str, paths)))
    return found


def _page_files(page: Any, path: str, assets: AssetRefs) -> list[tuple[str, str]]:
    root = "../" * path.count("/")
    json_path = path[: -len(".html")] + ".json"
    html = render(page, assets=assets, url=site_url(root), json_href=json_path.rsplit("/", 1)[-1])
    return [(path, html), (json_path, compact(page) + "\n")]


def render_town(
    run: TownRun, hist: history.History, assets: AssetRefs
) -> tuple[dict[str, Any], Iterator[tuple[str, str]]]:
    """One town's results (index line, episode rows, history records) and its pages, lazily.

    The pages come from a generator so that a worker writes each one as soon
    as it is rendered: a town never holds its whole site in memory.
    """
    episodes = find_episodes(run.town_id, run.ticks)
    expected = expected_episodes(run, episodes)  # by the ids the diagnosis saw
    hist.adopt(episodes)
    statuses = {ep.id: hist.status(ep.id) for ep in episodes}
    data: TownData = compute_town(run, episodes, statuses)
    mark_expected(data, expected)
    found = town_findings(run, hist.finding_status)
    result = {
        "town_id": run.town_id,
        "summary": asdict(summarize(town_summary(data), run, found, data)),
        "rows": [asdict(r) for r in data.rows.values()],
        "episodes": {ep.id: history.episode_record(ep) for ep in episodes},
        "window_reason": run.window_reason,
        "ignored_times": run.ignored_times,
    }
    return result, _town_pages(run, data, found, assets)


def _town_pages(
    run: TownRun, data: TownData, found: TownFindings, assets: AssetRefs
) -> Iterator[tuple[str, str]]:
    ds = charts.datasets(run.ticks, run.window_from, run.window_to)
    page = town_page(
        data,
        charts.town_charts(int(ds["step"]), wall_clock_kind(run.ticks)),
        {"m": ds["m"], "a": ds["a"]},
    )
    page = with_findings(page, data, found)
    href = data.pages[0].href if data.pages else f"towns/{run.town_id}/index.html"
    yield from _page_files(page, href, assets)
    for p in data.pages[1:]:
        yield from _page_files(ticks_page(data, p.number, "../../"), p.href, assets)
    for link, entity in entity_pages(data):
        yield from _page_files(entity, link.href, assets)
    for vpage in violation_pages(data):
        yield from _page_files(vpage, vpage.episode.href, assets)
    for fpage in finding_pages(data, found):
        yield from _page_files(fpage, fpage.finding.href, assets)


def write_town(
    run: TownRun, hist: history.History, assets: AssetRefs, folder: Path
) -> dict[str, Any]:
    """Render one town and write its pages under ``folder`` one by one; returns its results."""
    result, pages = render_town(run, hist, assets)
    files: list[str] = []
    size = 0
    made: set[Path] = set()
    for relpath, text in pages:
        target = folder / relpath
        if target.parent not in made:
            target.parent.mkdir(parents=True, exist_ok=True)
            made.add(target.parent)
        data = text.encode("utf-8")
        target.write_bytes(data)
        files.append(relpath)
        size += len(data)
    result.update(files=files, bytes=size)
    return result


def town_task(town: TownTask, ctx: FleetContext) -> TownOutcome:
    """The fleet task (module level, so every executor can pickle it by reference)."""
    return run_town(ctx, town, write_town)


def _failed_summary(source: Path, error: str) -> TownSummary:
    return TownSummary(
        town_id=clean(source.stem),
        href=None,
        state="failed",
        fidelity="unknown",
        caveat=None,
        window_from="",
        window_to="",
        ticks=0,
        events=0,
        actions=0,
        side_effects_failed=0,
        episodes=0,
        episodes_open=0,
        episodes_new=0,
        last_tick_at=None,
        last_tick_label="—",
        divergence=False,
        error=clean(error),
        name=clean(source.stem),
        source=clean(source.name),
    )


@dataclass
class _Fleet:
    """Town outcomes as they arrive: files linked into the site at once, in any order.

    Two sources of the same town id: the one listed first wins, whichever
    finished first (so the site does not depend on timing).
    """

    writer: SiteWriter
    outcomes: dict[int, TownOutcome] = field(default_factory=dict)
    owner: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: TownOutcome) -> None:
        self.outcomes[outcome.index] = outcome
        if outcome.error:
            return
        town_id = str(outcome.result["town_id"])
        other = self.owner.get(town_id)
        if other is not None and other < outcome.index:
            _duplicate(outcome, town_id, self.outcomes[other])
            return
        if other is not None:
            for relpath in _files_of(self.outcomes[other]):
                self.writer.remove(relpath)
            _duplicate(self.outcomes[other], town_id, outcome)
        self.owner[town_id] = outcome.index
        assert outcome.entry is not None
        files = Path(outcome.entry) / FILES
        for relpath in entry_files(outcome):
            self.writer.link(relpath, files / relpath)
        # the file list is the bulk of an outcome: a thousand towns' lists would be the
        # parent's largest allocation; the entry's summary.json still has it (see _files_of)
        outcome.result.pop("files", None)

    def ordered(self) -> list[TownOutcome]:
        return [self.outcomes[i] for i in sorted(self.outcomes)]


def _files_of(outcome: TownOutcome) -> list[str]:
    """A linked town's files, from its entry (the outcome no longer holds the list)."""
    assert outcome.entry is not None
    summary = json.loads((Path(outcome.entry) / SUMMARY).read_text(encoding="utf-8"))
    return [str(p) for p in summary["files"]]


def _duplicate(outcome: TownOutcome, town_id: str, kept: TownOutcome) -> None:
    """Fail the source listed later of two with one town id, naming both files."""
    outcome.error = (
        f"BadInputError: town {town_id} appears in more than one source: "
        f"{kept.source} and {outcome.source}"
    )


def _episode_row(raw: dict[str, Any]) -> EpisodeRow:
    return EpisodeRow(**{**raw, "entities": [EntityLink(**e) for e in raw["entities"]]})


def build_site(
    sources: Sequence[Path],
    out: Path,
    *,
    window_from: str | None = None,
    window_to: str | None = None,
    history_path: Path | None = None,
    history_limit: int = history.DEFAULT_LIMIT,
    load_run: LoadRun,
    progress: Progress | None = None,
    assets: Assets | None = None,
    jobs: int = 1,
    executor: Executor | None = None,
    incremental: bool = True,
    cache: Path | None = None,
    source_roots: Sequence[Path] = (),
    force: bool = False,
) -> BuildSummary:
    """Build the static site for ``sources`` into ``out`` (swapped in only on success).

    Towns run on ``executor`` (default: a pool of ``jobs`` processes; with
    more than one, ``load_run`` must be picklable, as
    :class:`reportgen.replay.loader.ReplayLoader` is); the site is the same whichever runs them.
    With ``incremental``, a town whose inputs did not change since the last
    build into ``out`` is not rebuilt (see :mod:`reportgen.report.fleet`);
    ``cache`` is where town results are kept (default: beside ``out``).
    ``source_roots`` are the folders the sources were found in: ``out`` stays
    out of them too. ``force`` lets ``out`` (and the cache) replace a
    directory reportgen did not write. Raises :class:`NothingBuiltError`
    (and keeps the previous site) when every town fails.
    """
    check_apart("--out", out, [*sources, *source_roots])
    load = load_run
    hist = history.History(history.read_history(history_path))
    assets = assets or Assets.load()
    refs = assets.refs()
    key = options_key(load, window_from, window_to, refs)
    root = (cache or default_cache(out)) if key else _staging_root(out)
    ctx = FleetContext(
        load, window_from, window_to, refs, previous_by_town(hist), root, key, incremental,
        previous_findings=previous_by_town(hist, findings=True),
    )  # fmt: skip
    towns, repeated = _tasks(sources)
    summary = BuildSummary(out=out)
    try:
        with SiteWriter(out, force=force) as writer:
            _claim_cache(root, out, force)
            writer.write_assets(assets)
            fleet = _run_fleet(executor or ProcessExecutor(jobs), ctx, towns, writer, progress)
            for outcome in repeated:
                fleet.add(outcome)
            summaries, rows = _finish(writer, fleet, summary, hist, refs, history_limit)
            writer.commit()
        if key:
            prune(root, [o.entry for o in fleet.outcomes.values() if o.cached and o.entry])
    finally:
        if not key:
            shutil.rmtree(root, ignore_errors=True)
    _fill_summary(summary, summaries, rows)
    return summary


def _finish(
    writer: SiteWriter,
    fleet: _Fleet,
    summary: BuildSummary,
    hist: history.History,
    refs: AssetRefs,
    limit: int,
) -> tuple[list[TownSummary], list[EpisodeRow]]:
    """Everything after the towns, up to the swap: the run-level pages and the history.

    Raises before writing any of it when no town was built, so the caller's
    writer discards the new site: :class:`BadInputError` when every source was
    bad input, else :class:`NothingBuiltError`.
    """
    summaries, rows, episodes = _collect(fleet.ordered(), summary, hist)
    if not fleet.owner:
        _check_lone_source(fleet.ordered())
        raise _nothing_built(summary.out, summary.failures)
    summary.new_episode_records = {
        r.id: episodes[r.id] for r in rows if r.status == "new" and r.id in episodes
    }
    summary.new_finding_records = new_critical(run_findings(summaries, {}))
    summary.resolved, summary.not_rebuilt = _write_run_level(
        writer, hist, summaries, rows, episodes, set(fleet.owner), refs, limit
    )
    summary.files, summary.bytes = writer.files, writer.bytes_written
    return summaries, rows


def _claim_cache(root: Path, out: Path, force: bool) -> None:
    """Check that the cache beside ``out`` is reportgen's (it prunes it), then mark it as such."""
    check_replaceable(root, f"the cache of --out {out}", CACHE_MARKER, force=force)
    root.mkdir(parents=True, exist_ok=True)
    write_marker(root, CACHE_MARKER)


def _nothing_built(out: Path, failures: list[tuple[str, str]]) -> NothingBuiltError:
    """The one-line error of a build in which every town failed (the first failure says why)."""
    first = f"; first: {failures[0][0]}: {failures[0][1]}" if failures else ""
    towns = "the only town" if len(failures) == 1 else f"all {len(failures)} towns"
    return NothingBuiltError(
        f"nothing built: {towns} failed, {out} left as it was{first}", failures
    )


def _check_lone_source(outcomes: list[TownOutcome]) -> None:
    """A build of one source that is bad input fails like every other command does:
    its one-line error, exit 2. (A fleet in which every town failed is "nothing
    built", exit 5; either way the previous site stays in place.)"""
    if len(outcomes) == 1 and outcomes[0].bad_input:
        raise BadInputError(outcomes[0].bad_input)


def _tasks(sources: Sequence[Path]) -> tuple[list[TownTask], list[TownOutcome]]:
    """A task per distinct source; a file listed again fails at once (it would share a key)."""
    tasks: list[TownTask] = []
    repeated: list[TownOutcome] = []
    seen: set[Path] = set()
    for i, source in enumerate(sources):
        resolved = source.resolve()
        if resolved in seen:
            why = f"{source} is listed more than once"
            repeated.append(
                TownOutcome(i, str(source), error=f"BadInputError: {why}", bad_input=why)
            )
            continue
        seen.add(resolved)
        tasks.append(TownTask(i, source))
    return tasks, repeated


def _staging_root(out: Path) -> Path:
    """Where towns that cannot be cached are staged: a sibling the next build cleans if killed."""
    out = out.resolve()
    return out.parent / f".{out.name}.tmp-staging-{os.getpid()}"


def _run_fleet(
    executor: Executor,
    ctx: FleetContext,
    towns: list[TownTask],
    writer: SiteWriter,
    progress: Progress | None,
) -> _Fleet:
    fleet = _Fleet(writer)
    with closing(executor.run(town_task, ctx, towns)) as outcomes:
        for done, outcome in enumerate(outcomes, start=1):
            fleet.add(outcome)
            if progress is not None:
                progress(done, len(towns), outcome.source)
    return fleet


def _collect(
    outcomes: list[TownOutcome], summary: BuildSummary, hist: history.History
) -> tuple[list[TownSummary], list[EpisodeRow], dict[str, dict[str, Any]]]:
    """Index lines, episode rows and history records of every town, in source order."""
    summaries: list[TownSummary] = []
    rows: list[EpisodeRow] = []
    episodes: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        if outcome.error:
            summaries.append(_failed_summary(Path(outcome.source), outcome.error))
            summary.failures.append((outcome.source, outcome.error))
            continue
        summary.skipped += outcome.skipped
        result = outcome.result
        _collect_times(summary, outcome.source, result)
        summaries.append(summary_from(result["summary"]))
        town_rows = [_episode_row(r) for r in result["rows"]]
        rows += town_rows
        episodes.update(result["episodes"])
        hist.seen.update({r.id: r.status for r in town_rows})
    return summaries, rows, episodes


def _collect_times(summary: BuildSummary, source: str, result: dict[str, Any]) -> None:
    """A town's window and the timestamps set aside to choose it, for the command line."""
    town = result["summary"]
    summary.town_windows.append(
        {"source": source, "from": town["window_from"], "to": town["window_to"],
         "reason": str(result.get("window_reason") or "")}
    )  # fmt: skip
    summary.ignored_times += [{"source": source, **t} for t in result.get("ignored_times", [])]


def _write_run_level(
    writer: SiteWriter,
    hist: history.History,
    summaries: list[TownSummary],
    rows: list[EpisodeRow],
    episodes: dict[str, dict[str, Any]],
    towns: set[str],
    refs: AssetRefs,
    limit: int,
) -> tuple[int, int]:
    """The index, the resolved / not-rebuilt stubs and the history file (after every town).

    Returns how many episodes were resolved and how many were carried
    forward from towns this run did not build.
    """
    froms = sorted(s.window_from for s in summaries if s.window_from)
    tos = sorted(s.window_to for s in summaries if s.window_to)
    window = (froms[0] if froms else "", tos[-1] if tos else "")
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
    resolved = _history_rows(hist.resolved(towns))
    runs = history.next_runs(hist.runs, current, limit)
    index = _index(summaries, rows, resolved, _history_rows(sorted(carried.items())), runs)
    index.not_rebuilt_towns = dict(not_rebuilt)
    for path, text in _page_files(index, "index.html", refs):
        writer.write(path, text)
    stubs = [(eid, e, run, RESOLVED) for eid, e, run in history.gone(runs, current)]
    stubs += [
        (eid, e, not_rebuilt[e["town_id"]], history.NOT_REBUILT) for eid, e in carried.items()
    ]
    for eid, e, last_run, state in sorted(stubs, key=lambda stub: stub[0]):
        page = _stub_page(eid, e, last_run, state)
        for path, text in _page_files(page, violation_href(eid), refs):
            writer.write(path, text)
    gone = history.gone(runs, current, findings=True)
    for fstub in finding_stubs(gone, carried_findings, not_rebuilt, RESOLVED, history.NOT_REBUILT):
        for path, text in _page_files(fstub, fstub.href, refs):
            writer.write(path, text)
    writer.write(history.FILE_NAME, history.dump(runs))
    return len(resolved), len(carried)


def _history_rows(episodes: Sequence[tuple[str, dict[str, Any]]]) -> list[ResolvedRow]:
    """Index rows for episodes known only from the history (resolved, or not rebuilt)."""
    return [
        ResolvedRow(
            id=eid,
            town_id=clean(e["town_id"]),
            invariant=int(e["invariant"]),
            title=invariant_title(int(e["invariant"])),
            first_at=e["first_at"],
            last_at=e["last_at"],
            href=violation_href(eid),
        )
        for eid, e in episodes
    ]


def _index(
    summaries: list[TownSummary],
    rows: list[EpisodeRow],
    resolved: list[ResolvedRow],
    carried: list[ResolvedRow],
    runs: list[history.RunRecord],
) -> IndexPage:
    """The index view-model, with the trend chart when there is more than one run."""
    labels, counts = history.trends(runs)
    trends = [TrendRow(n, invariant_title(n), c) for n, c in counts.items()]
    index = build_index(summaries, rows, resolved, labels, trends, not_rebuilt=carried)
    if len(labels) > 1:
        index.charts = [
            {
                "id": "trends",
                "title": "Episodes per invariant",
                "wide": True,
                "caption": "Violation episodes per invariant in each of the last runs.",
                "spec": charts.trend_chart(),
            }
        ]
        index.datasets = {
            "trends": [
                {"run": labels[i], "invariant": str(n), "n": c[i]}
                for n, c in counts.items()
                for i in range(len(labels))
            ]
        }
    return index


def _stub_page(eid: str, e: dict[str, Any], last_run: str, state: str) -> ResolvedPage:
    """The page kept at the permalink of an episode this run does not show."""
    return ResolvedPage(
        kind="resolved",
        title=invariant_title(int(e["invariant"])),
        root="../",
        id=eid,
        invariant=int(e["invariant"]),
        town_id=clean(str(e["town_id"])),
        first_at=str(e["first_at"]),
        last_at=str(e["last_at"]),
        last_run=last_run,
        entity_ids=[
            clean(str(i)) for k in ("agent_ids", "bead_ids", "rig_ids") for i in e.get(k, [])
        ],
        state=state,
    )


def _fill_summary(
    summary: BuildSummary, summaries: list[TownSummary], rows: list[EpisodeRow]
) -> None:
    ok = [s for s in summaries if s.state != "failed"]
    summary.towns = len(summaries)
    summary.towns_failed = len(summaries) - len(ok)
    summary.ticks = sum(s.ticks for s in ok)
    summary.fidelities = dict(sorted(Counter(s.fidelity for s in ok).items()))
    summary.actions = sum(s.actions for s in ok)
    summary.episodes = len(rows)
    summary.new = sum(1 for r in rows if r.status == "new")
    summary.new_unexpected = sum(1 for r in rows if r.status == "new" and not r.expected)
    summary.verdicts = [verdict_line(s.town_id, s.name, s.verdict, s.findings) for s in ok]
    summary.persisting = sum(1 for r in rows if r.status == "persisting")
    froms = sorted(s.window_from for s in ok)
    tos = sorted(s.window_to for s in ok)
    summary.window_from, summary.window_to = (froms[0] if froms else ""), (tos[-1] if tos else "")
    summary.new_episodes = [
        {
            "town_id": r.town_id,
            "invariant": r.invariant,
            "title": r.title,
            "first_at": r.first_at,
            "href": r.href,
        }
        for r in sorted(rows, key=lambda r: (r.first_at, r.town_id, r.id))
        if r.status == "new"
    ]
