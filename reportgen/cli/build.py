"""``reportgen build``: the static report site (or a single-file incident bundle).

Every town is judged as it is loaded (:class:`reportgen.diagnose.loader.DiagnosingLoader`):
the site shows each town's verdict and findings, and ``--fail-on`` turns them
into an exit code.

Exit codes: 0 ok, 2 bad input (also an output that would overwrite a source or
a directory reportgen did not write), 3 what ``--fail-on`` asks for (a stuck
or degraded town, a new violation episode that is not expected), 4 partial
failure (some towns failed; the index says why), 5 nothing built (every town
failed; the previous site is kept as it was). 4 and 5 take precedence over 3.

Towns are built in parallel (``--jobs``, or a Dask cluster with
``--executor dask --scheduler ADDRESS``) and, with ``--incremental`` (the
default), only when their inputs changed; see ``docs/fleet.md``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click

from reportgen.cli.common import (
    EXIT_FAIL_ON,
    EXIT_SOME_FAILED,
    auto_recover_option,
    echo_ignored_times,
    reports_errors,
)
from reportgen.cli.progress import info, progress_bar, quiet_option
from reportgen.errors import BadInputError, NothingBuiltError

if TYPE_CHECKING:
    from reportgen.observability.sentry import SentryReporter
    from reportgen.report.build import BuildSummary
    from reportgen.report.reproduce import NamingLoader, SourceNames

#: ``--fail-on`` values (see :func:`reportgen.report.verdicts.fails`).
FAIL_ON = ("stuck", "degraded", "violations")

_PATH = click.Path(path_type=Path)


@click.command("build")
@click.argument("sources", nargs=-1, type=_PATH)
@click.option(
    "--from",
    "window_from",
    help="Window start, ISO-8601 UTC (e.g. 2026-03-16T08:00:00Z). Default: 24 h before --to.",
)
@click.option(
    "--to",
    "window_to",
    help="Window end, ISO-8601 UTC (e.g. 2026-03-16T09:00:00Z). Default: each source's newest "
    "plausible timestamp.",
)
@click.option(
    "--out",
    "out",
    type=_PATH,
    default=Path("site"),
    show_default=True,
    help="Site directory, replaced atomically when the build succeeds: it must be missing, "
    "empty or a site reportgen wrote, and never a source or inside one.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Let --out replace a directory that reportgen did not write (it is deleted).",
)
@click.option(
    "--history",
    "history",
    type=_PATH,
    help="The previous run's site directory or its history.jsonl.",
)
@click.option(
    "--single-file",
    "single_file",
    type=_PATH,
    help="Write one self-contained HTML file for --town instead of a site.",
)
@click.option("--town", "town", help="Town id for --single-file (default: the only town).")
@click.option(
    "--jobs",
    "jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Towns built in parallel by the local executor (default: the CPUs available).",
)
@click.option(
    "--executor",
    "executor",
    type=click.Choice(["local", "dask"]),
    default="local",
    show_default=True,
    help="Where towns are built: a local process pool, or a Dask cluster (the dask extra).",
)
@click.option(
    "--scheduler",
    "scheduler",
    metavar="ADDRESS",
    help="The Dask scheduler for --executor dask (tcp://host:8786); workers must see --out.",
)
@click.option(
    "--incremental/--no-incremental",
    "incremental",
    default=True,
    show_default=True,
    help="Reuse the pages of towns whose inputs did not change since the last build.",
)
@click.option(
    "--fail-on",
    "fail_on",
    type=click.Choice(FAIL_ON),
    multiple=True,
    help=f"Exit {EXIT_FAIL_ON} when a town is stuck at the window's end ('stuck'), "
    "degraded or stuck ('degraded'), or a new violation episode is found that the diagnosis "
    "does not mark expected ('violations').",
)
@click.option(
    "--fail-on-violations",
    is_flag=True,
    help="Same as --fail-on violations.",
)
@click.option(
    "--diagnosis-config",
    "diagnosis_config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML or JSON file of finding thresholds (see docs/diagnosis.md); part of the "
    "incremental build's key.",
)
@click.option(
    "--base-url",
    help="Where the site is published (e.g. https://org.github.io/repo/runs/2026-03-16/): "
    "Sentry alerts then carry each episode's and finding's permalink.",
)
@click.option(
    "--permalink-base",
    metavar="URL",
    help="The published tree's URL (e.g. https://org.github.io/repo): the summary, the step "
    "summary and Sentry alerts link each new episode and finding at its stable permalink, "
    "URL/permalinks/episodes/<id>.html (written by `reportgen publish`).",
)
@click.option(
    "--ticks",
    "ticks",
    type=click.Choice(["auto", "recorded", "replay", "simulate"]),
    default="auto",
    show_default=True,
    help="Where each town's ticks come from: 'replay' re-runs the engine on every tick and "
    "compares it with the town's record; 'recorded' shows the record unchecked; 'auto' shows "
    "the record when it covers the window and the database is at the window's end, and "
    "replays otherwise (databases without a record, bundles, earlier windows). A database "
    "with no journal (an upstream dump) has no ticks: it shows its own history and a dry-run "
    "at the window's end, except with 'simulate', which adds ticks simulated on its stored "
    "(today's) state, labelled so (journaled towns are replayed).",
)
@click.option(
    "--artefact",
    metavar="NAME",
    help="The CI artefact the sources are published in (the nightly's bundles-<run>): each "
    "page's Reproduce command names the town's file in it and says where to get it "
    "(the run's page, from GITHUB_SERVER_URL, GITHUB_REPOSITORY and GITHUB_RUN_ID when set).",
)
@auto_recover_option
@quiet_option
@reports_errors
def build(
    sources: tuple[Path, ...],
    window_from: str | None,
    window_to: str | None,
    out: Path,
    force: bool,
    history: Path | None,
    single_file: Path | None,
    town: str | None,
    jobs: int | None,
    executor: str,
    scheduler: str | None,
    incremental: bool,
    fail_on: tuple[str, ...],
    fail_on_violations: bool,
    diagnosis_config: Path | None,
    base_url: str | None,
    permalink_base: str | None,
    ticks: str,
    artefact: str | None,
    auto_recover: tuple[int, ...],
) -> None:
    """Build the report site from town databases, bundles or folders of them (no SOURCE: the
    demo fleet, simulated once, then cached); every town gets a verdict and named findings.

    \b
    Example:
        reportgen build towns/ --out site --history site --fail-on stuck --fail-on violations
        reportgen build towns/ --executor dask --scheduler tcp://scheduler:8786
        reportgen build town.sqlite --single-file incident.html --from 2026-03-16T08:00:00Z --to 2026-03-16T09:00:00Z
    """
    from reportgen.observability.sentry import reporter_from_env
    from reportgen.report.build import build_site
    from reportgen.report.executors import make_executor

    loader = _loader(ticks, auto_recover, diagnosis_config, _names(sources, artefact))
    runner = make_executor(executor, jobs, scheduler)
    reporter = reporter_from_env() if single_file is None else None  # fail before the work
    paths = _paths(sources)
    if single_file is not None:
        _single_file(single_file, paths, sources, town, window_from, window_to, loader)
        return
    try:
        with progress_bar("build") as bar:
            summary = build_site(
                paths, out, window_from=window_from, window_to=window_to,
                history_path=history, progress=bar, executor=runner, incremental=incremental,
                load_run=loader, source_roots=sources, force=force,
            )  # fmt: skip
    except NothingBuiltError as exc:
        _report_nothing_built(exc)
        raise
    _report_built(summary, reporter, base_url, permalink_base)
    _exit(summary, (*fail_on, *(("violations",) if fail_on_violations else ())))


def _exit(summary: BuildSummary, fail_on: tuple[str, ...]) -> None:
    """Exit 4 when some towns failed (it takes precedence: their verdicts are unknown), else
    3 when ``--fail-on`` asks for it; return (exit 0) otherwise."""
    from reportgen.report.verdicts import fails

    if summary.towns_failed:
        sys.exit(EXIT_SOME_FAILED)
    if fails(fail_on, summary.verdicts, summary.new_unexpected):
        sys.exit(EXIT_FAIL_ON)


def _paths(sources: tuple[Path, ...]) -> list[Path]:
    """The town files to build: the sources given (folders expanded), else the demo fleet."""
    from reportgen.report.build import discover_sources
    from reportgen.report.site import cache_dir
    from reportgen.sim.demo import demo_sources

    if sources:
        return discover_sources(list(sources))
    with progress_bar("simulating the demo fleet"):
        return demo_sources(cache_dir())


def _names(sources: tuple[Path, ...], artefact: str | None) -> SourceNames:
    """How the pages name the sources: inside ``--artefact`` (with the CI run's page when
    GitHub Actions says which), under the cache for the demo fleet, else as given."""
    from reportgen.report.reproduce import SourceNames, run_url
    from reportgen.report.site import cache_dir

    return SourceNames(
        artefact=artefact or "",
        artefact_url=run_url(os.environ) if artefact else "",
        demo_cache="" if sources else str(cache_dir()),
    )


def _loader(
    ticks: str, auto_recover: tuple[int, ...], config_path: Path | None, names: SourceNames
) -> NamingLoader:
    """The town loader the build is handed: recorded or replayed ticks as ``--ticks`` says,
    with recovery or not, judged with the thresholds of ``--diagnosis-config`` (so every
    town gets a verdict and findings), its file named on the pages as ``names`` says."""
    from reportgen.diagnose.loader import DiagnosingLoader
    from reportgen.diagnose.registry import DEFAULT_CONFIG, load_config
    from reportgen.replay.loader import ReplayLoader
    from reportgen.report.reproduce import NamingLoader
    from reportgen.town.recovery import validate

    recover = validate(auto_recover) if auto_recover else None
    config = load_config(config_path) if config_path is not None else DEFAULT_CONFIG
    return NamingLoader(
        DiagnosingLoader(ReplayLoader(auto_recover=recover, ticks=ticks), config), names
    )


def _single_file(
    target: Path,
    paths: list[Path],
    sources: tuple[Path, ...],
    town: str | None,
    window_from: str | None,
    window_to: str | None,
    loader: NamingLoader,
) -> None:
    """``--single-file``: one town's window as one HTML file (never over a source)."""
    from reportgen.report.single_file import build_single_file

    check_single_file(target, [*paths, *sources])
    with progress_bar("build"):
        size = build_single_file(
            paths, target, town=town, window_from=window_from, window_to=window_to,
            load_run=loader,
        )  # fmt: skip
    click.echo(f"wrote {target} ({size / 1e6:.2f} MB)")


def _report_built(
    summary: BuildSummary,
    reporter: SentryReporter | None,
    base_url: str | None,
    permalink_base: str | None,
) -> None:
    """The build summary on stdout, the window and set-aside times on stderr, the Sentry
    alerts of new episodes and findings, and the step summary (new episodes and findings
    linked at their stable permalinks under ``permalink_base`` when it is given)."""
    summary.permalink_base = permalink_base or ""
    click.echo(summary.text())
    for source in dict.fromkeys(t["source"] for t in summary.ignored_times):
        echo_ignored_times([t for t in summary.ignored_times if t["source"] == source], source)
    info(summary.window_line())
    _alert(reporter, summary, base_url)
    _step_summary(summary.markdown())


def _alert(reporter: SentryReporter | None, summary: BuildSummary, base_url: str | None) -> None:
    """One Sentry event per new episode and per new critical finding, linked to its stable
    permalink under ``--permalink-base`` and to its page in this run under ``--base-url``
    (the permalink is the run's page when only ``--base-url`` is given)."""
    from reportgen.observability.sentry import report_new_episodes, report_new_findings
    from reportgen.report.permalinks import permalink_url
    from reportgen.report.verdicts import finding_href
    from reportgen.report.views_shared import violation_href

    def run_page(href: str) -> str | None:
        return f"{base_url.rstrip('/')}/{href}" if base_url else None

    def links(
        kind: str, href: Callable[[str], str]
    ) -> Callable[[str], tuple[str | None, str | None]]:
        base = summary.permalink_base
        if not base:
            return lambda i: (run_page(href(i)), None)
        return lambda i: (permalink_url(base, kind, i), run_page(href(i)))

    report_new_episodes(reporter, summary.new_episode_records, links("episodes", violation_href))
    report_new_findings(reporter, summary.new_finding_records, links("findings", finding_href))


def check_single_file(target: Path, sources: list[Path]) -> None:
    """``--single-file`` never is, contains or sits inside a source, and is never a directory."""
    from reportgen.report.site import check_apart

    check_apart("--single-file", target, sources)
    if target.is_dir():
        raise BadInputError(f"--single-file {target}: is a directory, not a file")


def _report_nothing_built(exc: NothingBuiltError) -> None:
    """List every failed town on stderr and in the step summary before the one-line error."""
    for source, why in exc.failures:
        click.echo(f"  failed: {source}: {why}", err=True)
    lines = ["## Reconciler report", "", f"Nothing built: {exc}", ""]
    _step_summary("\n".join(lines) + "\n")


def _step_summary(markdown: str) -> None:
    path = os.environ.get("GITHUB_STEP_SUMMARY")
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(markdown)
