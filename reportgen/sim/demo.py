"""The demo fleet: a few small towns, one per interesting scenario, simulated on demand.

The README's main command reports on this fleet. Simulating it takes a few
seconds, so it is built when needed rather than shipped as binary fixtures;
the same seed always gives the same databases.

Each town's file is named after its scenario (``multi-pr-rig.sqlite``), so
the index names the demo towns by what they show: stuck towns
(``container-crash-loop``, ``review-round-stuck``, ``working-agent-no-hook``),
a healthy one whose invariant 3 episodes are expected (``multi-pr-rig``) and
a healthy day. ``reportgen.diagnose.scenarios`` documents each verdict.
"""

from __future__ import annotations

from pathlib import Path

from reportgen import progress
from reportgen.errors import ReportgenError
from reportgen.sim.scenario_files import simulate_town

#: ``(scenario, hours)`` of each demo town.
DEMO_FLEET: tuple[tuple[str, float], ...] = (
    ("healthy-day", 3.0),
    ("review-round-stuck", 2.0),
    ("working-agent-no-hook", 1.5),
    ("multi-pr-rig", 2.0),
    ("container-crash-loop", 1.0),
)
DEMO_SEED = 7
#: Bumped when the demo's files change for the same version and seed (2: named by
#: scenario; 3: the name stored in the file).
DEMO_LAYOUT = 3


def demo_fleet(out_dir: str | Path, *, seed: int = DEMO_SEED) -> list[Path]:
    """Simulate the demo fleet into ``out_dir`` as ``<scenario>.sqlite``; returns the
    database paths in fleet order."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    for i, (scenario, hours) in enumerate(DEMO_FLEET):
        with progress.step(i, len(DEMO_FLEET), scenario):
            result = simulate_town(scenario, seed=seed, hours=hours, out_dir=out)
        assert result.path is not None
        paths.append(result.path.replace(out / f"{scenario}.sqlite"))
    return paths


def demo_sources(cache: Path) -> list[Path]:
    """The demo fleet, simulated once into a folder of ``cache`` (same seed, same files):
    later calls return the files a complete earlier run left there."""
    from reportgen import __version__

    folder = cache / f"demo-fleet-{__version__}-seed{DEMO_SEED}-layout{DEMO_LAYOUT}"
    marker = folder / ".complete"
    if marker.exists():
        return sorted(p for p in folder.iterdir() if p.suffix == ".sqlite")
    paths = demo_fleet(folder, seed=DEMO_SEED)
    if len(paths) != len(DEMO_FLEET):
        raise ReportgenError("the demo fleet simulation produced an unexpected set of towns")
    marker.write_text("ok\n", encoding="utf-8")
    return sorted(paths)
