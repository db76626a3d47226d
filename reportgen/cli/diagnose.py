"""``reportgen diagnose``: a town's verdict and its findings, worst first.

Parses the options, calls :func:`reportgen.diagnose.diagnose` and prints
the result; ``--fail-on`` turns a bad verdict into exit code 3 (after the
report is printed), so a script or CI step can stop on a stuck town.
"""

from __future__ import annotations

import sys

import click

from reportgen.cli.common import json_text, reports_errors
from reportgen.cli.progress import progress_bar, quiet_option

#: ``--fail-on`` value → the verdicts that fail.
FAILING = {"stuck": ("stuck",), "degraded": ("stuck", "degraded")}
EXIT_FAILED = 3


@click.command("diagnose")
@click.option(
    "--db", required=True, type=click.Path(dir_okay=False), help="Town database or bundle."
)
@click.option(
    "--from",
    "start",
    help="Window start, ISO-8601 UTC (e.g. 2026-03-16T08:00:00Z). Default: 24 h before the window end.",
)
@click.option(
    "--to",
    "end",
    help="Window end and the time ages are measured from, ISO-8601 UTC (e.g. "
    "2026-03-16T10:30:00Z), even past the file's data. "
    "Default: the newest time in the file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the diagnosis as JSON.")
@click.option(
    "--fail-on",
    type=click.Choice(sorted(FAILING)),
    help="Exit 3 when the verdict is this bad or worse.",
)
@click.option(
    "--diagnosis-config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="TOML or JSON file of threshold overrides (see docs/diagnosis.md).",
)
@quiet_option
@reports_errors
def diagnose_command(
    db: str,
    start: str | None,
    end: str | None,
    as_json: bool,
    fail_on: str | None,
    config_path: str | None,
) -> None:
    """Give a town a verdict (stuck, degraded, healthy) and name what is wrong.

    Judges the window's ticks (recorded, or replayed from the journal) and the
    state at its end; a database without a journal is judged on its tables as
    stored, and the kinds that need ticks are listed as not judged.

    \b
    Examples:
        reportgen diagnose --db town.sqlite
        reportgen diagnose --db dump.sqlite --to 2026-03-16T10:30:00Z --json
        reportgen diagnose --db town.sqlite --fail-on stuck --diagnosis-config thresholds.toml
    """
    from reportgen.diagnose import diagnose, load_config

    config = load_config(config_path) if config_path is not None else None
    with progress_bar("diagnose"):
        result = diagnose(db, start, end, config)
    click.echo(json_text(result.to_json()) if as_json else result.text())
    if fail_on is not None and str(result.verdict) in FAILING[fail_on]:
        sys.exit(EXIT_FAILED)
