"""``reportgen export``: a window of a town as one reproducible bundle file."""

from __future__ import annotations

import click

from reportgen.cli.common import DB_PATH, echo_chosen, reports_errors
from reportgen.cli.progress import progress_bar, quiet_option


@click.command("export")
@click.option("--db", required=True, type=DB_PATH, help="Town database (or bundle) to read.")
@click.option(
    "--from", "start", required=True, help="Window start, ISO-8601 UTC (e.g. 2026-03-16T08:00:00Z)."
)
@click.option(
    "--to", "end", required=True, help="Window end, ISO-8601 UTC (e.g. 2026-03-16T09:00:00Z)."
)
@click.option("--out", required=True, type=DB_PATH, help="Bundle file to write (SQLite).")
@quiet_option
@reports_errors
def export_command(db: str, start: str, end: str, out: str) -> None:
    """Write a self-contained, reproducible bundle of a window of a town.

    The same source and window always give the same bytes; every command
    opens the bundle like a town database.

    \b
    Examples:
        reportgen export --db town.sqlite --from 2026-03-16T08:00:00Z --to 2026-03-16T09:00:00Z --out incident.sqlite
        reportgen replay --db incident.sqlite --from 2026-03-16T08:00:00Z --to 2026-03-16T09:00:00Z --ticks
    """
    from reportgen.replay.export import export
    from reportgen.replay.source import given_window

    with progress_bar("export"):
        manifest = export(db, start, end, out)
    echo_chosen("window", given_window(start, end), db)
    for q in manifest["quarantined"]:
        click.echo(f"warning: {db}: quarantined event {q['event_id']}: {q['reason']}", err=True)
    counts = manifest["counts"]
    click.echo(
        f"{out}: {manifest['fidelity']} bundle of {manifest['town_id'] or '(no town id)'} "
        f"{manifest['from']} .. {manifest['to']} (base {manifest['base_at'] or 'empty town'}; "
        f"{counts['journal']} journal rows, {counts['ticks']} recorded ticks, "
        f"{counts['window_events']} events)"
    )
