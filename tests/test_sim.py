"""The simulator: determinism, the container_status filter, the CLI and the demo fleet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from support.readback import tick_records

from reportgen.cli import main
from reportgen.sim import DEMO_FLEET, SCENARIOS, demo_fleet, simulate, simulate_town, town_id_for
from reportgen.town.db import load_copy


def _bytes(paths: list[Path]) -> list[bytes]:
    return [p.read_bytes() for p in paths]


def test_same_seed_gives_byte_identical_databases(tmp_path: Path) -> None:
    a = [r.path for r in simulate("double-hook", tmp_path / "a", seed=3, towns=2, hours=1)]
    b = [r.path for r in simulate("double-hook", tmp_path / "b", seed=3, towns=2, hours=1)]
    assert all(p is not None for p in a + b)
    assert [p.name for p in a if p] == [p.name for p in b if p]
    assert _bytes([p for p in a if p]) == _bytes([p for p in b if p])
    conn = load_copy(a[0])  # the simulation's working indexes are not written
    names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")]
    assert not [n for n in names if n.startswith("rg_sim_")]
    conn.close()


def test_determinism_does_not_depend_on_hash_seed(tmp_path: Path) -> None:
    code = (
        "import sys; from reportgen.sim import simulate; "
        "simulate('eviction-during-work', sys.argv[1], seed=5, hours=0.5)"
    )
    for name, hash_seed in (("x", "1"), ("y", "4242")):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        subprocess.run([sys.executable, "-c", code, str(tmp_path / name)], check=True, env=env)
    x, y = sorted((tmp_path / "x").iterdir()), sorted((tmp_path / "y").iterdir())
    assert [p.name for p in x] == [p.name for p in y]
    assert _bytes(x) == _bytes(y)


def test_different_seed_gives_a_different_town(tmp_path: Path) -> None:
    (a,) = simulate("healthy-day", tmp_path, seed=1, hours=1)
    (b,) = simulate("healthy-day", tmp_path, seed=2, hours=1)
    assert a.path is not None and b.path is not None
    assert a.town_id != b.town_id
    assert a.path.read_bytes() != b.path.read_bytes()


def test_container_filter_cuts_noise_without_changing_decisions() -> None:
    """healthy-day, 24 h: ≥ 99 % fewer container_status events, identical decisions."""
    kept = simulate_town("healthy-day", filter_mode="changes", keep_decisions=True)
    every = simulate_town("healthy-day", filter_mode="off", keep_decisions=True)
    assert kept.hours == 24.0
    assert kept.observed == every.observed > 0
    assert every.inserted == every.observed  # unfiltered: one event per answer
    cut = 1 - kept.inserted / every.inserted
    assert cut >= 0.99, f"filter cut only {cut:.2%}"
    assert kept.decisions == every.decisions
    assert kept.ticks == every.ticks


def test_filter_still_records_changes(tmp_path: Path) -> None:
    """A crash loop's ``exited``/``failed`` answers and recoveries are all kept."""
    kept = simulate_town("container-crash-loop", hours=1, out_dir=tmp_path, keep_decisions=True)
    every = simulate_town("container-crash-loop", hours=1, filter_mode="off", keep_decisions=True)
    assert 0 < kept.inserted < every.inserted
    assert kept.decisions is not None and any(kept.decisions)  # some tick decided something
    assert kept.decisions == every.decisions
    assert kept.actions == every.actions and kept.violations == every.violations


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["simulate", *args])
    return result.exit_code, result.stdout, result.stderr


def test_cli_lists_every_scenario_on_one_line_each() -> None:
    code, out, _ = _cli("--list")
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == len(SCENARIOS)
    for line, name in zip(lines, sorted(SCENARIOS), strict=True):
        assert line.split()[0] == name
        assert SCENARIOS[name].summary in line


def test_cli_rejects_an_unknown_scenario() -> None:
    code, _out, err = _cli("--scenario", "no-such-town", "--out", "unused")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: unknown scenario 'no-such-town'")
    assert all(name in lines[0] for name in SCENARIOS)
    assert not Path("unused").exists()


def test_cli_rejects_bad_options(tmp_path: Path) -> None:
    assert _cli("--scenario", "healthy-day")[0] == 2
    assert _cli("--scenario", "healthy-day", "--out", str(tmp_path), "--towns", "0")[0] == 2
    assert _cli("--scenario", "healthy-day", "--out", str(tmp_path), "--hours", "-1")[0] == 2


def test_cli_writes_one_database_per_town(tmp_path: Path) -> None:
    code, out, err = _cli(
        "--scenario", "multi-pr-rig", "--seed", "9", "--towns", "2", "--hours", "0.5",
        "--out", str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    ids = [town_id_for("multi-pr-rig", 9, i) for i in range(2)]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{i}.sqlite" for i in ids)
    lines = out.strip().splitlines()
    assert len(lines) == 2
    for line, town_id in zip(lines, ids, strict=True):
        assert town_id in line and "scenario=multi-pr-rig" in line
        assert "observed" in line and "events inserted" in line
    for town_id in ids:
        ticks = tick_records(tmp_path / f"{town_id}.sqlite")
        assert ticks and ticks[-1].offset_ms <= 30 * 60 * 1000


def test_cli_can_turn_the_filter_off(tmp_path: Path) -> None:
    code, out, _ = _cli(
        "--scenario", "healthy-day", "--hours", "0.5", "--out", str(tmp_path),
        "--no-container-filter",
    )  # fmt: skip
    assert code == 0
    assert "filter off" in out


def test_demo_fleet_builds_town_databases(tmp_path: Path) -> None:
    paths = demo_fleet(tmp_path)
    assert len(paths) == len(DEMO_FLEET)
    for path in paths:
        load_copy(path).close()  # a valid town database
        assert tick_records(path)
