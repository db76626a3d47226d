"""``reportgen`` for long nightly tests: ``export`` and ``build --single-file`` replayed from a memo.

Both commands are deterministic (the same input file and arguments give the
same bytes; tests/test_export.py and the single-file tests check it), so
when a night repeats one with an input it has already seen, this wrapper
copies the file the real command wrote then instead of running it again.
Everything else, and every first time, runs the real command.
Usage: ``memo_reportgen.py REAL_REPORTGEN MEMO_DIR ARGS...``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path


def _after(args: list[str], option: str) -> str:
    return args[args.index(option) + 1] if option in args else ""


def _memo(args: list[str]) -> tuple[str, str] | None:
    """``(input file, output file)`` of a command worth remembering, else None."""
    if args[:1] == ["export"]:
        return _after(args, "--db"), _after(args, "--out")
    if args[:1] == ["build"] and "--single-file" in args and len(args) > 1:
        return args[1], _after(args, "--single-file")
    return None


def main(real: str, memo_dir: Path, args: list[str]) -> int:
    found = _memo(args)
    if found is None or not Path(found[0]).is_file():
        return subprocess.run([real, *args], check=False).returncode
    source, out = found
    key = hashlib.sha256("\0".join(args).encode() + Path(source).read_bytes()).hexdigest()
    memo = memo_dir / key
    if memo.is_file():
        shutil.copyfile(memo, out)
        return 0
    code = subprocess.run([real, *args], check=False).returncode
    if code == 0:
        memo_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(out, memo)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3:]))
