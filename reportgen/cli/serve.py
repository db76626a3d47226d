"""``reportgen serve``: the debug HTTP API over a folder of towns."""

from __future__ import annotations

import ipaddress
import os

import click

from reportgen.cli.common import reports_errors
from reportgen.errors import BadInputError


def is_loopback(host: str) -> bool:
    """Whether ``host`` only listens on this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.argument("directory", type=click.Path(file_okay=False, exists=True))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to bind (0: any free port, logged at start).",
)
@click.option("--token", default=None, help="Bearer token (default: $REPORTGEN_TOKEN).")
@click.option(
    "--workers",
    type=click.IntRange(1, 256),
    default=None,
    help="Worker processes for replay, dry-run and status. Default: the usable cores.",
)
@click.option(
    "--queue",
    type=click.IntRange(0, 10_000),
    default=None,
    help="Requests that may wait for a worker before more get 503. Default: 4 per worker.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(0.1, 3600),
    default=30.0,
    show_default=True,
    help="Seconds a request may take, waiting included; then it answers 503/504 and stops.",
)
@reports_errors
def serve_command(
    directory: str,
    host: str,
    port: int,
    token: str | None,
    workers: int | None,
    queue: int | None,
    timeout: float,
) -> None:
    """Serve the debug API (replay-events, dry-run, status) for the towns in DIRECTORY.

    Exits 6 if it cannot start (e.g. the port is in use).

    \b
    Examples:
        reportgen serve towns/
        reportgen serve towns/ --port 0 --workers 2 --timeout 10
        REPORTGEN_TOKEN=secret reportgen serve towns/ --host 0.0.0.0
    """
    token = token or os.environ.get("REPORTGEN_TOKEN") or None
    if not is_loopback(host) and not token:
        raise BadInputError(
            f"--host {host} is not a loopback address: refusing to serve without a token "
            "(pass --token or set REPORTGEN_TOKEN)"
        )
    from reportgen.server import serve
    from reportgen.server_pool import Limits, usable_cores

    limits = Limits(workers or usable_cores(), -1 if queue is None else queue, timeout)
    serve(directory, host, port, token, limits)
