"""``reportgen dry-run``: what the next tick would do, and what is wrong with the town now."""

from __future__ import annotations

import click

from reportgen.cli.common import (
    DB_PATH,
    echo_chosen,
    format_actions_table,
    json_text,
    load_json_file,
    reports_errors,
)
from reportgen.cli.progress import progress_bar, quiet_option


@click.command("dry-run")
@click.option("--db", "db", required=True, type=DB_PATH, help="Town database.")
@click.option(
    "--now",
    help="Clock for the tick, ISO-8601 UTC (e.g. 2026-03-16T08:00:00Z). Default: the newest plausible "
    "timestamp in the database.",
)
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Raw upstream town config JSON ({} = legacy town); overrides the stored one.",
)
@click.option("--draining/--no-draining", default=None, help="Override the stored draining flag.")
@click.option("--json", "as_json", is_flag=True, help="Print upstream's JSON response.")
@quiet_option
@reports_errors
def dry_run_command(
    db: str, now: str | None, config_path: str | None, draining: bool | None, as_json: bool
) -> None:
    """Drain pending events and reconcile once, read-only: what would the next tick do?

    Then lists what is wrong with the town's state now (the diagnosis's state kinds).

    \b
    Examples:
        reportgen dry-run --db town.sqlite
        reportgen dry-run --db town.sqlite --now 2026-03-16T08:00:00Z --json
        reportgen dry-run --db town.sqlite --config '{}' --draining
    """
    from reportgen.replay.commands import dry_run_report

    with progress_bar("dry-run"):
        report = dry_run_report(db, now=now, config=load_json_file(config_path, "--config"),
                                draining=draining)  # fmt: skip
    echo_chosen("now", report.now, db)
    if report.noncanonical:
        click.echo(
            f"warning: {db}: drained {len(report.noncanonical)} pending event(s) whose "
            "created_at is not a canonical ISO-8601 UTC time, in upstream's order (by its "
            f"text): {', '.join(report.noncanonical)}",
            err=True,
        )
    result = report.response
    if as_json:
        click.echo(json_text(result))
        return
    click.echo(format_actions_table(result["actions"]))
    m = result["metrics"]
    click.echo(
        f"\n{m['actionsEmitted']} action(s); {m['eventsDrained']} event(s) drained; "
        f"{m['pendingEventCount']} pending after the drain"
    )
    from reportgen.diagnose import diagnose_state

    click.echo("\n" + diagnose_state(db, now=now).state_text())
