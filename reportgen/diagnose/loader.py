"""Judge every town of a build on the window the build loads, without loading it twice.

:class:`DiagnosingLoader` wraps the build's town loader
(:class:`reportgen.replay.loader.ReplayLoader`): it loads the window once and
judges it on the same ticks and on the state at the window's end that the
load was read against, as ``reportgen diagnose`` would:

* ``recorded``: the recorded ticks and the state the file holds for the
  window's end (when it holds none, e.g. ``--ticks recorded`` over an earlier
  window, the state is rebuilt from the journal up to the window's end);
* ``exact``: the replayed ticks and the replayed state;
* ``approximate`` (no journal): no ticks (behaviour kinds are listed as not
  judged) and the file's tables as stored; ``simulated`` likewise (ticks
  simulated on a dump's stored state are shown, never judged).

The diagnosis travels on the :class:`~reportgen.town_run.TownRun` as plain
JSON (:func:`diagnosis_record`), so a fleet build can send it between
processes and keep it in its cache.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from reportgen.diagnose.detectors.storm import expected_episodes
from reportgen.diagnose.diagnose import Diagnosis, end_state, judge, window_input
from reportgen.diagnose.registry import DEFAULT_CONFIG, DiagnosisConfig
from reportgen.replay.loader import ReplayLoader
from reportgen.town_run import TownRun


def config_key(config: DiagnosisConfig) -> str:
    """A short digest of the thresholds in force (not of the file they came from)."""
    overrides = {k: dict(sorted(v.items())) for k, v in sorted(config.overrides.items())}
    text = json.dumps(overrides, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class DiagnosingLoader:
    """Loads a town's window with ``loader`` and attaches its diagnosis (``run.diagnosis``).

    A frozen dataclass of picklable parts, so that it can be sent to worker
    processes and Dask workers like the loader it wraps.
    """

    loader: ReplayLoader = field(default_factory=ReplayLoader)
    config: DiagnosisConfig = DEFAULT_CONFIG

    @property
    def cache_key(self) -> str:
        """The loader's options and the thresholds, for the incremental-build key."""
        return f"{self.loader.cache_key}:diagnosis={config_key(self.config)}"

    def __call__(self, source: Path, window_from: str | None, window_to: str | None) -> TownRun:
        loaded = self.loader.load(source, window_from, window_to)
        with end_state(source, loaded) as state:
            loaded.run.diagnosis = diagnose_run(loaded.run, state, self.config)
        return loaded.run


def diagnose_run(
    run: TownRun, state: sqlite3.Connection, config: DiagnosisConfig = DEFAULT_CONFIG
) -> dict[str, Any]:
    """Judge a loaded window on its ticks (none without a journal) and ``state``."""
    inp = window_input(run, state, config)
    # which episodes are expected is asked of every tick shown, simulated ones too
    expected = expected_episodes(replace(inp, ticks=run.ticks))
    return diagnosis_record(judge(inp), expected)


def diagnosis_record(diagnosis: Diagnosis, expected: list[str]) -> dict[str, Any]:
    """What :attr:`TownRun.diagnosis` holds: the ``--json`` shape, each finding with its
    witness ticks and loop (:meth:`~reportgen.diagnose.model.Finding.to_record`), and
    the ids of the expected violation episodes."""
    return {
        **diagnosis.to_json(),
        "findings": [f.to_record() for f in diagnosis.findings],
        "expected_episodes": sorted(expected),
    }


__all__ = ["DiagnosingLoader", "config_key", "diagnose_run", "diagnosis_record"]
