"""Simulated towns: the real engine driven by simulated users, agents, container and GitHub.

``simulate`` writes one database per town; ``demo_fleet`` builds the small
fleet the README's demo uses; ``SCENARIOS`` lists the named scenarios.
"""

from __future__ import annotations

from reportgen.sim.demo import DEMO_FLEET, demo_fleet
from reportgen.sim.event_loop import SimResult, Simulation, town_id_for
from reportgen.sim.scenario_files import simulate, simulate_town
from reportgen.sim.scenarios import SCENARIOS, Scenario, get_scenario

__all__ = [
    "DEMO_FLEET",
    "SCENARIOS",
    "Scenario",
    "SimResult",
    "Simulation",
    "demo_fleet",
    "get_scenario",
    "simulate",
    "simulate_town",
    "town_id_for",
]
