"""Run ``reportgen`` with its stderr on a real pseudo-terminal, to see what a person sees.

The command runs as a subprocess (``python -m reportgen``) whose stderr is the
slave side of ``os.openpty()``, so ``isatty()`` is true for it exactly as in a
terminal; stdout goes to a file. Everything written to the terminal is read
from the master side until the command exits.
"""

from __future__ import annotations

import errno
import fcntl
import os
import select
import struct
import subprocess
import sys
import tempfile
import termios
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class TerminalRun:
    """What one command did: its exit code, its stdout, and what reached the terminal."""

    returncode: int
    stdout: str
    terminal: str


def run_on_terminal(
    args: Sequence[str], *, cwd: Path, columns: int = 100, timeout: float = 120
) -> TerminalRun:
    """``python -m reportgen ARGS`` with stderr on a pseudo-terminal ``columns`` wide."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
    env = {**os.environ, "SENTRY_DSN": "", "COLUMNS": str(columns)}
    with tempfile.TemporaryFile() as out:
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "reportgen", *args],
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=slave,
            )
        finally:
            os.close(slave)
        try:
            seen = _read_until_closed(master, timeout)
            code = proc.wait(timeout=timeout)
        finally:
            proc.kill()
            os.close(master)
        out.seek(0)
        stdout = out.read().decode("utf-8")
    return TerminalRun(code, stdout, seen.decode("utf-8", "replace"))


def run_with_pipes(args: Sequence[str], *, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The same command with stderr a pipe (as in CI or ``2>file``)."""
    return subprocess.run(
        [sys.executable, "-m", "reportgen", *args],
        cwd=cwd,
        env={**os.environ, "SENTRY_DSN": ""},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _read_until_closed(master: int, timeout: float) -> bytes:
    """Everything written to the terminal until every writer has closed it."""
    chunks: list[bytes] = []
    while True:
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            raise TimeoutError(f"the command wrote nothing to its terminal for {timeout} s")
        try:
            chunk = os.read(master, 65536)
        except OSError as exc:
            if exc.errno == errno.EIO:  # Linux: the slave side is closed, the command is done
                break
            raise
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)
