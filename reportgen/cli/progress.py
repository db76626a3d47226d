"""The progress bar and ``--quiet``, the same for every command that builds, simulates or replays.

The bar is drawn on stderr, and only when stderr is a terminal: a pipe, a
file or a CI log never gets one (nor its carriage returns), and ``--quiet``
turns it off. It follows what the library reports (:mod:`reportgen.progress`:
journal rows re-run, simulated time, towns built) and is erased when the work
ends, so the lines printed after it start clean.

``--quiet`` also silences the informational lines on stderr (:func:`info`:
the window or ``now`` a command used and why, the window of a build). What
stays is what must never be missed: ``warning: …`` lines (timestamps set
aside, quarantined events), ``error: …`` lines and the towns that failed.
Standard output, exit codes and the files written are the same with or
without it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO, TypeVar

import click

from reportgen.progress import Listener, listening

F = TypeVar("F", bound=Callable[..., Any])

#: Where ``--quiet`` is kept for the running command (``click.Context.meta``).
QUIET = "reportgen.quiet"
#: Columns of the bar itself.
BAR_WIDTH = 24
#: The terminal's width when it does not say (a new pseudo-terminal reports 0).
DEFAULT_COLUMNS = 80


def quiet_option(func: F) -> F:
    """``-q``/``--quiet``: no progress bar and no informational lines on stderr."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        ctx.meta[QUIET] = value
        return value

    return click.option(
        "-q",
        "--quiet",
        is_flag=True,
        expose_value=False,
        callback=remember,
        help="No progress bar and no informational lines on stderr; warnings and errors "
        "still print.",
    )(func)


def is_quiet() -> bool:
    """Whether the running command was given ``--quiet`` (``False`` outside a command)."""
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.meta.get(QUIET))


def info(message: str) -> None:
    """An informational line on stderr (the window used, and why), unless ``--quiet``."""
    if not is_quiet():
        click.echo(message, err=True)


class Bar:
    """One line on a terminal, redrawn in place as ``(done, total, label)`` reports come in.

    It redraws only when the percentage moves (a replay reports every journal row), and
    never writes past the terminal's width, which would wrap and scroll.
    """

    def __init__(self, title: str, stream: TextIO) -> None:
        self.title = title
        self.stream = stream
        self.shown: int | None = None

    def __call__(self, done: int, total: int, label: str = "") -> None:
        percent = 100 * min(max(done, 0), total) // total if total > 0 else 0
        if percent == self.shown:
            return  # the same bar: a new label alone waits for the next percent
        filled = BAR_WIDTH * percent // 100
        line = f"{self.title} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {percent:3d}%"
        if label:
            line += f"  {label}"
        self.stream.write("\r\x1b[2K" + line[: self.columns() - 1])
        self.stream.flush()
        self.shown = percent

    def columns(self) -> int:
        try:
            columns = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError):
            return DEFAULT_COLUMNS
        return columns if columns > 0 else DEFAULT_COLUMNS

    def close(self) -> None:
        """Erase the bar, leaving the cursor at the start of an empty line."""
        if self.shown is not None:
            self.stream.write("\r\x1b[2K")
            self.stream.flush()


def make_bar(title: str) -> Bar | None:
    """A bar on stderr, or ``None`` when stderr is not a terminal or ``--quiet`` was given."""
    stream = sys.stderr
    if is_quiet() or not stream.isatty():
        return None
    return Bar(title, stream)


@contextmanager
def progress_bar(title: str) -> Iterator[Listener | None]:
    """Show the library's progress under ``title`` while the block runs (see the module
    docstring for when); yields the bar, to hand to a library call that takes a callback."""
    bar = make_bar(title)
    if bar is not None:
        bar(0, 1)
    try:
        with listening(bar):
            yield bar
    finally:
        if bar is not None:
            bar.close()
