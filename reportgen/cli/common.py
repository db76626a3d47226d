"""What every command shares: error reporting, exit codes, common options, output helpers.

Exit codes (see README): 0 ok, 1 error, 2 bad input (also an output that would
overwrite a source or a directory reportgen did not write), 3 new violations
under ``--fail-on-violations`` or a verdict under ``--fail-on``, 4 partial
failure of a fleet build, 5 nothing built (every town of a fleet failed; the
previous site is kept), 6 ``serve`` could not start (e.g. its port is in use).
"""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from reportgen.cli.progress import info
from reportgen.errors import BadInputError, ReportgenError
from reportgen.town.db import is_input_error, stray_message

if TYPE_CHECKING:
    from reportgen.replay.source import ChosenWindow

F = TypeVar("F", bound=Callable[..., Any])

#: Exit codes, one place (README and docs/design.md list them too). Library errors carry
#: theirs (:attr:`ReportgenError.exit_code`); these are the ones commands choose.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_FAIL_ON = 3
EXIT_SOME_FAILED = 4
EXIT_NOTHING_BUILT = 5
EXIT_CANNOT_START = 6

#: ``--db`` and similar: a file path (the library says what is wrong with it).
DB_PATH = click.Path(dir_okay=False)


def reports_errors(func: F) -> F:
    """Turn a :class:`ReportgenError` into ``error: <message>`` on stderr and its exit code.

    The last line of defence: a SQLite error that no library code turned into
    a named error is still bad input (a damaged or changing database), so it
    becomes one line naming the command's input files and exit 2, never a
    traceback.
    """

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ReportgenError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except sqlite3.DatabaseError as exc:
            if not is_input_error(exc):
                raise
            click.echo(f"error: {stray_message(_inputs(kwargs), exc)}", err=True)
            sys.exit(BadInputError.exit_code)

    return wrapper  # type: ignore[return-value]


def _inputs(options: dict[str, Any]) -> str:
    """The input files a command was given (``--db``, the sources of ``build``)."""
    files = [options.get("db"), *options.get("sources", ()), options.get("history")]
    return ", ".join(str(f) for f in files if f) or "the input database"


def auto_recover_option(func: F) -> F:
    """``--auto-recover N`` (repeatable): correct invariant N when it fires (opt-in)."""
    return click.option(
        "--auto-recover",
        type=int,
        multiple=True,
        metavar="N",
        help="Auto-recover invariant N when it fires (supported: 7). Off by default.",
    )(func)


def load_json_file(path: str | None, option: str) -> Any:
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


#: Set-aside timestamps listed one by one on stderr; the rest are counted.
MAX_TIME_WARNINGS = 20


def echo_ignored_times(times: Sequence[Mapping[str, str]], where: str) -> None:
    """A warning on stderr per stored timestamp set aside as implausible (table, key, column,
    value), so that a default taken from the data never hides what it left out."""
    for t in times[:MAX_TIME_WARNINGS]:
        click.echo(
            f"warning: {where}: ignored implausible timestamp {t['value']!r} "
            f"(table {t['table']}, key {t['key']}, column {t['column']}): "
            "more than 24 h after the next newest",
            err=True,
        )
    if len(times) > MAX_TIME_WARNINGS:
        click.echo(
            f"warning: {where}: … and {len(times) - MAX_TIME_WARNINGS} more implausible "
            "timestamp(s) ignored",
            err=True,
        )


def echo_chosen(kind: str, chosen: ChosenWindow, where: str) -> None:
    """``now T (why)`` or ``window A .. B (why)`` on stderr (not with ``--quiet``), after
    the warnings of the timestamps set aside (always)."""
    echo_ignored_times([asdict(t) for t in chosen.dropped], where)
    span = chosen.end if kind == "now" else f"{chosen.start} .. {chosen.end}"
    info(f"{kind} {span} ({chosen.reason})")


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
