"""Every named scenario gets the verdict and the findings its row in the table says.

The table is :data:`reportgen.diagnose.scenarios.EXPECTATIONS` (also printed
in ``docs/diagnosis.md``). The scenarios are simulated once per session
(``scenario_towns``); ``healthy-day`` runs 4 h there, and four more seeds
run 2 h here (the full 24 h over five seeds: ``benchmarks/bench_diagnose.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from reportgen.diagnose import Diagnosis, diagnose
from reportgen.diagnose.registry import CRITICAL, WARNING
from reportgen.diagnose.scenarios import EXPECTATIONS
from reportgen.sim import SCENARIOS, simulate_town
from reportgen.town import clock


def test_every_scenario_has_a_row() -> None:
    assert set(EXPECTATIONS) == set(SCENARIOS)


def _check(name: str, d: Diagnosis) -> None:
    row = EXPECTATIONS[name]
    counted = {f.kind for f in d.findings if not f.expected}
    expected = {f.kind for f in d.findings if f.expected}
    assert str(d.verdict) == row.verdict, (name, [(f.kind, f.severity) for f in d.findings])
    assert set(row.kinds) <= counted, (name, counted)
    assert set(row.expected) <= expected, (name, expected)
    if row.verdict == "healthy":
        assert not [f for f in d.findings if f.severity in (CRITICAL, WARNING)]


@pytest.mark.parametrize("name", sorted(EXPECTATIONS))
def test_scenario_verdict_and_findings(name: str, scenario_towns: dict[str, Path]) -> None:
    d = diagnose(scenario_towns[name])
    assert d.fidelity == "recorded" and not d.not_judged
    _check(name, d)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_healthy_day_is_healthy_for_other_seeds(seed: int, tmp_path: Path) -> None:
    result = simulate_town("healthy-day", seed=seed, hours=2.0, out_dir=tmp_path)
    assert result.path is not None
    _check("healthy-day", diagnose(result.path))


def test_alarm_stopped_is_stuck_inside_the_gap(scenario_towns: dict[str, Path]) -> None:
    """Judged while the alarm is still silent, the silence is open: the town is stuck."""
    whole = diagnose(scenario_towns["alarm-stopped"])
    (gap,) = [f for f in whole.findings if f.kind == "town-silent"]
    inside = clock.iso(clock.to_ms(gap.first_at) + 20 * clock.MINUTE_MS)
    d = diagnose(scenario_towns["alarm-stopped"], end=inside)
    (silent,) = [f for f in d.findings if f.kind == "town-silent"]
    assert str(d.verdict) == "stuck" and silent.open_at_end and silent.severity == CRITICAL
    assert silent.id == gap.id  # the same problem keeps its id across windows


def test_replayed_window_agrees_with_the_record(scenario_towns: dict[str, Path]) -> None:
    """A window ending before the file's end is replayed exactly; the findings are the same."""
    path = scenario_towns["container-crash-loop"]
    recorded = diagnose(path)
    end = clock.iso(clock.to_ms(recorded.window_to) - clock.MINUTE_MS)
    replayed = diagnose(path, end=end)
    assert replayed.fidelity == "exact"
    assert {(f.kind, f.id) for f in replayed.findings if f.kind == "dispatch-loop"} == {
        (f.kind, f.id) for f in recorded.findings if f.kind == "dispatch-loop"
    }
    assert str(replayed.verdict) == "stuck"
