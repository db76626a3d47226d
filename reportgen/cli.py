"""The ``reportgen`` command line: parse options, call one library function, map errors.

Exit codes (see README): 0 ok, 1 error, 2 bad input, 3 new violations under
``--fail-on-violations``, 4 partial failure of a fleet build, 6 ``serve``
could not start (e.g. its port is in use).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from reportgen import __version__
from reportgen.errors import BadInputError, ReportgenError

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(func: F) -> F:
    """Turn a :class:`ReportgenError` into ``error: <message>`` on stderr and its exit code."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ReportgenError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper  # type: ignore[return-value]


def auto_recover_option(func: F) -> F:
    """``--auto-recover N`` (repeatable): correct invariant N when it fires (opt-in)."""
    return click.option(
        "--auto-recover",
        type=int,
        multiple=True,
        metavar="N",
        help="Auto-recover invariant N when it fires (supported: 7). Off by default.",
    )(func)


def memory_db() -> sqlite3.Connection:
    """A scratch in-memory database (e.g. for live episode tracking across towns)."""
    return sqlite3.connect(":memory:")


def _load_json_file(path: str | None, option: str) -> Any:
    if path is None:
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise BadInputError(f"{option} {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise BadInputError(f"{option} {path}: not valid JSON ({exc})") from exc


def json_text(value: Any) -> str:
    """JSON for ``--json`` output: indented for people, UTF-8 kept as is."""
    return json.dumps(value, indent=2, ensure_ascii=False)


@click.group()
@click.version_option(__version__, prog_name="reportgen")
def main() -> None:
    """Reports of what the Gastown town reconciler saw, decided, and where it went wrong."""


@main.command("dry-run")
@click.option("--db", "db", required=True, type=click.Path(dir_okay=False), help="Town database.")
@click.option("--now", help="Clock for the tick (ISO). Default: newest timestamp in the database.")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Raw upstream town config JSON ({} = legacy town); overrides the stored one.",
)
@click.option("--draining/--no-draining", default=None, help="Override the stored draining flag.")
@click.option("--json", "as_json", is_flag=True, help="Print upstream's JSON response.")
@reports_errors
def dry_run_command(
    db: str, now: str | None, config_path: str | None, draining: bool | None, as_json: bool
) -> None:
    """Drain pending events and reconcile once, read-only: what would the next tick do?"""
    from reportgen.replay import dry_run

    result = dry_run(db, now=now, config=_load_json_file(config_path, "--config"),
                     draining=draining)  # fmt: skip
    if as_json:
        click.echo(json_text(result))
        return
    click.echo(format_actions_table(result["actions"]))
    m = result["metrics"]
    click.echo(
        f"\n{m['actionsEmitted']} action(s); {m['eventsDrained']} event(s) drained; "
        f"{m['pendingEventCount']} pending after the drain"
    )


def format_actions_table(actions: list[dict[str, Any]]) -> str:
    """A readable table: one action per line, type first, then its fields."""
    if not actions:
        return "(no actions)"
    width = max(len(a["type"]) for a in actions)
    lines = []
    for a in actions:
        fields = ", ".join(f"{k}={v!r}" for k, v in a.items() if k != "type")
        lines.append(f"{a['type']:<{width}}  {fields}")
    return "\n".join(lines)


def _register_optional_commands() -> None:
    """Commands that live beside their library modules."""
    from reportgen.observability.cli_dashboard import dashboard

    main.add_command(dashboard)
    from reportgen.cli_simulate import simulate

    main.add_command(simulate)
    from reportgen.cli_replay import export_command, replay_command, serve_command

    for command in (export_command, replay_command, serve_command):
        main.add_command(command)
    from reportgen.cli_build import build

    main.add_command(build)


_register_optional_commands()
