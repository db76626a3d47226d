"""Running ``scripts/nightly.sh`` as the workflow does, for the nightly tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "scripts" / "nightly.sh"
BIN = Path(sys.executable).parent


def memo_reportgen(folder: Path) -> Path:
    """An executable ``reportgen`` that replays ``export`` and ``build --single-file`` for inputs
    it has seen (``memo_reportgen.py``): long nightly tests stay quick."""
    wrapper = folder / "reportgen-memo"
    script = Path(__file__).with_name("memo_reportgen.py")
    memo = folder / "memo"
    wrapper.write_text(
        f'#!/bin/sh\nexec "{sys.executable}" "{script}" "{BIN / "reportgen"}" "{memo}" "$@"\n',
        encoding="utf-8",
    )
    wrapper.chmod(0o755)
    return wrapper


def run_nightly(work: Path, expect: int = 0, **env: str) -> dict[str, str]:
    """Run scripts/nightly.sh in ``work`` as the workflow does; return its outputs.

    The step summary goes to ``work/summary.md`` (emptied first), the outputs
    to ``work/outputs.txt``; Sentry is off and the demo fleet is built unless
    ``env`` says otherwise.
    """
    outputs, summary = work / "outputs.txt", work / "summary.md"
    outputs.write_text("", encoding="utf-8")
    summary.write_text("", encoding="utf-8")
    full = {
        **os.environ,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "REPORTGEN": str(BIN / "reportgen"),
        "PYTHON": sys.executable,
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(summary),
        "SENTRY_DSN": "",
        "REPORTGEN_TOWNS": "",
        **env,
    }
    result = subprocess.run(
        ["bash", str(SCRIPT)],
        cwd=work,
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == expect, f"nightly.sh:\n{result.stdout}\n{result.stderr}"
    return dict(line.split("=", 1) for line in outputs.read_text(encoding="utf-8").splitlines())
