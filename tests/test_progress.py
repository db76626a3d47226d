"""The progress bar and ``--quiet``, seen from a real terminal.

Each command runs as a subprocess whose stderr is a pseudo-terminal
(``tests/support/terminal.py``), so it decides for itself whether it is
talking to a person: a bar on a terminal, none with ``--quiet``, none when
stderr is a pipe (CI logs), and with ``--quiet`` no informational line
either, while errors, exit codes and stdout stay as they were.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from support.terminal import TerminalRun, run_on_terminal, run_with_pipes

from reportgen import progress
from reportgen.replay import replay_window
from reportgen.replay.loader import ReplayLoader
from reportgen.report.build import build_site
from reportgen.sim import simulate_town
from reportgen.sim.scenario_files import simulate

#: Erases the line and returns to its start: how every redraw of the bar begins.
REDRAW = "\r\x1b[2K"
COLUMNS = 72


@pytest.fixture(scope="module")
def town(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small town (half an hour of healthy-day): enough ticks to replay, quick to do it."""
    result = simulate_town("healthy-day", seed=3, hours=0.5, out_dir=tmp_path_factory.mktemp("t"))
    assert result.path is not None
    return result.path


@pytest.fixture(scope="module")
def loud(town: Path, tmp_path_factory: pytest.TempPathFactory) -> TerminalRun:
    """``replay --ticks`` of the town with stderr on a terminal, no option."""
    return run_on_terminal(_replay(town), cwd=tmp_path_factory.mktemp("loud"), columns=COLUMNS)


def _replay(town: Path, *extra: str) -> list[str]:
    return [
        "replay", "--db", str(town), "--from", "2026-03-16T08:00:00Z",
        "--to", "2026-03-16T08:30:00Z", "--ticks", *extra,
    ]  # fmt: skip


def _bars(terminal: str, title: str) -> list[str]:
    """Every drawing of the bar titled ``title`` on the terminal."""
    return [part for part in terminal.split(REDRAW) if part.startswith(f"{title} [")]


def test_replay_draws_a_bar_on_a_terminal_and_erases_it(loud: TerminalRun) -> None:
    run = loud
    assert run.returncode == 0, run.terminal
    bars = _bars(run.terminal, "replay")
    assert bars, f"no progress bar on the terminal: {run.terminal!r}"
    assert re.match(r"replay \[#+\] 100%", bars[-1]), bars[-1]
    percents = [int(re.search(r"(\d+)%", b).group(1)) for b in bars]  # type: ignore[union-attr]
    assert percents[-1] == 100 and len(percents) > 2
    assert max(len(bar) for bar in bars) < COLUMNS, "a bar wider than the terminal wraps"
    # erased before the informational line, which starts at the beginning of a clean line
    assert f"{REDRAW}window 2026-03-16T08:00:00.000Z .. " in run.terminal
    assert "no divergence" in run.stdout


def test_quiet_draws_nothing_and_keeps_stdout(
    town: Path, loud: TerminalRun, tmp_path: Path
) -> None:
    quiet = run_on_terminal(_replay(town, "--quiet"), cwd=tmp_path)
    assert quiet.returncode == loud.returncode == 0
    assert quiet.terminal == "", "--quiet: no bar and no informational line"
    assert quiet.stdout == loud.stdout


def test_no_bar_when_stderr_is_a_pipe(town: Path, tmp_path: Path) -> None:
    run = run_with_pipes(_replay(town), cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "\r" not in run.stderr and "\x1b" not in run.stderr and "%" not in run.stderr
    assert run.stderr.startswith("window 2026-03-16T08:00:00.000Z .. ")
    assert run_with_pipes(_replay(town, "-q"), cwd=tmp_path).stderr == ""


def test_quiet_still_prints_errors_with_their_exit_code(tmp_path: Path) -> None:
    missing = tmp_path / "missing.sqlite"
    run = run_on_terminal(_replay(missing, "--quiet"), cwd=tmp_path)
    assert run.returncode == 2
    assert run.terminal.startswith("error: ") and str(missing) in run.terminal
    build = run_on_terminal(["build", str(missing), "--out", "site", "-q"], cwd=tmp_path)
    assert build.returncode == 2 and build.terminal.startswith("error: ")


def test_simulate_and_build_draw_bars_unless_quiet(tmp_path: Path) -> None:
    sim = run_on_terminal(
        ["simulate", "--scenario", "healthy-day", "--hours", "0.3", "--towns", "2", "--out", "t"],
        cwd=tmp_path,
    )
    assert sim.returncode == 0, sim.terminal
    last = _bars(sim.terminal, "simulate healthy-day")[-1]
    assert last.endswith("100%  town 2/2 · 2026-03-16T08:18:00.000Z"), last
    assert "town 2/2" in sim.terminal
    assert len(sim.stdout.splitlines()) == 2

    build = run_on_terminal(["build", "t", "--out", "site", "--jobs", "1"], cwd=tmp_path)
    assert build.returncode == 0, build.terminal
    assert re.search(r"build \[#+\] 100%", build.terminal), build.terminal
    assert "window " in build.terminal  # the build's window, an informational line
    assert "towns" in build.stdout

    quiet = run_on_terminal(
        ["build", "t", "--out", "site", "--no-incremental", "--quiet"], cwd=tmp_path
    )
    assert quiet.returncode == 0 and quiet.terminal == ""
    assert quiet.stdout == build.stdout
    site_text = "".join(p.read_text("utf-8") for p in (tmp_path / "site").rglob("*.html"))
    assert REDRAW not in site_text


def test_steps_report_one_bar_over_every_town(tmp_path: Path) -> None:
    """How a simulation of several towns (and the demo fleet of ``build``) reports: one
    progress from 0 to the end across the towns, never going back."""
    seen: list[tuple[int, int, str]] = []
    with progress.listening(lambda done, total, label: seen.append((done, total, label))):
        simulate("healthy-day", tmp_path, towns=2, hours=0.1)
    fractions = [done / total for done, total, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {label.split(" · ")[0] for _, _, label in seen} == {"town 1/2", "town 2/2"}
    progress.report(1, 2, "nobody listens: nothing happens")


def _fractions(work: Callable[[], object]) -> list[tuple[float, str]]:
    """``(done / total, label)`` of every report ``work`` makes."""
    seen: list[tuple[float, str]] = []
    with progress.listening(lambda done, total, label: seen.append((done / total, label))):
        work()
    return seen


def test_a_replay_from_inside_the_data_fills_one_bar_once(town: Path) -> None:
    """Rebuilding the state at --from, then the window: one bar, never going back."""
    seen = _fractions(lambda: replay_window(town, "2026-03-16T08:15:00Z", "2026-03-16T08:30:00Z"))
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    phases = [label.split(" · ")[0] for _, label in seen]
    assert "state at the window's start" in phases and phases[-1] == "the window"


def test_a_one_process_build_fills_one_bar_over_its_towns(town: Path, tmp_path: Path) -> None:
    """With --jobs 1 each town's replay is its share of the build's one bar."""
    sources = [tmp_path / "a.sqlite", tmp_path / "b.sqlite"]
    for source in sources:
        source.write_bytes(town.read_bytes())
    seen: list[tuple[float, str]] = []

    def bar(done: int, total: int, label: str = "") -> None:
        seen.append((done / total, label))

    with progress.listening(bar):
        build_site(sources, tmp_path / "site", load_run=ReplayLoader(ticks="replay"),
                   progress=bar, jobs=1, incremental=False)  # fmt: skip
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert {label.split(" · ")[0] for _, label in seen} >= {"a.sqlite", "b.sqlite"}
