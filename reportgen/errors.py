"""Errors a user can act on.

Library code raises these; only the CLI prints them and chooses an exit code
(see ``reportgen.cli``). Every message names the file, row or field at fault.
"""

from __future__ import annotations

from collections.abc import Sequence


class ReportgenError(Exception):
    """Base class: something went wrong that the user can fix or should know."""

    exit_code = 1


class BadInputError(ReportgenError):
    """The input (a file, a window, an option) is unusable as given."""

    exit_code = 2


class NotATownDatabaseError(BadInputError):
    """The file is missing, is not SQLite, or lacks the upstream town tables."""


class BadWindowError(BadInputError):
    """A time window is unparseable, reversed, or outside the data."""


class NothingBuiltError(ReportgenError):
    """Every town of a build failed: the previous output is kept as it was.

    ``failures`` holds ``(source, reason)`` for each town, for the CLI to list.
    """

    exit_code = 5

    def __init__(self, message: str, failures: Sequence[tuple[str, str]] = ()) -> None:
        super().__init__(message)
        self.failures = list(failures)


class UnreadableDatabaseError(BadInputError):
    """A SQLite file that cannot be read as it is: damaged, locked, or mid-write."""


class BadRowError(BadInputError):
    """A stored value cannot be decoded (bad JSON, compression, NULL): names file, row, field."""
