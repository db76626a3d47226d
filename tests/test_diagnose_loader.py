"""The build's judging loader: each town is judged on the window the build loads, as ``diagnose`` judges it.

Real simulated towns and a hand-written upstream dump, loaded the ways a
build loads them (recorded ticks with the file's end state, an exact replay,
``--ticks recorded`` over an earlier window, no journal at all); the
diagnosis attached to the run must say what ``reportgen diagnose`` says of
the same window.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support.townbuilder import HOUR, NOW, ago
from test_diagnose_dumps import dead_town

from reportgen.cli import main
from reportgen.diagnose import diagnose, load_config
from reportgen.diagnose.loader import DiagnosingLoader, config_key
from reportgen.diagnose.registry import BEHAVIOUR, DEFAULT_CONFIG, KINDS
from reportgen.replay.loader import ReplayLoader
from reportgen.sim import simulate_town


@pytest.fixture(scope="module")
def crash_loop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = simulate_town("container-crash-loop", seed=7, hours=1.0,
                           out_dir=tmp_path_factory.mktemp("crash"))  # fmt: skip
    assert result.path is not None
    return result.path


def _verdict_and_ids(diagnosis: dict[str, Any]) -> tuple[str, list[str]]:
    return diagnosis["verdict"], sorted(f["id"] for f in diagnosis["findings"])


def _cli_view(
    path: Path, start: str | None = None, end: str | None = None
) -> tuple[str, list[str]]:
    return _verdict_and_ids(diagnose(path, start, end).to_json())


@pytest.mark.parametrize("ticks", ["auto", "replay"])
def test_a_build_judges_a_town_as_diagnose_does(crash_loop: Path, ticks: str) -> None:
    run = DiagnosingLoader(ReplayLoader(ticks=ticks))(crash_loop, None, None)
    assert run.diagnosis is not None
    assert run.diagnosis["fidelity"] == {"auto": "recorded", "replay": "exact"}[ticks]
    assert _verdict_and_ids(run.diagnosis) == _cli_view(crash_loop)
    assert run.diagnosis["verdict"] == "stuck"
    finding = run.diagnosis["findings"][0]
    assert set(finding) >= {"id", "kind", "severity", "subject", "because", "href", "witness"}
    assert json.loads(json.dumps(run.to_json()))["diagnosis"] == run.diagnosis  # plain JSON


def test_recorded_ticks_of_an_earlier_window_are_judged_on_the_state_at_its_end(
    crash_loop: Path,
) -> None:
    """``--ticks recorded`` over a window that ends before the file does: the file holds the
    latest state, not the window's end, so the state is rebuilt from the journal."""
    start, end = "2026-03-16T08:00:00.000Z", "2026-03-16T08:30:00.000Z"
    run = DiagnosingLoader(ReplayLoader(ticks="recorded"))(crash_loop, start, end)
    assert run.fidelity == "recorded" and run.diagnosis is not None
    assert _verdict_and_ids(run.diagnosis) == _cli_view(crash_loop, start, end)


def test_a_dump_without_journal_is_judged_on_its_tables_as_stored(tmp_path: Path) -> None:
    path = dead_town(tmp_path / "dead.sqlite")
    start, end = ago(HOUR), NOW
    run = DiagnosingLoader()(path, start, end)
    assert run.fidelity == "approximate" and run.diagnosis is not None
    assert _verdict_and_ids(run.diagnosis) == _cli_view(path, start, end)
    assert run.diagnosis["verdict"] == "stuck"
    assert run.diagnosis["not_judged"] == [k.name for k in KINDS if k.judged_on == BEHAVIOUR]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dead.sqlite"]  # nothing beside it


def test_the_loader_pickles_and_its_key_follows_the_thresholds(tmp_path: Path) -> None:
    cfg = tmp_path / "diag.toml"
    cfg.write_text("[no-progress]\nmin_idle = 45\n", encoding="utf-8")
    loader = DiagnosingLoader(ReplayLoader(ticks="replay"), load_config(cfg))
    assert pickle.loads(pickle.dumps(loader)) == loader
    plain = DiagnosingLoader(ReplayLoader(ticks="replay"))
    assert loader.cache_key != plain.cache_key
    assert loader.cache_key.startswith(ReplayLoader(ticks="replay").cache_key)
    same = tmp_path / "same.json"
    same.write_text(json.dumps({"no-progress": {"min_idle": 45}}), encoding="utf-8")
    assert config_key(load_config(same)) == config_key(load_config(cfg))  # values, not the file
    assert config_key(DEFAULT_CONFIG) == config_key(load_config(_empty(tmp_path)))


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.json"
    path.write_text("{}", encoding="utf-8")
    return path


def test_build_diagnosis_config_is_part_of_the_incremental_key(
    crash_loop: Path, tmp_path: Path
) -> None:
    towns = tmp_path / "towns"
    towns.mkdir()
    (towns / crash_loop.name).write_bytes(crash_loop.read_bytes())
    cfg = tmp_path / "diag.toml"
    cfg.write_text("[dispatch-loop]\ndispatches = 50\n", encoding="utf-8")
    out = ["build", str(towns), "--out", str(tmp_path / "site"), "--jobs", "1"]
    runner = CliRunner()

    def kinds() -> set[str]:
        index = json.loads((tmp_path / "site" / "index.json").read_text(encoding="utf-8"))
        return {f["kind"] for t in index["towns"] for f in t["findings"]}

    first = runner.invoke(main, out)
    assert first.exit_code == 0, first.output
    assert "dispatch-loop" in kinds()
    again = runner.invoke(main, [*out, "--diagnosis-config", str(cfg)])
    assert again.exit_code == 0, again.output
    assert "(0 skipped as unchanged" in again.output and "dispatch-loop" not in kinds()
    same = runner.invoke(main, [*out, "--diagnosis-config", str(cfg)])
    assert "(1 skipped as unchanged" in same.output
    cfg.write_text("[dispatch-loop]\nbogus = 1\n", encoding="utf-8")
    bad = runner.invoke(main, [*out, "--diagnosis-config", str(cfg)])
    assert bad.exit_code == 2 and "bogus: unknown threshold" in bad.output
