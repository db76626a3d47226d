"""``reportgen dashboard``: add the Reconciler row to a Grafana dashboard, or check one."""

from __future__ import annotations

from pathlib import Path

import click

from reportgen.errors import ReportgenError
from reportgen.observability.grafana import (
    check_dashboard_file,
    is_warning,
    update_dashboard_file,
)

_PATH = click.Path(dir_okay=False, path_type=Path)


@click.command("dashboard")
@click.option("--in", "in_path", type=_PATH, help="Grafana dashboard JSON to read.")
@click.option("--out", "out_path", type=_PATH, help="Where to write the updated dashboard.")
@click.option(
    "--alerts",
    "alerts_path",
    type=_PATH,
    help="Also write Grafana unified-alerting provisioning (YAML) for the row.",
)
@click.option(
    "--check",
    "check_path",
    type=_PATH,
    help="Only validate this dashboard: print one problem per line, exit 1 if any.",
)
@click.option(
    "--strict", is_flag=True, help="With --check: warnings (non-null base steps) fail too."
)
def dashboard(
    in_path: Path | None,
    out_path: Path | None,
    alerts_path: Path | None,
    check_path: Path | None,
    strict: bool,
) -> None:
    """Add a "Reconciler" row (six panels and a `town` variable) to a dashboard.

    Re-running replaces only the row's own panels, so the output of a second
    run is byte-identical. With --check FILE, validate a dashboard instead.

    \b
    Examples:
        reportgen dashboard --in gastown.json --out gastown.json --alerts alerts.yaml
        reportgen dashboard --check gastown.json
        reportgen dashboard --check gastown.json --strict
    """
    if check_path is not None:
        if in_path or out_path or alerts_path:
            raise click.UsageError("--check cannot be combined with --in, --out or --alerts")
    elif in_path is None or out_path is None:
        raise click.UsageError("give --in DASHBOARD.json and --out DASHBOARD.json, or --check FILE")
    try:
        if check_path is not None:
            problems = check_dashboard_file(check_path)
        else:
            assert in_path is not None and out_path is not None
            update_dashboard_file(in_path, out_path, alerts_path)
            return
    except ReportgenError as err:
        click.echo(f"error: {err}", err=True)
        raise SystemExit(err.exit_code) from None
    for problem in problems:
        click.echo(problem)
    failing = [p for p in problems if strict or not is_warning(p)]
    if failing:
        click.echo(f"{check_path}: {len(failing)} problem(s)", err=True)
        raise SystemExit(1)
    warnings = len(problems)
    click.echo(f"{check_path}: ok" + (f" ({warnings} warning(s))" if warnings else ""))
