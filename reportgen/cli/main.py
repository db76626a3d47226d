"""The ``reportgen`` group: every command, listed once."""

from __future__ import annotations

import click

from reportgen import __version__
from reportgen.cli.build import build
from reportgen.cli.dashboard import dashboard
from reportgen.cli.diagnose import diagnose_command
from reportgen.cli.dry_run import dry_run_command
from reportgen.cli.export import export_command
from reportgen.cli.publish import publish_command
from reportgen.cli.replay import replay_command
from reportgen.cli.serve import serve_command
from reportgen.cli.simulate import simulate

COMMANDS: tuple[click.Command, ...] = (
    build,
    dashboard,
    diagnose_command,
    dry_run_command,
    export_command,
    publish_command,
    replay_command,
    serve_command,
    simulate,
)


@click.group()
@click.version_option(__version__, prog_name="reportgen")
def main() -> None:
    """Reports of what the Gastown town reconciler saw, decided, and where it went wrong."""


for _command in COMMANDS:
    main.add_command(_command)
