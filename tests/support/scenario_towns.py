"""The named scenarios simulated once per test session, shared by the tests that read them.

``tests/test_scenarios.py`` checks what each scenario's docstring documents
and ``tests/test_diagnose_scenarios.py`` what a diagnosis says of it; both
read the same databases (the ``scenario_towns`` fixture in ``conftest.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

from reportgen.sim import SCENARIOS, simulate_town

#: The seed the scenarios run with; set ``REPORTGEN_SIM_SEED`` to check another.
SEED = int(os.environ.get("REPORTGEN_SIM_SEED", "0"))
#: Shorter than the scenario's default where the documented outcome allows it.
HOURS = {"healthy-day": 4.0}


def simulate_all(out: Path) -> dict[str, Path]:
    """Every scenario, seed :data:`SEED`, written to ``out``."""
    paths: dict[str, Path] = {}
    for name in sorted(SCENARIOS):
        result = simulate_town(name, seed=SEED, hours=HOURS.get(name), out_dir=out)
        assert result.path is not None
        paths[name] = result.path
    return paths
