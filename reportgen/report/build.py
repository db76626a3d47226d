"""``build_site``: sources → replayed runs → view-models → HTML + JSON → an atomically swapped site.

The pipeline, per town (so memory stays flat in the number of towns):

1. load the run (replay of the window) — an injectable ``load_run``;
2. find violation episodes, continue ids across the previous run's
   boundary and mark them new / persisting (history);
3. compute every page's view-model (town, tick pages, entities, episodes);
4. render them all to strings, then write them (a town that fails in
   1–4 writes nothing and is listed on the index with the reason).

Then the index, the resolved-episode stubs and the history file, and only
then the swap of the temporary directory into place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reportgen import __version__
from reportgen.errors import BadInputError, ReportgenError
from reportgen.report import charts, history
from reportgen.report.episodes import Episode, find_episodes, to_ms
from reportgen.report.model import (
    EpisodeRow,
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
from reportgen.report.site import Assets, SiteWriter, cache_dir
from reportgen.report.text import clean, dumps, iso
from reportgen.runmodel import TownRun

#: ``load_run(source, window_from, window_to) -> TownRun`` (``None`` = the default window).
LoadRun = Callable[[Path, str | None, str | None], TownRun]
#: ``progress(done, total, label)``, called after each town.
Progress = Callable[[int, int, str], None]

SOURCE_SUFFIXES = (".sqlite", ".sqlite3", ".db", ".bundle", ".rgbundle")
#: The default window: the last 24 h of each source's data.
DEFAULT_WINDOW_MS = 24 * 3_600_000


@dataclass
class BuildSummary:
    """What a build produced, for the CLI's one-screen summary and its exit code."""

    out: Path
    towns: int = 0
    towns_failed: int = 0
    ticks: int = 0
    actions: int = 0
    episodes: int = 0
    new: int = 0
    persisting: int = 0
    resolved: int = 0
    files: int = 0
    bytes: int = 0
    window_from: str = ""
    window_to: str = ""
    failures: list[tuple[str, str]] = field(default_factory=list)
    new_episodes: list[dict[str, Any]] = field(default_factory=list)

    def text(self) -> str:
        """The one-screen summary printed at the end of ``reportgen build``."""
        lines = [
            f"towns      {self.towns} ({self.towns_failed} failed)",
            f"window     {self.window_from or '-'} → {self.window_to or '-'}",
            f"ticks      {self.ticks}",
            f"actions    {self.actions}",
            f"violations {self.episodes} episodes: {self.new} new, {self.persisting} "
            f"persisting, {self.resolved} resolved",
        ]
        lines += [
            f"  new: {e['town_id']} invariant {e['invariant']} ({e['title']}) "
            f"{e['first_at']} → {e['href']}"
            for e in self.new_episodes[:10]
        ]
        if len(self.new_episodes) > 10:
            lines.append(f"  … and {len(self.new_episodes) - 10} more")
        lines += [f"  failed: {src}: {why}" for src, why in self.failures]
        lines.append(
            f"site       {self.out / 'index.html'} ({self.files} files, {self.bytes / 1e6:.1f} MB)"
        )
        return "\n".join(lines)

    def markdown(self) -> str:
        """A GitHub step summary (Markdown)."""
        out = [
            "## Reconciler report",
            "",
            "| towns | failed | ticks | actions | new | persisting | resolved |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {self.towns} | {self.towns_failed} | {self.ticks} | {self.actions} | "
            f"{self.new} | {self.persisting} | {self.resolved} |",
            "",
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


class ReplayLoader:
    """The real replay (``reportgen.replay.replay_window``); the default window is the last 24 h.

    A class rather than a closure so that it can be sent to worker processes.
    """

    def __call__(self, source: Path, window_from: str | None, window_to: str | None) -> TownRun:
        from reportgen.replay import open_source, replay_window

        if window_from is None or window_to is None:
            window_from, window_to = default_window(open_source(source), window_from, window_to)
        return replay_window(source, window_from, window_to)


def default_load_run() -> LoadRun:
    """The default ``load_run``: :class:`ReplayLoader`."""
    return ReplayLoader()


def default_window(source: Any, window_from: str | None, window_to: str | None) -> tuple[str, str]:
    """The last :data:`DEFAULT_WINDOW_MS` of a source's data (clamped to its first timestamp)."""
    data = source.data_range()
    if data is None:
        raise BadInputError(f"{source.name}: the database holds no timestamps")
    end = window_to or source.default_now() or data[1]
    start = window_from or iso(max(to_ms(data[0]), to_ms(end) - DEFAULT_WINDOW_MS))
    return start, end


def demo_sources() -> list[Path]:
    """The bundled demo fleet, simulated once into the cache directory (same seed → same files)."""
    from reportgen.sim import demo_fleet
    from reportgen.sim.demo import DEMO_FLEET, DEMO_SEED

    folder = cache_dir() / f"demo-fleet-{__version__}-seed{DEMO_SEED}"
    marker = folder / ".complete"
    if marker.exists():
        return sorted(p for p in folder.iterdir() if p.suffix in SOURCE_SUFFIXES)
    paths = demo_fleet(folder, seed=DEMO_SEED)
    if len(paths) != len(DEMO_FLEET):
        raise ReportgenError("the demo fleet simulation produced an unexpected set of towns")
    marker.write_text("ok\n", encoding="utf-8")
    return sorted(paths)


@dataclass
class _Rendered:
    """One town's files, rendered in memory before anything is written."""

    town_id: str
    files: list[tuple[str, str]]
    summary: TownSummary
    rows: list[EpisodeRow]
    episodes: list[Episode]


def _page_files(page: Any, path: str, assets: AssetRefs) -> list[tuple[str, str]]:
    root = "../" * path.count("/")
    json_path = path[: -len(".html")] + ".json"
    html = render(page, assets=assets, url=site_url(root), json_href=json_path.rsplit("/", 1)[-1])
    return [(path, html), (json_path, dumps(page))]


def render_town(run: TownRun, hist: history.History, assets: AssetRefs) -> _Rendered:
    """Compute and render every page of one town (nothing is written here)."""
    episodes = find_episodes(run.town_id, run.ticks)
    hist.adopt(episodes)
    statuses = {ep.id: hist.status(ep.id) for ep in episodes}
    data: TownData = compute_town(run, episodes, statuses)
    ds = charts.datasets(run.ticks, run.window_from, run.window_to)
    page = town_page(data, charts.town_charts(int(ds["step"])), {"m": ds["m"], "a": ds["a"]})
    files = _page_files(
        page, data.pages[0].href if data.pages else f"towns/{run.town_id}/index.html", assets
    )
    for p in data.pages[1:]:
        files += _page_files(ticks_page(data, p.number, "../../"), p.href, assets)
    for link, entity in entity_pages(data):
        files += _page_files(entity, link.href, assets)
    for vpage in violation_pages(data):
        files += _page_files(vpage, vpage.episode.href, assets)
    return _Rendered(run.town_id, files, town_summary(data), list(data.rows.values()), episodes)


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
    )


def _town_job(
    job: tuple[Path, str | None, str | None, LoadRun, history.History, AssetRefs],
) -> tuple[_Rendered | None, str]:
    """Load and render one town (in a worker process when ``jobs > 1``): result or the error."""
    source, window_from, window_to, load, hist, refs = job
    try:
        return render_town(load(source, window_from, window_to), hist, refs), ""
    except Exception as exc:  # one bad town must not sink a fleet build
        return None, f"{type(exc).__name__}: {exc}"


def _results(
    jobs: int, work: list[tuple[Path, str | None, str | None, LoadRun, history.History, AssetRefs]]
) -> Iterator[tuple[_Rendered | None, str]]:
    """Town results in source order; with ``jobs > 1`` computed by a process pool."""
    if jobs <= 1 or len(work) <= 1:
        yield from map(_town_job, work)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        # map() keeps source order and holds at most a few results at a time
        yield from pool.map(_town_job, work, chunksize=1)


def build_site(
    sources: Sequence[Path],
    out: Path,
    *,
    window_from: str | None = None,
    window_to: str | None = None,
    history_path: Path | None = None,
    history_limit: int = history.DEFAULT_LIMIT,
    load_run: LoadRun | None = None,
    progress: Progress | None = None,
    assets: Assets | None = None,
    jobs: int = 1,
) -> BuildSummary:
    """Build the static site for ``sources`` into ``out`` (swapped in only on success).

    ``jobs > 1`` renders towns in that many processes (``load_run`` must then
    be picklable, as the default :class:`ReplayLoader` is); output is the same.
    """
    load = load_run or ReplayLoader()
    hist = history.History(history.read_history(history_path))
    assets = assets or Assets.load()
    refs = assets.refs()
    summary = BuildSummary(out=out)
    summaries: list[TownSummary] = []
    rows: list[EpisodeRow] = []
    episodes: list[Episode] = []
    seen_towns: set[str] = set()
    work = [(source, window_from, window_to, load, hist, refs) for source in sources]
    with SiteWriter(out) as writer:
        writer.write_assets(assets)
        for done, (source, (rendered, error)) in enumerate(
            zip(sources, _results(jobs, work), strict=True), start=1
        ):
            if rendered is not None and rendered.town_id in seen_towns:
                error = f"BadInputError: town {rendered.town_id} appears in more than one source"
                rendered = None
            if rendered is None:
                summaries.append(_failed_summary(source, error))
                summary.failures.append((str(source), error))
            else:
                seen_towns.add(rendered.town_id)
                for path, text in rendered.files:
                    writer.write(path, text)
                summaries.append(rendered.summary)
                rows += rendered.rows
                episodes += rendered.episodes
                hist.seen.update({r.id: r.status for r in rendered.rows})
            if progress is not None:
                progress(done, len(sources), str(source))
        summary.resolved = _write_run_level(
            writer, hist, summaries, rows, episodes, seen_towns, refs, history_limit
        )
        summary.files, summary.bytes = writer.files, writer.bytes_written
        writer.commit()
    _fill_summary(summary, summaries, rows)
    return summary


def _write_run_level(
    writer: SiteWriter,
    hist: history.History,
    summaries: list[TownSummary],
    rows: list[EpisodeRow],
    episodes: list[Episode],
    towns: set[str],
    refs: AssetRefs,
    limit: int,
) -> int:
    """The index, the resolved-episode stubs and the history file (after every town)."""
    froms = sorted(s.window_from for s in summaries if s.window_from)
    tos = sorted(s.window_to for s in summaries if s.window_to)
    window = (froms[0] if froms else "", tos[-1] if tos else "")
    current = history.record_for(
        history.run_id(*window), window, sorted(towns), episodes, {r.id: r.status for r in rows}
    )
    resolved = [
        ResolvedRow(
            id=eid,
            town_id=clean(e["town_id"]),
            invariant=int(e["invariant"]),
            title=invariant_title(int(e["invariant"])),
            first_at=e["first_at"],
            last_at=e["last_at"],
            href=violation_href(eid),
        )
        for eid, e in hist.resolved(towns)
    ]
    runs = history.next_runs(hist.runs, current, limit)
    labels, counts = history.trends(runs)
    index = build_index(
        summaries,
        rows,
        resolved,
        labels,
        [TrendRow(n, invariant_title(n), c) for n, c in counts.items()],
    )
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
    for path, text in _page_files(index, "index.html", refs):
        writer.write(path, text)
    for eid, e, last_run in history.gone(runs, current):
        page = ResolvedPage(
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
        )
        for path, text in _page_files(page, violation_href(eid), refs):
            writer.write(path, text)
    writer.write(history.FILE_NAME, history.dump(runs))
    return len(resolved)


def _fill_summary(
    summary: BuildSummary, summaries: list[TownSummary], rows: list[EpisodeRow]
) -> None:
    ok = [s for s in summaries if s.state != "failed"]
    summary.towns = len(summaries)
    summary.towns_failed = len(summaries) - len(ok)
    summary.ticks = sum(s.ticks for s in ok)
    summary.actions = sum(s.actions for s in ok)
    summary.episodes = len(rows)
    summary.new = sum(1 for r in rows if r.status == "new")
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
