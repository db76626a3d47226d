"""Where the tests find upstream's data: ``tests/fixtures/``, inside the repository.

A clone must be able to run the whole suite with nothing beside it, so every
fixture lives in the repository and a missing one is an error, never a skip:
these helpers raise when a file or the golden set is absent, which turns a
parametrisation over it into a collection error instead of an empty (and
silently skipped) group.
"""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
GOLDEN = FIXTURES / "upstream-golden"
GRAFANA = FIXTURES / "grafana"
#: The three files each golden scenario is made of (upstream-golden/README.md).
SCENARIO_SUFFIXES = (".sqlite", ".json", ".tick.json")


class MissingFixtureError(RuntimeError):
    """A fixture the tests need is not in ``tests/fixtures/``."""


def fixture_file(path: Path) -> Path:
    """``path`` itself, after checking it is a file (a clear error names it otherwise)."""
    if not path.is_file():
        raise MissingFixtureError(f"{path}: fixture missing (tests/fixtures/ is part of the repo)")
    return path


def scenario_names(directory: Path = GOLDEN) -> list[str]:
    """The golden scenarios in ``directory``, sorted; raises when there are none.

    Each scenario must have all three of its files, so a half-copied set
    fails here rather than as a confusing error in one test.
    """
    if not directory.is_dir():
        raise MissingFixtureError(f"{directory}: golden scenario directory missing")
    stems = {p.name.removesuffix(".tick.json") for p in directory.glob("*.tick.json")}
    stems |= {p.stem for p in directory.glob("*.sqlite")}
    stems |= {p.stem for p in directory.glob("*.json") if not p.name.endswith(".tick.json")}
    names = sorted(stems)
    if not names:
        raise MissingFixtureError(f"{directory}: no golden scenarios found")
    for name in names:
        for suffix in SCENARIO_SUFFIXES:
            fixture_file(directory / f"{name}{suffix}")
    return names
