"""``reportgen simulate``: build town databases from a named scenario.

Kept beside the main CLI so the simulator's options live with it; the main
group registers :data:`simulate` in ``_register_optional_commands``.
"""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import click

from reportgen.cli.common import auto_recover_option, reports_errors
from reportgen.cli.progress import progress_bar, quiet_option
from reportgen.errors import BadInputError
from reportgen.sim.event_loop import SimResult
from reportgen.sim.scenarios import SCENARIOS


def format_result(result: SimResult) -> str:
    """One summary line per town: ids, size of the run, decisions, violations, container noise."""
    violations = ", ".join(f"#{n}×{c}" for n, c in sorted(result.violations.items())) or "none"
    name = result.path.name if result.path is not None else result.town_id
    return (
        f"{name}  scenario={result.scenario}  ticks={result.ticks}  "
        f"actions={sum(result.actions.values())}  violations={violations}  "
        f"container: {result.observed} observed / {result.inserted} events inserted "
        f"(filter {result.filter_mode})"
    )


def format_list() -> str:
    width = max(len(name) for name in SCENARIOS)
    return "\n".join(f"{name:<{width}}  {SCENARIOS[name].summary}" for name in sorted(SCENARIOS))


@click.command("simulate")
@click.option("--scenario", help="Scenario name (see --list).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--towns", type=int, default=1, show_default=True, help="Number of towns.")
@click.option("--hours", type=float, help="Simulated hours per town (default: the scenario's).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Output directory.")
@click.option(
    "--no-container-filter",
    is_flag=True,
    help="Record every container answer as an event (to measure the filter).",
)
@click.option("--list", "list_only", is_flag=True, help="List the scenarios and exit.")
@auto_recover_option
@quiet_option
@reports_errors
def simulate(
    scenario: str | None,
    seed: int,
    towns: int,
    hours: float | None,
    out_dir: str | None,
    no_container_filter: bool,
    list_only: bool,
    auto_recover: tuple[int, ...],
) -> None:
    """Simulate towns of a named scenario into OUT/<townId>.sqlite (same seed, same bytes).

    \b
    Examples:
        reportgen simulate --list
        reportgen simulate --scenario healthy-day --hours 2 --out towns/
        reportgen simulate --scenario container-crash-loop --seed 3 --towns 4 --out towns/
    """
    if list_only:
        click.echo(format_list())
        return
    if scenario is None or out_dir is None:
        raise BadInputError("--scenario and --out are required (or use --list)")
    from reportgen.sim.scenario_files import simulate as run_simulation

    logging.getLogger("reportgen.town").setLevel(logging.ERROR)  # engine warnings are expected
    from reportgen.observability.sentry import LiveEpisodes, reporter_from_env
    from reportgen.town.api import TickObserver
    from reportgen.town.recovery import validate

    recover = validate(auto_recover)
    reporter = reporter_from_env()
    observers: list[TickObserver] = []
    if reporter is not None:
        # in memory: a simulation starts from an empty town, nothing of an earlier run goes on
        observers.append(LiveEpisodes(sqlite3.connect(":memory:"), reporter))
    with progress_bar(f"simulate {scenario}"):
        results = run_simulation(
            scenario, Path(out_dir), seed=seed, towns=towns, hours=hours,
            filter_mode="off" if no_container_filter else "changes", auto_recover=recover,
            observers=observers,
        )  # fmt: skip
    if reporter is not None:
        reporter.flush()
    for result in results:
        click.echo(format_result(result))
