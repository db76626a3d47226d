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
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reportgen.diagnose.diagnose import UNJUDGED_TICKS
from reportgen.diagnose.episodes import find_episodes
from reportgen.errors import BadInputError, NothingBuiltError
from reportgen.report import history
from reportgen.report.executors import Executor, ProcessExecutor
from reportgen.report.findings import (
    expected_episodes,
    expected_reasons,
    new_critical,
    run_findings,
    summarize,
    summary_from,
    town_findings,
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
from reportgen.report.format import clean
from reportgen.report.pages import town_pages
from reportgen.report.render import AssetRefs
from reportgen.report.run_pages import write_run_level
from reportgen.report.site import (
    CACHE_MARKER,
    Assets,
    SiteWriter,
    check_apart,
    check_replaceable,
    write_marker,
)
from reportgen.report.summary import BuildSummary, fill_summary
from reportgen.report.town_data import TownData, compute_town
from reportgen.report.views_index import TownSummary
from reportgen.report.views_shared import EntityLink, EpisodeRow
from reportgen.report.views_town import town_summary
from reportgen.town_run import TownRun

#: Why an episode of ticks simulated on a dump's stored state is muted (never alerts).
NEVER_HAPPENED = "its ticks were simulated on today's state and never happened"

__all__ = ["BuildSummary", "LoadRun", "build_site", "discover_sources"]
#: ``progress(done, total, label)``, called after each town.
Progress = Callable[[int, int, str], None]

SOURCE_SUFFIXES = (".sqlite", ".sqlite3", ".db", ".bundle", ".rgbundle")


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


def render_town(
    run: TownRun, hist: history.History, assets: AssetRefs
) -> tuple[dict[str, Any], Iterator[tuple[str, str]]]:
    """One town's results (index line, episode rows, history records) and its pages, lazily.

    The pages come from a generator so that a worker writes each one as soon
    as it is rendered: a town never holds its whole site in memory.
    """
    episodes = find_episodes(run.town_id, run.ticks)
    expected = expected_reasons(expected_episodes(run, episodes))  # by the diagnosis's ids
    hist.adopt(episodes)
    statuses = {ep.id: hist.status(ep.id) for ep in episodes}
    happened = run.fidelity not in UNJUDGED_TICKS
    if not happened:  # ticks simulated on a dump's stored state: shown, muted, never recorded
        expected = {ep.id: NEVER_HAPPENED for ep in episodes}
    data: TownData = compute_town(run, episodes, statuses, expected=expected)
    found = town_findings(run, hist.finding_status)
    result: dict[str, Any] = {
        "town_id": run.town_id,
        "summary": asdict(summarize(town_summary(data), run, found, data)),
        "rows": [asdict(r) for r in data.rows.values()],
        # what the next build continues, and what alerts (Sentry): only what happened
        "episodes": {ep.id: history.episode_record(ep) for ep in episodes} if happened else {},
        "window_reason": run.window_reason,
        "ignored_times": run.ignored_times,
    }
    return result, town_pages(data, found, assets)


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
    fill_summary(summary, summaries, rows)
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
    names = {s.town_id: s.label for s in summaries}
    summary.new_finding_records = {
        fid: {**r, "town_name": names.get(str(r["town_id"]), "")}
        for fid, r in new_critical(run_findings(summaries, {})).items()
    }
    summary.resolved, summary.not_rebuilt = write_run_level(
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
