"""``reportgen publish PAGES_DIR``: retention and stable permalinks of a published tree."""

from __future__ import annotations

from pathlib import Path

import click

from reportgen.cli.common import reports_errors
from reportgen.report.publish import FULL_RUNS, KEEP_RUNS


@click.command("publish")
@click.argument("pages_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--full-runs",
    type=click.IntRange(min=1),
    default=FULL_RUNS,
    show_default=True,
    help="Newest runs kept whole; older ones are thinned to their index, episode and "
    "finding pages.",
)
@click.option(
    "--keep-runs",
    type=click.IntRange(min=1),
    default=KEEP_RUNS,
    show_default=True,
    help="Runs kept in all (full and thinned); older ones are deleted.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Let permalinks/ replace a directory that reportgen did not write.",
)
@reports_errors
def publish_command(pages_dir: Path, full_runs: int, keep_runs: int, force: bool) -> None:
    """Thin and prune the dated runs of a published tree (PAGES_DIR/runs/<run>/) and write
    its stable permalinks: PAGES_DIR/permalinks/episodes/<id>.html and
    permalinks/findings/<id>.html, never removed, each showing the latest state of its
    episode or finding and linking to every kept run that showed it.

    \b
    Examples:
        reportgen publish pages
        reportgen publish pages --full-runs 4 --keep-runs 90
        reportgen build towns/ --out pages/runs/2026-03-16 --history pages/history.jsonl && reportgen publish pages
    """
    from reportgen.report.publish import publish

    done = publish(pages_dir, full_runs=full_runs, keep_runs=keep_runs, force=force)
    for name in done.foreign:
        click.echo(
            f"warning: {pages_dir}/runs/{name}: not written by reportgen, left as is", err=True
        )
    click.echo(
        f"{pages_dir}: {len(done.runs)} run(s) kept ({len(done.thinned)} thinned now, "
        f"{len(done.deleted)} deleted); permalinks: {done.episodes} episode(s), "
        f"{done.findings} finding(s), {done.files} files"
    )
