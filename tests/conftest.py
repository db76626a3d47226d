"""Shared pytest setup: make the test support package (``tests/support/``) importable."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def scenario_towns(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every named scenario simulated once per session (see ``support/scenario_towns.py``)."""
    from support.scenario_towns import simulate_all

    return simulate_all(tmp_path_factory.mktemp("scenarios"))
