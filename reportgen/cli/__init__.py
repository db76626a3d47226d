"""The ``reportgen`` command line: parse options, call one library function, map errors.

One module per command (``build``, ``dashboard``, ``diagnose``, ``dry_run``,
``export``, ``replay``, ``serve``, ``simulate``); ``common`` holds what they
share (error reporting and exit codes, common options, output helpers) and
``main`` the group that lists them. Nothing outside this package imports it.
"""

from __future__ import annotations

from reportgen.cli.main import main

__all__ = ["main"]
